"""Past one process: a stop agreed by every rank, each rank's RNG in last.pt, and torchrun on two "nodes" (loopback).

Every job here is the real launcher (torch.distributed.run) with gloo on 2 CPU cores; the reference is one
uninterrupted 2-process run of the same config, made once per session."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SITECUSTOM, free_port, once_per_session, summary

import runner

PACKAGE = str(Path(runner.__file__).parent) + os.sep  # where a traceback through runner's own code would point

# MLP with its default dropout: each rank draws masks, so an exact resume needs every rank's RNG state
ARGS = ["model=mlp", "trainer.epochs=4", "trainer.batch_size=16"]
TIMEOUT = 300  # a hang would be a failure, not a wait


def _env():
    return {**{k: v for k, v in os.environ.items() if k != "RUNNER_DATA"}, "PYTHONPATH": str(SITECUSTOM)}


def torchrun(*launcher, cwd, args, wait=True):
    """`python -m torch.distributed.run LAUNCHER -m runner train ARGS` in `cwd`: its CompletedProcess, or with
    wait=False the running Popen."""
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "runner", "train", *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=_env(), capture_output=True, text=True, timeout=TIMEOUT)


def two_processes():
    return ["--nproc_per_node=2", f"--master_port={free_port()}"]


@pytest.fixture(scope="session")
def reference(tmp_path_factory, worker_id):
    """One uninterrupted 2-process run of ARGS: its run directory."""

    def make(cwd):
        proc = torchrun(*two_processes(), cwd=cwd, args=[*ARGS, "hydra.run.dir=ref"])
        assert proc.returncode == 0, proc.stdout + proc.stderr

    return once_per_session(tmp_path_factory, worker_id, "ddp-reference", make) / "ref"


def weights(run_dir, name="last.pt"):
    return torch.load(run_dir / "checkpoints" / name, weights_only=True)["model"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a), "the weights differ"


def curve(run_dir):
    """metrics.csv's epoch, train_loss, val_loss, val_accuracy and lr columns (not its timings)."""
    return [line.split(",")[:5] for line in (run_dir / "metrics.csv").read_text().splitlines()]


def worker_of_rank(launcher_pid, rank):
    """The pid of the worker process of `rank` that torchrun started (its environment says RANK)."""
    for child in subprocess.run(["pgrep", "-P", str(launcher_pid)], capture_output=True, text=True).stdout.split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"RANK={rank}".encode() in environ:
            return int(child)
    return None


def signal_rank_1(cwd, sig, after_s=0.0):
    """A 2-process run of ARGS in cwd/d, `sig` sent to its rank 1 only, `after_s` after its first epoch was saved:
    the job's output, once every process of it has ended."""
    job = torchrun(*two_processes(), cwd=cwd, args=[*ARGS, "hydra.run.dir=d"], wait=False)
    try:
        wait_for_epoch(job, cwd / "d")
        pid = worker_of_rank(job.pid, 1)
        assert pid is not None, "no worker of rank 1"
        time.sleep(after_s)
        os.kill(pid, sig)
        return job.communicate(timeout=TIMEOUT)[0]
    finally:
        job.kill()


