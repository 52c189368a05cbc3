"""Quick checks before a long run: trainer.fast_dev_run, trainer.overfit_batches, trainer.limit_*_batches
(runner/training/recipe.py, runner/commands/train.py; docs/long-runs.md)."""

import csv
from pathlib import Path

import pytest
import torch
from conftest import digest, runner, summary
from omegaconf import OmegaConf

from runner.data.batches import BatchIndices
from runner.io.errors import RunnerError
from runner.training.finish import overfit_verdict
from runner.training.metrics import TASKS, loss_floor
from runner.training.recipe import Recipe, batches_of

TRAINER = Path(__file__).parents[1] / "configs" / "trainer" / "default.yaml"


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
    every = runner("report", "outputs/**/", "--format", "csv", "--quick-checks", cwd=tmp_path)
    assert len([line for line in every.stdout.splitlines()[1:] if line]) == 2 and "fast_dev_run" in every.stdout

    # a check is run again, not resumed (its one epoch would make trainer.epochs=5 a no-op that says completed)
    before = digest(run)
    resumed = runner("train", f"resume={run}", "trainer.epochs=5", cwd=tmp_path, check=False)
    assert resumed.returncode == 1 and "is a trainer.fast_dev_run check" in " ".join(resumed.stderr.split())
    assert digest(run) == before


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


def test_limits_shorten_each_pass_and_the_schedule_counts_the_steps_taken(tmp_path):
    limits = ["trainer.limit_train_batches=0.25", "trainer.limit_val_batches=1", "trainer.limit_test_batches=2"]
    proc = runner(
        "train", *limits, "trainer.eval_batch_size=64", "trainer.epochs=2", "scheduler=cosine", cwd=tmp_path
    )  # fmt: skip
    (run,) = [p.parent for p in tmp_path.rglob("summary.json")]
    info = summary(run)
    # digits in batches of 64: 20 full training batches, 3 of validation, 6 of test
    assert info["limits"] == {
        "train": {"batches": 5, "of": 20},  # int(0.25 x 20), Lightning's rounding
        "val": {"batches": 1, "of": 3},
        "test": {"batches": 2, "of": 6},
    }
    assert "test_accuracy (best.pt, 2 of 6 batches)" in " ".join(proc.stdout.split())
    assert info["steps"] == 10 and "quick_check" not in info  # a limit alone is a run like any other
    # cosine to 0 over the steps the run takes: the last epoch's lr is the schedule's end, not its middle
    assert float(rows(run)[-1]["lr"]) < 0.001 * 0.2


def test_the_overfit_verdict_measures_the_fall_to_the_losss_floor():
    # cross-entropy with label smoothing 0.1 over 10 classes cannot go below the smoothed targets' entropy, 0.5003
    # nats (tests/test_recipes.py derives it the same way): 0.52 is near that floor, not near zero
    floor = loss_floor(TASKS["classification"], 0.1, 10)
    assert floor == pytest.approx(0.5003, abs=1e-4)
    assert loss_floor(TASKS["classification"], 0.0, 10) == 0 and loss_floor(TASKS["regression"], 0.1, 1) == 0
    recipe = Recipe.of(OmegaConf.load(TRAINER))
    rows = [{"train_loss": 2.36}, {"train_loss": 0.52}]
    assert overfit_verdict(rows, recipe, 128, floor=floor)[1]["fitted"] is True
    assert overfit_verdict(rows, recipe, 128)[1]["fitted"] is False  # 0.52 is not near zero
    # a regression's MSE has the targets' scale: only the fall counts (to under 5 % of the first epoch's)
    mse = [{"train_loss": 400.0}, {"train_loss": 12.0}]
    assert overfit_verdict(mse, recipe, 128, absolute=False)[1]["fitted"] is True
    assert overfit_verdict(mse, recipe, 128)[1]["fitted"] is False


def test_batches_of_counts_and_fractions_as_lightning_does():
    assert batches_of(None, 17, "limit_train_batches") is None
    assert batches_of(3, 17, "limit_train_batches") == 3
    assert batches_of(50, 17, "limit_train_batches") == 17  # at most a whole pass
    assert batches_of(0.25, 17, "limit_train_batches") == 4
    assert batches_of(1.0, 17, "limit_train_batches") == 17
    with pytest.raises(RunnerError, match=r"limit_val_batches=0\.05 of the 17 batches of a pass is no batch at all"):
        batches_of(0.05, 17, "limit_val_batches")
    with pytest.raises(RunnerError, match=r"of the one batch of a pass .* \(one batch\); null takes it all"):
        batches_of(0.5, 1, "limit_val_batches")  # no fraction below 1 of one batch is a batch


def test_fast_dev_run_is_one_epoch_of_n_batches_of_each_split():
    trainer = OmegaConf.load(TRAINER)
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
