"""`runner lr-find`: the learning-rate range test (runner/commands/lr_find.py; docs/long-runs.md)."""

import csv
import json
import math
import shlex
import signal
import time

import pytest
from conftest import assert_clean_failure, digest, runner, start, summary

from runner.commands.lr_find import RangeTest


def test_the_learning_rate_grows_exponentially_from_min_to_max():
    test = RangeTest(1e-6, 1.0, 7)
    assert [test.lr(i) for i in range(7)] == pytest.approx([1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1, 1.0])


def test_the_suggestion_is_the_steepest_fall_of_the_smoothed_loss_against_log_lr():
    # a loss that falls fastest at lr 1e-3 (tanh of log10(lr) + 3); smoothing moves the steepest point later (the
    # average's lag)
    test = RangeTest(1e-8, 1.0, 101, early_stop_threshold=None)
    for i in range(101):
        lr = test.lr(i)
        assert not test.record(lr, 2.0 - math.tanh(math.log10(lr) + 3))
    best = test.suggestion()
    assert 1e-3 <= test.lrs[best] <= 1e-2, test.lrs[best]  # the average lags: later, within a decade
    # without smoothing lag (beta would be 0) the fastest fall is at 1e-3 itself: the derivative of the curve
    flat = RangeTest(1e-8, 1.0, 81, early_stop_threshold=None)  # a tenth of a decade a step: 1e-3 is step 50
    flat.smoothed = [2.0 - math.tanh(math.log10(flat.lr(i)) + 3) for i in range(81)]
    flat.lrs = [flat.lr(i) for i in range(81)]
    assert flat.lrs[flat.suggestion()] == pytest.approx(1e-3)


def test_the_test_stops_once_the_smoothed_loss_passes_four_times_its_lowest():
    test = RangeTest(1e-4, 1.0, 100)
    stopped = [test.record(test.lr(i), loss) for i, loss in enumerate([1.0] * 20 + [1000.0] * 5)]
    # the average of 20 ones and k thousands passes 4 (four times the lowest, 1.0) at the first thousand already
    assert stopped.index(True) == 20 and test.stopped_early
    assert RangeTest(1e-4, 1.0, 100).record(1e-4, float("nan")) is True  # a non-finite loss stops it too


