"""runner's sweepers (runner/sweeps/grid.py): an Optuna search that survives failed trials and resumes, retries
and fail_fast, sweeps replayed verbatim by their resume, and job directories checked before any job runs."""

import csv
import shutil
from pathlib import Path

import pytest
import yaml
from conftest import SIGNAL_CNN, WITH_SIGNAL_MODEL, assert_clean_failure, digest, runner, same_run, signal_at, summary

from runner.run.records import overrides

CONFIGS = Path(__file__).resolve().parent.parent / "configs"


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def results(sweep):
    return yaml.safe_load((sweep / "optimization_results.yaml").read_text())


def test_a_trial_that_fails_is_told_to_optuna_and_the_search_goes_on(tmp_path):
    # hydra#2237: the first NaN ended hydra-optuna-sweeper's search with two tracebacks and no summary
    proc = runner(
        "train",
        "hparams_search=optuna_lr",
        "hydra.sweeper.n_trials=3",
        "optimizer.lr=choice(1e300)",
        "trainer.epochs=1",
        "hydra.sweep.dir=opt2",
        "hydra.sweeper.max_retries=1",  # a diverged run would diverge again: not retried
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, proc.stderr[-2000:]
    assert "retry" not in proc.stderr
    sweep = tmp_path / "opt2"
    rows = read_csv(sweep / "summary.csv")
    assert sorted(r["job"] for r in rows) == ["0", "1", "2"] and {r["status"] for r in rows} == {"diverged"}
    assert all("optimizer.lr=1e+300" in r["overrides"] for r in rows)
    assert results(sweep)["trials"] == {"0": "fail", "1": "fail", "2": "fail"} and results(sweep)["best_trial"] is None
    assert (sweep / "sweep.png").read_bytes().startswith(b"\x89PNG")
    assert "3 of 3 jobs did not complete: job 0 diverged, job 1 diverged, job 2 diverged" in proc.stdout

    # another search into its directory would mix their trials: refused before a byte is written
    before = digest(sweep)
    proc = runner(
        "train", "hparams_search=optuna_lr", "trainer.epochs=2", "hydra.sweep.dir=opt2", cwd=tmp_path, check=False
    )
    assert_clean_failure(proc, "hydra.sweep.dir=opt2 holds the sweep of", "their jobs would mix")
    assert digest(sweep) == before
    # a sweep is resumed with -m; without it, the command says so
    proc = runner("train", "resume=opt2", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "resume=opt2 is a sweep, not a run: resume it with runner train -m resume=opt2")
    assert digest(sweep) == before and sorted(p.name for p in tmp_path.iterdir()) == ["opt2"]


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ("hydra.sweeper.n_trials=0", "hydra.sweeper.n_trials=0: give the number of trials"),
        ("hydra.sweeper.max_retries=-1", "hydra.sweeper.max_retries=-1 is not a number of retries"),
        ("hydra.sweeper.direction=up", "hydra.sweeper.direction='up' is not a direction"),
        ("hydra.sweeper.pruner={_target_: optuna.pruners.Nope}", "hydra.sweeper.pruner could not be built"),
        ("hydra.sweeper.sampler._target_=optuna.samplers.Nope", "e.g. hydra.sweeper.sampler="),
        # a run without a validation split has no validation figure to optimise (its monitor is its epoch)
        ("dataset.val_fraction=0", "no validation figure for Optuna to optimise"),
    ],
)
def test_a_bad_sweeper_setting_is_refused_and_leaves_nothing(tmp_path, setting, message):
    proc = runner("train", "hparams_search=optuna_lr", setting, cwd=tmp_path, check=False)
    assert_clean_failure(proc, message)
    assert list(tmp_path.iterdir()) == []  # not even outputs/multirun/<date>/<time>


