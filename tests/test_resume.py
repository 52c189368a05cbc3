"""Never lose a run: exact resume, resume overrides, signals from outside, kill -9 at any moment, divergence.

The run directory's lifecycle (states, lock, stops during setup and the final test) is in test_rundir.py.
"""

import csv
import os
import random
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    FAST,
    SIGNAL_CNN,
    WITH_SIGNAL_MODEL,
    assert_clean_failure,
    digest,
    load,
    run_dirs,
    runner,
    same_run,
    signal_at,
    start,
    summary,
    wait_for,
)
from formats import write_image_folder

from runner.io.serialization import safe_load
from runner.models import CNN
from runner.run.resume import RESUME_OVERRIDES, resume_rule


@pytest.mark.slow  # test_rundir.py resumes mid-epoch in the default suite
def test_stopped_after_epoch_2_and_resumed_to_4_equals_4_in_one_go(tmp_path):
    runner("train", *FAST, "trainer.epochs=4", cwd=tmp_path)
    runner("train", *FAST, "trainer.epochs=2", cwd=tmp_path)
    whole, part = run_dirs(tmp_path)
    proc = runner("train", f"resume={part}", "trainer.epochs=4", cwd=tmp_path)
    assert "resuming after epoch 2, step" in proc.stdout
    assert run_dirs(tmp_path) == [whole, part]  # no new directory: the run continued in its own
    same_run(whole, part)
    info = summary(part)
    assert info["status"] == "completed" and info["resumed"] == 1 and info["epochs"] == 4
    log = (part / "train.log").read_text()
    assert log.count("runner train") == 2 and "epoch   1/2" in log and "epoch   4/4" in log  # appended


