"""runner's two Hydra sweepers: the grid (`hydra/sweeper=runner`, every `-m` sweep's default) and an Optuna
search (`hydra/sweeper=optuna`, chosen by `hparams_search=optuna_lr`). Hydra instantiates them through the thin
classes in hydra_plugins/runner_sweepers (it loads sweepers only from there); the work is here.

Both launch their jobs through the configured launcher (basic, joblib, submitit) and share what happens around a
job (JobRunner): every job's directory is checked before the first job starts (a name too long for the file system
is refused then, not after half the sweep ran); a job that fails is retried up to `max_retries` times, resuming
from its own last.pt (runner/commands/sweep.py sweep_job); `fail_fast` stops the sweep at the first job that
failed for good. Retries are recorded in the sweep's attempts.json, which `runner report` reads back.

The Optuna search drives Optuna's ask-and-tell API (Optuna >= 4): each trial is one job, numbered as the trial,
in the sweep's directory. The study lives in that directory (optuna.journal, Optuna's JournalStorage), so
`runner train -m resume=SWEEP` continues a search from the trials it has: finished trials are kept as they are,
an interrupted trial is run again with its own parameters and resumes from its last.pt, and new trials are asked
until there are n_trials. A trial whose job fails, diverges or ends without a monitored metric is told to Optuna
as FAIL, and the search goes on. Each trial's sampler is seeded with sampler.seed + the trial's number, so a
search resumed after an interruption asks the same parameters as one that ran through.
"""

import json
import os
import sys
from pathlib import Path

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf, open_dict

from runner.io.errors import RunnerError
from runner.run.records import ATTEMPTS

JOURNAL = "optuna.journal"  # the Optuna study of a search, in its sweep directory


def outcome(job_return):
    """A launched job's result as a summary: what _task returned (the run's summary.json), or for a job whose task
    raised (Hydra's FAILED), {"status": "failed", "error": ...}."""
    if job_return.status == JobStatus.FAILED:
        err = job_return._return_value  # return_value would re-raise it
        return {"status": "failed", "error": str(err) or type(err).__name__}
    value = job_return.return_value
    return value if isinstance(value, dict) else {"status": "failed", "error": f"the job returned {value!r}"}


def failed(summary):
    return summary.get("status") == "failed"


