"""Sweeps end to end: summaries, runner report, launchers, Optuna, and torchrun with DDP."""

import csv
import os
import subprocess
import sys

import pytest
from conftest import (
    SIGNAL_CNN,
    SITECUSTOM,
    WITH_SIGNAL_MODEL,
    assert_clean_failure,
    digest,
    free_port,
    load,
    run_dirs,
    runner,
    same_run,
    signal_at,
    summary,
)

QUICK = ["trainer.epochs=2", "model.channels=[8,16]"]


def sweep_dir(cwd):
    (d,) = cwd.glob("outputs/multirun/*/*")
    return d


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_sweep_summary_ranks_jobs_and_a_failed_job_does_not_stop_the_others(tmp_path):
    proc = runner("train", "-m", "optimizer.lr=0.003,-1,0.0001", *QUICK, cwd=tmp_path, check=False)
    assert proc.returncode != 0  # after every job has run
    d = sweep_dir(tmp_path)
    rows = read_csv(d / "summary.csv")
    assert [r["job"] for r in rows] == ["0", "2", "1"]  # completed best first (lr 0.003 beats 0.0001), failed last
    assert [r["status"] for r in rows] == ["completed", "completed", "failed"]
    assert float(rows[0]["best"]) > float(rows[1]["best"])
    assert "optimizer.lr must be a number > 0" in rows[2]["error"] and rows[2]["overrides"].startswith(
        "optimizer.lr=-1"
    )
    assert (d / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert "1 of 3 jobs did not complete" in proc.stdout and "job 1 failed" in proc.stdout

    # runner report rebuilds the same for the old sweep, in every format
    csv_out = runner("report", str(d), "--format", "csv", cwd=tmp_path).stdout
    assert [r["job"] for r in csv.DictReader(csv_out.splitlines())] == ["0", "2", "1"]
    md = runner("report", str(d), "--format", "markdown", cwd=tmp_path).stdout
    assert md.splitlines()[2].startswith("| **0** (best) | optimizer.lr=0.003")
    by_time = runner("report", f"{d}/*", "--format", "csv", "--sort", "time_s", cwd=tmp_path).stdout
    times = [float(r["time_s"]) for r in csv.DictReader(by_time.splitlines()) if r["status"] == "completed"]
    assert times == sorted(times)


@pytest.mark.slow
def test_report_compares_runs_started_separately(tmp_path):
    for lr in ("0.003", "0.0003"):
        runner("train", *QUICK, f"optimizer.lr={lr}", cwd=tmp_path)
    out = runner("report", "outputs/*/*", "--format", "csv", "--out", "cmp", cwd=tmp_path).stdout
    rows = list(csv.DictReader(out.splitlines()))
    assert len(rows) == 2 and rows[0]["overrides"].endswith("optimizer.lr=0.003")
    assert (tmp_path / "cmp" / "summary.csv").is_file() and (tmp_path / "cmp" / "sweep.png").is_file()
    proc = runner("report", "nowhere", cwd=tmp_path, check=False)
    assert proc.returncode == 2 and "runner report: nowhere does not exist" in proc.stderr


def test_a_sweep_job_whose_config_does_not_compose_is_listed_failed_and_the_sweep_exits_non_zero(tmp_path):
    proc = runner("train", "-m", "trainer.epochs=1", "+trainer.epoch=1,2", cwd=tmp_path, check=False)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    rows = read_csv(sweep_dir(tmp_path) / "summary.csv")
    assert [r["status"] for r in rows] == ["failed", "failed"]
    assert all(r["error"].startswith("trainer.epoch is not a key runner reads") for r in rows)
    assert [r["overrides"] for r in rows] == ["trainer.epochs=1 +trainer.epoch=1", "trainer.epochs=1 +trainer.epoch=2"]
    assert not list(tmp_path.glob("outputs/multirun/*/*/*/checkpoints"))


def test_report_ranks_only_comparable_runs_and_shows_why_a_build_failed(tmp_path, digits_run):
    _, digits, _ = digits_run
    runner("train", "dataset=sum_pairs", "model=mlp", "trainer.epochs=1", cwd=tmp_path)
    failed = runner("train", "model=mlp", "model.hidden=[-1]", cwd=tmp_path, check=False)  # nn.Linear(64, -1) raises
    assert failed.returncode != 0
    out = runner("report", str(digits), "outputs/*/*", "--format", "csv", cwd=tmp_path).stdout
    rows = list(csv.DictReader(out.splitlines()))
    # the failed run monitored nothing yet: its config's task puts it with the classification runs,
    # after the completed one
    assert [(r["monitor"], r["status"]) for r in rows] == [
        ("val_accuracy", "completed"),
        ("val_accuracy", "failed"),
        ("val_mae", "completed"),
    ]
    assert rows[1]["error"].startswith("RuntimeError: Trying to create tensor with negative dimension -1")
    assert "InstantiationException" in rows[1]["error"]  # where it came from, after the cause
    table = " ".join(runner("report", str(digits), "outputs/*/*", cwd=tmp_path).stdout.split())
    # a section per dataset, each ranked among its own runs; the failed run apart, after them
    assert table.count("1 run, ranked among themselves") == 2 and "sum_pairs (regression)" in table
    assert table.index("1 failed or refused (not ranked)") > table.index("sum_pairs (regression)")


@pytest.mark.slow
def test_parallel_launcher_shares_the_cores(tmp_path):
    runner("train", "-m", "hydra/launcher=parallel", "optimizer.lr=0.003,0.001", *QUICK, cwd=tmp_path)
    jobs = sorted(p.parent for p in sweep_dir(tmp_path).glob("*/summary.json"))
    assert len(jobs) == 2 and all(summary(j)["status"] == "completed" for j in jobs)
    cores = os.cpu_count()
    for job in jobs:
        assert load(job / "checkpoints" / "last.pt")["config"]["trainer"]["num_threads"] == max(
            1, cores // min(2, cores)
        )


@pytest.mark.slow
def test_submitit_local_launcher_runs_the_slurm_presets_twin(tmp_path):
    runner("train", "-m", "hydra/launcher=local", "optimizer.lr=0.003,0.001", *QUICK, cwd=tmp_path)
    rows = read_csv(sweep_dir(tmp_path) / "summary.csv")
    assert [r["status"] for r in rows] == ["completed", "completed"]


@pytest.mark.slow
def test_optuna_search_optimises_the_monitored_metric(tmp_path):
    runner("train", "hparams_search=optuna_lr", "hydra.sweeper.n_trials=3", *QUICK, cwd=tmp_path)
    d = sweep_dir(tmp_path)
    rows = read_csv(d / "summary.csv")
    assert len(rows) == 3 and all(r["status"] == "completed" for r in rows)
    best = (d / "optimization_results.yaml").read_text()
    assert f"best_value: {float(rows[0]['best'])}" in best


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "first", "later"),
    [
        (["model=mlp", "model.dropout=0", "trainer.epochs=3", "trainer.batch_size=64"], 1e-5, 1e-5),
        # the default cnn has BatchNorm: without global statistics epoch 1's train loss is 6e-3 off, epoch 2's 1.4e-2.
        # With them, one step's gradients match to float rounding (test_distributed.py); Adam then amplifies the
        # rounding of the gradient average in near-zero components, so later epochs drift by ~1e-5 in the train loss.
        (
            ["model.dropout=0", "trainer.epochs=2", "trainer.batch_size=128", "dataset.augment.crop_padding=1"],
            2e-5,
            2e-3,
        ),
    ],
    ids=["mlp", "cnn-batchnorm-augmented"],
)
def test_torchrun_two_processes_match_one_process(tmp_path, args, first, later):
    env = {**{k: v for k, v in os.environ.items() if k != "RUNNER_DATA"}, "PYTHONPATH": str(SITECUSTOM)}
    torchrun = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node=2",
        f"--master_port={free_port()}",
        "-m",
        "runner",
        "train",
    ]
    proc = subprocess.run([*torchrun, *args], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    (ddp,) = run_dirs(tmp_path)  # one run directory for the whole job
    info = summary(ddp)
    assert info["processes"] == 2 and info["ranks_in_sync"] is True
    assert proc.stdout.count("run directory:") == 1 and proc.stdout.count("epoch   1/") == 1  # only rank 0 prints

    runner("train", *args, cwd=tmp_path)
    single = next(d for d in run_dirs(tmp_path) if d != ddp)
    curves = [
        [[float(v) for v in line.split(",")[1:4]] for line in (d / "metrics.csv").read_text().splitlines()[1:]]
        for d in (ddp, single)
    ]
    assert curves[0][0][0] == pytest.approx(curves[1][0][0], abs=first)  # epoch 1's train loss
    for a, b in zip(*curves):
        assert a[:2] == pytest.approx(b[:2], abs=later)  # train_loss, val_loss
        # val_accuracy moves by whole samples of the 144: at epoch 2 the cnn is at 56 % with many borderline samples,
        # and with val_loss 1.2e-3 apart 2 of them flipped (2026-11-30, after digits moved to 0..255). Up to 3 may.
        assert a[2] == pytest.approx(b[2], abs=3 / 144 + 1e-9)
    # the test split (359) likewise: best.pt's weights are as close as the curves, 2 samples flipped on 2026-11-30
    assert abs(info["test"]["test_accuracy"] - summary(single)["test"]["test_accuracy"]) <= 3 / 359 + 1e-9


@pytest.mark.slow  # six trainings
def test_repeats_over_seeds_are_grouped_with_the_mean_and_std_of_their_own_summaries(tmp_path):
    import statistics

    proc = runner("train", "-m", *QUICK, "seed=0,1,2", "optimizer.lr=0.001,0.01", cwd=tmp_path)
    d = sweep_dir(tmp_path)
    assert "settings x seeds: mean ± sample std" in proc.stdout
    groups = {row["group"]: row for row in read_csv(d / "groups.csv")}
    assert set(groups) == {"optimizer.lr=0.001", "optimizer.lr=0.01"}
    jobs = [(p.parent, summary(p.parent)) for p in d.glob("*/summary.json")]
    assert len(jobs) == 6
    for lr in ("0.001", "0.01"):
        mine = [s for job, s in jobs if f"optimizer.lr={lr}" in (job / ".hydra" / "overrides.yaml").read_text()]
        best = [s["best"]["val_accuracy"] for s in mine]
        test = [s["test"]["test_accuracy"] for s in mine]
        assert len(set(best + test)) > 1  # the seeds really gave different results: the std is not 0 by construction
        row = groups[f"optimizer.lr={lr}"]
        assert (int(row["n"]), row["seeds"]) == (3, "0 1 2")
        assert float(row["best_mean"]) == pytest.approx(statistics.mean(best), abs=1e-12)
        assert float(row["best_std"]) == pytest.approx(statistics.stdev(best), abs=1e-12)
        assert float(row["test_mean"]) == pytest.approx(statistics.mean(test), abs=1e-12)
        assert float(row["test_std"]) == pytest.approx(statistics.stdev(test), abs=1e-12)
    means = [float(groups[g]["best_mean"]) for g in groups]
    assert list(groups) == [g for _, g in sorted(zip(means, groups), reverse=True)]  # best group first

    # runner report groups the same way, lists jobs with --no-group, and groups by chosen keys with --group-by
    grouped = read_csv_text(
        runner("report", str(d), "--format", "csv", "--out", str(tmp_path / "r"), cwd=tmp_path).stdout
    )
    assert [(r["group"], r["best_mean"]) for r in grouped] == [(g, groups[g]["best_mean"]) for g in groups]
    assert (
        len(
            read_csv_text(
                runner(
                    "report", str(d), "--format", "csv", "--no-group", "--out", str(tmp_path / "r"), cwd=tmp_path
                ).stdout
            )
        )
        == 6
    )
    by_seed = read_csv_text(
        runner(
            "report", str(d), "--format", "csv", "--group-by", "seed", "--out", str(tmp_path / "r"), cwd=tmp_path
        ).stdout
    )
    assert sorted((r["group"], r["n"]) for r in by_seed) == [("seed=0", "2"), ("seed=1", "2"), ("seed=2", "2")]


def read_csv_text(text):
    return list(csv.DictReader(text.splitlines()))


@pytest.mark.slow  # three 4-job sweeps of a small CNN
def test_a_sweep_killed_during_job_3_resumes_to_the_uninterrupted_sweep(tmp_path):
    sweep = ["-m", *SIGNAL_CNN, "optimizer.lr=0.003,0.001", "seed=0,1"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()
    runner("train", *sweep, cwd=tmp_path / "whole", env=WITH_SIGNAL_MODEL)
    # job 2 (num 1) fails at its 35th step (after last.pt at step 20); job 3 (num 2) is killed -9 with the
    # whole sweep there
    env = {**signal_at("step:35"), "RUNNER_TEST_SIGNAL_JOBS": "1=RAISE,2=SIGKILL"}
    proc = runner("train", *sweep, cwd=tmp_path / "cut", env=env, check=False)
    assert proc.returncode == -9
    cut = sweep_dir(tmp_path / "cut")
    assert [summary(cut / str(n))["status"] for n in range(3)] == [
        "completed",
        "failed",
        "running",
    ]  # running: its process died
    assert not (cut / "3").exists() and all((cut / str(n) / "checkpoints" / "last.pt").is_file() for n in (1, 2))
    job0 = digest(cut / "0")

    # extra overrides would change the jobs already run: refused, nothing changed
    before = digest(cut)
    proc = runner(
        "train",
        "-m",
        f"resume={cut}",
        "--config-dir",
        SIGNAL_CNN[1],
        "trainer.epochs=5",
        cwd=tmp_path / "cut",
        env=WITH_SIGNAL_MODEL,
        check=False,
    )
    assert_clean_failure(proc, "'trainer.epochs=5' cannot be added")
    assert digest(cut) == before

    # the same directory given to another sweep: refused before Hydra rewrites its multirun.yaml
    proc = runner(
        "train",
        "-m",
        *SIGNAL_CNN,
        "optimizer.lr=0.1",
        "seed=0,1,2",
        f"hydra.sweep.dir={cut}",
        cwd=tmp_path / "cut",
        env=WITH_SIGNAL_MODEL,
        check=False,
    )
    assert_clean_failure(
        proc, "holds the sweep of model=signal_cnn trainer.epochs=4 trainer.num_threads=1 optimizer.lr=0.003,0.001"
    )
    assert digest(cut) == before

    proc = runner(
        "train", "-m", f"resume={cut}", "--config-dir", SIGNAL_CNN[1], cwd=tmp_path / "cut", env=WITH_SIGNAL_MODEL
    )
    assert (
        "sweep job 0 (model=signal_cnn trainer.epochs=4 trainer.num_threads=1 optimizer.lr=0.003 seed=0): completed "
        "earlier, kept" in proc.stdout
    )
    assert digest(cut / "0") == job0  # kept: not a byte written
    assert [summary(cut / str(n)).get("resumed", 0) for n in range(4)] == [
        0,
        1,
        1,
        0,
    ]  # failed and killed: continued from last.pt
    whole = sweep_dir(tmp_path / "whole")
    for n in range(4):
        assert summary(cut / str(n))["status"] == "completed"
        same_run(whole / str(n), cut / str(n))  # metrics.csv (time aside), best.pt bytes, last.pt weights
    rows = read_csv(cut / "summary.csv")
    assert sorted(r["job"] for r in rows) == ["0", "1", "2", "3"] and {r["status"] for r in rows} == {"completed"}


def test_report_ranks_tied_runs_by_their_validation_loss_whatever_order_it_found_them_in():
    from runner.commands.report import sort_rows

    def row(name, best, loss, error=""):
        return {"monitor": "val_accuracy", "mode": "max", "status": "completed", "best": best, "final_val_loss": loss,
                "run_dir": name, "error": error, "test_metric": "test_accuracy"}  # fmt: skip

    rows = [row("a", 0.99, 0.27), row("b", 0.99, 0.07), row("c", 0.98, 0.01)]
    for order in (rows, rows[::-1], [rows[1], rows[2], rows[0]]):
        assert [r["run_dir"] for r in sort_rows(order)] == ["b", "a", "c"]


def test_report_prints_an_error_with_brackets_as_written():
    from rich.console import Console

    from runner.commands.report import to_table

    failed = {"job": "0", "overrides": "", "status": "failed", "monitor": "val_accuracy", "best": None,
              "best_epoch": None, "test": None, "time_s": None, "test_metric": "test_accuracy", "run_dir": "x",
              "error": "trainer.profile_steps must be [wait, warmup, active]: optimizer steps"}  # fmt: skip
    console = Console(width=300, record=True)
    console.print(to_table([failed], "runs"))
    assert "must be [wait, warmup, active]" in console.export_text()
