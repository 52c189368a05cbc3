"""The run directory's lifecycle (runner/run/rundir.py): one process at a time, and every stop, wherever it lands,
leaves a run that is `interrupted` (or `completed`) and continues exactly. That a directory holding a run is never
trained over, and that a failing command changes none of its bytes, is in test_bad_inputs.py.

The signals are real: signal_model.py sends them to its own process at an exact moment (setup, a
training step, the final test), or another process sends them (kill -9, a second command).
"""

import os
import signal
import subprocess
import sys
import time

import pytest
from conftest import (
    SIGNAL_CNN,
    SITECUSTOM,
    TESTS,
    WITH_SIGNAL_MODEL,
    assert_clean_failure,
    digest,
    load,
    once_per_session,
    runner,
    same_run,
    signal_at,
    start,
    summary,
    wait_for,
)

from runner.run.records import status_of

STEPS_PER_EPOCH = 20  # 1294 training digits // batch 64


@pytest.fixture(scope="session")
def reference(tmp_path_factory, worker_id):
    """SIGNAL_CNN's run done in one go, without a signal: what every stopped and resumed run must equal."""
    make = lambda cwd: runner("train", *SIGNAL_CNN, "hydra.run.dir=ref", cwd=cwd, env=WITH_SIGNAL_MODEL)  # noqa: E731
    return once_per_session(tmp_path_factory, worker_id, "reference", make) / "ref"


