"""Past one process: a stop agreed by every rank, each rank's RNG in last.pt, and torchrun on two "nodes" (loopback).

Every job here is the real launcher (torch.distributed.run) with gloo on 2 CPU cores; the reference is one
uninterrupted 2-process run of the same config, made once per session."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import SITECUSTOM, TESTS, free_port, once_per_session, summary, zygote
from conftest import runner as command

import runner

PACKAGE = str(Path(runner.__file__).parent) + os.sep  # where a traceback through runner's own code would point

# MLP with its default dropout: each rank draws masks, so an exact resume needs every rank's RNG state
ARGS = ["model=mlp", "trainer.epochs=4", "trainer.batch_size=16"]
TIMEOUT = 300  # a hang would be a failure, not a wait


def _env(**extra):
    env = {k: v for k, v in os.environ.items() if k != "RUNNER_DATA"}
    return {**env, "PYTHONPATH": str(SITECUSTOM), **extra}


def torchrun(*launcher, cwd, args, wait=True, env=None):
    """`python -m torch.distributed.run LAUNCHER -m runner train ARGS` in `cwd`: its CompletedProcess, or with
    wait=False the running Popen. `env`: variables set on top of this process's environment."""
    command = [sys.executable, "-m", "torch.distributed.run", *launcher, "-m", "runner", "train", *args]
    if not wait:
        return subprocess.Popen(command, cwd=cwd, env=_env(**(env or {})), stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)  # fmt: skip
    return subprocess.run(command, cwd=cwd, env=_env(**(env or {})), capture_output=True, text=True, timeout=TIMEOUT)


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


def signal_rank_1(cwd, sig, after_s=0.0, launcher=(), args=ARGS):
    """A 2-process run of `args` in cwd/d, `sig` sent to its rank 1 only, `after_s` after its first epoch was saved:
    the job's output, once every process of it has ended."""
    job = torchrun(*two_processes(), *launcher, cwd=cwd, args=[*args, "hydra.run.dir=d"], wait=False)
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
    assert out.count("error: stopped by SIGTERM") == 1, out  # told once, by rank 0, not by every rank
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
    # torchrun sets OMP_NUM_THREADS=1 only where a node starts several processes, as the reference's does; a node of
    # one process would use every core, and a matrix product split over other threads may round differently
    one_thread = {"OMP_NUM_THREADS": "1"}
    nodes = [torchrun(*launcher, cwd=tmp_path, args=[*ARGS, "hydra.run.dir=mn"], wait=False, env=one_thread)
             for _ in range(2)]  # fmt: skip
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
    assert "stopped because rank 1 left" in out, out  # rank 0 says why
    assert summary(run)["status"] == "interrupted"  # not failed: what torchrun --max-restarts would resume
    assert f'File "{PACKAGE}' not in out, out
    proc = torchrun(*two_processes(), cwd=tmp_path, args=[*ARGS, "hydra.run.dir=d"])  # the same command again
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "holds an interrupted run: resuming it" in proc.stdout
    assert summary(run)["status"] == "completed"
    assert_same_weights(weights(run), weights(reference))
    assert curve(run) == curve(reference)


@pytest.mark.slow
def test_under_max_restarts_a_killed_worker_restarts_the_job_which_resumes_exactly(tmp_path, reference):
    run = tmp_path / "d"
    # torchrun's elastic agent sees the dead worker, stops the others (rank 0 has recorded `interrupted`) and starts
    # them all again with the same command, which resumes the run from last.pt
    out = signal_rank_1(tmp_path, signal.SIGKILL, launcher=["--max-restarts=1"])
    assert "stopped because rank 1 left" in out and "holds an interrupted run: resuming it" in out
    assert f'File "{PACKAGE}' not in out, out
    info = summary(run)
    assert info["status"] == "completed" and info["processes"] == 2, out
    assert_same_weights(weights(run), weights(reference))
    assert curve(run) == curve(reference)