# Pinned: digits x cnn with Adam, batch 64, seed 0, CPU: 0.017 at step 78 of 100 (2026-12-02). Re-pin from
# `runner lr-find` (lr_find.json) when the model's init or the data order changes on purpose.
def test_lr_find_suggests_a_rate_writes_its_curve_and_leaves_the_run_it_starts_from_untouched(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    before = digest(run_dir)
    proc = runner("lr-find", f"init_from={run_dir}", cwd=tmp_path)
    assert digest(run_dir) == before  # the run it read: byte for byte
    (out,) = list((tmp_path / "outputs" / "lr_find").glob("*/*"))
    assert sorted(p.name for p in out.iterdir()) == ["lr_find.csv", "lr_find.json", "lr_find.png"]
    assert (out / "lr_find.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    result = json.loads((out / "lr_find.json").read_text())
    assert (
        1e-8 <= result["suggested_lr"] <= 1.0 and result["steps"] == len((out / "lr_find.csv").read_text().split()) - 1
    )
    assert "suggested learning rate" in proc.stdout and "<- suggested" in proc.stdout

    (tmp_path / "fresh").mkdir()
    fresh = runner("lr-find", cwd=tmp_path / "fresh")
    pinned = json.loads(next((tmp_path / "fresh").rglob("lr_find.json")).read_text())
    assert (pinned["suggested_lr"], pinned["step"], pinned["steps"]) == (0.017, 78, 100), pinned
    # the printed command trains with the suggestion (one epoch here)
    command = shlex.split(pinned["train_with"])
    assert command[:2] == ["runner", "train"] and command[-1] == "optimizer.lr=0.017"
    assert pinned["train_with"] in " ".join(fresh.stdout.split())
    runner(*command[1:], "trainer.epochs=1", cwd=tmp_path / "fresh")
    (run,) = [p.parent for p in (tmp_path / "fresh" / "outputs").glob("2*/*/summary.json")]
    assert summary(run)["status"] == "completed"


def test_parameter_groups_keep_their_ratio_to_optimizer_lr_and_the_printed_command_keeps_the_overrides(tmp_path):
    groups = "optimizer.param_groups=[{params: [head], lr: 0.01}]"  # 10 x optimizer.lr's 0.001
    proc = runner("lr-find", groups, "lr_find.num_training=20", "lr_find.max_lr=0.01", "+seed=1", cwd=tmp_path,
                  check=False)  # fmt: skip
    assert proc.returncode == 1 and "seed" in proc.stderr  # + on a key that exists: Hydra's refusal, in our words
    proc = runner("lr-find", groups, "lr_find.num_training=20", "lr_find.max_lr=0.01", "seed=1", cwd=tmp_path)
    result = json.loads(next(tmp_path.rglob("lr_find.json")).read_text())
    assert result["group_ratios"] == pytest.approx([1.0, 10.0])  # the rest of the model, then the head
    assert "each parameter group at its own ratio to optimizer.lr" in " ".join(proc.stdout.split())
    assert shlex.split(result["train_with"])[2:] == [groups, "seed=1", f"optimizer.lr={result['suggested_lr']:g}"]


def test_a_stop_during_the_range_test_leaves_nothing(tmp_path):
    job = start("lr-find", "lr_find.num_training=1000000", "lr_find.early_stop_threshold=null", "lr_find.max_lr=1e-6",
                cwd=tmp_path)  # fmt: skip
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/lr_find/*/*")) and time.time() < deadline:
        time.sleep(0.05)
    assert list(tmp_path.glob("outputs/lr_find/*/*")), "the range test never started"
    time.sleep(2)  # into the steps (setup takes about a second)
    job.send_signal(signal.SIGINT)
    out, err = job.communicate(timeout=120)
    assert job.returncode == 130, out + err
    assert "stopped by SIGINT" in err and "Traceback" not in err, err  # mostly "at step N of the range test"
    assert not (tmp_path / "outputs").exists(), list(tmp_path.rglob("*"))


def lr_find_here(tmp_path, monkeypatch, *overrides):
    """`runner lr-find OVERRIDES` in this process, to watch its optimizer: lr_find.json's content, and the rates of
    every parameter group as each step applied them (read as training/loop.update steps, which lr-find's steps take
    through the loop's own train_step)."""
    from hydra import compose, initialize_config_module

    from runner.commands import lr_find
    from runner.config.resolvers import register_resolvers
    from runner.io import signals
    from runner.training import loop

    register_resolvers()  # as runner's main does before Hydra composes
    applied, update = [], loop.update

    def watched(job, epoch):
        applied.append([group["lr"] for group in job.state.optimizer.param_groups])
        update(job, epoch)

    monkeypatch.setattr(loop, "update", watched)
    # what a job sets for the whole process, which outlives this test, is left as it was: torch's determinism
    # (trainer.deterministic=false), the stand-in for torch._dynamo (training/compiler.py), the stop signals' handlers
    overrides = [*overrides, "trainer.deterministic=false"]
    monkeypatch.setenv("RUNNER_DEFER_DYNAMO", "0")
    monkeypatch.setattr(signals, "_process", None)
    handlers = {name: signal.getsignal(getattr(signal, name)) for name in signals.SIGNALS if hasattr(signal, name)}
    try:
        with initialize_config_module("runner.configs", version_base="1.3"):
            cfg = compose("lr_find", overrides=overrides)
        return lr_find.lr_find_job(cfg, tmp_path, overrides), applied
    finally:
        for name, handler in handlers.items():
            signal.signal(getattr(signal, name), handler)


@pytest.mark.parametrize("schedule", [["scheduler=onecycle"], ["scheduler=cosine", "scheduler.warmup_epochs=1"]])
def test_a_schedule_changes_none_of_the_rates_the_test_applies(tmp_path, monkeypatch, schedule):
    # the schedule's first factor (onecycle's 1/25, the warmup's 1/20) was taken for a group ratio: every rate applied
    # was 25x or 20x below the one recorded. The ratios are optimizer.param_groups' own: the head at 10x
    groups = "optimizer.param_groups=[{params: [head], lr: 0.01}]"
    settings = ["lr_find.num_training=13", "lr_find.max_lr=0.01", "lr_find.early_stop_threshold=null"]
    result, applied = lr_find_here(tmp_path, monkeypatch, groups, *schedule, *settings)
    assert result["group_ratios"] == [1.0, 10.0]
    recorded = [float(row.split(",")[1]) for row in (tmp_path / "lr_find.csv").read_text().split()[1:]]
    assert len(applied) == len(recorded) == 13
    assert [rest for rest, _ in applied] == recorded
    assert [head for _, head in applied] == pytest.approx([10 * lr for lr in recorded], rel=1e-12)


def first_loss(folder):
    """The first step's loss in lr_find.csv under `folder`."""
    (found,) = folder.rglob("lr_find.csv")
    return float(found.read_text().split()[1].split(",")[2])


@pytest.mark.slow
def test_each_step_is_taken_as_training_takes_it_frozen_batchnorm_in_eval_mode(tmp_path):
    # trainer.freeze keeps the frozen BatchNorm layers in eval mode; lr-find ran them in train mode (its step-1 loss
    # 1.703 against training's 1.487 on the same batch). The first step's loss is the model's before any update
    frozen, short = "trainer.freeze=[features]", "lr_find.num_training=13"
    runner("train", frozen, "trainer.max_steps=1", "hydra.run.dir=train", cwd=tmp_path)
    with open(tmp_path / "train" / "metrics.csv", newline="") as f:
        (row,) = csv.DictReader(f)
    (tmp_path / "frozen").mkdir()
    runner("lr-find", frozen, short, cwd=tmp_path / "frozen")
    # one batch of 64: train_loss is that batch's loss (x 64 / 64, exact in floating point)
    assert first_loss(tmp_path / "frozen") == float(row["train_loss"])
    # the precondition that makes this a test: the same layers in train mode (nothing frozen) give another loss
    (tmp_path / "plain").mkdir()
    runner("lr-find", short, cwd=tmp_path / "plain")
    assert abs(first_loss(tmp_path / "plain") - float(row["train_loss"])) > 0.05


def test_the_command_an_early_stop_suggests_is_one_lr_find_accepts(tmp_path):
    # stopped at step 2 of a range from 100, it suggested lr_find.max_lr=17.43, which lr-find refuses below min_lr=100
    proc = runner("lr-find", "lr_find.min_lr=100", "lr_find.max_lr=1e6", "lr_find.num_training=20", cwd=tmp_path,
                  check=False)  # fmt: skip
    assert_clean_failure(proc, "too few for a suggestion")
    said = " ".join(proc.stderr.split())
    command = shlex.split(said.split("end it there: ")[1].split(" (or raise")[0])
    assert command[:2] == ["runner", "lr-find"] and "lr_find.num_training=20" in command
    low, high = (float(a.split("=")[1]) for a in command if a.startswith(("lr_find.min_lr=", "lr_find.max_lr=")))
    assert low < high < 1e6
    (tmp_path / "again").mkdir()
    proc = runner(*command[1:], cwd=tmp_path / "again")
    assert "suggested learning rate" in proc.stdout