class JobRunner:
    """What both sweepers do around the launcher: check every job's directory, retry failed jobs, stop early."""

    def __init__(self, max_retries=0, fail_fast=False):
        self.max_retries, self.fail_fast = max_retries, fail_fast
        self.job_dirs = {}  # job number: its directory, once check_dirs composed it

    def setup_launcher(self, *, hydra_context, task_function, config):
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def check(self):
        """The sweeper's own keys, checked when the sweep starts (a RunnerError raised while Hydra builds the
        sweeper would reach the user wrapped in Hydra's words)."""
        retries = self.max_retries
        if not isinstance(retries, int) or isinstance(retries, bool) or retries < 0:
            raise RunnerError(
                f"hydra.sweeper.max_retries={retries!r} is not a number of retries: give 0 (the default: a failed "
                f"job stays failed) or more, e.g. hydra.sweeper.max_retries=2."
            )
        if not isinstance(self.fail_fast, bool):
            raise RunnerError(f"hydra.sweeper.fail_fast={self.fail_fast!r}: give true or false.")

    def job_dir(self, overrides, num):
        """The directory Hydra will give job `num` (hydra.sweep.dir/hydra.sweep.subdir, resolved as the launcher
        resolves it). Composing the job's config also raises any composition error before a job starts."""
        cfg = self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))
        with open_dict(cfg):
            cfg.hydra.job.id = num
            cfg.hydra.job.num = num
        before = HydraConfig.instance().cfg
        HydraConfig.instance().set_config(cfg)
        try:
            sub = OmegaConf.select(cfg, "hydra.sweep.subdir")
            return Path(str(OmegaConf.select(cfg, "hydra.sweep.dir")), str(sub) if sub is not None else "")
        finally:
            HydraConfig.instance().cfg = before

    def check_dirs(self, jobs):
        """Refuse the sweep before anything is written when a job's directory could not be created.
        `jobs`: [(num, overrides)]."""
        from runner.io.files import unwritable_dir

        for num, overrides in jobs:
            self.job_dirs[num] = self.job_dir(overrides, num)
            problem = unwritable_dir(self.job_dirs[num])
            if problem:
                raise RunnerError(
                    f"sweep job {num} ({' '.join(overrides)}) could not be written: {problem} Give the jobs shorter "
                    f"directories, e.g. 'hydra.sweep.subdir=job${{hydra.job.num}}'. Nothing was run."
                )

    def batch_size(self):
        """Jobs per launch: all at once, unless fail_fast must look at each result before starting more; then as
        many as the launcher runs side by side (joblib's n_jobs, submitit's array_parallelism), or one."""
        if not self.fail_fast:
            return None
        launcher = self.config.hydra.get("launcher") or {}
        n = launcher.get("n_jobs") or launcher.get("array_parallelism") or 1
        return max(1, int(n)) if n > 0 else (os.cpu_count() or 1)

    def launch(self, jobs):
        """Run `jobs` ([(num, overrides)], consecutive numbers) and retry each failed one up to max_retries times
        in its own directory; returns their summaries in order."""
        first = jobs[0][0]
        assert [num for num, _ in jobs] == list(range(first, first + len(jobs))), "consecutive job numbers"
        results = [outcome(r) for r in self.launcher.launch([list(o) for _, o in jobs], initial_job_idx=first)]
        for i, (num, overrides) in enumerate(jobs):
            for attempt in range(1, self.max_retries + 1):
                if not failed(results[i]):
                    break
                start = "its last.pt" if (self.job_path(num) / "checkpoints" / "last.pt").is_file() else "the start"
                self.record_attempt(num, results[i].get("error", ""), start)
                print(
                    f"sweep job {num} failed ({_short(results[i].get('error'))}); retry {attempt} of "
                    f"{self.max_retries}, from {start}",
                    file=sys.stderr,
                    flush=True,
                )
                results[i] = outcome(self.launcher.launch([list(overrides)], initial_job_idx=num)[0])
        return results

    def job_path(self, num):
        return self.job_dirs.get(num, self.sweep_dir / str(num))

    def record_attempt(self, num, error, start):
        """attempts.json gets one entry per failed attempt that was retried (written atomically: a sweep stopped
        while writing it keeps the previous one)."""
        from runner.io.files import write_json

        path = self.sweep_dir / ATTEMPTS
        try:
            attempts = json.loads(path.read_text())
        except (OSError, ValueError):
            attempts = {}
        attempts.setdefault(str(num), []).append({"error": " ".join(str(error).split())[:300], "from": start})
        write_json(path, attempts)

    def stop_early(self, results, left):
        """fail_fast: after a batch with a job that failed for good, the jobs `left` are not started."""
        if not self.fail_fast or not any(failed(r) for r in results) or not left:
            return False
        from runner.commands.sweep import SweepSummary

        SweepSummary.not_started = left
        print(
            f"hydra.sweeper.fail_fast: a job failed, so the sweep stops; {left} job{'s' * (left != 1)} not started. "
            f"Fix the cause, then continue the sweep with its resume (the failed job continues from its last.pt).",
            file=sys.stderr,
            flush=True,
        )
        return True


def told(sweep):
    """A sweeper's sweep(), with a RunnerError told as runner tells bad input (one paragraph, exit 1) instead of
    Hydra's traceback."""

    def wrapped(self, arguments):
        try:
            return sweep(self, arguments)
        except RunnerError as err:
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(err.exit_code) from None

    return wrapped


def _short(error):
    text = " ".join(str(error or "").split())
    return text if len(text) <= 120 else text[:117] + "..."


