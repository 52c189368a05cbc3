"""Provenance in summary.json, and `runner diff` between two runs (config, metrics, environment)."""

import json
import os
import subprocess

import pytest
import torch
from conftest import FAST, assert_clean_failure, runner, summary


def git(*args, cwd):
    identity = {
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
        "GIT_COMMITTER_EMAIL": "t@t",
    }
    subprocess.run(["git", *args], cwd=cwd, check=True, capture_output=True, env={**os.environ, **identity})


@pytest.mark.slow  # two trainings and five commands; test_loggers.py and the sweep tests read runs in the default suite
def test_runs_record_their_environment_and_git_state_and_diff_shows_what_differs(tmp_path):
    # a project under git: the first run from a clean tree, the second after an uncommitted edit
    (tmp_path / "train_notes.txt").write_text("v1\n")
    git("init", "-q", cwd=tmp_path)
    git("add", "train_notes.txt", cwd=tmp_path)
    git("commit", "-q", "-m", "first", cwd=tmp_path)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=tmp_path, capture_output=True, text=True).stdout.strip()
    runner("train", *FAST, "hydra.run.dir=a", cwd=tmp_path)
    (tmp_path / "train_notes.txt").write_text("v2\n")
    runner("train", *FAST, "optimizer.lr=0.01", "model.channels=[8,8]", "hydra.run.dir=b", cwd=tmp_path)

    env_a, env_b = summary(tmp_path / "a")["environment"], summary(tmp_path / "b")["environment"]
    assert env_a["torch"] == torch.__version__ and env_a["threads"] >= 1 and env_a["python"].count(".") == 2
    assert env_a["git"] == {"commit": commit, "dirty": False} and env_b["git"] == {"commit": commit, "dirty": True}
    assert "train" in summary(tmp_path / "a")["command"]

    out = json.loads(runner("diff", "a", "b", "--format", "json", cwd=tmp_path).stdout)
    config = {row["key"]: (row["a"], row["b"]) for row in out["config"]}
    assert config == {
        "optimizer.lr": (0.001, 0.01),
        "model.channels": ([8, 16], [8, 8]),
    }  # resolved; nothing else differs
    metrics = {row["metric"]: row for row in out["metrics"]}
    sa, sb = summary(tmp_path / "a"), summary(tmp_path / "b")
    assert (
        metrics["test_accuracy"]["a"] == sa["test"]["test_accuracy"]
        and metrics["test_accuracy"]["b"] == sb["test"]["test_accuracy"]
    )
    assert metrics["params"]["b_minus_a"] == sb["params"] - sa["params"] < 0  # a narrower second stage
    assert {row["key"] for row in out["environment"]} == {"git.dirty"}  # same machine, same versions, same commit

    table = runner("diff", "a", "b", cwd=tmp_path).stdout
    assert "optimizer.lr" in table and "git.dirty" in table and "test_accuracy" in table
    markdown = runner("diff", "a", "b", "--format", "markdown", cwd=tmp_path).stdout
    assert "| optimizer.lr | 0.001 | 0.01 |" in markdown and "### Environment" in markdown

    # two runs of the same config differ in no setting
    same = json.loads(runner("diff", "a", "a", "--format", "json", cwd=tmp_path).stdout)
    assert (
        same["config"] == [] and same["environment"] == [] and all(r["b_minus_a"] in (0, None) for r in same["metrics"])
    )


def test_diff_of_something_that_is_not_a_run_says_so(tmp_path):
    (tmp_path / "empty").mkdir()
    proc = runner("diff", "empty", "nowhere", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "runner diff: empty is not a training run directory")
    assert proc.returncode == 2


def test_diff_shows_a_dead_running_run_as_interrupted_and_a_live_one_as_running(tmp_path):
    # a run whose end could not be recorded (a full disk) stays `running` in summary.json; only its lock says whether
    # a process still owns it, as every other reader (report, resume, eval) decides
    import fcntl

    from runner.commands.diff import compare

    for name in ("dead", "live"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "summary.json").write_text(json.dumps({"status": "running", "epochs": 1}))
        (tmp_path / name / ".lock").touch()
    with open(tmp_path / "live" / ".lock") as held:
        fcntl.flock(held, fcntl.LOCK_EX)
        rows = {row["metric"]: row for row in compare(tmp_path / "dead", tmp_path / "live")["metrics"]}
    assert (rows["status"]["a"], rows["status"]["b"]) == ("interrupted", "running")


def test_diff_as_json_holds_null_for_a_nan_an_older_summary_held(tmp_path, capsys):
    # summary.json written before runner wrote null for NaN held a bare NaN, which Python reads back; the JSON diff
    # must still be one a strict reader (jq, JSON.parse) accepts
    from runner.commands.diff import main

    for name, loss in (("a", "NaN"), ("b", "0.5")):
        (tmp_path / name).mkdir()
        record = '{"kind": "train", "status": "completed", "best": {"val_loss": LOSS}}'
        (tmp_path / name / "summary.json").write_text(record.replace("LOSS", loss))
    assert main([str(tmp_path / "a"), str(tmp_path / "b"), "--format", "json"]) in (None, 0)

    def refuse(constant):
        raise ValueError(f"a bare {constant} in the JSON")

    rows = {row["metric"]: row for row in json.loads(capsys.readouterr().out, parse_constant=refuse)["metrics"]}
    assert (rows["best val_loss"]["a"], rows["best val_loss"]["b"]) == (None, 0.5)
