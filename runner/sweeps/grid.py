"""runner's Hydra sweepers: what every `-m` sweep does around its jobs (JobRunner), and the grid (GridSweeper,
stored as hydra/sweeper=basic by cli._register_sweepers, so that it is every sweep's default and an hparams_search
config can still choose another). The Optuna search is sweeps/search.py. Hydra instantiates sweepers only from
the hydra_plugins package: hydra_plugins/runner_sweepers holds two thin classes naming these.

JobRunner launches jobs through the configured launcher (basic, joblib, submitit). Every job's config is composed
and its directory checked before the first job starts (a name too long for the file system is refused then, not
after half the sweep ran); a job that fails is retried up to `max_retries` times, resuming from its own last.pt
(sweeps/jobs.py sweep_job); `fail_fast` stops the sweep at the first job that failed for good. Retries are
recorded in the sweep's attempts.json, which `runner report` reads back.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hydra._internal.core_plugins.basic_sweeper import BasicSweeper
from hydra.core.hydra_config import HydraConfig
from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.core.plugins import Plugins
from hydra.core.utils import JobStatus
from hydra.plugins.sweeper import Sweeper
from omegaconf import OmegaConf, open_dict

from runner.io.errors import RunnerError, one_line
from runner.io.files import write_text
from runner.run.records import ATTEMPTS
from runner.sweeps.folds import fold_jobs

if TYPE_CHECKING:
    from hydra.core.utils import JobReturn
    from hydra.types import HydraContext, TaskFunction
    from omegaconf import DictConfig

# a sweep's job: its number and its overrides
Job = tuple[int, Sequence[str]]


def outcome(job_return: JobReturn) -> dict[str, Any]:
    """A launched job's result as a summary: what runner/task.Task returned (the run's summary.json), or for a job
    whose task raised (Hydra's FAILED), {"status": "failed", "error": ...}."""
    if job_return.status == JobStatus.FAILED:
        # return_value would re-raise it
        err = job_return._return_value
        return {"status": "failed", "error": str(err) or type(err).__name__}
    value = job_return.return_value
    return value if isinstance(value, dict) else {"status": "failed", "error": f"the job returned {value!r}"}


def failed(summary: dict[str, Any]) -> bool:
    return summary.get("status") == "failed"


class JobRunner:
    """What both sweepers do around the launcher: check every job's directory, retry failed jobs, stop early."""

    def __init__(self, max_retries: int, fail_fast: bool) -> None:
        self.max_retries, self.fail_fast = max_retries, fail_fast
        # job number: its directory, once dir_problem composed it
        self.job_dirs: dict[int, Path] = {}

    def setup_launcher(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.launcher = Plugins.instance().instantiate_launcher(
            hydra_context=hydra_context, task_function=task_function, config=config
        )
        sweep: Any = OmegaConf.to_container(config.hydra.sweep, resolve=False)
        given = str(sweep["dir"])
        # made by this command: by the unique_dir resolver (outputs/multirun/<date>/<time>), or not there before
        self.made = 1 if "unique_dir:" in given else 0 if "${" in given or not Path(given).exists() else None
        self.sweep_dir = Path(str(config.hydra.sweep.dir))

    def check_same_sweep(self) -> None:
        """hydra.sweep.dir= a folder holding another sweep (other overrides) is refused before its multirun.yaml is
        written over: their jobs would mix. The same overrides again (a resume) continue it."""
        from runner.config.command_line import command_arg
        from runner.run.records import sweep_overrides

        saved = sweep_overrides(self.sweep_dir)
        ours: Any = OmegaConf.to_container(self.config.hydra.overrides.task, resolve=False)
        if saved is None or saved[0] == ours:
            return
        raise RunnerError(
            f"hydra.sweep.dir={self.sweep_dir} holds the sweep of {' '.join(saved[0]) or 'the defaults'}, and this "
            f"command sweeps {' '.join(ours) or 'the defaults'}: their jobs would mix in one directory. Resume that "
            f"sweep with runner train -m {command_arg('resume', self.sweep_dir)}, or leave out hydra.sweep.dir for a "
            f"new one. Nothing was changed."
        )

    def discard(self) -> None:
        """A sweep refused before its first job: the folder made for it goes again, if it is still empty."""
        from runner.io.files import remove_empty

        if self.made is not None:
            remove_empty(self.sweep_dir, parents=self.made)

    def check(self) -> None:
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
        launcher = self.config.hydra.get("launcher") or {}
        gpus, tasks = launcher.get("gpus_per_node"), launcher.get("tasks_per_node")
        if "hydra_submitit_launcher" in str(launcher.get("_target_", "")) and gpus and tasks and gpus != tasks:
            # Lightning's SLURMEnvironment refuses the same (its --ntasks-per-node must equal the devices per node)
            idle = "a GPU would sit idle" if gpus > tasks else "tasks would share a GPU"
            raise RunnerError(
                f"hydra.launcher.tasks_per_node={tasks} with hydra.launcher.gpus_per_node={gpus}: runner trains one "
                f"process per GPU, as torchrun does, so {idle}. Set hydra.launcher.tasks_per_node={gpus}, or leave "
                f"it out with hydra/launcher=slurm_ddp, where it follows gpus_per_node. Nothing was started."
            )
        if str(launcher.get("_target_", "")).endswith("SlurmLauncher") and shutil.which("srun") is None:
            # submitit's SlurmExecutor refuses the same, with a traceback, once the sweep has begun
            name = self.config.hydra.runtime.choices.get("hydra/launcher", "slurm")
            raise RunnerError(
                f"hydra/launcher={name} submits each job to SLURM, and this machine has no SLURM: there is no srun "
                f"on its PATH, which submitit needs. Run the sweep on the cluster's login node, or try it here with "
                f"submitit's local executor, which runs the same code: hydra/launcher=local (add "
                f"hydra.launcher.tasks_per_node=2 for two processes a job). Nothing was started."
            )

    def one_at_a_time(self) -> str | None:
        """Why the configured launcher runs a sweep's jobs one at a time, in words; None when it runs several side
        by side (joblib with n_jobs != 1, submitit)."""
        launcher = self.config.hydra.get("launcher") or {}
        target = str(launcher.get("_target_", ""))
        if target.endswith("BasicLauncher"):
            return "Hydra's default launcher runs a sweep's jobs in this process"
        if "joblib" in target and launcher.get("n_jobs") == 1:
            return "hydra.launcher.n_jobs=1 runs one job at a time"
        return None

    def composed(self, overrides: Sequence[str]) -> DictConfig:
        """A job's config as the launcher will compose it (unresolved); Hydra's error when it does not compose."""
        return self.hydra_context.config_loader.load_sweep_config(self.config, list(overrides))

    def job_dir(self, overrides: Sequence[str], num: int) -> Path:
        """The directory Hydra will give job `num` (hydra.sweep.dir/hydra.sweep.subdir, resolved as the launcher
        resolves it). Composing the job's config raises any composition error before the job starts."""
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

    def dir_problem(self, num: int, overrides: Sequence[str]) -> str | None:
        """Why job `num` cannot run: its config does not compose, or its directory cannot be created (a name too
        long for the file system, no permission); None when it can. Writes nothing."""
        from runner.io.files import unwritable_dir

        try:
            self.job_dirs[num] = self.job_dir(overrides, num)
        # Hydra's ConfigCompositionException and the like: the launcher would raise it
        except Exception as err:
            from runner.config.command_line import unknown_option

            # an unknown option in runner's words, as for a single run (the other translations compose a config
            # anew, which would clear the running sweep's Hydra)
            missing = re.search(r"Could not find '([^']+)'", str(err))
            told = missing and unknown_option(missing.group(1), str(err), list(overrides))
            return f"its config does not compose: {told or one_line(err, 300)}"
        problem = unwritable_dir(self.job_dirs[num])
        return problem and (
            f"{problem} Point hydra.sweep.dir and hydra.sweep.subdir at folders that can be made, e.g. "
            f"'hydra.sweep.subdir=job${{hydra.job.num}}' for names that stay short."
        )

    def check_dirs(self, jobs: Sequence[Job]) -> None:
        """A grid: refuse the whole sweep, before anything is written, when one of its `jobs` ([(num, overrides)])
        could not run."""
        for num, overrides in jobs:
            problem = self.dir_problem(num, overrides)
            if problem:
                raise RunnerError(
                    f"sweep job {num} ({' '.join(overrides) or 'the defaults'}) cannot run: {problem} Nothing was run."
                )

    def batch_size(self) -> int | None:
        """Jobs per launch: all at once, unless fail_fast must look at each result before starting more; then as
        many as the launcher runs side by side (joblib's n_jobs, submitit's array_parallelism), or one."""
        if not self.fail_fast:
            return None
        launcher = self.config.hydra.get("launcher") or {}
        n = launcher.get("n_jobs") or launcher.get("array_parallelism") or 1
        return max(1, int(n)) if n > 0 else (os.cpu_count() or 1)

    def launch(self, jobs: Sequence[Job]) -> list[dict[str, Any]]:
        """Run `jobs` ([(num, overrides)], consecutive numbers) and retry each failed one up to max_retries times
        in its own directory; returns their summaries in order."""
        first = jobs[0][0]
        assert [num for num, _ in jobs] == list(range(first, first + len(jobs))), "consecutive job numbers"
        results = [outcome(r) for r in self.launcher.launch([list(o) for _, o in jobs], initial_job_idx=first)]
        for i, (num, overrides) in enumerate(jobs):
            for attempt in range(1, self.max_retries + 1):
                if not failed(results[i]) or not results[i].get("retry", True):
                    # a job refused in its setup (bad input) would fail the same way again
                    break
                start = "its last.pt" if (self.job_path(num) / "checkpoints" / "last.pt").is_file() else "the start"
                self.record_attempt(num, results[i].get("error", ""), start)
                print(
                    f"sweep job {num} failed ({one_line(results[i].get('error'), 120)}); retry {attempt} of "
                    f"{self.max_retries}, from {start}",
                    file=sys.stderr,
                    flush=True,
                )
                results[i] = outcome(self.launcher.launch([list(overrides)], initial_job_idx=num)[0])
        from runner.sweeps.jobs import SweepSummary

        # how each ended, for the sweep's summary (a job may have failed to record it)
        for num, _ in jobs:
            SweepSummary.outcomes[str(self.job_path(num))] = results[num - first].get("status")
        return results

    def job_path(self, num: int) -> Path:
        return self.job_dirs.get(num, self.sweep_dir / str(num))

    def record_attempt(self, num: int, error: object, start: str) -> None:
        """attempts.json gets one entry per failed attempt that was retried, under the job directory's path in the
        sweep directory (`0`, `job0`, `lr=0.1/seed=0`; written atomically: a sweep stopped while writing it keeps the
        previous one)."""
        from runner.io.files import write_json

        path = self.sweep_dir / ATTEMPTS
        try:
            attempts = json.loads(path.read_text())
        except (OSError, ValueError):
            attempts = {}
        job = Path(os.path.relpath(self.job_path(num), self.sweep_dir)).as_posix()
        attempts.setdefault(job, []).append({"error": one_line(error, 300), "from": start})
        write_json(path, attempts)

    def stop_early(self, results: Sequence[dict[str, Any]], left: int, then: str) -> bool:
        """fail_fast: after a batch with a job that failed for good, the jobs `left` are not started; `then` says
        what the sweep's resume does."""
        if not self.fail_fast or not any(failed(r) for r in results) or not left:
            return False
        from runner.config.command_line import command_arg
        from runner.sweeps.jobs import SweepSummary

        SweepSummary.not_started += left
        print(
            f"hydra.sweeper.fail_fast: a job failed, so the sweep stops; {left} job{'s' * (left != 1)} not started. "
            f"Fix the cause, then continue with: runner train -m {command_arg('resume', self.sweep_dir)} ({then}; "
            f"add hydra.sweeper.fail_fast=false to go on past a job that fails again).",
            file=sys.stderr,
            flush=True,
        )
        return True


def told(sweep: Callable[[Any, list[str]], Any]) -> Callable[[Any, list[str]], Any]:
    """A sweeper's sweep(), with a RunnerError told as runner tells bad input (one paragraph, exit 1) instead of
    Hydra's traceback."""

    def wrapped(self: Any, arguments: list[str]) -> Any:
        try:
            return sweep(self, arguments)
        except RunnerError as err:
            self.jobs.discard()
            print(f"error: {err}", file=sys.stderr, flush=True)
            raise SystemExit(err.exit_code) from None

    return wrapped


class GridSweeper(Sweeper):
    """Hydra's basic sweep (the cartesian product of `a=1,2 b=x,y`, split by Hydra's own BasicSweeper, so job
    numbers and directories are Hydra's), with runner's checks, retries and fail_fast (JobRunner)."""

    # set by setup(), before Hydra calls sweep() (Hydra's Sweeper declares them Optional)
    hydra_context: HydraContext
    config: DictConfig

    def __init__(
        self,
        max_batch_size: int | None,
        params: dict[str, str] | None,
        max_retries: int,
        fail_fast: bool,
        # their defaults: GridSweeperConf
    ) -> None:
        self.max_batch_size, self.params = max_batch_size, params or {}
        self.jobs = JobRunner(max_retries=max_retries, fail_fast=fail_fast)

    def setup(self, *, hydra_context: HydraContext, task_function: TaskFunction, config: DictConfig) -> None:
        self.hydra_context, self.config = hydra_context, config
        self.jobs.setup_launcher(hydra_context=hydra_context, task_function=task_function, config=config)

    @told
    def sweep(self, arguments: list[str]) -> list[dict[str, Any]]:
        self.jobs.check()
        self.jobs.check_same_sweep()
        parser = OverridesParser.create(config_loader=self.hydra_context.config_loader)
        overrides = parser.parse_overrides([*(f"{k}={v}" for k, v in self.params.items()), *arguments])
        grid = [job for batch in BasicSweeper.split_arguments(overrides, None) for job in batch]
        # dataset.folds=K: K jobs of each setting, one per held-out fold (sweeps/folds.py)
        jobs = list(enumerate(fold_jobs(grid, self.jobs.composed)))
        # composes each job's config: a bad one is refused before any job runs
        self.jobs.check_dirs(jobs)
        sweep_dir = self.jobs.sweep_dir
        sweep_dir.mkdir(parents=True, exist_ok=True)
        # atomic and fsynced: a resume reads the sweep's command from it, and a crash must not leave it torn
        write_text(sweep_dir / "multirun.yaml", OmegaConf.to_yaml(self.config))
        size = self.max_batch_size or self.jobs.batch_size() or len(jobs)
        results: list[dict[str, Any]] = []
        for start in range(0, len(jobs), size):
            batch = jobs[start : start + size]
            results += self.jobs.launch(batch)
            then = "the failed job runs again, from its last.pt if it has one, then the rest"
            if self.jobs.stop_early(results, len(jobs) - start - len(batch), then):
                break
        return results