class GridSweeper(Sweeper):
    """Hydra's basic sweep (the cartesian product of `a=1,2 b=x,y`, split by Hydra's own BasicSweeper, so job
    numbers and directories are Hydra's), with runner's checks, retries and fail_fast (JobRunner)."""

    def __init__(self, max_batch_size=None, params=None, max_retries=0, fail_fast=False):
        self.max_batch_size, self.params = max_batch_size, params or {}
        self.jobs = JobRunner(max_retries=max_retries, fail_fast=fail_fast)

    def setup(self, *, hydra_context, task_function, config):
        self.hydra_context, self.config = hydra_context, config
        self.jobs.setup_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    @told
    def sweep(self, arguments):
        self.jobs.check()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        jobs = list(enumerate(job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch))
        self.jobs.check_dirs(jobs)  # composes each job's config: a bad one is refused before any job runs
        sweep_dir = self.jobs.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        size = self.max_batch_size or self.jobs.batch_size() or len(jobs)
        results = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            results += self.jobs.launch(batch)
            if self.jobs.stop_early(results, len(jobs) - start - len(batch)):
                break
        return results


# --- Optuna -------------------------------------------------------------------------------------------------------


def distributions(overrides):
    """Hydra's sweep syntax as Optuna distributions, the vocabulary hydra-optuna-sweeper users know:
    `choice(a, b)` (or `a,b`) categorical; `range(1, 10, 2)` integers 1..9 by 2 (Hydra's range excludes its end);
    `interval(0.1, 1.0)` a float (Hydra's interval is continuous; range for integers), `tag(log, interval(1e-4,
    1e-1))` on a log scale. Returns ({key: distribution}, [fixed overrides as given]); raises RunnerError for other
    sweeps."""
    from hydra.core.override_parser.types import Glob, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space, fixed = {}, []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line)
            continue
        value = override.value()
        if isinstance(value, Glob):  # glob(...) picks config group options, which only a grid can list
            raise RunnerError(
                f"{override.input_line}: an Optuna search takes choice(a,b) (or a,b), range(...), interval(...) and "
                f"tag(log, interval(...)), not glob(...). Name the options with choice(...)."
            )
        if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
            space[key] = CategoricalDistribution(list(override.sweep_iterator(transformer=Transformer.encode)))
        elif override.is_range_sweep():
            values = list(override.sweep_iterator())
            if not values:
                raise RunnerError(
                    f"{override.input_line} holds no value: give range(START, STOP, STEP) with STOP > START."
                )
            if all(isinstance(v, int) for v in values):
                space[key] = IntDistribution(values[0], values[-1], step=int(value.step))
            else:
                space[key] = FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
        else:  # interval: Hydra's is continuous, its ends are floats
            space[key] = FloatDistribution(float(value.start), float(value.end), log="log" in value.tags)
    return space, fixed


def trial_override(key, value):
    """A suggested value as the override Hydra reads back as that value: floats in full (repr), strings quoted
    only when they need it (model=cnn stays as it is)."""
    if isinstance(value, str):
        from runner.config.command_line import override

        return override(key, value)
    return f"{key}={'null' if value is None else str(value).lower() if isinstance(value, bool) else repr(value)}"


def objective(summary):
    """(value, state) to tell Optuna for a trial's summary: the best monitored metric of a completed run;
    PRUNED for a run the pruner stopped; FAIL for a failed or diverged run or one without the metric."""
    from optuna.trial import TrialState

    best = (summary.get("best") or {}).get(summary.get("monitor"))
    if summary.get("status") == "completed" and summary.get("stopped_by") == "pruned":
        return None, TrialState.PRUNED
    if summary.get("status") == "completed" and best is not None and best == best:
        return float(best), TrialState.COMPLETE
    return None, TrialState.FAIL


def storage_of(sweeper_cfg, sweep_dir):
    """The study's storage: hydra.sweeper.storage (an RDB URL) when given, else a journal in the sweep directory."""
    if sweeper_cfg.get("storage"):
        return sweeper_cfg.storage
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))


