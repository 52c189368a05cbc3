"""Helpers shared by the tests: drive the real `runner` command in a subprocess."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

SITECUSTOM = Path(__file__).resolve().parent / "sitecustom"

# Small enough to train in a second or two on 2 CPU cores.
FAST = ["trainer.epochs=2", "model.channels=[8,16]"]


def runner(*args, cwd, check=True, env=None):
    """Run `python -m runner ARGS` in `cwd`; with `check`, fail the test with its output unless it exits 0."""
    full_env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "RUNNER_DATA")}
    full_env.update(env or {})
    # sitecustom/ disables the network and CIFAR-10's md5 check in the subprocess (see its docstring)
    full_env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SITECUSTOM), full_env.get("PYTHONPATH")]))
    proc = subprocess.run([sys.executable, "-m", "runner", *map(str, args)], cwd=cwd, env=full_env,
                          capture_output=True, text=True, timeout=600)
    if check and proc.returncode != 0:
        pytest.fail(f"runner {' '.join(map(str, args))} exited {proc.returncode}\n{proc.stdout}\n{proc.stderr}")
    return proc


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


@pytest.fixture(scope="session")
def digits_run(tmp_path_factory):
    """One default `runner train` (cnn on digits, 10 epochs), shared by the tests that only read it."""
    cwd = tmp_path_factory.mktemp("digits")
    proc = runner("train", cwd=cwd)
    (run_dir,) = run_dirs(cwd)
    return cwd, run_dir, proc
