"""Never lose a run: exact resume, signals, kill -9 at any moment, divergence."""

import csv
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import FAST, SITECUSTOM, load, run_dirs, runner, summary
from formats import write_image_folder
from runner.checkpoint import safe_load



def same_run(a, b):
    """Metrics (time columns aside), best.pt bytes and last.pt weights are identical."""
    strip = lambda d: [line.split(",")[:5] for line in (d / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert strip(a) == strip(b)
    assert (a / "checkpoints" / "best.pt").read_bytes() == (b / "checkpoints" / "best.pt").read_bytes()
    la, lb = load(a / "checkpoints" / "last.pt"), load(b / "checkpoints" / "last.pt")
    assert all(torch.equal(la["model"][k], lb["model"][k]) for k in la["model"])
    assert la["step"] == lb["step"] and la["epoch"] == lb["epoch"]


def test_stopped_after_epoch_2_and_resumed_to_4_equals_4_in_one_go(tmp_path):
    runner("train", *FAST, "trainer.epochs=4", cwd=tmp_path)
    runner("train", *FAST, "trainer.epochs=2", cwd=tmp_path)
    whole, part = run_dirs(tmp_path)
    proc = runner("train", f"resume={part}", "trainer.epochs=4", cwd=tmp_path)
    assert "resuming from epoch 2" in proc.stdout
    assert run_dirs(tmp_path) == [whole, part]  # no new directory: the run continued in its own
    same_run(whole, part)
    info = summary(part)
    assert info["status"] == "completed" and info["resumed"] == 1 and info["epochs"] == 4
    log = (part / "train.log").read_text()
    assert log.count("runner train") == 2 and "epoch   1/2" in log and "epoch   4/4" in log  # appended


def _start(tmp_path, *args):
    cmd = [sys.executable, "-m", "runner", "train", *args]
    env = {"PYTHONPATH": str(SITECUSTOM), "PATH": "/usr/bin:/bin"}
    return subprocess.Popen(cmd, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for(path, text, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.05)
    raise AssertionError(f"{text!r} never appeared in {path}")


def _interrupt_and_resume(tmp_path, sig, args):
    """Signal a run mid-training, resume it, and run it again uninterrupted to compare."""
    proc = _start(tmp_path, *args)
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/train.log")) and time.time() < deadline:
        time.sleep(0.05)
    (log,) = tmp_path.glob("outputs/*/*/train.log")
    _wait_for(log, "epoch   2/")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    (stopped,) = run_dirs(tmp_path)
    info = summary(stopped)
    assert info["status"] == "interrupted" and f"runner train resume={stopped}" in err
    safe_load(stopped / "checkpoints" / "last.pt")
    runner("train", f"resume={stopped}", cwd=tmp_path)
    runner("train", *args, cwd=tmp_path)
    same_run(*run_dirs(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_mid_epoch_and_resume_is_exact(tmp_path, sig):
    _interrupt_and_resume(tmp_path, sig, [*FAST, "trainer.epochs=12", "trainer.checkpoint_every_n_steps=3"])


@pytest.mark.slow
def test_dataloader_path_resumes_exactly_mid_epoch(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=40, size=(12, 12))
    args = ["dataset=imagefolder", "dataset.root=pets", "dataset.in_memory=false", "dataset.workers=0",
            "dataset.input_shape=[3,12,12]", "dataset.augment.crop_padding=2", *FAST, "trainer.batch_size=8",
            "trainer.epochs=12", "trainer.checkpoint_every_n_steps=2"]
    _interrupt_and_resume(tmp_path, signal.SIGINT, args)


@pytest.mark.slow
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    for i in range(20):
        work = tmp_path / str(i)
        work.mkdir()
        proc = _start(work, *FAST, "trainer.epochs=50", "trainer.checkpoint_every_n_steps=1")
        deadline = time.time() + 120
        while not list(work.glob("outputs/*/*/checkpoints/last.pt")) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.5))  # last.pt is being rewritten every step now
        proc.kill()
        proc.wait()
        (last,) = work.glob("outputs/*/*/checkpoints/last.pt")
        state = safe_load(last)  # never a torn file
        assert state["step"] >= 1 and set(state["model"]) == set(load(last)["model"])
        shutil.rmtree(work)  # and the next kill starts clean


def test_divergence_stops_keeps_the_last_good_checkpoint_and_says_where(tmp_path):
    # lr 0.01 in epoch 1, then x1e7: the loss blows up in epoch 2
    args = [*FAST, "trainer.epochs=4", "optimizer=sgd", "optimizer.lr=0.01", "scheduler=step",
            "scheduler.step_size=1", "scheduler.gamma=1e7"]
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