def _instantiate(node, key):
    """hydra.sweeper.`key` (sampler, pruner) built, or None when it is not set; RunnerError when it cannot be."""
    if not node:
        return None
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except Exception as err:
        cause = err.__cause__ or err
        raise RunnerError(
            f"hydra.sweeper.{key} could not be built ({type(cause).__name__}: {' '.join(str(cause).split())}). Give "
            f"an Optuna {key} class "
            f"and its arguments, e.g. hydra.sweeper.pruner='{{_target_: optuna.pruners.MedianPruner, "
            f"n_warmup_steps: 2}}'."
        ) from None


class OptunaSweeper(Sweeper):
    """An Optuna search over Hydra's sweep syntax (distributions), one job per trial; see the module docstring."""

    def __init__(
        self,
        n_trials=20,
        n_jobs=1,
        direction=None,
        study_name="runner",
        storage=None,
        sampler=None,
        pruner=None,
        params=None,
        max_retries=0,
        fail_fast=False,
    ):
        self.n_trials, self.n_jobs, self.direction = n_trials, n_jobs, direction
        self.study_name, self.storage, self.sampler, self.pruner = study_name, storage, sampler, pruner
        self.params = params or {}
        self.jobs = JobRunner(max_retries=max_retries, fail_fast=fail_fast)

    def setup(self, *, hydra_context, task_function, config):
        self.config = config
        self.jobs.setup_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def _direction(self):
        if self.direction:
            return self.direction
        from runner.training.recipe import monitor_rule

        trainer = self.config.get("trainer") or {}
        task = (self.config.get("dataset") or {}).get("task", "classification")
        return (
            "maximize"
            if monitor_rule(task, trainer.get("monitor"), trainer.get("monitor_mode"))[1] == "max"
            else "minimize"
        )

    def _sampler(self, number):
        """A new sampler per trial, seeded with sampler.seed + the trial's number (when a seed is given), so that a
        resumed search asks what an uninterrupted one would."""
        if not self.sampler:
            return None
        cfg = OmegaConf.create(OmegaConf.to_container(self.sampler, resolve=True))
        if cfg.get("seed") is not None:
            cfg.seed = int(cfg.seed) + number
        return _instantiate(cfg, "sampler")

    def check(self):
        if not isinstance(self.n_trials, int) or isinstance(self.n_trials, bool) or self.n_trials < 1:
            raise RunnerError(f"hydra.sweeper.n_trials={self.n_trials!r}: give the number of trials, e.g. 20.")
        if not isinstance(self.n_jobs, int) or isinstance(self.n_jobs, bool) or self.n_jobs < 1:
            raise RunnerError(f"hydra.sweeper.n_jobs={self.n_jobs!r}: give the number of trials run at once, e.g. 1.")
        if self.direction not in (None, "maximize", "minimize"):
            raise RunnerError(
                f"hydra.sweeper.direction={self.direction!r} is not a direction: give maximize, minimize, or leave "
                f"it null to follow trainer.monitor_mode."
            )
        self.jobs.check()

    @told
    def sweep(self, arguments):
        self.check()
        try:
            import optuna
        except ImportError:
            raise RunnerError(
                "hparams_search needs Optuna, which is not installed: pip install 'runner[sweeps]' (or pip install "
                "'optuna>=4')."
            ) from None
        from optuna.trial import TrialState

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = distributions([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        fixed_keys = {o.split("=", 1)[0].lstrip("+~") for o in fixed}
        space = {k: d for k, d in space.items() if k not in fixed_keys}  # the command line fixes a searched key
        if not space:
            raise RunnerError(
                "the Optuna search has nothing to search: give hydra.sweeper.params (as hparams_search=optuna_lr does) "
                "or a key with choice(...)/interval(...) on the command line, e.g. 'optimizer.lr=tag(log, "
                "interval(1e-4, 1e-1))'."
            )
        pruner, sampler = _instantiate(self.pruner, "pruner"), self._sampler(0)  # refused before a file is written
        sweep_dir = self.jobs.sweep_dir
        resuming = (sweep_dir / JOURNAL).is_file() or bool(self.storage)
        sweep_dir.mkdir(parents=True, exist_ok=True)
        OmegaConf.save(self.config, sweep_dir / "multirun.yaml")
        storage = storage_of(OmegaConf.create({"storage": self.storage}), sweep_dir)
        study = optuna.create_study(
            study_name=self.study_name,
            storage=storage,
            sampler=sampler,
            direction=self._direction(),
            pruner=pruner,
            load_if_exists=resuming,
        )

        def overrides(trial_params):
            return [*fixed, *(trial_override(k, trial_params[k]) for k in space)]

        def tell(number, summary):
            value, state = objective(summary)
            study.tell(number, value, state=state, skip_if_finished=True)

        waiting = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for trial in waiting:  # interrupted: the same parameters, in the same directory, from its last.pt
            print(f"trial {trial.number} was interrupted; it continues", file=sys.stderr, flush=True)
            jobs = [(trial.number, overrides(trial.params))]
            self.jobs.check_dirs(jobs)
            tell(trial.number, self.jobs.launch(jobs)[0])
        stopped = False
        while not stopped:
            left = self.n_trials - len(study.get_trials(deepcopy=False))
            if left <= 0:
                break
            batch = []
            for _ in range(min(self.n_jobs, left)):
                number = len(study.get_trials(deepcopy=False))
                study.sampler = self._sampler(number) or study.sampler
                trial = study.ask(space)
                batch.append((trial.number, overrides(trial.params)))
            try:
                self.jobs.check_dirs(batch)
            except RunnerError as err:  # this trial's directory cannot be written: the trial fails, the search goes on
                for number, _ in batch:
                    study.tell(number, state=TrialState.FAIL)
                print(f"error: {err}", file=sys.stderr)
                continue
            results = self.jobs.launch(batch)
            for (number, _), summary in zip(batch, results):
                tell(number, summary)
            stopped = self.jobs.stop_early(results, self.n_trials - len(study.get_trials(deepcopy=False)))
        write_results(study, sweep_dir)
        return study


def write_results(study, sweep_dir):
    """optimization_results.yaml, as hydra-optuna-sweeper writes it (name, best_params, best_value), with the
    best trial's number and every trial's state."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    done = [t for t in trials if t.state == TrialState.COMPLETE]
    best = study.best_trial if done else None
    results = {
        "name": "optuna",
        "study_name": study.study_name,
        "direction": study.direction.name.lower(),
        "best_trial": best.number if best else None,
        "best_params": dict(best.params) if best else None,
        "best_value": best.value if best else None,
        "trials": {str(t.number): t.state.name.lower() for t in trials},
    }
    OmegaConf.save(OmegaConf.create(results), Path(sweep_dir) / "optimization_results.yaml")


def trial_reporter(hydra_cfg):
    """In a job of an Optuna search with a pruner: report(epoch, value) -> True when the trial should stop.
    The job may run in another process (joblib, submitit): it opens the study from the sweep's storage.
    None when there is nothing to report to."""
    sweeper = hydra_cfg.get("sweeper") or {}
    if "runner_sweepers.OptunaSweeper" not in str(sweeper.get("_target_", "")) or not sweeper.get("pruner"):
        return None
    import optuna

    storage = storage_of(sweeper, hydra_cfg.sweep.dir)
    study = optuna.load_study(
        study_name=sweeper.get("study_name") or "runner", storage=storage, pruner=_instantiate(sweeper.pruner, "pruner")
    )
    trial_id = storage.get_trial_id_from_study_id_trial_number(
        storage.get_study_id_from_name(study.study_name), int(hydra_cfg.job.num)
    )
    trial = optuna.trial.Trial(study, trial_id)

    def report(epoch, value):
        trial.report(float(value), epoch)
        return trial.should_prune()

    return report