@pytest.mark.slow
def test_a_process_that_stops_answering_ends_the_run_interrupted_within_ddp_timeout_and_it_resumes_exactly(
    tmp_path, reference
):
    run = tmp_path / "d"
    job = torchrun(*two_processes(), cwd=tmp_path, args=[*ARGS, "trainer.ddp_timeout=4", "hydra.run.dir=d"], wait=False)
    try:
        wait_for_epoch(job, run)
        pid = worker_of_rank(job.pid, 1)
        assert pid is not None, "no worker of rank 1"
        os.kill(pid, signal.SIGSTOP)  # alive but silent: a hung process, a node cut off; no error reaches rank 0
        stopped = time.monotonic()
        while summary(run)["status"] == "running":  # a hang without the timeout (gloo's default is 30 minutes)
            assert time.monotonic() - stopped < 60, "rank 0 still waits for rank 1"
            time.sleep(0.1)
        os.kill(pid, signal.SIGKILL)
        out = job.communicate(timeout=TIMEOUT)[0]
    finally:
        job.kill()
    assert summary(run)["status"] == "interrupted", out
    assert "stopped because rank 1 did not answer within trainer.ddp_timeout=4 s" in out, out
    assert f'File "{PACKAGE}' not in out, out
    proc = torchrun(*two_processes(), cwd=tmp_path, args=["resume=d"])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert_same_weights(weights(run), weights(reference))
    assert curve(run) == curve(reference)


@pytest.mark.slow
def test_max_restarts_without_a_named_run_directory_is_refused(tmp_path):
    proc = torchrun(*two_processes(), "--max-restarts=1", cwd=tmp_path, args=ARGS)
    assert proc.returncode != 0
    # said by rank 0 alone, once per attempt (torchrun restarts a refused job too: 2 attempts)
    assert (proc.stdout + proc.stderr).count("name it with hydra.run.dir=DIR") == 2, proc.stdout + proc.stderr
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
    timed_out = "[../gloo/transport/tcp/unbound_buffer.cc:78] Timed out waiting 5000ms for recv operation to complete"
    assert (
        distributed.lost_peer(RuntimeError(timed_out)) == "timeout"
        and distributed.lost_peer(RuntimeError(gloo)) == "left"
    )
    assert not distributed.lost_peer(ValueError(gloo))  # not raised by a collective
    monkeypatch.setattr(distributed.dist, "get_world_size", lambda: 1)
    assert not distributed.lost_peer(RuntimeError(gloo))  # one process has no peer to lose


def task_of_rank(folder, rank):
    """The pid of the task of global `rank` of the submitit job whose files are under `folder` (the local executor's
    tasks carry SUBMITIT_LOCAL_GLOBALID and, in the command they were started with, the job's folder)."""
    for pid in subprocess.run(["pgrep", "-f", "submitit.core._submit"], capture_output=True, text=True).stdout.split():
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"SUBMITIT_LOCAL_GLOBALID={rank}".encode() in environ and str(folder).encode() in b" ".join(environ):
            return int(pid)
    return None


