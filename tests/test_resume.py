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


# What the resume table of docs/resume.md promises, key by key (run/resume.py holds the rules;
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