def test_a_job_refused_in_its_setup_is_not_retried_and_fail_fast_says_how_to_go_on(tmp_path):
    proc = runner(
        "train",
        "-m",
        "model=mlp",
        "trainer.epochs=1",
        "optimizer.lr=-1,0.01",
        "hydra.sweeper.max_retries=2",
        "hydra.sweeper.fail_fast=true",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1 and "retry" not in proc.stderr  # bad input fails the same way again
    assert "1 job not started. Fix the cause, then continue with: runner train -m resume=s" in proc.stderr
    assert "add hydra.sweeper.fail_fast=false to go on past a job that fails again" in proc.stderr
    assert not (tmp_path / "s" / "1").exists()
    runner("train", "-m", "resume=s", "hydra.sweeper.fail_fast=false", cwd=tmp_path, check=False)
    assert summary(tmp_path / "s" / "1")["status"] == "completed"  # the rest ran


@pytest.mark.slow  # three 6-trial searches of a small CNN
def test_an_optuna_search_with_failing_trials_resumes_after_sigint_to_the_uninterrupted_search(tmp_path):
    search = [*SIGNAL_CNN, "trainer.epochs=2", "hparams_search=optuna_lr", "hydra.sweeper.n_trials=6"]
    (tmp_path / "whole").mkdir()
    (tmp_path / "cut").mkdir()
    fails = {**signal_at("step:3"), "RUNNER_TEST_SIGNAL_JOBS": "1=RAISE,3=RAISE"}  # trials 1 and 3 fail
    proc = runner("train", *search, "hydra.sweep.dir=s", cwd=tmp_path / "whole", env=fails, check=False)
    assert proc.returncode == 1 and "2 of 6 jobs did not complete: job 1 failed, job 3 failed" in proc.stdout
    whole = tmp_path / "whole" / "s"
    assert results(whole)["trials"] == {
        "0": "complete",
        "1": "fail",
        "2": "complete",
        "3": "fail",
        "4": "complete",
        "5": "complete",
    }

    # the same search, stopped by SIGINT at trial 4's 3rd step (once: its resume is not stopped again)
    cut_env = {
        **signal_at("step:3", once=tmp_path / "once-{job}"),
        "RUNNER_TEST_SIGNAL_JOBS": "1=RAISE,3=RAISE,4=SIGINT",
    }
    proc = runner("train", *search, "hydra.sweep.dir=s", cwd=tmp_path / "cut", env=cut_env, check=False)
    cut = tmp_path / "cut" / "s"
    assert proc.returncode == 130 and "continue the sweep with: runner train -m resume=s" in proc.stderr
    assert summary(cut / "4")["status"] == "interrupted" and not (cut / "5").exists()
    kept = {n: digest(cut / str(n)) for n in range(4)}

    proc = runner("train", "-m", "resume=s", cwd=tmp_path / "cut", env=cut_env, check=False)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr  # trials 1 and 3 failed: named, non-zero
    assert "trial 4 was interrupted; it continues" in proc.stderr
    assert {n: digest(cut / str(n)) for n in range(4)} == kept  # finished trials: not a byte written
    assert summary(cut / "4").get("resumed") == 1  # from its last.pt, not afresh
    assert results(cut) == results(whole)  # the same trials asked, the same best
    asked = [overrides(cut / str(n)) for n in range(6)]
    assert len({" ".join(o) for o in asked}) == 6  # six different trials, not one seed's draw six times
    assert results(cut)["best_trial"] is not None
    for n in (0, 2, 4, 5):
        same_run(whole / str(n), cut / str(n))
    assert sorted(r["job"] for r in read_csv(cut / "summary.csv")) == [str(n) for n in range(6)]


@pytest.mark.slow
def test_a_pruner_stops_trials_by_their_epoch_metric_and_they_are_told_pruned(tmp_path):
    proc = runner(
        "train",
        *SIGNAL_CNN,
        "trainer.epochs=3",
        "hparams_search=optuna_lr",
        "hydra.sweeper.n_trials=3",
        "hydra.sweep.dir=s",
        "hydra.sweeper.storage=sqlite:///study.db",  # an RDB of the user's, opened again by each job to report
        "hydra/launcher=parallel",  # each trial in a joblib worker process: it reports through the storage
        # epoch 1's val_accuracy is above 0.5 for some of these trials' lr and below for others (sampler seed 0):
        # asserted below, as the test's precondition
        "hydra.sweeper.pruner={_target_: optuna.pruners.ThresholdPruner, lower: 0.5}",
        cwd=tmp_path,
        env=WITH_SIGNAL_MODEL,
    )
    sweep = tmp_path / "s"
    states = results(sweep)["trials"]
    assert set(states.values()) == {"complete", "pruned"}, states  # a precondition: the threshold splits them
    for n, state in states.items():
        s = summary(sweep / n)
        assert s["status"] == "completed"
        assert (s["stopped_by"] == "pruned") == (state == "pruned")
        assert (s["epochs"] < 3) == (state == "pruned")
    statuses = {r["job"]: r["status"] for r in read_csv(sweep / "summary.csv")}
    assert statuses == {n: "completed" if st == "complete" else "pruned" for n, st in states.items()}
    assert "pruned: the search's pruner stopped this trial after epoch 1" in proc.stdout
    assert (tmp_path / "study.db").is_file() and not (sweep / "optuna.journal").exists()

    # another search into the same storage and study name would take this one's trials: refused, nothing written
    before = digest(tmp_path)
    proc = runner(
        "train",
        "hparams_search=optuna_lr",
        "hydra.sweep.dir=other",
        "hydra.sweeper.storage=sqlite:///study.db",
        cwd=tmp_path,
        check=False,
    )
    assert_clean_failure(proc, "already holds a study named runner_lr", "Nothing was run")
    assert digest(tmp_path) == before and not (tmp_path / "other").exists()


@pytest.mark.slow
def test_a_failed_job_is_retried_from_its_last_pt_and_fail_fast_stops_the_sweep(tmp_path):
    sweep = ["-m", *SIGNAL_CNN, "trainer.epochs=2", "trainer.checkpoint_every_n_steps=5", "seed=0,1,2"]
    for d in ("whole", "retried", "fast"):
        (tmp_path / d).mkdir()
    runner("train", *sweep, "hydra.sweep.dir=s", cwd=tmp_path / "whole", env=WITH_SIGNAL_MODEL)
    # job 1 fails once at step 23 (last.pt at step 20), as a transient error would
    once = {**signal_at("step:23", once=tmp_path / "once-{job}"), "RUNNER_TEST_SIGNAL_JOBS": "1=RAISE"}
    proc = runner(
        "train", *sweep, "hydra.sweeper.max_retries=2", "hydra.sweep.dir=s", cwd=tmp_path / "retried", env=once
    )
    retried = tmp_path / "retried" / "s"
    assert (
        "sweep job 1 failed (injected failure (tests/signal_model.py)); retry 1 of 2, from its last.pt" in proc.stderr
    )
    assert summary(retried / "1")["resumed"] == 1 and summary(retried / "1")["status"] == "completed"
    for n in range(3):
        same_run(tmp_path / "whole" / "s" / str(n), retried / str(n))
    rows = {r["job"]: r for r in read_csv(retried / "summary.csv")}
    assert rows["1"]["retries"] == "1: injected failure (tests/signal_model.py) (retried from its last.pt)"
    assert rows["0"]["retries"] == rows["2"]["retries"] == ""
    assert "job 1 was retried after failed attempts" in proc.stdout

    always = {**signal_at("step:3"), "RUNNER_TEST_SIGNAL_JOBS": "1=RAISE"}
    proc = runner(
        "train",
        *sweep,
        "hydra.sweeper.fail_fast=true",
        "hydra.sweep.dir=s",
        cwd=tmp_path / "fast",
        env=always,
        check=False,
    )
    fast = tmp_path / "fast" / "s"
    assert proc.returncode == 1
    assert "hydra.sweeper.fail_fast: a job failed, so the sweep stops; 1 job not started" in proc.stderr
    assert (fast / "1").is_dir() and not (fast / "2").exists()
    assert "1 job not started (hydra.sweeper.fail_fast)" in proc.stdout


@pytest.mark.slow
@pytest.mark.parametrize(
    ("hydra_args", "dirs"),
    [
        (["hydra.sweep.subdir=job${hydra.job.num}"], ["job0", "job1"]),  # an interpolation
        (
            ["hydra.sweep.subdir=${hydra.job.override_dirname}"],
            [f"model=mlp,optimizer=my_sgd,seed={n},trainer.epochs=1" for n in (0, 1)],
        ),
        (["hydra.sweep.subdir='it\\'s ${hydra.job.num}'"], ["it's 0", "it's 1"]),  # quoting and an escape
        (["hydra/launcher=parallel", "hydra.launcher.n_jobs=1"], ["0", "1"]),  # a launcher and its settings
    ],
)
def test_a_sweep_resumes_with_its_overrides_verbatim(tmp_path, hydra_args, dirs):
    (tmp_path / "cfg" / "optimizer").mkdir(parents=True)  # a config source of the user's: --config-dir
    (tmp_path / "cfg" / "optimizer" / "my_sgd.yaml").write_text(
        "_target_: torch.optim.SGD\n_partial_: true\nlr: 0.05\n"
    )
    command = ["-m", "--config-dir", "cfg", "trainer.epochs=1", "model=mlp", "seed=0,1", "optimizer=my_sgd"]
    runner("train", *command, *hydra_args, "hydra.sweep.dir=f2", cwd=tmp_path)
    sweep = tmp_path / "f2"
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == dirs
    shutil.rmtree(sweep / dirs[1])  # as if the sweep had stopped before its second job
    before = digest(sweep)
    proc = runner("train", "-m", "resume=f2", cwd=tmp_path)
    assert "sweep job 0 (" in proc.stdout and "completed earlier, kept as it is" in proc.stdout
    after = digest(sweep)
    assert {p: h for p, h in after.items() if p.parts[0] == dirs[0]} == {
        p: h for p, h in before.items() if p.parts[0] == dirs[0]
    }  # found again, in its own directory, untouched
    assert sorted(p.name for p in sweep.iterdir() if p.is_dir()) == dirs  # the second job ran into its own name
    assert summary(sweep / dirs[1])["status"] == "completed"
    assert overrides(sweep / dirs[1]) == ["trainer.epochs=1", "model=mlp", "seed=1", "optimizer=my_sgd"]


def test_a_sweep_whose_job_directories_are_too_long_is_refused_before_any_job_runs(tmp_path):
    keys = [f"+k{i:02d}" for i in range(19)]  # ~19 overrides named into the subdir, as issue 22 found
    overrides = [f"{k}={'v' * 12}" for k in keys]
    proc = runner(
        "train",
        "-m",
        "trainer.epochs=1",
        "seed=0,1",
        *overrides,
        "hydra.sweep.subdir=${hydra.job.override_dirname}",
        "hydra.sweep.dir=long",
        cwd=tmp_path,
        check=False,
    )
    assert_clean_failure(proc, "sweep job 0", "255", "Nothing was run")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_hydra_sweep_syntax_becomes_optuna_distributions():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from runner.io.errors import RunnerError
    from runner.sweeps.search import distributions

    space, fixed = distributions(
        [
            "optimizer.lr=tag(log, interval(0.0001, 0.1))",
            "model.hidden=range(16, 80, 16)",  # Hydra's range leaves out its end: 16..64
            "trainer.batch_size=interval(32, 256)",  # Hydra's interval is continuous, even between integers
            "model=choice(mlp, cnn)",
            "optimizer.weight_decay=0",
            "'hydra.run.dir=\"a b\"'"[1:-1],
        ]
    )
    assert space == {
        "optimizer.lr": FloatDistribution(0.0001, 0.1, log=True),
        "model.hidden": IntDistribution(16, 64, step=16),
        "trainer.batch_size": FloatDistribution(32.0, 256.0),
        "model": CategoricalDistribution(["mlp", "cnn"]),
    }
    assert fixed == ["optimizer.weight_decay=0", 'hydra.run.dir="a b"']  # as given, quotes kept
    assert distributions(["seed=0,1,2"])[0] == {"seed": CategoricalDistribution([0, 1, 2])}  # as choice(0,1,2)
    with pytest.raises(RunnerError, match="Name the options with choice"):
        distributions(["model=glob(*)"])


@pytest.mark.slow
def test_a_trial_whose_config_does_not_compose_is_refused_and_the_search_goes_on(tmp_path):
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    proc = runner(
        "train",
        "hparams_search=optuna_lr",
        "hydra.sweeper.n_trials=4",
        "model=choice(mlp,nonexistent)",
        "trainer.epochs=1",
        "hydra.sweep.dir=s",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    storage = JournalStorage(JournalFileBackend(str(tmp_path / "s" / "optuna.journal")))
    trials = optuna.load_study(study_name="runner_lr", storage=storage).get_trials()
    assert len(trials) == 4 and {t.params["model"] for t in trials} == {"mlp", "nonexistent"}  # precondition
    for t in trials:
        refused = t.params["model"] == "nonexistent"
        assert (t.state.name == "FAIL") == refused
        assert (tmp_path / "s" / str(t.number)).exists() != refused  # a refused trial made no directory
        assert (f"trial {t.number} was refused: its config does not compose" in proc.stdout) == refused


def test_an_unset_direction_follows_the_monitor():
    from omegaconf import OmegaConf

    from runner.sweeps.search import OptunaSweeper

    def direction(**trainer):
        sweeper = OptunaSweeper(20, 1, None, "runner", None, None, None, {}, 0, False)
        sweeper.config = OmegaConf.create({"trainer": trainer, "dataset": {"task": "classification"}})
        return sweeper._direction()

    assert direction() == "maximize"  # val_accuracy
    assert direction(monitor="val_loss") == "minimize"
    assert direction(monitor="val_accuracy", monitor_mode="min") == "minimize"


def default_search_points(seed, n, told=None):
    """The points the default Optuna search (configs/hparams_search/optuna_lr.yaml's space, the sweeper's default
    TPESampler) asks in its first `n` trials with sampler.seed=`seed`, in-process as OptunaSweeper.sweep asks them;
    each trial told a value that peaks at lr 3e-3, so trials 10+ are TPE's, not its random start-up's. `told`: trials
    a resumed search already holds."""
    import math

    import optuna
    from omegaconf import OmegaConf

    from runner.sweeps.search import OptunaSweeper, distributions

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    params = yaml.safe_load((CONFIGS / "hparams_search" / "optuna_lr.yaml").read_text())["hydra"]["sweeper"]["params"]
    sampler = yaml.safe_load((CONFIGS / "hydra" / "sweeper" / "optuna.yaml").read_text())["sampler"]
    assert sampler["_target_"] == "optuna.samplers.TPESampler"  # the default this test is about
    sweeper = OptunaSweeper(n, 1, None, "runner", None, OmegaConf.create({**sampler, "seed": seed}), None, params, 0, 0)
    space, _ = distributions([f"{k}={v}" for k, v in params.items()])
    study = optuna.create_study(direction="maximize")
    study.add_trials(told or [])
    while len(study.trials) < n:
        study.sampler = sweeper._sampler(len(study.trials))
        trial = study.ask(space)
        study.tell(trial, -abs(math.log10(trial.params["optimizer.lr"] / 3e-3)))
    return study.trials


def test_the_default_searchs_first_20_trials_do_not_repeat_each_other_and_a_seed_asks_the_same_points():
    # seeded with seed + number, trial 3 drew almost trial 0's point (lr 0.00443 vs 0.00449, weight decay 7.15e-4
    # vs 7.08e-4): now no two of 20 trials are within 5 % of each other on every parameter
    trials = default_search_points(0, 20)
    points = [t.params for t in trials]
    assert set(points[0]) == {"optimizer.lr", "optimizer.weight_decay"}

    def close(a, b):
        return all(abs(a[k] - b[k]) <= 0.05 * max(abs(a[k]), abs(b[k])) for k in a)

    pairs = [(i, j) for i in range(20) for j in range(i + 1, 20) if close(points[i], points[j])]
    assert pairs == []
    # the same seed asks the same points; a search resumed after 7 trials asks what the whole one asked
    assert [t.params for t in default_search_points(0, 20)] == points
    assert [t.params for t in default_search_points(0, 20, told=trials[:7])] == points
    assert [t.params for t in default_search_points(1, 3)] != points[:3]  # the seed matters


def test_a_negative_sampler_seed_is_refused_in_runners_words():
    from runner.io.errors import RunnerError
    from runner.sweeps.search import trial_seed

    # seed + number made trial 3 of seed 0 trial 0 of seed 3
    assert len({trial_seed(0, 3), trial_seed(3, 0), trial_seed(0, 0)}) == 3
    with pytest.raises(RunnerError, match=r"hydra.sweeper.sampler.seed=-1: give an integer >= 0"):
        trial_seed(-1, 0)


def test_a_nan_or_infinite_best_is_never_a_sweeps_best_job_nor_a_trials_value():
    # a summary.json written before NaN was refused may hold NaN or Infinity (read back by Python's json)
    from optuna.trial import TrialState

    from runner.commands.report import sort_rows, to_markdown
    from runner.sweeps.search import objective

    def row(name, best):
        return {"job": name, "overrides": "", "status": "completed", "monitor": "val_accuracy", "mode": "max",
                "best": best, "best_epoch": 1, "final_val_loss": 0.5, "test": None, "test_metric": "test_accuracy",
                "epochs": 1, "time_s": 1.0, "error": "", "retries": "", "run_dir": name}  # fmt: skip

    ranked = sort_rows([row("inf", float("inf")), row("nan", float("nan")), row("ok", 0.9), row("low", 0.5)])
    assert [r["job"] for r in ranked][:2] == ["ok", "low"]  # an infinite accuracy ranked first before
    assert to_markdown(ranked).splitlines()[2].startswith("| **ok** (best) |")
    assert to_markdown(sort_rows([row("nan", float("nan"))])).count("(best)") == 0  # nothing valid: no best
    for value in (float("nan"), float("inf"), float("-inf")):
        done = {"status": "completed", "monitor": "val_loss", "best": {"val_loss": value}}
        assert objective(done) == (None, TrialState.FAIL)
    assert objective({"status": "completed", "monitor": "val_loss", "best": {"val_loss": 0.3}}) == (
        0.3,
        TrialState.COMPLETE,
    )