@pytest.mark.slow
def test_a_signal_to_one_rank_stops_every_rank_at_the_same_step_and_the_resume_is_exact(tmp_path, reference):
    run = tmp_path / "d"
    # one rank only, as a scheduler or a user may do; into epoch 2 (an epoch takes 0.3-0.8 s here), mid-epoch
    out = signal_rank_1(tmp_path, signal.SIGTERM, after_s=0.15)  # every rank stops: no hang in a collective
    info = summary(run)
    assert info["status"] == "interrupted", out
    log = (run / "train.log").read_text()
    assert "stopped by SIGTERM (sent to rank 1) " in log, log  # rank 0 was told, and says by whom
    # no traceback from runner (torchrun prints its own ChildFailedError for workers that exit non-zero, as 130 is)
    assert f'File "{PACKAGE}' not in out, out
    saved = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    # each rank's RNG and share of the epoch's loss, rank 0's also last.pt's own
    assert len(saved["ranks"]) == 2 and saved["ranks"][0]["loss_sum"] == saved["loss_sum"]
    if saved["batch"]:  # mid-epoch (nearly always, after the sleep): the two shares of the loss differ
        assert saved["ranks"][0]["loss_sum"] != saved["ranks"][1]["loss_sum"]
    proc = torchrun(*two_processes(), cwd=tmp_path, args=["resume=d"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert summary(run)["status"] == "completed"
    assert_same_weights(weights(run), weights(reference))  # the uninterrupted run's, to the bit
    assert curve(run) == curve(reference)  # every epoch's losses and accuracy, as the uninterrupted run logged them


@pytest.mark.slow
def test_two_torchrun_nodes_on_one_host_train_one_run_as_one_node_of_two_processes(tmp_path, reference):
    port = free_port()
    launcher = ["--nnodes=2", "--nproc_per_node=1", "--rdzv-backend=c10d", f"--rdzv-endpoint=127.0.0.1:{port}",
                "--rdzv-id=two-nodes"]  # fmt: skip
    nodes = [torchrun(*launcher, cwd=tmp_path, args=[*ARGS, "hydra.run.dir=mn"], wait=False) for _ in range(2)]
    try:
        outs = [node.communicate(timeout=TIMEOUT)[0] for node in nodes]
    finally:
        for node in nodes:
            node.kill()
    assert [node.returncode for node in nodes] == [0, 0], outs
    runs = [p.parent for p in tmp_path.rglob("summary.json")]
    assert runs == [tmp_path / "mn"], runs  # one run directory for the job, whichever node held rank 0
    info = summary(tmp_path / "mn")
    assert info["processes"] == 2 and info["ranks_in_sync"] is True
    assert_same_weights(weights(tmp_path / "mn"), weights(reference))


def wait_for_epoch(job, run):
    """Until `run`'s metrics.csv has its first epoch's row and last.pt exists (written after the row), the job still
    running."""
    deadline = time.monotonic() + TIMEOUT
    while (
        not (run / "metrics.csv").is_file()
        or len((run / "metrics.csv").read_text().splitlines()) < 2
        or not (run / "checkpoints" / "last.pt").is_file()
    ):
        assert job.poll() is None and time.monotonic() < deadline, "the run ended before its first epoch's row"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_worker_killed_leaves_the_run_interrupted_and_the_same_command_resumes_it_exactly(tmp_path, reference):
    run = tmp_path / "d"
    # a worker dies (out of memory, a node lost): no handler runs; rank 0 is not left waiting in a collective
    out = signal_rank_1(tmp_path, signal.SIGKILL)
    assert "stopped because another process of the job left" in out, out  # rank 0 says why
    assert summary(run)["status"] == "interrupted"  # not failed: what torchrun --max-restarts would resume
    assert f'File "{PACKAGE}' not in out, out
    proc = torchrun(*two_processes(), cwd=tmp_path, args=[*ARGS, "hydra.run.dir=d"])  # the same command again
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "holds an interrupted run: resuming it" in proc.stdout
    assert summary(run)["status"] == "completed"
    assert_same_weights(weights(run), weights(reference))
    assert curve(run) == curve(reference)


@pytest.mark.slow
def test_max_restarts_without_a_named_run_directory_is_refused(tmp_path):
    proc = torchrun(*two_processes(), "--max-restarts=1", cwd=tmp_path, args=ARGS)
    assert proc.returncode != 0
    assert "name it with hydra.run.dir=DIR" in proc.stdout + proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_a_resume_on_another_number_of_processes_counts_the_epochs_loss_once(monkeypatch):
    from runner.training import distributed
    from runner.training.distributed import Rank
    from runner.training.state import own_share

    ranks = [{"rng": "r0", "loss_sum": 3.0, "seen": 30}, {"rng": "r1", "loss_sum": 5.0, "seen": 30}]
    saved = {"rng": "rank 0's", "loss_sum": 3.0, "seen": 30, "ranks": ranks}
    shares = {}
    for world in (1, 2, 4):
        for rank in range(world):
            monkeypatch.setattr(distributed, "current", lambda r=rank, w=world: Rank(r, w))
            shares[world, rank] = own_share(saved)
    assert shares[2, 0]["rng"] == "r0" and shares[2, 1] == saved["ranks"][1]  # as saved: each rank its own
    assert shares[1, 0] == {"rng": "rank 0's", "loss_sum": 8.0, "seen": 60}  # 2 -> 1: both shares, on rank 0
    assert [shares[4, r]["loss_sum"] for r in range(4)] == [8.0, 0.0, 0.0, 0.0]  # 2 -> 4: counted once
    del saved["ranks"]  # a single process's last.pt, resumed on 2
    monkeypatch.setattr(distributed, "current", lambda: Rank(1, 2))
    assert own_share(saved)["seen"] == 0


def test_only_a_peer_that_left_counts_as_an_interruption(monkeypatch):
    from runner.training import distributed

    monkeypatch.setattr(distributed.dist, "is_initialized", lambda: True)
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 2)
    gloo = "[../gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:2248: Connection reset by peer."
    assert distributed.lost_peer(RuntimeError(gloo))
    assert distributed.lost_peer(distributed.dist.DistNetworkError("store gone"))
    assert not distributed.lost_peer(RuntimeError("CUDA error: the launch timed out and was terminated"))
    assert not distributed.lost_peer(ValueError(gloo))  # not raised by a collective
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 1)
    assert not distributed.lost_peer(RuntimeError(gloo))  # one process has no peer to lose
