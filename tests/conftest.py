"""Helpers shared by the tests: drive the real `runner` command in a process of its own (helpers/zygote.py)."""

import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from filelock import FileLock
from helpers.zygote import Zygote

TESTS = Path(__file__).resolve().parent
SITECUSTOM = TESTS / "sitecustom"

# Small enough to train in a second or two on 2 CPU cores.
FAST = ["trainer.epochs=2", "model.channels=[8,16]"]

# FAST's model, able to signal its own process at a chosen moment (signal_model.py). One thread, so
# runs under a launcher that gives each job one core (hydra/launcher=local) compute the same bytes.
SIGNAL_CNN = ["--config-dir", str(TESTS / "configs"), "model=signal_cnn", "trainer.epochs=4", "trainer.num_threads=1"]
WITH_SIGNAL_MODEL = {"PYTHONPATH": str(TESTS)}


def signal_at(when, sig="SIGINT", once=None):
    """The environment that makes signal_model.py send `sig` at `when` (build, step:N, test:N)."""
    env = {**WITH_SIGNAL_MODEL, "RUNNER_TEST_SIGNAL_AT": when, "RUNNER_TEST_SIGNAL": sig}
    return {**env, "RUNNER_TEST_SIGNAL_ONCE": str(once)} if once else env


def _env(env):
    """The environment of a `runner` command: this process's, without HYDRA_FULL_ERROR and RUNNER_DATA, plus `env`;
    sitecustom/ first on PYTHONPATH (it disables the network and CIFAR-10's md5 check there: see its docstring)."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RUNNER_DATA")}
    full_env.update(env or {})
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITECUSTOM), full_env.get("PYTHONPATH")]))
    return full_env


_zygote = []  # this worker's fork server (helpers/zygote.py), started by the first command


def zygote():
    """This worker's fork server, started on first use, in the environment of a command that passes no `env`. A test
    that changed this process's environment (importing torch._inductor sets TORCHINDUCTOR_CACHE_DIR) gets a new one."""
    if _zygote and not _zygote[0].started_with(_env(None)):
        _zygote.pop().stop()
    if not _zygote:
        _zygote.append(Zygote(_env(None)))
    return _zygote[0]


def _forked(args, cwd, env, rlimits=None):
    """`python -m runner ARGS` forked from this worker's server, as a Popen-like process; None where it must be
    exec'd instead (RUNNER_TESTS_EXEC=1, or a command the server would not run as a fresh process would)."""
    if os.environ.get("RUNNER_TESTS_EXEC") == "1":
        return None
    proc, why = zygote().start("runner", args, cwd, env, rlimits)
    if why:
        _log(f"exec ({why})", args)
    return proc


def _log(how, args, seconds=None):
    """With RUNNER_TESTS_ZYGOTE_LOG=FILE: each command, how it ran (and for `runner`, how long it took), to FILE."""
    if os.environ.get("RUNNER_TESTS_ZYGOTE_LOG"):
        with open(os.environ["RUNNER_TESTS_ZYGOTE_LOG"], "a") as f:
            f.write(f"{how}{'' if seconds is None else f' {seconds:.2f}s'}: runner {' '.join(map(str, args))}\n")


@pytest.fixture(scope="session", autouse=True)
def runner_cache(tmp_path_factory):
    """runner's cache directory for this session (in-process calls and every command): never the real ~/.cache.
    Set before the first command starts the fork server, which keeps this environment."""
    os.environ["RUNNER_CACHE"] = str(tmp_path_factory.mktemp("runner-cache"))
    return Path(os.environ["RUNNER_CACHE"])


def pytest_sessionfinish(session):
    if _zygote:
        _zygote.pop().stop()


def _set_rlimits(rlimits):
    for name, limits in rlimits.items():
        resource.setrlimit(getattr(resource, name), tuple(limits))