@pytest.mark.slow
def test_a_submitit_job_of_two_tasks_is_one_run_and_a_sigusr2_to_one_task_requeues_it_exactly(tmp_path, reference):
    # hydra/launcher=local is submitit's local executor, the slurm preset's twin: each task is a process started by
    # submitit with the environment a SLURM task gets from submitit (global rank, local rank, tasks, job id)
    sweep = tmp_path / "s"
    job = subprocess.Popen(
        [sys.executable, "-m", "runner", "train", "-m", "hydra/launcher=local", "hydra.launcher.tasks_per_node=2",
         *ARGS, f"hydra.sweep.dir={sweep}"],
        cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        wait_for_epoch(job, sweep / "0")
        pid = task_of_rank(sweep / ".submitit", 1)
        assert pid is not None, "no task of rank 1"
        os.kill(pid, signal.SIGUSR2)  # what SLURM sends before the time limit; here to one task only
        out = job.communicate(timeout=TIMEOUT)[0]
    finally:
        job.kill()
    assert job.returncode == 0, out
    runs = [p.parent for p in tmp_path.rglob("summary.json")]
    assert runs == [sweep / "0"], runs  # one run directory for the two tasks
    info = summary(sweep / "0")
    assert info["status"] == "completed" and info["processes"] == 2 and info["ranks_in_sync"] is True
    log = (sweep / "0" / "train.log").read_text()
    assert "stopped by SIGUSR2 (sent to rank 1) " in log and "holds an interrupted run: resuming it" in log, log
    submitit_logs = "".join(p.read_text() for p in (sweep / ".submitit").rglob("*_0_log.out"))
    assert "Requeued job" in submitit_logs, submitit_logs  # by task 0, which was not signalled itself
    # the same config under torchrun --nproc_per_node=2, uninterrupted: to the bit, weights and every epoch's figures
    assert_same_weights(weights(sweep / "0"), weights(reference))
    assert curve(sweep / "0") == curve(reference)


# without dropout, whose masks each process draws from its own random state: then a run's result depends on the
# number of processes only through the order in which the gradient is summed
NO_DROPOUT = ["model=mlp", "model.dropout=0", "trainer.epochs=4", "trainer.batch_size=16"]


@pytest.fixture(scope="session")
def one_process_reference(tmp_path_factory, worker_id):
    """One uninterrupted single-process run of NO_DROPOUT: its run directory."""

    def make(cwd):
        proc = subprocess.run([sys.executable, "-m", "runner", "train", *NO_DROPOUT, "hydra.run.dir=ref"], cwd=cwd,
                              env=_env(), capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
        assert proc.returncode == 0, proc.stdout + proc.stderr

    return once_per_session(tmp_path_factory, worker_id, "one-process-reference", make) / "ref"


def assert_close_run(run, reference):
    """`run` trained the batches of `reference` in the same order: the same number of epochs and steps, weights and
    every epoch's losses equal to float rounding (2e-7 and 1e-7 were seen here; 1e-5 allows for another machine's
    kernels while a batch out of order or counted twice moves them by 1e-3 or more)."""
    a, b = weights(run), weights(reference)
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=0, atol=1e-5) for k in a)
    ours, theirs = curve(run), curve(reference)
    assert len(ours) == len(theirs) == 5 and ours[0] == theirs[0]
    for row, ref in zip(ours[1:], theirs[1:]):
        assert row[0] == ref[0] and [float(v) for v in row[1:]] == pytest.approx([float(v) for v in ref[1:]], abs=1e-5)
    assert summary(run)["steps"] == summary(reference)["steps"]


def interrupt_one_process(cwd, args):
    """A single-process run of `args` in cwd/d, SIGTERM after its first epoch was saved."""
    job = subprocess.Popen([sys.executable, "-m", "runner", "train", *args, "hydra.run.dir=d"], cwd=cwd, env=_env(),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
    try:
        wait_for_epoch(job, cwd / "d")
        time.sleep(0.15)
        job.send_signal(signal.SIGTERM)
        return job.communicate(timeout=TIMEOUT)[0]
    finally:
        job.kill()


@pytest.mark.slow
@pytest.mark.parametrize("saved_on", [2, 1], ids=["2-to-1", "1-to-2"])
def test_a_run_resumed_on_another_number_of_processes_continues_the_same_global_batches(
    tmp_path, one_process_reference, saved_on
):
    run = tmp_path / "d"
    if saved_on == 2:
        out = signal_rank_1(tmp_path, signal.SIGTERM, after_s=0.15, args=NO_DROPOUT)
    else:
        out = interrupt_one_process(tmp_path, NO_DROPOUT)
    assert summary(run)["status"] == "interrupted", out
    if saved_on == 2:
        resumed = subprocess.run([sys.executable, "-m", "runner", "train", "resume=d"], cwd=tmp_path, env=_env(),
                                 capture_output=True, text=True, timeout=TIMEOUT)  # fmt: skip
    else:
        resumed = torchrun(*two_processes(), cwd=tmp_path, args=["resume=d"])
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    assert f"resume: processes {saved_on} -> {3 - saved_on}: the same batches" in resumed.stdout  # said, not silent
    info = summary(run)
    assert info["status"] == "completed" and info["processes"] == 3 - saved_on
    assert_close_run(run, one_process_reference)


def test_runner_alone_in_each_task_of_a_slurm_job_is_refused_with_the_launchers_that_make_one_job(tmp_path):
    # `srun runner train` with --ntasks=2, or a batch script of 2 tasks without srun: each task would train alone
    proc = command("train", "model=mlp", cwd=tmp_path, check=False, env={"SLURM_NTASKS": "2"})
    message = " ".join(proc.stderr.split())
    assert proc.returncode == 2, message
    assert "this is a SLURM job of 2 tasks (SLURM_NTASKS=2), and runner would train in each of them alone" in message
    assert (
        "srun --ntasks-per-node=1 torchrun --nnodes=$SLURM_NNODES" in message and "hydra/launcher=slurm_ddp" in message
    )
    assert "Traceback" not in proc.stderr and not list(tmp_path.iterdir())  # nothing written
    assert command("train", "model=mlp", "--cfg", "job", cwd=tmp_path, env={"SLURM_NTASKS": "1"}).returncode == 0


def test_the_slurm_ddp_preset_runs_one_task_per_gpu(tmp_path):
    proc = command("train", "hydra/launcher=slurm_ddp", "hydra.launcher.nodes=2", "hydra.launcher.gpus_per_node=4",
                  "--cfg", "hydra", "--resolve", "-p", "hydra.launcher", cwd=tmp_path)  # fmt: skip
    launcher = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line)
    assert (launcher["nodes"], launcher["gpus_per_node"], launcher["tasks_per_node"]) == ("2", "4", "4")
    assert launcher["_target_"].endswith("SlurmLauncher") and launcher["signal_delay_s"] == "120"