# SIGTERM from outside the process: test_resume.py
@pytest.mark.parametrize("sig", ["SIGINT", pytest.param("SIGUSR2", marks=pytest.mark.slow)])
def test_a_signal_mid_epoch_saves_that_step_and_the_resume_is_exact(tmp_path, reference, sig):
    proc = runner("train", *SIGNAL_CNN, "hydra.run.dir=run", cwd=tmp_path, check=False, env=signal_at("step:27", sig))
    run = tmp_path / "run"
    assert proc.returncode == 130, proc.stderr
    assert f"stopped by {sig} in epoch 2 after step 27" in proc.stderr and f"runner train resume={run}" in proc.stderr
    last = load(run / "checkpoints" / "last.pt")
    assert (last["epoch"], last["batch"]) == (1, 27 - STEPS_PER_EPOCH)  # really mid-epoch
    assert summary(run)["status"] == "interrupted"

    before = digest(run)
    if sig == "SIGINT":  # the epoch under way keeps its batch size
        proc = runner("train", "resume=run", "trainer.batch_size=32", cwd=tmp_path, check=False, env=WITH_SIGNAL_MODEL)
        assert_clean_failure(proc, "last.pt was saved in the middle of epoch 2", "Nothing in")
    else:  # a resume stopped in its own setup changes nothing, and says how to continue
        proc = runner("train", "resume=run", cwd=tmp_path, check=False, env=signal_at("build", "SIGTERM"))
        assert proc.returncode == 130 and "stopped by SIGTERM" in proc.stderr
        assert f"Nothing in {run} was changed. Continue it with: runner train resume={run}" in proc.stderr
    assert digest(run) == before

    runner("train", "resume=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    same_run(reference, run)
    assert summary(run)["status"] == "completed" and summary(run)["resumed"] == 1


def test_a_signal_during_setup_leaves_an_interrupted_run_that_the_same_command_starts_afresh(tmp_path, reference):
    proc = runner(
        "train", *SIGNAL_CNN, "hydra.run.dir=run", cwd=tmp_path, check=False, env=signal_at("build", "SIGTERM")
    )
    run = tmp_path / "run"
    assert proc.returncode == 130
    assert_clean_failure(proc, "stopped by SIGTERM", "stopped before its first checkpoint: run the same command again")
    assert summary(run)["status"] == "interrupted" and not (run / "checkpoints").exists()
    runner("train", *SIGNAL_CNN, "hydra.run.dir=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    same_run(reference, run)


@pytest.mark.slow
def test_a_signal_during_the_final_test_leaves_an_interrupted_run_that_resume_completes(tmp_path, reference):
    proc = runner(
        "train", *SIGNAL_CNN, "hydra.run.dir=run", cwd=tmp_path, check=False, env=signal_at("load:1", "SIGTERM")
    )  # inside load_state_dict of best.pt for the final test: the stop is met before its first batch
    run = tmp_path / "run"
    assert proc.returncode == 130 and "stopped by SIGTERM" in proc.stderr
    assert summary(run)["status"] == "interrupted" and load(run / "checkpoints" / "last.pt")["epoch"] == 4
    runner("train", "resume=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    assert summary(run)["status"] == "completed" and summary(run)["test"] == summary(reference)["test"]
    same_run(reference, run)


def test_kill_9_leaves_a_run_whose_process_is_gone_and_the_same_command_resumes_it_exactly(tmp_path, reference):
    args = [*SIGNAL_CNN, "hydra.run.dir=run", "trainer.checkpoint_every_n_steps=1"]
    proc = start("train", *args, cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    run = tmp_path / "run"
    wait_for(run / "train.log", "epoch   1/4")
    proc.kill()
    proc.wait()
    assert summary(run)["status"] == "running"  # what the killed process last wrote
    assert status_of(run) == "interrupted"  # ... but its lock went with it
    report = runner("report", "run", "--format", "csv", cwd=tmp_path).stdout
    assert ",interrupted," in report.splitlines()[1]

    resumed = runner("train", *args, cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    assert f"{run} holds an interrupted run: resuming it" in resumed.stdout
    same_run(reference, run)  # no duplicated rows in metrics.csv, the same weights


def test_one_process_at_a_time_trains_in_a_run_directory(tmp_path):
    run = tmp_path / "run"
    first = start("train", *SIGNAL_CNN, "trainer.epochs=300", "hydra.run.dir=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    wait_for(run / "train.log", "epoch   2/300")
    second = runner("train", "resume=run", "trainer.epochs=400", cwd=tmp_path, check=False, env=WITH_SIGNAL_MODEL)
    assert_clean_failure(second, f"is in use by process {first.pid}", "Nothing was changed")
    assert first.poll() is None  # precondition: the first one really was still training
    first.send_signal(signal.SIGINT)
    _, err = first.communicate(timeout=120)
    assert first.returncode == 130, err
    epochs = [int(line.split(",")[0]) for line in (run / "metrics.csv").read_text().splitlines()[1:]]
    assert epochs == list(range(1, len(epochs) + 1))  # one writer: no row twice
    info = summary(run)
    assert (
        info["status"] == "interrupted"
        and "resumed" not in info
        and "trainer.epochs=400" not in (run / "train.log").read_text()
    )


@pytest.mark.slow
def test_submitit_requeues_on_sigusr2_and_the_requeued_job_resumes_exactly(tmp_path, reference):
    """SIGUSR2 is what SLURM sends before a time limit (hydra/launcher=slurm's signal_delay_s); submitit_local runs
    the same requeue machinery on this machine."""
    once = tmp_path / "signalled"
    runner("train", "-m", *SIGNAL_CNN, "hydra/launcher=local", cwd=tmp_path, env=signal_at("step:27", "SIGUSR2", once))
    (job,) = tmp_path.glob("outputs/multirun/*/*/0")
    assert once.exists()  # the signal was sent
    logs = " ".join(p.read_text() for p in tmp_path.glob("outputs/multirun/*/*/.submitit/*/*_log.*"))
    assert "Requeued job" in logs  # by submitit, and the requeued process resumed
    info = summary(job)
    assert info["status"] == "completed" and info["resumed"] == 1
    same_run(reference, job)


@pytest.mark.slow
def test_ctrl_c_to_a_parallel_sweep_leaves_no_job_running(tmp_path):
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "runner",
            "train",
            "-m",
            *SIGNAL_CNN,
            "hydra/launcher=parallel",
            "optimizer.lr=0.003,0.001",
            "trainer.epochs=300",
        ],
        cwd=tmp_path,
        start_new_session=True,
        env={**os.environ, "PYTHONPATH": os.pathsep.join([str(SITECUSTOM), str(TESTS)])},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while len([p for p in tmp_path.glob("outputs/multirun/*/*/*/train.log") if "epoch   2/" in p.read_text()]) < 2:
        assert time.time() < deadline and proc.poll() is None, "the two jobs never trained side by side"
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal signals the whole foreground process group
    proc.communicate(timeout=120)
    jobs = sorted(p.parent for p in tmp_path.glob("outputs/multirun/*/*/*/summary.json"))
    assert len(jobs) == 2
    for job in jobs:  # each recorded `interrupted`, or was killed and left a lock nobody holds
        done = load(job / "checkpoints" / "last.pt")["epoch"]
        assert status_of(job) == "interrupted" and done >= 2
        runner("train", f"resume={job}", f"trainer.epochs={done + 1}", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
        assert summary(job)["status"] == "completed"
