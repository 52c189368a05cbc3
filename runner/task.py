"""Hydra's task for every command Hydra runs (runner/cli.py hands it what it decided of the command line, an
`Invocation`): the steps the command's record asks for (runner/commands/__init__.py), its job, and the one failure
funnel, `_failed` (Lightning's `_call_and_handle_interrupt`). `runner train`'s own steps are here too: a process
group under torchrun, its config checked in full, a sweep's job kept or continued, an Optuna trial's pruner.
"""

from __future__ import annotations

import os
import shutil
import sys
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from runner.config.command_line import command_arg
from runner.io.files import remove_empty

if TYPE_CHECKING:
    from collections.abc import Callable

    from hydra.conf import HydraConf
    from omegaconf import DictConfig

    from runner.commands import Command
    from runner.io.signals import StopSignals
    from runner.training.distributed import AgreedStop


@dataclass
class Invocation:
    """What `_main` decided about the command line, handed to Hydra's task (`Task`) and its wrappers by argument."""

    command: Command
    # the run's own group choices (eval's ckpt=, train's resume=), put before the user's overrides
    selected: list[str] = field(default_factory=list)
    # predict's and export's out=: whether its folder existed before the command (it then stays); None without out=
    out_existed: bool | None = None
    # outputs/<command>, outputs: made by Hydra for this command, removed again when a failure leaves them empty
    missing: list[Path] = field(default_factory=list)
    # the sweep's directory, once a job of a sweep has started in this process: the message of a stopped sweep
    sweep_dir: str | None = None

    def continue_sweep(self, before: str) -> str:
        """How to continue the sweep, after `before`; nothing when no sweep has started."""
        return f"{before}runner train -m {command_arg('resume', self.sweep_dir)}" if self.sweep_dir else ""


class Task:
    """Hydra's task function: the job of the invocation's command, every failure through `_failed`.

    In a sweep a failed job returns its failure instead of raising, so the other jobs run and the sweep summary
    (runner/sweeps/jobs.py) lists it; the sweep then exits non-zero. A class, not a closure, so that a launcher that
    runs the jobs in other processes (joblib's, submitit's) can pickle it.
    """

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation

    def __call__(self, cfg: DictConfig) -> Any:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        from runner.config.command_line import held_stderr

        # the config composed: what Hydra wrote is not an error
        held_stderr.release()
        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        if multirun:
            self.invocation.sweep_dir = hydra_cfg.sweep.dir
        try:
            return self.run(cfg, hydra_cfg, multirun)
        except Exception as err:
            return _failed(err, self.invocation, cfg, hydra_cfg, multirun)

    def run(self, cfg: DictConfig, hydra_cfg: HydraConf, multirun: bool) -> Any:
        """The steps every command's record asks for, then its job."""
        from omegaconf import OmegaConf

        from runner.config.checks import check_keys, command_keys
        from runner.io import signals

        command = self.invocation.command
        stop = signals.install()
        agreed = _join_process_group(cfg, hydra_cfg, multirun, stop) if command.trains else stop
        # a sweep stops here, between its jobs
        agreed.check("before the job started; nothing was changed")
        if command.closed_keys and command.config:
            # `+key=` is refused by every command, not ignored
            check_keys(cfg, top=command_keys(command.config))
        if command.data_paths:
            # before the resolvers read the files (dataset=csv): one plan, of the recorded path
            _absolute_root(cfg)
        # as typed, never resolved: `key=${...}` names the job's config, not Hydra's (a loop is check_resolves' to tell)
        typed = cast("list[str]", OmegaConf.to_container(hydra_cfg.overrides.task, resolve=False))
        overrides = typed[len(self.invocation.selected) :]
        job = command.job_function()
        if command.trains:
            return _train(job, cfg, hydra_cfg, overrides, multirun)
        if command.overrides:
            return job(cfg, hydra_cfg.runtime.output_dir, overrides)
        return job(cfg, hydra_cfg.runtime.output_dir)