@pytest.mark.slow
def test_a_job_of_two_tasks_refused_in_its_setup_is_recorded_failed_by_rank_0_alone(tmp_path):
    # check_keys refuses the job after its tasks met: rank 0 records `failed` (without the other rank, which has
    # left), instead of waiting in a collective for trainer.ddp_timeout and recording nothing
    sweep = tmp_path / "s"
    args = ["hydra/launcher=local", "hydra.launcher.tasks_per_node=2", "model=mlp", "+trainer.typo=1"]
    proc = subprocess.run([sys.executable, "-m", "runner", "train", "-m", *args, "trainer.ddp_timeout=120",
                           f"hydra.sweep.dir={sweep}"], cwd=tmp_path, env=_env(), capture_output=True, text=True,
                          timeout=100)  # fmt: skip
    assert proc.returncode == 1, proc.stdout + proc.stderr
    info = summary(sweep / "0")
    assert info["status"] == "failed" and "trainer.typo is not a key runner reads" in info["error"], info


def rank_probes(world, cwd):
    """`python -m rank_probe RANK WORLD PORT CWD` for each rank (tests/rank_probe.py), forked from the fork server
    where it will (helpers/zygote.py), else exec'd: (exit status, output) of each, once all have ended."""
    path = os.pathsep.join(filter(None, [str(SITECUSTOM), str(TESTS), os.environ.get("PYTHONPATH")]))
    port, env = free_port(), _env(PYTHONPATH=path)
    procs = []
    for rank in range(world):
        args = [str(rank), str(world), str(port), str(cwd)]
        forked = None if os.environ.get("RUNNER_TESTS_EXEC") == "1" else zygote().start("rank_probe", args, cwd, env)[0]
        pipes = dict(stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        command = [sys.executable, "-m", "rank_probe", *args]
        procs.append(forked or subprocess.Popen(command, cwd=cwd, env=env, **pipes))
    ended = []
    for proc in procs:
        try:
            out, err = proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            for other in procs:
                other.kill()
            raise
        ended.append((proc.returncode, out + err))
    return ended


def test_what_rank_0_alone_decides_reaches_every_rank_even_when_it_fails(tmp_path):
    ended = rank_probes(2, tmp_path)
    assert [code for code, _ in ended] == [0, 0], ended
    zero, one = (json.loads((tmp_path / f"{r}.json").read_text()) for r in (0, 1))
    assert zero["value"] == one["value"] == "rank 0's"
    assert zero["error"] == "ZeroDivisionError: division by zero"
    assert (
        one["error"]
        == "RunnerError: rank 0 of the job failed (ZeroDivisionError: division by zero); its own output says more"
    )
    assert zero["asked"] == one["asked"] == 30  # rank 1 has no pruner of its own: it gets rank 0's answer
    assert zero["none"] is None and one["none"] is None


def test_a_lost_peers_message_leaves_out_gloos_source_path_and_is_cut_at_a_word():
    from runner.training.distributed import _gist

    gloo = RuntimeError(
        "[/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error [127.0.0.1]:19852: "
        "Connection reset by peer. This is typically caused by a remote process exiting or crashing, " + "x " * 80
    )
    said = _gist(gloo)
    assert said.startswith("Read error [127.0.0.1]:19852: Connection reset by peer.") and "pair.cc" not in said
    # cut at a word by io/errors.one_line, the package's one way of putting an error on one line: "word..."
    assert len(said) <= 160 and said.endswith("...") and said[:-3].split()[-1] in gloo.args[0].split()