def runner(*args, cwd, check=True, env=None, rlimits=None):
    """`python -m runner ARGS` in `cwd` (forked from the fork server); with `check`, fail the test with its output
    unless it exits 0. `rlimits`: resource limits of the command's process, {"RLIMIT_FSIZE": (soft, hard)}."""
    full_env = _env(env)
    began = time.monotonic()
    proc = _forked(args, cwd, full_env, rlimits)
    forked = proc is not None
    if proc is None:
        proc = subprocess.run(
            [sys.executable, "-m", "runner", *map(str, args)],
            cwd=cwd,
            env=full_env,
            capture_output=True,
            text=True,
            timeout=600,
            preexec_fn=(lambda: _set_rlimits(rlimits)) if rlimits else None,
        )
    else:
        try:
            out, err = proc.communicate(timeout=600)
        except subprocess.TimeoutExpired:
            proc.kill()  # as subprocess.run does
            proc.wait()
            raise
        proc = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
    _log("fork" if forked else "exec", args, time.monotonic() - began)
    if check and proc.returncode != 0:
        pytest.fail(f"runner {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


def start(*args, cwd, env=None):
    """`python -m runner ARGS` in the background (forked, as `runner` does), to signal or kill: Popen-like."""
    full_env = _env(env)
    return _forked(args, cwd, full_env) or subprocess.Popen(
        [sys.executable, "-m", "runner", *map(str, args)],
        cwd=cwd,
        env=full_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def wait_for(path, text, timeout=120):
    """Until the file `path` holds `text`."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if path.is_file() and text in path.read_text():
            return
        time.sleep(0.02)
    raise AssertionError(f"{text!r} never appeared in {path}")


def assert_clean_failure(proc, *phrases):
    """A bad input: non-zero exit, every phrase in the message, no traceback."""
    assert proc.returncode != 0
    message = " ".join((proc.stdout + proc.stderr).split())
    for phrase in phrases:
        assert " ".join(phrase.split()) in message, message
    assert "Traceback" not in proc.stderr


def run_dirs(root):
    """Training run directories under root/outputs, oldest first."""
    return sorted(p.parent for p in Path(root, "outputs").glob("*/*/summary.json") if p.parent.parent.name != "eval")


def summary(run_dir):
    return json.loads(Path(run_dir, "summary.json").read_text())


def load(path):
    return torch.load(path, weights_only=True)


def digest(root):
    """sha256 of every file under `root`, by relative path: equal before and after means nothing changed."""
    return {
        p.relative_to(root): hashlib.sha256(p.read_bytes()).hexdigest() for p in Path(root).rglob("*") if p.is_file()
    }


def same_run(a, b):
    """Metrics (time columns aside), best.pt bytes and last.pt weights are identical."""
    strip = lambda d: [line.split(",")[:5] for line in (d / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert strip(a) == strip(b)
    assert (a / "checkpoints" / "best.pt").read_bytes() == (b / "checkpoints" / "best.pt").read_bytes()
    la, lb = load(a / "checkpoints" / "last.pt"), load(b / "checkpoints" / "last.pt")
    assert set(la["model"]) == set(lb["model"]) and all(
        torch.equal(la["model"][k], lb["model"][k]) for k in la["model"]
    )
    assert la["step"] == lb["step"] and la["epoch"] == lb["epoch"]


def free_port():
    """A TCP port no one listens on now, for a process group's rendezvous (tests run two at a time)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def once_per_session(tmp_path_factory, worker_id, name, make):
    """`make(directory)` once per test session, however many pytest-xdist workers ask (the pattern of xdist's
    docs: a file lock in the base directory the workers share). The tests only read what it made, or copy it."""
    root = tmp_path_factory.getbasetemp()
    root = root if worker_id == "master" else root.parent  # under xdist: the session's, above each worker's own
    target, done = root / name, root / f"{name}.done"
    with FileLock(str(root / f"{name}.lock")):
        if not done.exists():
            target.mkdir()
            make(target)
            done.touch()
    return target


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory, worker_id):
    """One default `runner train` (cnn on digits, 10 epochs): (its cwd, its run directory, what it printed).

    Shared by every test that reads it; a test that runs a command writes under its own tmp_path."""

    def make(cwd):
        (cwd / "stdout.txt").write_text(runner("train", cwd=cwd).stdout)

    cwd = once_per_session(tmp_path_factory, worker_id, "digits", make)
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, (cwd / "stdout.txt").read_text()