def _join_process_group(
    cfg: DictConfig, hydra_cfg: HydraConf, multirun: bool, stop: StopSignals
) -> StopSignals | AgreedStop:
    """torchrun, or hydra/launcher=slurm with several tasks: one process group, one run; the stop it returns is
    every process's, so that a stop before the job starts is every process's."""
    from runner.config.arguments import launcher_without_sweep
    from runner.config.checks import checked_value
    from runner.io.errors import RunnerError
    from runner.training import distributed

    alone = None if multirun else launcher_without_sweep(hydra_cfg.overrides.hydra)
    if alone:
        raise RunnerError(alone)
    distributed.join(checked_value(cfg, "trainer.ddp_timeout"))
    return distributed.agreed(stop)


def _train(job: Callable[..., Any], cfg: DictConfig, hydra_cfg: HydraConf, overrides: list[str], multirun: bool) -> Any:
    """`runner train`'s job: its config checked in full, in its run directory (rank 0's under torchrun), a sweep's
    job kept or continued as its directory says, with the pruner of an Optuna search."""
    from hydra.core.hydra_config import HydraConfig

    from runner.config.checks import check_keys, check_resolves, pin_input_shape
    from runner.run.provenance import provenance
    from runner.training import distributed

    # a resumed run's config is its own (last.pt), checked against the resume table
    if not cfg.get("resume"):
        pin_input_shape(cfg)
        check_resolves(cfg)
        check_keys(cfg)
    _share_cores(cfg, hydra_cfg)
    run_dir = distributed.broadcast(hydra_cfg.runtime.output_dir)
    continue_with = pruner = None
    if multirun:
        from runner.sweeps.jobs import sweep_job
        from runner.sweeps.search import trial_pruner

        # rank 0 alone reads the job's directory (another task's claim could already have marked it running)
        kept, resume = distributed.decided_by_rank_0(
            lambda: (sweep_job(cfg, run_dir, overrides, hydra_cfg.job.num), cfg.get("resume"))
        )
        if kept is not None:
            return kept
        if resume:
            from omegaconf import open_dict

            with open_dict(cfg):
                cfg.resume = resume
        continue_with = f"runner train -m {command_arg('resume', hydra_cfg.sweep.dir)}"
        pruner = distributed.asked_of_rank_0(lambda: trial_pruner(cast("DictConfig", hydra_cfg)))
    record = provenance(cfg, cast("DictConfig", HydraConfig.instance().cfg))
    return job(cfg, run_dir, overrides, record, continue_with=continue_with, pruner=pruner)


def _failed(err: Exception, invocation: Invocation, cfg: DictConfig, hydra_cfg: HydraConf, multirun: bool) -> Any:
    """The one failure funnel of the commands Hydra runs (Lightning's `_call_and_handle_interrupt`), called while
    `err` is handled: what the command made goes again, runner's errors are told in one paragraph and exit with their
    code, a bug keeps its traceback. In a sweep the job's failure is returned, as its run directory tells it."""
    from runner.io.console import error
    from runner.io.errors import Interrupted, RunnerError, storage_error

    # a write the storage refused anywhere in the job (a library's too): one paragraph naming the file, no traceback
    err = storage_error(err) or err
    out_dir = Path(hydra_cfg.runtime.output_dir)
    _clean_up(invocation, out_dir, err, multirun, cfg)
    if os.environ.get("HYDRA_FULL_ERROR") == "1":
        raise
    first = not invocation.command.trains or _first_process()
    if isinstance(err, RunnerError):
        if first or not _told_by_rank_0(err):
            error(str(err))
        if not multirun:
            sys.exit(err.exit_code)
        if isinstance(err, Interrupted) and first:
            # a stop ends the whole sweep, not one job (told by task 0's result)
            raise KeyboardInterrupt from None
    elif not multirun:
        # a bug, not bad input: Hydra shows the traceback
        raise
    else:
        traceback.print_exc()
    # as the run directory tells it (a run that diverged raised too): the sweepers retry only `failed`
    from runner.run.records import read_summary, status_of

    recorded = read_summary(out_dir) if (out_dir / "summary.json").is_file() else {}
    status = status_of(out_dir, recorded) if recorded else None
    # retried by a sweeper (max_retries) unless runner refused the job in its setup: bad input fails again
    retry = not isinstance(err, RunnerError) or "params" in recorded
    return {"status": status or "failed", "error": str(err) or type(err).__name__, "retry": retry}


