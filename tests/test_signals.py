"""A stop is a stop, wherever it lands (runner/io/signals.py): a run ends `interrupted` or `completed`, never `failed`,
never with a traceback, and the command it prints continues it.

Exact moments come from a real signal the process sends itself (signal_model.py inside the job; sitecustom's
TEST_SIGNAL_ON_IMPORT during an import); the chaos tests send signals from outside at moments spread over the
whole life of a run and of a sweep, including the imports (those start fresh processes, not forks).
"""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
from conftest import SIGNAL_CNN, SITECUSTOM, TESTS, WITH_SIGNAL_MODEL, _env, runner, same_run, signal_at, summary

pytestmark = pytest.mark.slow

RUN = [*SIGNAL_CNN, "trainer.epochs=2"]


def _exec(args, cwd, env=None):
    """`python -m runner ARGS` as a fresh process (its imports happen in it), in the background."""
    return subprocess.Popen(
        [sys.executable, "-m", "runner", *args],
        cwd=cwd,
        env={**_env({**WITH_SIGNAL_MODEL, **(env or {})}), "PYTHONPATH": f"{SITECUSTOM}{os.pathsep}{TESTS}"},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _continue_command(err):
    """The `runner train ...` the stopped command told the user to run next (None when it printed none)."""
    found = re.search(r"[Cc]ontinue (?:it|the sweep) with: runner (train .*?)(?:$|\n)", err)
    return found.group(1).split() if found else None


def _stopped_truthfully(proc, out, err, *run_dirs):
    """No traceback; the exit code and the runs' statuses agree: 0 when every run completed, 130 when one did not
    (and none failed). Returns the statuses (None: a run that wrote nothing)."""
    assert "Traceback" not in out + err, out + err
    assert proc.returncode in (0, 130), out + err
    statuses = [summary(d)["status"] if (d / "summary.json").is_file() else None for d in run_dirs]
    if proc.returncode == 0:
        assert statuses == ["completed"] * len(run_dirs), (statuses, out + err)
    else:
        assert set(statuses) <= {None, "interrupted", "completed"} and "stopped" in err, (statuses, err)
        assert statuses != ["completed"] * len(run_dirs), (statuses, err)
    if statuses == [None] * len(run_dirs):
        assert "nothing was changed" in err.lower(), out + err
    return statuses


@pytest.mark.parametrize(
    "when, sig, where",
    [
        ("build", "SIGTERM", "stopped by SIGTERM while the model was built"),
        ("eval:2", "SIGINT", "stopped by SIGINT while validating epoch 1; last.pt holds its training"),
        ("load:1", "SIGTERM", "stopped by SIGTERM during the final test"),  # inside load_state_dict, which wraps errors
        ("read:best.pt", "SIGINT", "stopped by SIGINT during the final test"),  # inside torch.load, in safe_load
        ("step:7", "SIGINT,SIGINT", "stopped at once by a second signal"),  # inside the model's forward
    ],
)
def test_a_signal_at_an_exact_moment_stops_the_run_and_its_command_finishes_it(tmp_path, when, sig, where):
    # eval_batch_size=60: validation (1/10 of 1797) takes 3 batches, so a signal inside it has a safe point to meet
    args = [*RUN, "trainer.eval_batch_size=60", "hydra.run.dir=run"]
    proc = runner("train", *args, cwd=tmp_path, check=False, env=signal_at(when, sig))
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 130, out + err
    assert _stopped_truthfully(proc, out, err, tmp_path / "run") == ["interrupted"]
    assert where in err, err
    assert "corrupt" not in err and "Error(s) in loading" not in err
    command = _continue_command(err)
    if when in ("build", "step:7"):  # stopped before its first checkpoint
        assert command is None and "run the same command again" in err
        command = ["train", *args]
    else:
        assert command == ["train", f"resume={tmp_path / 'run'}"], err
    runner(*command, cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    assert summary(tmp_path / "run")["status"] == "completed"
    if when == "eval:2":  # last.pt was saved between the epoch's last step and its validation: still exact
        runner("train", *RUN, "trainer.eval_batch_size=60", "hydra.run.dir=whole", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
        same_run(tmp_path / "run", tmp_path / "whole")


@pytest.mark.parametrize("module", ["hydra", "numpy"])
def test_a_signal_during_the_first_imports_stops_the_command_and_writes_nothing(tmp_path, module):
    # numpy is imported inside `import torch`, which a SIGINT used to reach only as a lost or broken import
    proc = _exec(["train", *RUN, "hydra.run.dir=run"], tmp_path, {"TEST_SIGNAL_ON_IMPORT": f"{module}:SIGINT"})
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    assert "stopped by SIGINT" in err and "nothing was changed" in err.lower(), err
    assert not (tmp_path / "run").exists() and not (tmp_path / "outputs").exists()


def test_a_signal_after_the_last_safe_point_lets_the_run_complete(tmp_path):
    # matplotlib's submodules are imported when the loss curve is drawn, after the test: a signal landing in that
    # import used to leave a half-imported module and a `failed` run
    env = {"TEST_SIGNAL_ON_IMPORT": "matplotlib.rcsetup:SIGTERM"}
    proc = _exec(["train", *RUN, "hydra.run.dir=run"], tmp_path, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in out + err, out + err
    info = summary(tmp_path / "run")
    assert info["status"] == "completed" and "test" in info
    assert (tmp_path / "run" / "loss_curve.png").stat().st_size > 0


def test_a_stopped_sweep_says_how_to_continue_the_sweep_and_that_command_completes_it(tmp_path):
    sweep = ["train", "-m", *SIGNAL_CNN, "trainer.epochs=2", "seed=0,1", "hydra.sweep.dir=sweep"]
    env = {**signal_at("step:5"), "RUNNER_TEST_SIGNAL_JOBS": "0=SIGINT"}
    proc = runner(*sweep, cwd=tmp_path, check=False, env=env)
    out, err = proc.stdout, proc.stderr
    assert proc.returncode == 130 and "Traceback" not in out + err, out + err
    assert _continue_command(err) == ["train", "-m", "resume=sweep"], err
    assert "resume=sweep/0" not in err
    assert summary(tmp_path / "sweep" / "0")["status"] == "interrupted"
    assert not (tmp_path / "sweep" / "1" / "summary.json").exists()  # the sweep stopped: job 1 never began
    # as printed: the sweep's --config-dir (where model=signal_cnn lives) is read back from its multirun.yaml
    runner(*_continue_command(err), cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    assert [summary(tmp_path / "sweep" / j)["status"] for j in "01"] == ["completed", "completed"]
    assert (tmp_path / "sweep" / "summary.csv").is_file()


def test_a_sweep_whose_jobs_all_completed_exits_0_even_if_a_signal_came_late(tmp_path):
    env = {"TEST_SIGNAL_ON_IMPORT": "matplotlib.rcsetup:SIGINT"}  # during the only job's loss curve
    proc = _exec(["train", "-m", *RUN, "seed=0", "hydra.sweep.dir=sweep"], tmp_path, env)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0 and "Traceback" not in out + err, out + err
    assert summary(tmp_path / "sweep" / "0")["status"] == "completed"
    assert (tmp_path / "sweep" / "summary.csv").is_file()


def _chaos(tmp_path, args, run_dirs, sigs):
    """Send each signal in turn to a fresh process, at moments spread over the life of the same command run once
    uninterrupted first (so a loaded machine stretches them with it); check what each ended as, and follow what
    it printed. Returns the statuses seen (None: a run that wrote nothing)."""
    began = time.monotonic()
    whole = _exec(args, tmp_path)
    out, err = whole.communicate(timeout=300)
    assert whole.returncode == 0, out + err
    lifetime = time.monotonic() - began
    seen = []
    for i, sig in enumerate(sigs):
        work = tmp_path / str(i)
        work.mkdir()
        proc = _exec(args, work)
        # 0.1 s: before it the interpreter is still starting (site, sitecustomize), no code of runner's has run yet,
        # and a signal gets Python's own default behaviour
        if i < len(sigs) - 1:
            time.sleep(max(0.1, lifetime * (i + 0.5) / len(sigs)))
        else:  # the last one as soon as the run has started (train.log), however the machine's load has changed
            deadline = time.monotonic() + 120
            while not (work / run_dirs[0] / "train.log").is_file() and proc.poll() is None:
                assert time.monotonic() < deadline, "the run did not start in 120 s"
                time.sleep(0.02)
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=300)
        statuses = _stopped_truthfully(proc, out, err, *(work / d for d in run_dirs))
        seen += statuses
        # what it printed, or where it stopped before its first checkpoint, the same command again
        command = _continue_command(err) or (args if proc.returncode else None)
        if command:
            proc = _exec(command, work)
            out, err = proc.communicate(timeout=300)
            assert proc.returncode == 0 and "Traceback" not in out + err, out + err
        assert [summary(work / d)["status"] for d in run_dirs] == ["completed"] * len(run_dirs)
    return seen


def test_chaos_signals_over_the_whole_life_of_a_run(tmp_path):
    # 6 moments (each signal twice): enough to reach from the imports into the run on this machine; more cost CI time
    sigs = [signal.SIGINT, signal.SIGTERM, signal.SIGUSR2] * 2  # outside submitit SIGUSR2 is a plain stop
    seen = _chaos(tmp_path, ["train", *RUN, "hydra.run.dir=run"], ["run"], sigs)
    assert None in seen and "interrupted" in seen, seen  # the moments reached from the imports into the run


def test_chaos_signals_over_the_whole_life_of_a_sweep(tmp_path):
    # 6 epochs a job: the jobs, not the start-up, take most of the sweep's life, so some moments land inside one
    args = ["train", "-m", *SIGNAL_CNN, "trainer.epochs=6", "seed=0,1", "hydra.sweep.dir=sweep"]
    sigs = [signal.SIGTERM, signal.SIGINT, signal.SIGUSR2, signal.SIGTERM]  # 4 moments, the last inside job 0
    seen = _chaos(tmp_path, args, ["sweep/0", "sweep/1"], sigs)
    assert "interrupted" in seen, seen
    # summary.csv once the sweep completed
    assert all((tmp_path / str(i) / "sweep" / "summary.csv").is_file() for i in range(len(sigs)))


def test_a_summary_of_a_signalled_run_names_the_signal(tmp_path):
    runner("train", *RUN, "hydra.run.dir=run", cwd=tmp_path, check=False, env=signal_at("step:3", "SIGTERM"))
    info = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert info["status"] == "interrupted" and "SIGTERM" in info["error"]


def test_the_data_loaders_workers_ignore_the_stop_signals(monkeypatch):
    # a scheduler signals every process of a job, workers included; a worker that died of it would fail the next
    # batch, so runner's loaders start their workers ignoring the stop signals (the training process answers them)
    import torch

    from runner.data import images

    class HandlerSeen(torch.utils.data.Dataset):  # each sample: 1 where the worker ignores that signal
        def __init__(self, samples, shape, resize=None):
            self.samples, self.shape = samples, shape

        def __len__(self):
            return len(self.samples)

        def __getitem__(self, i):
            seen = [signal.getsignal(s) == signal.SIG_IGN for s in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2)]
            return torch.tensor(seen, dtype=torch.uint8).reshape(self.shape), 0, ""

    from runner.data import stream

    monkeypatch.setattr(images, "ImageFiles", HandlerSeen)
    monkeypatch.setattr(stream, "ImageFiles", HandlerSeen)
    assert signal.getsignal(signal.SIGTERM) != signal.SIG_IGN  # this process does not: the workers' own setting
    x = images.decode_images([("a", 0)] * 8, (1, 1, 3), workers=2)  # a folder decoded into memory
    assert x.tolist() == [[[[1, 1, 1]]]] * 8
    split = stream.FileSplit([("a", 0)] * 8, (1, 1, 3), 2)  # a folder streamed from disk, batch by batch
    batches = stream.LoaderBatches(split, 4, lambda x: x, torch.device("cpu"))
    assert [x.tolist() for x, _ in batches] == [[[[[1, 1, 1]]]] * 4] * 2
