"""A validation split that can choose between epochs, or none: dataset.val_fraction=0, trainer.monitor=train_loss, and
the setup's word on a split too small to choose by (runner's rule: fewer than 50 samples or 5 of a class).

Issue 36's example: a 1-D signal set of 67 training samples as dataset=arrays held out 7 for validation, and best.pt
(chosen by 7 samples) tested far below the last epoch, with no way to do otherwise."""

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import load, runner, summary
from omegaconf import OmegaConf

from runner.data.splits import Split, holdout, holdout_rows, stratified_holdouts
from runner.io.errors import RunnerError
from runner.training.recipe import Monitor, Recipe
from runner.training.setup import check_validation
from runner.training.setup_data import validation_size


class Said:
    """A console that keeps what it was asked to print."""

    def __init__(self):
        self.lines = []

    def print(self, line, **_):
        self.lines.append(line)


def recipe(**knobs):
    trainer = OmegaConf.load(Path(__file__).resolve().parent.parent / "configs" / "trainer" / "default.yaml")
    for key, value in knobs.items():
        OmegaConf.update(trainer, key, value)
    return Recipe.of(trainer)


def test_a_val_fraction_of_0_holds_out_nothing_and_a_test_fraction_of_0_is_still_refused():
    split = Split(torch.arange(20).float()[:, None], torch.arange(20) % 2)
    rest, held = holdout(split, 0, seed=0)
    assert len(held) == 0 and len(rest) == 20
    rows = stratified_holdouts(np.arange(40) % 2, 40, 0, 0.25, seed=0, classes=["a", "b"])
    assert len(rows["val"]) == 0 and len(rows["train"]) == 30 and len(rows["test"]) == 10
    with pytest.raises(RunnerError, match=r"dataset\.test_fraction=0"):
        holdout_rows(40, 0, 0, what="dataset.test_fraction")


@pytest.mark.parametrize(
    ("n", "per_class", "too_small"),
    [(49, None, True), (50, None, False), (100, [96, 4], True), (100, [95, 5], False), (60, [60, 0], True)],
    ids=["49 values", "50 values", "a class of 4", "5 of each", "a class missing"],
)
def test_runners_rule_for_a_validation_split_too_small_to_choose_between_epochs(n, per_class, too_small):
    task = "regression" if per_class is None else "classification"
    y = torch.zeros(n, 1) if per_class is None else torch.repeat_interleave(torch.arange(2), torch.tensor(per_class))
    said = Said()
    record = validation_size(
        Split(torch.zeros(n, 3), y), OmegaConf.create({"task": task, "num_classes": 2}), console=said
    )
    assert record == {"samples": n, "too_small": too_small}
    assert bool(said.lines) == too_small
    if too_small:
        for fix in ("dataset.val_fraction=0.2", "dataset.val_fraction=0", "trainer.monitor=train_loss"):
            assert fix in said.lines[0]


@pytest.mark.parametrize(
    ("knobs", "refused"),
    [
        ({"monitor": "val_loss"}, "trainer.monitor=val_loss"),
        ({"early_stopping.patience": 3}, "trainer.early_stopping.patience=3"),
        ({"save_top_k": 3}, "trainer.save_top_k=3"),
        ({"save_top_k": 3, "average_top_k": True}, "trainer.save_top_k=3"),
        ({"monitor": "train_loss", "threshold": "tuned"}, "trainer.threshold=tuned"),
        ({"monitor": "train_loss", "save_top_k": 3, "early_stopping.patience": 3}, None),
        ({}, None),
    ],
)
def test_without_a_validation_split_what_would_choose_by_one_is_refused_unless_it_monitors_train_loss(knobs, refused):
    if refused is None:
        check_validation(recipe(**knobs), val_samples=0)
    else:
        with pytest.raises(RunnerError) as err:
            check_validation(recipe(**knobs), val_samples=0)
        message = str(err.value)
        assert message.startswith(refused) and "dataset.val_fraction=0" in message
        if refused != "trainer.threshold=tuned":
            assert "there is no validation split to monitor" in message
            assert "dataset.val_fraction=0.1 or trainer.monitor=train_loss" in message
    # with a validation split, every one of them is the run's to choose
    check_validation(recipe(**knobs), val_samples=10)


def test_the_monitor_without_a_validation_split_is_the_last_epoch_or_the_training_loss():
    assert Monitor.of(recipe(), "classification", validated=False) == Monitor("epoch", "max")
    assert Monitor.of(recipe(monitor="train_loss"), "classification", validated=False) == Monitor("train_loss", "min")
    assert Monitor.of(recipe(), "classification") == Monitor("val_accuracy", "max")


@pytest.fixture
def signal_set(tmp_path):
    """Issue 36's kind of data: 67 training samples of a 1-D signal and a test set, as arrays (x_train, x_test)."""
    rng = np.random.default_rng(0)

    def make(n):
        y = rng.integers(0, 3, n)
        x = rng.normal(size=(n, 20)).astype(np.float32)
        x[np.arange(n), y] += 2
        return x, y

    (x_train, y_train), (x_test, y_test) = make(67), make(60)
    np.savez(tmp_path / "signal.npz", x_train=x_train, y_train=y_train, x_test=x_test, y_test=y_test)
    return ["dataset=arrays", "dataset.path=signal.npz", "trainer.epochs=6", "trainer.batch_size=16"]


def rows(run_dir):
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_a_67_sample_signal_set_is_warned_of_and_trains_without_validation_or_by_its_training_loss(
    tmp_path, signal_set
):
    # 10 % of 67 held out: 7 samples, 2 or 3 of a class, said at setup with the three ways out. Chosen by the training
    # loss instead (trainer.monitor=train_loss): best.pt is the epoch of the lowest one; a large learning rate makes
    # the loss go up and down, so that epoch is not the last (the precondition), and save_top_k=-1 keeps every epoch's
    by_loss = tmp_path / "by_loss"
    knobs = ["trainer.monitor=train_loss", "trainer.save_top_k=-1", "optimizer.lr=0.3"]
    warned = runner("train", *signal_set, *knobs, "hydra.run.dir=by_loss", cwd=tmp_path)
    assert "validation: 7 samples, too few to choose between epochs" in " ".join(warned.stdout.split())
    record = summary(by_loss)
    assert record["validation"] == {"samples": 7, "too_small": True}
    losses = [float(r["train_loss"]) for r in rows(by_loss)]
    lowest = 1 + int(np.argmin(losses))
    assert lowest != len(losses), losses
    assert record["monitor"] == "train_loss" and record["best"]["epoch"] == lowest
    assert record["best"]["train_loss"] == pytest.approx(min(losses))
    (kept,) = by_loss.glob(f"checkpoints/epoch={lowest:03d}-train_loss=*.pt")
    best, chosen = load(by_loss / "checkpoints" / "best.pt"), load(kept)
    assert all(torch.equal(best[k], chosen[k]) for k in best)

    # no validation split: metrics.csv has no val_ column, best.pt is the last epoch
    runner("train", *signal_set, "dataset.val_fraction=0", "hydra.run.dir=last", cwd=tmp_path)
    last = tmp_path / "last"
    record = summary(last)
    assert record["samples"]["val"] == 0 and record["validation"] == {"samples": 0, "too_small": False}
    assert record["monitor"] == "epoch" and record["best"] == {"epoch": 6}
    assert not [c for c in rows(last)[0] if c.startswith("val_")]
    best, final = load(last / "checkpoints" / "best.pt"), load(last / "checkpoints" / "last.pt")["model"]
    assert all(torch.equal(best[k], final[k]) for k in best)