def test_trainer_epochs_may_not_drop_below_the_epoch_last_pt_stopped_in(tmp_path):
    # a completed 3-epoch run, extended to 5 and stopped in epoch 4, then run again with its original command: that
    # used to complete "at 3 epochs" over a last.pt of 3 epochs and some steps of the 4th, undoing the extension
    args = [*SIGNAL_CNN, "trainer.epochs=3", "hydra.run.dir=run"]
    runner("train", *args, cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    stopped = runner("train", "resume=run", "trainer.epochs=5", cwd=tmp_path, check=False, env=signal_at("step:7"))
    assert stopped.returncode == 130
    last = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["epoch"] == 3 and last["batch"] == 7  # stopped in epoch 4 (20 steps an epoch), as meant
    before = digest(tmp_path / "run")
    proc = runner("train", *args, cwd=tmp_path, check=False, env=WITH_SIGNAL_MODEL)  # the original command again
    assert_clean_failure(proc, "trainer.epochs=3 is fewer than last.pt holds (3 epochs and 7 batches of epoch 4")
    assert_clean_failure(proc, "Give trainer.epochs=4 or more")
    assert digest(tmp_path / "run") == before
    runner("train", "resume=run", "trainer.epochs=4", cwd=tmp_path, env=WITH_SIGNAL_MODEL)  # the fix it names
    assert summary(tmp_path / "run")["status"] == "completed" and summary(tmp_path / "run")["epochs"] == 4


def test_resume_applies_a_new_learning_rate_and_device_for_real(tmp_path):
    runner("train", *FAST, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    proc = runner("train", f"resume={run}", "trainer.epochs=3", "optimizer.lr=0.01", "device=cpu", cwd=tmp_path)
    assert "resume: optimizer.lr 0.001 -> 0.01" in proc.stdout
    assert [line.split(",")[4] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == [
        "0.001",
        "0.001",
        "0.01",
    ]
    last = load(run / "checkpoints" / "last.pt")
    assert [g["lr"] for g in last["optimizer"]["param_groups"]] == [0.01]  # the optimizer itself, not only the config
    assert last["config"]["optimizer"]["lr"] == 0.01 and summary(run)["device"] == "cpu"


# What the resume table of docs/resume.md promises, key by key (run/resume/table.py holds the rules;
# the trainer's come from training/recipe.py's declarations).
RESUME_KEYS = [
    ("trainer.epochs", True),
    ("trainer.batch_size", True),
    ("trainer.eval_batch_size", True),
    ("trainer.grad_clip", True),
    ("trainer.checkpoint_every_n_steps", True),
    ("trainer.num_threads", True),
    ("trainer.compile", True),
    ("device", True),
    ("device.name", True),
    ("optimizer.lr", True),
    ("optimizer.momentum", True),
    ("optimizer.weight_decay", True),
    ("optimizer.betas", True),
    ("dataset.root", True),
    ("dataset.download", True),
    ("dataset.workers", True),
    ("optimizer", False),
    ("optimizer._target_", False),
    ("optimizer._partial_", False),
    ("optimizer.param_groups", False),
    ("scheduler", False),
    ("scheduler.T_max", False),
    ("model", False),
    ("model.channels", False),
    ("dataset", False),
    ("dataset.split_seed", False),
    ("dataset.input_shape", False),
    ("seed", False),
    ("init_from", False),
    ("trainer.freeze", False),
    ("trainer.unfreeze_at_epoch", False),
    ("trainer.precision", False),
    ("trainer.monitor", False),
    ("trainer.monitor_mode", False),
    ("hparams_search", False),
    ("new_key", False),
    ("trainer.label_smoothing", True),
    ("trainer.early_stopping.patience", True),
    ("trainer.max_steps", True),
    ("trainer.max_time", True),
    ("trainer.ddp_timeout", True),
    ("trainer.accumulate_grad_batches", False),
    ("trainer.ema.decay", False),
    ("scheduler.warmup_epochs", False),
]


@pytest.mark.parametrize(("key", "applied"), RESUME_KEYS, ids=[k for k, _ in RESUME_KEYS])
def test_resume_override_table(key, applied):
    assert resume_rule(key)[0] is applied


def test_no_row_of_the_resume_table_is_shadowed_by_an_earlier_one():
    # the first row that matches decides: trainer.precision, monitor and monitor_mode once stood after the rows the
    # knobs' declarations make of the same keys, and never decided anything
    from runner.run.resume import Row, shadowed

    assert shadowed() == []
    # the check finds a row behind an earlier one of the same key, or behind a pattern that takes all its keys
    behind = [*RESUME_OVERRIDES, Row("trainer.precision", False, "never read"), Row("device.name", True, "never read")]
    assert shadowed(behind) == [("trainer.precision", "trainer.precision"), ("device.name", "device.*")]
    assert shadowed([Row("optimizer._*", False, ""), Row("optimizer.*", True, "")]) == []


def test_docs_list_every_resume_override_rule():
    page = (Path(__file__).resolve().parent.parent / "docs" / "resume.md").read_text()
    missing = [pattern for pattern, _, _ in RESUME_OVERRIDES if f"`{pattern}`" not in page]
    assert not missing, f"the resume table of docs/resume.md lacks {missing}"


def _interrupt_and_resume(tmp_path, sig, args):
    """Signal a run mid-training, resume it, and run it again uninterrupted to compare."""
    proc = start("train", *args, cwd=tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/train.log")) and time.time() < deadline:
        time.sleep(0.05)
    (log,) = tmp_path.glob("outputs/*/*/train.log")
    wait_for(log, "epoch   1/")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    (stopped,) = run_dirs(tmp_path)
    info = summary(stopped)
    assert info["status"] == "interrupted" and f"runner train resume={stopped}" in err
    assert safe_load(stopped / "checkpoints" / "last.pt")["batch"] > 0  # the signal landed mid-epoch
    where = re.search(r"in epoch (\d+) after step (\d+)", err)
    assert where, err
    resumed = runner("train", f"resume={stopped}", cwd=tmp_path)
    # the resume says where it continues in the stop's own words
    assert f"resuming in epoch {where[1]} after step {where[2]}" in resumed.stdout, resumed.stdout
    runner("train", *args, cwd=tmp_path)
    same_run(*run_dirs(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_mid_epoch_and_resume_is_exact(tmp_path, sig):
    # batch 8: 161 steps an epoch, so the signal sent right after epoch 1's line lands inside epoch 2
    _interrupt_and_resume(
        tmp_path, sig, [*FAST, "trainer.epochs=3", "trainer.batch_size=8", "trainer.checkpoint_every_n_steps=3"]
    )


@pytest.mark.slow
def test_dataloader_path_resumes_exactly_mid_epoch(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=100, size=(12, 12))
    args = [
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.in_memory=false",
        "dataset.workers=0",
        "dataset.input_shape=[3,12,12]",
        "dataset.augment.crop_padding=2",
        *FAST,
        "trainer.batch_size=2",
        "trainer.epochs=3",
        "trainer.checkpoint_every_n_steps=2",
    ]
    _interrupt_and_resume(tmp_path, signal.SIGINT, args)


@pytest.mark.slow
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    for i in range(10):
        work = tmp_path / str(i)
        work.mkdir()
        proc = start("train", *FAST, "trainer.epochs=50", "trainer.checkpoint_every_n_steps=1", cwd=work)
        deadline = time.time() + 120
        while not list(work.glob("outputs/*/*/checkpoints/last.pt")) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.5))  # last.pt is being rewritten every step now
        proc.kill()
        proc.wait()
        (last,) = work.glob("outputs/*/*/checkpoints/last.pt")
        state = safe_load(last)  # never a torn file
        model = CNN(in_channels=1, num_classes=10, channels=[8, 16])
        assert state["step"] >= 1 and set(state["model"]) == set(model.state_dict())
        model.load_state_dict(state["model"])  # whole tensors of the right shapes
        shutil.rmtree(work)  # and the next kill starts clean


def test_divergence_stops_keeps_the_last_good_checkpoint_and_says_where(tmp_path):
    # lr 0.01 in epoch 1, then x1e7: the loss blows up in epoch 2
    args = [
        *FAST,
        "trainer.epochs=4",
        "optimizer=sgd",
        "optimizer.lr=0.01",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e7",
    ]
    proc = runner("train", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 3
    assert "became NaN or infinite at step" in proc.stderr and "epoch 2, learning rate 100000" in proc.stderr
    (run,) = run_dirs(tmp_path)
    assert summary(run)["status"] == "diverged"
    assert safe_load(run / "checkpoints" / "last.pt")["epoch"] == 1  # the last good one


def test_a_diverged_job_is_reported_and_the_sweep_goes_on(tmp_path):
    proc = runner("train", "-m", "optimizer=sgd", "optimizer.lr=0.01,1e6", *FAST, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    (summary_csv,) = tmp_path.glob("outputs/multirun/*/*/summary.csv")
    assert [row["status"] for row in csv.DictReader(summary_csv.read_text().splitlines())] == ["completed", "diverged"]


def test_a_new_base_rate_on_resume_spares_the_groups_with_a_rate_of_their_own():
    # optimizer.lr on resume, with optimizer.param_groups=[{params: [...], lr: 0.01}] and a schedule: group 0 (the
    # optimizer's own rate) takes the new base, group 1 keeps its 0.01 in the optimizer and in the schedule
    from omegaconf import OmegaConf

    from runner.run.resume import set_optimizer_value
    from runner.training.schedules import build_schedule

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    optimizer = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.01}], 0.1)
    cosine = OmegaConf.load(Path(__file__).resolve().parent.parent / "configs" / "scheduler" / "cosine.yaml")
    schedule = build_schedule(cosine, optimizer, steps_per_epoch=2, epochs=3)
    assert [s.base_lrs for s in schedule.parts] == [[0.1, 0.01]]  # each group its own base
    set_optimizer_value(optimizer, schedule, "lr", 0.05, keep={1})
    assert [s.base_lrs for s in schedule.parts] == [[0.05, 0.01]]
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.01]


# ---- crash durability: what a resume reads is on the disk in the order the checkpoints are ----------------------

HEADER = "epoch,train_loss,val_loss,val_accuracy,lr,epoch_time_s,train_samples_per_s\n"
ROW = "{},0.5,0.4,0.9,0.001,0.2,5000.0\n"


def test_a_metrics_row_is_fsynced_before_last_pt_counts_its_epoch(tmp_path, monkeypatch):
    # after a power cut, ext4 kept last.pt (atomic_write fsyncs it) and lost metrics.csv's unsynced rows: the resumed
    # run completed with rows missing. The row must reach the disk before end_epoch saves last.pt (loop.py)
    from runner.io import files
    from runner.io.console import RunConsole
    from runner.run.rundir import RunDir

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(
        files.os, "fsync", lambda fd: synced.append(os.readlink(f"/proc/self/fd/{fd}")) or real_fsync(fd)
    )
    run = RunDir(tmp_path, RunConsole(quiet=True))
    run.append_row({"epoch": 1, "train_loss": 0.5})
    assert synced == [str(tmp_path / "metrics.csv"), str(tmp_path)]  # the new file's name is durable too
    run.append_row({"epoch": 2, "train_loss": 0.25})
    assert synced[2:] == [str(tmp_path / "metrics.csv")]
    assert (tmp_path / "metrics.csv").read_text() == "epoch,train_loss\n1,0.5\n2,0.25\n"


@pytest.mark.parametrize(
    ("found", "kept"),
    [
        # what a crash leaves of a file last.pt counts 2 epochs of: rows after last.pt, a line cut short
        (HEADER + ROW.format(1) + ROW.format(2) + ROW.format(3), HEADER + ROW.format(1) + ROW.format(2)),
        (HEADER + ROW.format(1) + ROW.format(2) + "3,0.5,0.4", HEADER + ROW.format(1) + ROW.format(2)),
        (HEADER + ROW.format(1) + ROW.format(2) + "3,0.5,0.4\n", HEADER + ROW.format(1) + ROW.format(2)),
        # a file emptied by the crash, before any checkpoint counted on it: the next row brings its header again
        # (it was appended bare: a one-line metrics.csv with no header)
        ("", ""),
        (HEADER[:20], ""),
    ],
    ids=["later-row", "torn-row", "short-row", "empty", "torn-header"],
)
def test_a_resume_keeps_the_whole_rows_last_pt_counts_and_a_header(tmp_path, found, kept):
    from runner.io.console import RunConsole
    from runner.run.rundir import RunDir

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")  # claim only asks whether there is one
    (tmp_path / "metrics.csv").write_text(found)
    epochs = 2 if kept else 0
    with RunDir.claim(tmp_path, RunConsole(quiet=True), resume=True) as run:
        run.start(epoch=epochs)
        assert [r["epoch"] for r in run.rows] == list(range(1, epochs + 1))
        assert ((tmp_path / "metrics.csv").read_text() if (tmp_path / "metrics.csv").exists() else "") == kept
        run.append_row(dict(zip(HEADER.strip().split(","), map(float, ROW.format(epochs + 1).split(",")))))
    lines = (tmp_path / "metrics.csv").read_text().splitlines()
    assert lines[0] == HEADER.strip() and len(lines) == epochs + 2


def test_rows_last_pt_counts_and_metrics_csv_lacks_are_said_not_invented(tmp_path):
    from runner.io.console import RunConsole
    from runner.run.rundir import RunDir

    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / "last.pt").write_bytes(b"")
    (tmp_path / "metrics.csv").write_text(HEADER + ROW.format(1))
    with RunDir.claim(tmp_path, RunConsole(), resume=True) as run:
        run.start(epoch=3)
        assert [r["epoch"] for r in run.rows] == [1]
    log = " ".join((tmp_path / "train.log").read_text().split())
    assert f"{tmp_path / 'metrics.csv'} lacks the rows of epochs 2, 3" in log


def _sweep(tmp_path):
    args = ["-m", "model=mlp", "model.hidden=[16]", "trainer.epochs=2", "trainer.limit_train_batches=3", "seed=0,1"]
    runner("train", *args, "hydra.sweep.dir=sweep", cwd=tmp_path)
    sweep = tmp_path / "sweep"
    assert [summary(sweep / job)["status"] for job in "01"] == ["completed", "completed"]
    return args, sweep


@pytest.mark.slow
def test_a_sweep_whose_multirun_yaml_a_crash_emptied_resumes_from_its_jobs_record(tmp_path):
    # multirun.yaml emptied by a power cut (it was written unsynced) or damaged: -m resume=SWEEP was refused, telling
    # the user to run "the sweep's original command", which only that file held. Its jobs recorded it
    args, sweep = _sweep(tmp_path)
    shutil.rmtree(sweep / "1")  # the sweep stopped before its job 1
    saved = (sweep / "multirun.yaml").read_text()
    for damaged in ("", "hydra: [\n"):
        (sweep / "multirun.yaml").write_text(damaged)
        before = digest(sweep / "0")
        proc = runner("train", "-m", "resume=sweep", cwd=tmp_path)
        assert "multirun.yaml is missing or unreadable; its jobs recorded the sweep's command" in proc.stderr
        assert "sweep job 0 (" in proc.stdout and "seed=0): completed earlier, kept as it is" in proc.stdout
        assert digest(sweep / "0") == before and summary(sweep / "1")["status"] == "completed"
        assert (sweep / "multirun.yaml").read_text() == saved  # written again, whole
        shutil.rmtree(sweep / "1")
    # no job recorded it (none had started): the refusal's command is one that works
    shutil.rmtree(sweep / "0")
    (sweep / "multirun.yaml").write_text("")
    refused = runner("train", "-m", "resume=sweep", cwd=tmp_path, check=False)
    assert_clean_failure(refused, "none of the sweep's jobs has recorded its command", "adding hydra.sweep.dir=sweep")
    runner("train", *args, "hydra.sweep.dir=sweep", cwd=tmp_path)  # what it says: the sweep's command, that folder
    assert [summary(sweep / job)["status"] for job in "01"] == ["completed", "completed"]
    assert (sweep / "multirun.yaml").read_text() == saved


# ---- the decisions, in-process: the run directory's state x what was asked -> fresh, continue, keep or refuse -----

STATUSES = [None, "running", "interrupted", "completed", "diverged", "failed"]
# (status, last.pt there, resume= given) -> "fresh", "continue", or the words of the refusal; "running" is a run whose
# process is gone (the claim holds its lock)
CLAIMS = {
    **{(status, False, False): "fresh" for status in STATUSES},
    (None, False, True): "has no checkpoints/last.pt, so there is nothing to resume",
    **{
        (status, False, True): f"has no checkpoints/last.pt (its run is {found} before its first checkpoint)"
        for status, found in [(s, "interrupted" if s == "running" else s) for s in STATUSES[1:]]
    },
    **{(status, True, True): "continue" for status in STATUSES},
    (None, True, False): "continue",
    ("running", True, False): "continue",
    ("interrupted", True, False): "continue",
    ("completed", True, False): "already holds a completed run, and runner never trains over a run",
    ("diverged", True, False): "already holds a diverged run, and runner never trains over a run",
    ("failed", True, False): "already holds a failed run, and runner never trains over a run",
}


@pytest.mark.parametrize(("status", "checkpoint", "resume"), list(CLAIMS), ids=[str(k) for k in CLAIMS])
def test_what_a_claim_of_a_run_directory_decides(tmp_path, status, checkpoint, resume):
    from runner.io.errors import RunnerError
    from runner.run.resume import decide

    expected = CLAIMS[(status, checkpoint, resume)]
    if expected in ("fresh", "continue"):
        decision = decide(tmp_path, status, checkpoint, resume)
        assert decision.fresh is (expected == "fresh")
        # a plain command that finds an interrupted run says that it resumes it, and how to say so
        said = f"{tmp_path} holds an interrupted run: resuming it (runner train resume={tmp_path})"
        assert decision.note == (said if expected == "continue" and not resume else None)
        return
    with pytest.raises(RunnerError) as refused:
        decide(tmp_path, status, checkpoint, resume)
    assert expected in str(refused.value)
    fix = "trainer.epochs=N" if checkpoint else "Start the run again with its original command"
    assert fix in str(refused.value)


def test_every_state_a_run_directory_can_be_in_is_decided():
    assert len(CLAIMS) == len(STATUSES) * 2 * 2


@pytest.mark.parametrize(
    ("status", "checkpoint", "decision"),
    [
        ("completed", True, "keep"),
        ("completed", False, "keep"),
        ("diverged", True, "keep"),
        ("failed", True, "resume"),
        ("failed", False, "start"),
        ("interrupted", True, "start"),
        ("interrupted", False, "start"),
        (None, True, "start"),
    ],
)
def test_what_a_resumed_sweep_does_with_each_job(status, checkpoint, decision):
    from runner.run.resume import sweep_job_decision

    assert sweep_job_decision(status, checkpoint) == decision


@pytest.fixture(scope="module")
def composed():
    """`runner train`'s config as Hydra composes it, for the overrides given: the config a resume command line makes."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra

    def make(*overrides):
        # a test before it in this process may have left Hydra initialised (an in-process command)
        GlobalHydra.instance().clear()
        with initialize_config_module("runner.configs", version_base="1.3"):
            return compose("train", overrides=list(overrides))

    return make


def _last_pt(cfg, **counters):
    """What plan reads of a last.pt: the run's config and counters (a 3-epoch run of 20 steps an epoch by default)."""
    from omegaconf import OmegaConf

    fields = dict(epoch=3, batch=0, step=60, stopped_by=None, stale_epochs=0, train_s=12.0, ema=None)
    return {"config": OmegaConf.to_container(cfg), "optimizer": {}, "rng": None, **fields, **counters}


# (status, what last.pt holds, the command line) -> the changes the resume applies, or the words of its refusal
PLANS = [
    ("interrupted", {"batch": 7}, ["trainer.epochs=4"], {"trainer.epochs": (3, 4)}),
    ("interrupted", {}, ["trainer.epochs=3"], {}),
    ("interrupted", {}, ["optimizer.lr=0.01"], {"optimizer.lr": (0.001, 0.01)}),
    ("completed", {"stopped_by": "epochs"}, ["trainer.epochs=5"], {"trainer.epochs": (3, 5)}),
    ("completed", {"stopped_by": "epochs"}, [], "the run completed: epochs stopped it at epoch 3, step 60"),
    ("completed", {}, [], "the run already completed its 3 epochs. To train it further, add trainer.epochs=13"),
    ("failed", {}, ["trainer.epochs=2"], "trainer.epochs=2 is fewer than last.pt holds (3 epochs, 60 steps)"),
    ("interrupted", {"batch": 7}, ["trainer.epochs=3"], "(3 epochs and 7 batches of epoch 4, 60 steps)"),
    (
        "interrupted",
        {"batch": 7},
        ["trainer.epochs=4", "trainer.batch_size=32"],
        "last.pt was saved in the middle of epoch 4",
    ),
    ("interrupted", {}, ["trainer.precision=bf16"], "the loss scale and the numerics in last.pt belong to the run's"),
    ("interrupted", {}, ["trainer.monitor=val_accuracy"], "best.pt and the best epoch so far were chosen by the run's"),
    ("interrupted", {}, ["model.channels=[4,8]"], "'model.channels=[4,8]' is refused: a resumed run keeps its model"),
    ("interrupted", {}, ["seed=3"], "'seed=3' is refused: every RNG state is restored from last.pt"),
]


@pytest.mark.parametrize(("status", "held", "command", "expected"), PLANS, ids=[str(p[:3]) for p in PLANS])
def test_what_a_resume_plans_from_last_pt_and_the_command_line(tmp_path, composed, status, held, command, expected):
    from runner.io.errors import RunnerError
    from runner.run.resume import plan

    ckpt = _last_pt(composed("trainer.epochs=3"), **held)
    cfg = composed("trainer.epochs=3", *command)
    overrides = [f"resume={tmp_path}", *command]
    if isinstance(expected, dict):
        resume = plan(cfg, ckpt, status, overrides, run_dir=tmp_path)
        assert resume.changes == expected
        assert resume.cfg.resume == str(tmp_path) and resume.lifted is (status == "completed")
        return
    with pytest.raises(RunnerError) as refused:
        plan(cfg, ckpt, status, overrides, run_dir=tmp_path)
    assert expected in str(refused.value)


def test_a_resume_continues_a_run_that_early_stopping_ended_only_with_more_patience(tmp_path, composed):
    from runner.io.errors import RunnerError
    from runner.run.resume import plan

    run = composed("trainer.epochs=30", "trainer.early_stopping.patience=2")
    ckpt = _last_pt(run, epoch=9, step=180, stopped_by="early_stopping", stale_epochs=2)
    with pytest.raises(RunnerError, match=r"raise trainer.early_stopping.patience above 2 \(the validations"):
        plan(run, ckpt, "completed", [], run_dir=tmp_path)
    more = ["trainer.early_stopping.patience=null"]
    resume = plan(composed("trainer.epochs=30", *more), ckpt, "completed", more, run_dir=tmp_path)
    assert resume.lifted and resume.changes == {"trainer.early_stopping.patience": (2, None)}


def test_a_resume_of_an_ema_run_whose_last_pt_holds_no_ema_is_refused_before_anything_is_built(tmp_path, composed):
    from runner.io.errors import RunnerError
    from runner.run.resume import plan

    run = composed("trainer.ema.decay=0.9")
    with pytest.raises(RunnerError, match=r"last\.pt holds no EMA weights"):
        plan(run, _last_pt(run, epoch=1, step=20), "interrupted", [], run_dir=tmp_path)
    assert plan(run, _last_pt(run, epoch=1, step=20, ema={"n_averaged": 20}), "interrupted", [], run_dir=tmp_path)


def test_a_quick_check_is_run_again_not_resumed(tmp_path, composed):
    from runner.io.errors import RunnerError
    from runner.run.resume import plan

    check = composed("trainer.fast_dev_run=true")
    with pytest.raises(RunnerError, match=r"is a trainer\.fast_dev_run check .* it is run again, not resumed"):
        plan(check, _last_pt(check, epoch=1, step=5), "interrupted", [], run_dir=tmp_path)


def test_the_banner_says_where_a_resume_continues_in_the_stops_words(composed):
    from runner.run.resume import Resume

    cfg = composed()
    assert Resume(cfg, _last_pt(cfg, batch=7, step=67)).resuming_from == "resuming in epoch 4 after step 67"
    assert Resume(cfg, _last_pt(cfg)).resuming_from == "resuming after epoch 3, step 60"
    assert Resume(cfg, _last_pt(cfg)).saved_world == 1
    assert Resume(cfg, _last_pt(cfg, ranks=[{}, {}])).saved_world == 2
