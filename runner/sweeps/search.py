"""An Optuna search as a sweep (hydra/sweeper=optuna, chosen by hparams_search=optuna_lr): OptunaSweeper, loaded by
Hydra through hydra_plugins/runner_sweepers; its jobs run through sweeps/grid.JobRunner like a grid's.

It drives Optuna's ask-and-tell API (Optuna >= 4): each trial is one job, numbered as the trial, in the sweep's
directory. The study lives in that directory (optuna.journal, Optuna's JournalStorage) unless hydra.sweeper.storage
names an RDB, so `runner train -m resume=SWEEP` continues a search from the trials it has: finished trials are kept
as they are, an interrupted trial is run again with its own parameters and resumes from its last.pt, and new trials
are asked until there are n_trials. A trial whose job fails, diverges, ends without a monitored metric, or is
refused (its config does not compose, its directory cannot be made) is told to Optuna as FAIL, and the search goes
on. Each trial's sampler is seeded from sampler.seed and the trial's number (trial_seed), so a search resumed after
an interruption asks the same parameters as one that ran through, and trials do not repeat each other. With a
pruner, each job reports its monitored metric after every epoch (trial_pruner, from the job's own process) and
stops when the pruner says so.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, cast

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf

from runner.io.errors import RunnerError, one_line
from runner.io.files import write_text
from runner.sweeps.grid import JobRunner, told

if TYPE_CHECKING:
    import optuna
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

# the study of a search, in its sweep directory, when hydra.sweeper.storage is null
JOURNAL = "optuna.journal"
EXAMPLES = {
    "pruner": "hydra.sweeper.pruner='{_target_: optuna.pruners.MedianPruner, n_warmup_steps: 2}'.",
    "sampler": "hydra.sweeper.sampler='{_target_: optuna.samplers.RandomSampler, seed: 0}'.",
}


def distributions(overrides: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """Hydra's sweep syntax as Optuna distributions, the vocabulary hydra-optuna-sweeper users know:
    `choice(a, b)` (or `a,b`) categorical; `range(1, 10, 2)` integers 1..9 by 2 (Hydra's range excludes its end);
    `interval(0.1, 1.0)` a float, `int(interval(8, 64))` an integer; `tag(log, ...)` on a log scale.
    Returns ({key: distribution}, [fixed overrides as given]); raises RunnerError for glob(...)."""
    from hydra.core.override_parser.types import Glob, Transformer
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    space: dict[str, Any] = {}
    fixed: list[str] = []
    for override in OverridesParser.create().parse_overrides(list(overrides)):
        key = override.get_key_element()
        if not override.is_sweep_override():
            fixed.append(override.input_line or "")
            continue
        value: Any = override.value()
        # glob(...) picks config group options, which only a grid can list
        if isinstance(value, Glob):
            raise RunnerError(
                f"{override.input_line}: an Optuna search takes choice(a,b) (or a,b), range(...), interval(...) and "
                f"tag(log, ...), not glob(...). Name the options with choice(...)."
            )
        log = "log" in (getattr(value, "tags", None) or ())
        if override.is_choice_sweep() or (override.is_range_sweep() and value.shuffle):
            # Hydra's encoding: the values as its grammar writes them (a list as [1,2], a string quoted if need be)
            choices: list[Any] = list(override.sweep_iterator(transformer=Transformer.encode))
            space[key] = CategoricalDistribution(choices)
        elif override.is_range_sweep():
            values: list[Any] = list(override.sweep_iterator())
            if not values:
                raise RunnerError(
                    f"{override.input_line} holds no value: give range(START, STOP, STEP) with STOP > START."
                )
            if all(isinstance(v, int) for v in values):
                # Optuna's log scale takes no step
                step = 1 if log else int(value.step)
                space[key] = IntDistribution(values[0], values[-1], log=log, step=step)
            else:
                space[key] = FloatDistribution(float(values[0]), float(values[-1]), step=float(value.step))
        # int(interval(...)): Hydra's cast
        elif isinstance(value.start, int) and isinstance(value.end, int):
            space[key] = IntDistribution(value.start, value.end, log=log)
        # interval: continuous
        else:
            space[key] = FloatDistribution(float(value.start), float(value.end), log=log)
    return space, fixed


def _bare(key: str) -> str:
    return key.lstrip("+~")


def trial_override(key: str, value: object) -> str:
    """A suggested value as an override: a categorical value as Hydra encoded it (grammar text, written as it is),
    a float in full (repr)."""
    if isinstance(value, str):
        return f"{key}={value}"
    return f"{key}={'null' if value is None else str(value).lower() if isinstance(value, bool) else repr(value)}"


def objective(summary: dict[str, Any]) -> tuple[float | None, Any]:
    """(value, state) to tell Optuna for a trial's summary: the best monitored metric of a completed run;
    PRUNED for a run the pruner stopped; FAIL for a failed, diverged or refused run, or one without a finite metric."""
    from optuna.trial import TrialState

    from runner.training.recipe import finite

    best: Any = (summary.get("best") or {}).get(summary.get("monitor"))
    if summary.get("status") == "completed" and summary.get("stopped_by") == "pruned":
        return None, TrialState.PRUNED
    # a NaN or infinite value is no result (Optuna would rank an infinity best or worst of all)
    if summary.get("status") == "completed" and finite(best):
        return float(best), TrialState.COMPLETE
    return None, TrialState.FAIL


def trial_seed(seed: int, number: int) -> int:
    """The sampler's seed for trial `number` of a search seeded `seed`: numpy's SeedSequence of both, whose streams
    are independent (seed + number was not: TPE's trial 3 drew almost trial 0's point, lr 0.00443 vs 0.00449), and
    a function of the two alone, so a resumed search asks what an uninterrupted one would. A 32-bit value: numpy's
    RandomState, which Optuna's samplers seed, takes no more."""
    import numpy as np

    if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
        raise RunnerError(
            f"hydra.sweeper.sampler.seed={seed!r}: give an integer >= 0, e.g. hydra.sweeper.sampler.seed=0."
        )
    return int(np.random.SeedSequence([seed, number]).generate_state(1)[0])


def storage_of(storage: str | None, sweep_dir: str | Path) -> Any:
    """The study's storage: an RDB URL given as hydra.sweeper.storage, else a journal in the sweep directory."""
    import optuna

    if storage:
        return optuna.storages.get_storage(storage)
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    return JournalStorage(JournalFileBackend(str(Path(sweep_dir) / JOURNAL)))


def _instantiate(node: Any, key: str) -> Any:
    """hydra.sweeper.`key` (sampler, pruner) built, or None when it is not set; RunnerError when it cannot be."""
    if not node:
        return None
    from hydra.utils import instantiate

    try:
        return instantiate(node)
    except Exception as err:
        cause = one_line(err.__cause__ or err, None)
        raise RunnerError(
            f"hydra.sweeper.{key} could not be built ({cause}). Give an Optuna {key} class and its arguments, e.g. "
            + EXAMPLES[key]
        ) from None


class OptunaSweeper(Sweeper):
    """An Optuna search over Hydra's sweep syntax (distributions), one job per trial; see the module docstring.
    The keys and their defaults: configs/hydra/sweeper/optuna.yaml."""

    # set by setup(), before Hydra calls sweep() (Hydra's Sweeper declares it Optional)
    config: DictConfig

    def __init__(
        self,
        n_trials: int,
        n_jobs: int,
        direction: str | None,
        study_name: str | None,
        storage: str | None,
        sampler: DictConfig | None,
        pruner: DictConfig | None,
        params: dict[str, str] | None,
        max_retries: int,
        fail_fast: bool,
    ) -> None:
        self.n_trials, self.n_jobs, self.direction = n_trials, n_jobs, direction
        self.study_name, self.storage, self.sampler, self.pruner = study_name, storage, sampler, pruner
        self.params = params or {}
        self.jobs = JobRunner(max_retries=max_retries, fail_fast=fail_fast)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.config = config
        self.jobs.setup_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    def check(self) -> None:
        for key, what in (("n_trials", "the number of trials, e.g. 20"), ("n_jobs", "the trials run at once, e.g. 1")):
            value = getattr(self, key)
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise RunnerError(f"hydra.sweeper.{key}={value!r}: give {what}.")
        alone = self.jobs.one_at_a_time()
        if self.n_jobs > 1 and alone:
            # Hydra's basic launcher runs a batch's jobs one after the other: the setting would do nothing, silently
            raise RunnerError(
                f"hydra.sweeper.n_jobs={self.n_jobs} asks for {self.n_jobs} trials at a time, but {alone}, so they "
                f"would run one after the other. Run them side by side on this machine with hydra/launcher=parallel "
                f"hydra.launcher.n_jobs={self.n_jobs} (joblib), or leave out hydra.sweeper.n_jobs. Nothing was "
                f"started."
            )
        if self.direction not in (None, "maximize", "minimize"):
            raise RunnerError(
                f"hydra.sweeper.direction={self.direction!r} is not a direction: give maximize, minimize, or leave "
                f"it null to follow trainer.monitor_mode."
            )
        folds = (self.config.get("dataset") or {}).get("folds")
        if folds is not None:
            # each trial would be one fold job, refused alone (sweeps/folds.py expands folds in the grid only)
            raise RunnerError(
                f"dataset.folds={folds} with an Optuna search: folds are a grid sweep's axis (a job per held-out "
                f"fold), and a trial is one run whose figure Optuna optimises. Search without folds, then "
                f"cross-validate the best trial's setting: runner train -m ITS_OVERRIDES dataset.folds={folds}. "
                f"Nothing was started."
            )
        if (self.config.get("dataset") or {}).get("val_fraction") == 0:
            raise RunnerError(
                "dataset.val_fraction=0 with an Optuna search: a run without a validation split has no validation "
                "figure for Optuna to optimise (its best.pt is its last epoch). Search with a validation split, "
                "e.g. dataset.val_fraction=0.1. Nothing was started."
            )
        self.jobs.check()
        self.jobs.check_same_sweep()

    def _direction(self) -> Literal["minimize", "maximize"]:
        """hydra.sweeper.direction, or the direction of the runs' own monitor (trainer.monitor_mode)."""
        if self.direction:
            # check() let only these two through
            return cast(Literal["minimize", "maximize"], self.direction)
        from runner.training.recipe import monitor_rule

        trainer = self.config.get("trainer") or {}
        task = (self.config.get("dataset") or {}).get("task", "classification")
        mode = monitor_rule(task, trainer.get("monitor"), trainer.get("monitor_mode"))[1]
        return "maximize" if mode == "max" else "minimize"

    def _sampler(self, number: int) -> Any:
        """A new sampler per trial, seeded from sampler.seed and the trial's number (when a seed is given), so that a
        resumed search asks what an uninterrupted one would."""
        if not self.sampler:
            return None
        cfg = OmegaConf.create(OmegaConf.to_container(self.sampler, resolve=True))
        seed = OmegaConf.select(cfg, "seed")
        if seed is not None:
            OmegaConf.update(cfg, "seed", trial_seed(seed, number))
        return _instantiate(cfg, "sampler")

    @told
    def sweep(self, arguments: list[str]) -> optuna.Study:
        self.check()
        try:
            import optuna
        except ImportError:
            raise RunnerError(
                "hparams_search needs Optuna, which is not installed: pip install 'runner[sweeps]' (or pip install "
                "'optuna>=4')."
            ) from None
        from optuna.trial import TrialState

        from runner.sweeps.jobs import SweepSummary

        optuna.logging.set_verbosity(optuna.logging.WARNING)
        space, fixed = distributions([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        fixed_keys = {_bare(o.split("=", 1)[0]) for o in fixed}
        # the command line fixes a key
        space = {k: d for k, d in space.items() if _bare(k) not in fixed_keys}
        if not space:
            raise RunnerError(
                "the Optuna search has nothing to search: give hydra.sweeper.params (as hparams_search=optuna_lr does) "
                "or a key with choice(...)/interval(...) on the command line, e.g. 'optimizer.lr=tag(log, "
                "interval(1e-4, 1e-1))'."
            )
        # everything that can be refused is, before a file is written
        pruner, sampler, direction = _instantiate(self.pruner, "pruner"), self._sampler(0), self._direction()
        sweep_dir = self.jobs.sweep_dir
        own_journal = not self.storage and (sweep_dir / JOURNAL).is_file()
        resuming = own_journal or (bool(self.storage) and (sweep_dir / "multirun.yaml").is_file())
        made = not sweep_dir.exists()
        # the journal's folder
        sweep_dir.mkdir(parents=True, exist_ok=True)
        storage = storage_of(self.storage, sweep_dir)
        try:
            study = optuna.create_study(
                study_name=self.study_name,
                storage=storage,
                sampler=sampler,
                direction=direction,
                pruner=pruner,
                load_if_exists=resuming,
            )
        except optuna.exceptions.DuplicatedStudyError:
            if made:
                sweep_dir.rmdir()
            raise RunnerError(
                f"hydra.sweeper.storage={self.storage} already holds a study named {self.study_name}, from another "
                f"sweep: give this search its own hydra.sweeper.study_name, or resume that sweep. Nothing was run."
            ) from None
        # atomic and fsynced: a resume reads the sweep's command from it, and a crash must not leave it torn
        write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))

        def overrides(trial: optuna.trial.FrozenTrial | optuna.Trial) -> list[str]:
            return [*fixed, *(trial_override(k, trial.params[k]) for k in space)]

        # interrupted trials first: the same parameters, in the same directory, from their last.pt
        pending = [t for t in study.get_trials(deepcopy=False) if t.state in (TrialState.RUNNING, TrialState.WAITING)]
        for trial in pending:
            print(f"trial {trial.number} was interrupted; it continues", file=sys.stderr, flush=True)
        batch: list[Any]
        while True:
            if pending:
                # launched alone: their numbers need not be consecutive
                batch, pending = [pending[0]], pending[1:]
            else:
                left = self.n_trials - len(study.get_trials(deepcopy=False))
                if left <= 0:
                    break
                batch = []
                for _ in range(min(self.n_jobs, left)):
                    study.sampler = self._sampler(len(study.get_trials(deepcopy=False))) or study.sampler
                    batch.append(study.ask(space))
            runnable = []
            for trial in batch:
                problem = self.jobs.dir_problem(trial.number, overrides(trial))
                # refused: told as failed, named at the end, and the search goes on
                if problem:
                    study.tell(trial.number, state=TrialState.FAIL)
                    SweepSummary.refused.append((trial.number, problem))
                    print(f"error: trial {trial.number} cannot run: {problem}", file=sys.stderr, flush=True)
                else:
                    runnable.append((trial.number, overrides(trial)))
            results = self.jobs.launch(runnable) if runnable else []
            for (number, _), summary in zip(runnable, results):
                value, state = objective(summary)
                study.tell(number, value, state=state, skip_if_finished=True)
            # refused
            failures = [*results, *({"status": "failed"} for _ in range(len(batch) - len(runnable)))]
            left = len(pending) + self.n_trials - len(study.get_trials(deepcopy=False))
            if self.jobs.stop_early(failures, left, "a failed trial stays failed; new trials are asked"):
                break
        complete = [t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE]
        job_dirs = {t.number: self._trial_dir(t.number, overrides(t)) for t in complete}
        write_results(study, sweep_dir, job_dirs)
        return study

    def _trial_dir(self, number: int, overrides: list[str]) -> Path:
        """The directory of trial `number`'s job: where it ran in this process, else where Hydra puts it."""
        path = self.jobs.job_path(number)
        return path if (path / "summary.json").is_file() else self.jobs.job_dir(overrides, number)


def best_trial(study: optuna.Study, job_dirs: Mapping[int, Path]) -> optuna.trial.FrozenTrial | None:
    """The search's best trial by runner report's rule (report_sections.best_row), read from the trials' summaries:
    Optuna's study.best_trial takes the first of tied values and knows no val_loss, so the two named different trials.
    Optuna's own where a completed trial's summary cannot be read."""
    from optuna.trial import TrialState

    from runner.commands.report import build
    from runner.commands.report_sections import best_row

    complete = {t.number: t for t in study.get_trials(deepcopy=False) if t.state == TrialState.COMPLETE}
    dirs = {str(job_dirs[n]): n for n in complete if n in job_dirs and Path(job_dirs[n], "summary.json").is_file()}
    best = best_row(build(map(Path, dirs))[0]) if complete and len(dirs) == len(complete) else None
    return complete[dirs[best["run_dir"]]] if best else study.best_trial if complete else None


def write_results(study: optuna.Study, sweep_dir: str | Path, job_dirs: Mapping[int, Path] | None = None) -> None:
    """optimization_results.yaml, as hydra-optuna-sweeper writes it (name, best_params, best_value), with the
    best trial's number (best_trial: the rule of runner report's star) and every trial's state. `job_dirs`: {trial
    number: its job's directory}, by default <sweep_dir>/<number>."""
    trials = study.get_trials(deepcopy=False)
    best = best_trial(study, job_dirs or {t.number: Path(sweep_dir) / str(t.number) for t in trials})
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


def trial_pruner(hydra_cfg: DictConfig) -> Callable[[int, float], bool] | None:
    """In a job of an Optuna search with a pruner: pruner(epoch, value) -> True when the trial should stop.
    The job may run in another process (joblib, submitit): it opens the study from the sweep's storage.
    None when there is nothing to report to."""
    sweeper: Any = hydra_cfg.get("sweeper") or {}
    if not str(sweeper.get("_target_", "")).endswith("runner_sweepers.OptunaSweeper") or not sweeper.get("pruner"):
        return None
    import optuna

    storage = storage_of(sweeper.get("storage"), hydra_cfg.sweep.dir)
    study = optuna.load_study(
        study_name=sweeper.study_name, storage=storage, pruner=_instantiate(sweeper.pruner, "pruner")
    )
    study_id = storage.get_study_id_from_name(study.study_name)
    trial = optuna.trial.Trial(study, storage.get_trial_id_from_study_id_trial_number(study_id, int(hydra_cfg.job.num)))

    # steps are epochs from 0, as Lightning's PyTorchLightningPruningCallback reports them
    def pruner(epoch: int, value: float) -> bool:
        trial.report(float(value), epoch - 1)
        return trial.should_prune()

    return pruner
