"""The fork server (helpers/zygote.py) against a real exec: a forked command is what a fresh process is."""

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FAST, TESTS, _env, same_run, summary, zygote

PROBE_ENV = {"PYTHONPATH": str(TESTS), "RUNNER_TEST_PROBE": "this command's own"}  # beside the server's own PYTHONPATH


def forked(module, args, cwd, env):
    proc, why = zygote().start(module, args, cwd, env)
    assert why is None, why
    return proc


def both(args, cwd, module="zygote_probe", env=PROBE_ENV, exec_flags=()):
    """(exit status, stdout, stderr) of `python -m MODULE ARGS` forked, then exec'd, in the same cwd and environment."""
    env = _env(env)
    proc = forked(module, args, cwd, env)
    # the two run side by side: neither reads what the other writes
    fresh = subprocess.Popen(
        [sys.executable, *exec_flags, "-m", module, *args],
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=300)
    fresh_out, fresh_err = fresh.communicate(timeout=300)
    return (proc.returncode, out, err), (fresh.returncode, fresh_out, fresh_err)


def test_a_forked_child_has_a_fresh_processs_threads_environment_paths_and_streams(tmp_path):
    fork, fresh = both(["report"], tmp_path)
    assert fork[0] == fresh[0] == 0 and fork[2] == fresh[2] == "to stderr\n", fork[2] + fresh[2]
    fork, fresh = json.loads(fork[1]), json.loads(fresh[1])
    # OpenBLAS (numpy's) stops its pool at every fork and starts it at its next use: in the child after torch's
    # first op, at import in a fresh process. After numpy's first op, the two processes are alike again.
    assert fork.pop("threads after torch") == fresh.pop("threads after torch") - 1
    assert fork.pop("draws") != fresh.pop(
        "draws"
    )  # numpy's and Python's generators are seeded afresh, not the server's
    assert fork == fresh
    assert fresh["torch threads"] > 0 and fresh["environ"]["RUNNER_TEST_PROBE"] == "this command's own"
    assert fresh["sys.path"][:3] == [str(tmp_path), *_env(PROBE_ENV)["PYTHONPATH"].split(":")]


def test_two_children_do_not_share_the_servers_random_state(tmp_path):
    draws = [
        json.loads(forked("zygote_probe", ["report"], tmp_path, _env(PROBE_ENV)).communicate(timeout=300)[0])["draws"]
        for _ in range(2)
    ]
    assert draws[0][0] != draws[1][0] and draws[0][1] != draws[1][1]


@pytest.mark.parametrize(
    "args",
    [
        ["exit", "0"],
        ["exit", "3"],
        ["exit", "a message"],
        ["signal", "SIGTERM"],
        ["signal", "SIGKILL"],
        ["raise"],
        ["interrupt"],
        ["ending", "FILE"],
    ],
    ids=["exit 0", "exit 3", "exit message", "SIGTERM", "SIGKILL", "raise", "interrupt", "ending"],
)
def test_exit_status_and_output_are_a_fresh_processs(tmp_path, args):
    """SystemExit, signals (negative, as subprocess gives them), tracebacks, Ctrl-C, and the interpreter's ending:
    threads joined, then atexit, then the streams flushed."""
    args = [str(tmp_path / "ending.txt") if a == "FILE" else a for a in args]
    fork, fresh = both(args, tmp_path)
    assert fork == fresh
    if args[0] == "ending":
        assert fresh[1:] == ("no newline at the end", "nor here")
        assert (tmp_path / "ending.txt").read_text() == "thread\natexit\n" * 2


def test_start_gives_a_process_to_signal_wait_for_and_kill(tmp_path):
    for sig in (signal.SIGTERM, signal.SIGKILL):
        proc = forked("zygote_probe", ["sleep"], tmp_path, _env(PROBE_ENV))
        assert proc.stdout.readline() == "sleeping\n" and proc.poll() is None
        assert Path(f"/proc/{proc.pid}/cmdline").read_text().split("\0")[:4] == [
            sys.executable,
            "-m",
            "zygote_probe",
            "sleep",
        ]
        with pytest.raises(subprocess.TimeoutExpired):
            proc.communicate(timeout=0.2)
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=0.2)
        proc.send_signal(sig)
        assert proc.wait(timeout=60) == -sig and proc.communicate(timeout=60) == ("", "")
        proc.kill()  # gone: nothing is signalled, as with Popen


def _masked(text, cwd):
    """Output without what differs between any two runs: the directory, durations and speeds (and so widths)."""
    text = text.replace(str(cwd), "CWD")
    text = re.sub(r"[\d,]+(\.\d+)? ?(s|samples/s|steps/s|GFLOP/s)(?![\w/])", "T", text)
    return re.sub(r"[━─ ]+", " ", text)


def test_a_forked_runner_train_writes_what_an_execd_one_writes(tmp_path):
    (tmp_path / "fork").mkdir()
    (tmp_path / "exec").mkdir()
    args = ["train", *FAST, "hydra.run.dir=run"]
    proc = forked("runner", args, tmp_path / "fork", _env(None))
    # side by side, each in its own folder; each uses torch's default threads, so neither's bytes depend on the other
    fresh = subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        cwd=tmp_path / "exec",
        env=_env(None),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    out, err = proc.communicate(timeout=600)
    fresh_out, fresh_err = fresh.communicate(timeout=600)
    assert (proc.returncode, err) == (fresh.returncode, fresh_err) == (0, ""), err + fresh_err
    assert _masked(out, tmp_path / "fork") == _masked(fresh_out, tmp_path / "exec")
    fork_run, exec_run = tmp_path / "fork" / "run", tmp_path / "exec" / "run"
    same_run(fork_run, exec_run)  # the same bytes of best.pt, the same metrics
    files = lambda run: sorted(str(p.relative_to(run)) for p in run.rglob("*"))  # noqa: E731
    assert files(fork_run) == files(exec_run)
    for name in ("config.yaml", "overrides.yaml"):
        assert (fork_run / ".hydra" / name).read_text() == (exec_run / ".hydra" / name).read_text()
    fork_summary, exec_summary = summary(fork_run), summary(exec_run)
    for info in (fork_summary, exec_summary):
        for key in ("started_at", "finished_at", "pid", "timings", "throughput"):
            info.pop(key)
        for key in ("epoch_time_s", "train_samples_per_s"):
            info["final"].pop(key)
    assert fork_summary == exec_summary and exec_summary["status"] == "completed"


def test_the_server_holds_only_modules_that_a_fresh_runner_train_imports(tmp_path):
    """So a child differs from a fresh process only in having imported them sooner. When runner's modules move,
    PRELOAD may name one that is gone, or that a default run no longer imports: name what it imports now."""
    assert not zygote().missing, f"helpers/zygote.py's PRELOAD names modules that do not import: {zygote().missing}"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "zygote_probe",
            "modules",
            "modules.json",
            "runner",
            "train",
            *FAST,
            "hydra.run.dir=run",
        ],
        cwd=tmp_path,
        env=_env(PROBE_ENV),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert proc.returncode == 0 and summary(tmp_path / "run")["status"] == "completed", proc.stderr
    fresh = set(json.loads((tmp_path / "modules.json").read_text()))
    extra = set(zygote().modules) - fresh  # the server's own machinery (socket, selectors, runpy...) included
    assert not extra, sorted(extra)
