"""Quick checks before a long run: trainer.fast_dev_run, trainer.overfit_batches, trainer.limit_*_batches
(runner/training/recipe.py, runner/commands/train.py; docs/long-runs.md)."""

import csv
from pathlib import Path

import pytest
import torch
from conftest import runner, summary

from runner.data.batches import BatchIndices
from runner.io.errors import RunnerError
from runner.training.recipe import Recipe, batches_of


def rows(run_dir):
    with open(Path(run_dir, "metrics.csv")) as f:
        return list(csv.DictReader(f))


def test_fast_dev_run_checks_each_split_in_its_own_folder_and_report_leaves_it_out(tmp_path):
    proc = runner("train", "trainer.fast_dev_run=2", "logger=tensorboard", cwd=tmp_path)
    (run,) = [p.parent for p in tmp_path.rglob("summary.json")]
    assert run.parents[1] == tmp_path / "outputs" / "fast_dev_run", run  # outputs/fast_dev_run/DATE/TIME
    info = summary(run)
    assert info["status"] == "completed" and info["quick_check"] == "fast_dev_run"
    # digits: 20 full training batches of 64, one validation and one test batch of 512
    assert info["limits"] == {
        "train": {"batches": 2, "of": 20},
        "val": {"batches": 1, "of": 1},
        "test": {"batches": 1, "of": 1},
    }, info["limits"]
    assert info["epochs"] == 1 and info["steps"] == 2  # one epoch of two batches, whatever trainer.epochs says
    assert len(rows(run)) == 1 and (run / "checkpoints" / "best.pt").is_file()  # the real save and load paths
    assert not list(run.rglob("events.out.tfevents*")), "fast_dev_run feeds no logger (Lightning's rule)"
    said = " ".join(proc.stdout.split())
    assert "not a result (runner report leaves it out)" in said and "test_accuracy (best.pt, 1 of 1 batch)" in said

    runner("train", "trainer.epochs=1", cwd=tmp_path)  # a real run beside it
    report = runner("report", "outputs/**/", "--format", "csv", cwd=tmp_path)
    listed = [line for line in report.stdout.splitlines()[1:] if line]
    assert len(listed) == 1 and "fast_dev_run" not in report.stdout, report.stdout
    assert "left out 1 quick check (trainer.fast_dev_run or trainer.overfit_batches)" in report.stderr


# Pinned: cnn on digits, the same 2 batches (128 samples) for 30 epochs at Adam's lr 0.001, seed 0, on CPU:
# train_loss 2.3474 in epoch 1, 0.0338 in epoch 30. Re-pin from `runner train trainer.overfit_batches=2
# trainer.epochs=30` if the model's init or the data order changes on purpose.
def test_overfit_batches_drives_the_default_cnns_loss_near_zero_and_says_so(tmp_path):
    proc = runner("train", "trainer.overfit_batches=2", "trainer.epochs=30", cwd=tmp_path)
    (run,) = [p.parent for p in tmp_path.rglob("summary.json")]
    overfit = summary(run)["overfit"]
    assert overfit["samples"] == 128 and overfit["fitted"] is True
    assert overfit["first_train_loss"] == pytest.approx(2.3474, abs=5e-4)
    assert overfit["train_loss"] == pytest.approx(0.0338, abs=5e-4)
    assert "it fell near zero" in proc.stdout
    assert summary(run)["quick_check"] == "overfit_batches"


def test_overfit_batches_says_when_the_loss_did_not_fall(tmp_path):
    # a learning rate too small to learn anything in 10 epochs: the check must say so, not pass
    proc = runner("train", "trainer.overfit_batches=1", "optimizer.lr=1e-7", cwd=tmp_path)
    (run,) = [p.parent for p in tmp_path.rglob("summary.json")]
    assert summary(run)["overfit"]["fitted"] is False
    assert "it did not fall near zero" in " ".join(proc.stdout.split())


def test_limit_train_batches_shortens_every_epoch_and_the_schedule_counts_it(tmp_path):
    runner(
        "train", "trainer.limit_train_batches=0.25", "trainer.limit_val_batches=1", "trainer.epochs=2",
        "scheduler=cosine", cwd=tmp_path,
    )  # fmt: skip
    (run,) = [p.parent for p in tmp_path.rglob("summary.json")]
    info = summary(run)
    assert info["limits"]["train"] == {"batches": 5, "of": 20}  # int(0.25 x 20), Lightning's rounding
    assert info["steps"] == 10 and "quick_check" not in info  # a limit alone is a run like any other
    # cosine to 0 over the steps the run takes: the last epoch's lr is the schedule's end, not its middle
    assert float(rows(run)[-1]["lr"]) < 0.001 * 0.2


def test_batches_of_counts_and_fractions_as_lightning_does():
    assert batches_of(None, 17, "limit_train_batches") is None
    assert batches_of(3, 17, "limit_train_batches") == 3
    assert batches_of(50, 17, "limit_train_batches") == 17  # at most a whole pass
    assert batches_of(0.25, 17, "limit_train_batches") == 4
    assert batches_of(1.0, 17, "limit_train_batches") == 17
    with pytest.raises(RunnerError, match=r"limit_val_batches=0\.05 of the 17 batches of a pass is no batch at all"):
        batches_of(0.05, 17, "limit_val_batches")


def test_fast_dev_run_is_one_epoch_of_n_batches_of_each_split():
    from omegaconf import OmegaConf

    trainer = OmegaConf.load(Path(__file__).parents[1] / "configs" / "trainer" / "default.yaml")
    assert Recipe.of(trainer).quick_check is None and Recipe.of(trainer).limit_train_batches is None
    trainer.fast_dev_run, trainer.epochs, trainer.max_steps = True, 10, 5
    recipe = Recipe.of(trainer)
    assert (recipe.epochs, recipe.max_steps, recipe.quick_check) == (1, None, "fast_dev_run")
    assert recipe.limit_train_batches == recipe.limit_val_batches == recipe.limit_test_batches == 1
    trainer.fast_dev_run = 3
    assert Recipe.of(trainer).limit_test_batches == 3


def test_a_limited_pass_takes_the_first_batches_of_each_permutation_and_a_resumed_fixed_pass_continues():
    full = BatchIndices(40, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    limited = BatchIndices(40, 8, shuffle=True, generator=torch.Generator().manual_seed(0))
    limited.limit = 2
    for _ in range(2):  # one permutation a pass either way: the next pass's order is the same
        whole, part = list(full), list(limited)
        assert len(part) == len(limited) == 2 and all(torch.equal(a, b) for a, b in zip(whole, part))
    fixed = BatchIndices(40, 8)  # trainer.overfit_batches: no shuffle, the same batches every pass
    first = list(fixed)
    fixed.resume(None, 3)  # last.pt saved after 3 batches of an epoch
    assert [b.tolist() for b in fixed] == [b.tolist() for b in first[3:]]
    assert [b.tolist() for b in fixed] == [b.tolist() for b in first]  # and the next pass is whole again