def _clean_up(invocation: Invocation, out_dir: Path, err: Exception, multirun: bool, cfg: DictConfig) -> None:
    """What a failed command made goes again: a training run's directory as `_unstarted` says; another command's
    folder when it holds nothing but Hydra's record (eval refused before eval.log; lr-find writes its files last), a
    folder out= named only when the command made it; the folders Hydra made above them."""
    if invocation.command.trains:
        _unstarted(out_dir, err, multirun, cfg)
    elif not invocation.out_existed and out_dir.is_dir():
        if {p.name for p in out_dir.iterdir()} <= {".hydra"}:
            shutil.rmtree(out_dir / ".hydra", ignore_errors=True)
        # Hydra's DATE/TIME folders, or out= alone
        remove_empty(out_dir, parents=0 if invocation.out_existed is False else 1)
    for folder in invocation.missing:
        remove_empty(folder)


def _first_process() -> bool:
    """False in the processes of a job of several other than its first (torchrun's, a SLURM job's tasks), from
    their launcher's environment: also before, or without, their process group."""
    from runner.training.distributed import first_process

    return first_process()


def _told_by_rank_0(err: Exception) -> bool:
    """Whether rank 0 of this job of several processes says what `err` says: a stop, which every rank agrees on and
    rank 0 tells with the rank it was sent to. Not a lost process, which rank 0 may be."""
    from runner.io.errors import Interrupted
    from runner.training import distributed

    return isinstance(err, Interrupted) and not distributed.lost_a_peer()


def _unstarted(run_dir: Path, err: Exception, sweep: bool, cfg: DictConfig) -> None:
    """A training job that failed before its run directory was written (its config does not compose):
    a single run leaves no directory; a sweep's job records `failed` there, so the sweep lists it."""
    from runner.io.errors import Interrupted

    path = Path(run_dir)
    # rank 0 alone records a job of several processes; a directory with anything in it is RunDir's
    if not _first_process() or path.resolve() == Path.cwd().resolve() or not path.is_dir() or any(path.iterdir()):
        return
    # a job stopped before it began is run by the sweep's resume
    if sweep and not isinstance(err, Interrupted):
        from hydra.core.hydra_config import HydraConfig

        from runner.io.console import RunConsole
        from runner.run.provenance import provenance
        from runner.run.rundir import RunDir

        # recorded as any run that fails is: .hydra/, train.log, summary.json saying `failed` and why
        try:
            record = provenance(cfg, cast("DictConfig", HydraConfig.instance().cfg))
            with RunDir.claim(path, RunConsole(quiet=True), provenance=record, alone=True):
                raise err
        except Exception:
            # the job's own error reaches the user in _failed
            pass
        return
    remove_empty(path, parents=1)


def _absolute_root(cfg: DictConfig) -> None:
    """dataset.root and a dataset's own files (dataset.path, ...: DATA_FILE_KEYS) as absolute paths (`~` expanded):
    the run records where its data is, so that eval, predict and export from another directory find it."""
    from omegaconf import OmegaConf, open_dict

    from runner.config.command_line import DATA_FILE_KEYS

    if "dataset" not in cfg:
        return
    for key in ("root", *(k.removeprefix("dataset.") for k in DATA_FILE_KEYS)):
        # an interpolation is checked by check_resolves; a ??? by check_config
        if (
            key not in cfg.dataset
            or OmegaConf.is_interpolation(cfg.dataset, key)
            or OmegaConf.is_missing(cfg.dataset, key)
        ):
            continue
        value = cfg.dataset.get(key)
        if not isinstance(value, str) or not value:
            continue
        absolute = str(Path(value).expanduser().absolute())
        if absolute != value:
            with open_dict(cfg):
                cfg.dataset[key] = absolute


def _share_cores(cfg: DictConfig, hydra_cfg: HydraConf) -> None:
    """Jobs launched side by side (joblib's n_jobs, submitit's cpus_per_task) split the cores between them."""
    from hydra.types import RunMode
    from omegaconf import open_dict

    launcher = hydra_cfg.launcher or {}
    if cfg.trainer.get("num_threads") or hydra_cfg.mode != RunMode.MULTIRUN:
        return
    threads = launcher.get("cpus_per_task")
    n_jobs = launcher.get("n_jobs")
    if not threads and n_jobs:
        cores = os.cpu_count() or 1
        threads = max(1, cores // (cores if n_jobs < 0 else min(n_jobs, cores)))
    if threads:
        with open_dict(cfg):
            cfg.trainer.num_threads = int(threads)
