"""The `runner` command: `runner train|eval|predict|export|lr-find [key=value ...] [Hydra flags]`, `runner report
PATHS`, `runner diff A B`.

Each command is declared once, as a record in runner/commands/__init__.py (`COMMANDS`): its primary config
(configs/train.yaml, eval.yaml, ...), its job, the checks of its command line. This module dispatches from those
records: the checks, then Hydra with the rest of the command line unchanged (overrides, --help, --cfg job, --info, -m,
--config-dir); Hydra's task (runner/task.py) runs the job, with one failure funnel for every command. Nothing here
imports torch, so `runner --help` answers at once.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from runner.commands import COMMANDS, Command, checked_arguments
from runner.config.arguments import Refusal, given, out_argument, overrides_of
from runner.io.files import remove_empty
from runner.task import Invocation, Task

if TYPE_CHECKING:
    from collections.abc import Callable, Iterator

    from omegaconf import DictConfig

    from runner.io.signals import StopSignals

USAGE = f"""\
usage: runner COMMAND [key=value ...] [hydra flags]

commands:
{chr(10).join(command.usage() for command in COMMANDS.values())}

`runner COMMAND --help` lists every config group, its options and every key you can override.
Sweeps: runner train -m optimizer.lr=0.1,0.01,0.001
"""


def invocation(command: Command, args: list[str]) -> Invocation:
    """What the checked command line `args` asks of `command` beyond Hydra's reading of it."""
    out = given(args, "out") if out_argument in command.checks else None
    out = out if out and out != "null" else None
    # a training run's folder named on the command line is its own; the other commands' outputs/<command> is Hydra's
    # still (made for them when missing, removed again when they fail)
    named = out or (command.trains and given(args, "hydra.run.dir", "hydra.sweep.dir"))
    return Invocation(
        command,
        selected=run_choices(args, command.run_groups, command.run_key) if command.run_key else [],
        out_existed=None if out is None else Path(out).exists(),
        # a folder the command line names is Hydra's to make (and _clean_up's to remove), not outputs/
        missing=[] if named else [Path(p) for p in (*command.outputs, "outputs") if not Path(p).exists()],
    )


def _register_sweepers() -> None:
    """runner's sweepers (hydra_plugins/runner_sweepers), registered by hand as well (Hydra finds plugins by walking
    the hydra_plugins package on disk, which an editable install does not expose to it), and runner's grid sweeper
    stored as hydra/sweeper=basic, Hydra's default, so that every -m sweep gets its retries and fail_fast while
    hparams_search configs can still select another sweeper."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    # scans first: the scan executes Hydra's plugin modules again
    plugins = Plugins.instance()
    import hydra_plugins.runner_sweepers as ours

    for sweeper in (ours.GridSweeper, ours.OptunaSweeper):
        plugins.register(sweeper)
    ConfigStore.instance().store(group="hydra/sweeper", name="basic", node=ours.GridSweeperConf, provider="runner")


def _hydra_dir() -> str | None:
    """The job's folder Hydra is making or writing in, once it has one (None before)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    if not HydraConfig.initialized():
        return None
    return OmegaConf.select(cast("DictConfig", HydraConfig.get()), "runtime.output_dir")


@contextmanager
def _hydra_storage_errors(invocation: Invocation) -> Iterator[None]:
    """What Hydra itself writes before or around runner's code (a job's folder, its .hydra/ files for eval; a sweep's
    job folders) is told as runner tells a write the storage refused, naming the file: Hydra would print the OSError
    as a traceback. Both wrap Hydra's module-level functions, which Hydra looks up when it calls them, for the
    time of the command."""
    import hydra._internal.utils as hydra_utils
    import hydra.core.utils as hydra_core

    report, save_config = hydra_utils.run_and_report, hydra_core._save_config

    def run_and_report(func: Callable[[], Any]) -> Any:
        return report(lambda: _told_storage_error(func, invocation))

    def saved_config(cfg: DictConfig, filename: str, output_dir: Path) -> None:
        try:
            return save_config(cfg, filename, output_dir)
        except OSError as err:
            from runner.io.errors import StorageError

            # a write, of Hydra's record of the job (a failed write() names no file): an EIO or EACCES is one too
            raise StorageError.of(err.filename or output_dir / filename, err) from err

    hydra_utils.run_and_report, hydra_core._save_config = run_and_report, saved_config
    try:
        yield
    finally:
        hydra_utils.run_and_report, hydra_core._save_config = report, save_config


def _told_storage_error(func: Callable[[], Any], invocation: Invocation) -> Any:
    """`func()`, Hydra's work, with a write the storage refused told in one paragraph (exit with its code); runner's
    other errors go on to Hydra's report, as they did."""
    from runner.io.errors import StorageError, storage_error

    try:
        return func()
    except Exception as err:
        # what reaches here unconverted is Hydra's own work (its job folder, its log file, its records): runner's
        # task tells its own errors first, so an I/O or permission error here is a write's too
        where = _hydra_dir() or "the output folder Hydra was making"
        told = None if os.environ.get("HYDRA_FULL_ERROR") == "1" else storage_error(err, where=where)
        if not isinstance(told, StorageError):
            raise
    from runner.config.command_line import held_stderr
    from runner.io.console import error

    held_stderr.release()
    error(f"{told}{invocation.continue_sweep(' Continue the sweep with: ')}")
    raise SystemExit(told.exit_code)


def run_choices(args: list[str], groups: tuple[str, ...], key: str) -> list[str]:
    """`dataset=X model=Y ...` as the run named by `key=` (eval's ckpt=, train's resume=) chose them.

    eval.yaml composes the same groups as training; selecting the run's own options first
    means an override like `dataset.root=...` is checked against the run's dataset, not the
    default one. Options that are not among runner's configs (a user's --config-dir) are left out.
    """
    from importlib.resources import files

    from omegaconf import OmegaConf

    from runner.io.files import run_dir_of

    ckpt = given(args, key)
    if not ckpt:
        return []
    run_dir = run_dir_of(ckpt)
    try:
        choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    except Exception:
        # not a runner run directory: eval reports that itself, with a better message
        return []
    configs = files("runner.configs")
    return [
        f"{group}={choices[group]}"
        for group in groups
        if group in choices and configs.joinpath(group, f"{choices[group]}.yaml").is_file()
    ]


# libgomp's spins before a waiting thread sleeps: about 100,000 a millisecond (libgomp's env.c), so 0.3 ms; measured
# against 0 (PASSIVE alone), 10,000 and libgomp's own 300,000 by `make bench-load` (docs/figures.md)
SPIN_COUNT = "30000"


def main(argv: list[str] | None = None) -> int:
    """The `runner` command; returns its exit code. From its first line a stop signal is only recorded
    (runner/io/signals.py): the command stops at its next safe point, or at once on a second signal. The
    recorder stays installed after the command, and the signals are ignored once every exit handler ran, so that a
    signal while the process exits is not a kill."""
    # OpenMP's threads spin only briefly (about 0.3 ms) while they wait for work, then sleep: beside busy processes
    # libgomp's own 3 ms spin made the default run several times slower than one thread, and sleeping at once cost the
    # quiet run's short steps their speed. libgomp (torch's OpenMP here) reads both once, when torch loads it; the
    # policy is for other OpenMP runtimes. No float changes (docs/figures.md, Under load). A wait the user set wins.
    if "OMP_WAIT_POLICY" not in os.environ and "GOMP_SPINCOUNT" not in os.environ:
        os.environ.update(OMP_WAIT_POLICY="PASSIVE", GOMP_SPINCOUNT=SPIN_COUNT)
    import atexit

    from runner.io import signals

    stop = signals.install()
    # registered first, so run last: after every other exit handler
    atexit.register(signals.ignore)
    try:
        return _main(argv, stop)
    except KeyboardInterrupt:
        # a second signal before Hydra started
        print("interrupted", file=sys.stderr)
        return 130


def _without_hydra(command: Command, rest: list[str]) -> int:
    """`runner report` and `runner diff`, which read runs without Hydra: a refusal (a RunnerError) or a write the
    storage refused (summary.csv, sweep.png) is told in one paragraph, as every other command's, not as a traceback."""
    from runner.io.console import error
    from runner.io.errors import storage_error

    try:
        return command.job_function()(rest)
    except Exception as err:
        told = storage_error(err)
        if told is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        error(str(told))
        return told.exit_code


def _answered(argv: list[str]) -> int | None:
    """The exit code of a command line answered here (--help, --version, an unknown command); None for a command."""
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv[0] in ("-V", "--version"):
        from runner import __version__

        print(f"runner {__version__}")
        return 0
    if argv[0] not in COMMANDS:
        print(
            f"runner: unknown command '{argv[0]}'. Use one of: {', '.join(COMMANDS)} (see runner --help).",
            file=sys.stderr,
        )
        return 2
    return None


def _main(argv: list[str] | None, stop: StopSignals) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    answered = _answered(argv)
    if answered is not None:
        return answered
    command, rest = COMMANDS[argv[0]], argv[1:]
    if command.config is None:
        return _without_hydra(command, rest)
    checked = checked_arguments(command, rest, os.environ)
    if isinstance(checked, Refusal):
        if checked.text:
            print(checked.text, file=sys.stderr)
        return checked.exit_code
    asked = invocation(command, checked)
    from runner.config.resolvers import register_resolvers

    register_resolvers()
    # Hydra reads sys.argv; the user's own overrides come after the run's choices, and win
    sys.argv = [f"runner {command.name}", *asked.selected, *checked]
    if stop.requested:
        # during the imports: nothing has been written yet
        print(
            f"interrupted: stopped by {stop.requested} before the command started; nothing was changed", file=sys.stderr
        )
        return 130
    return _hydra(asked, overrides_of(rest))


def _hydra(asked: Invocation, overrides: list[str]) -> int:
    """Hydra runs the command's config and its task; its own refusals told as runner's (`overrides`: the user's, for
    them). A sweep that did not complete exits 1."""
    import hydra

    from runner.config.command_line import held_stderr, hydra_problem

    config = asked.command.config
    # report and diff run without Hydra (_without_hydra)
    assert config is not None
    _register_sweepers()
    held_stderr.install()
    try:
        with _hydra_storage_errors(asked):
            hydra.main(config_path="pkg://runner.configs", config_name=config, version_base="1.3")(Task(asked))()
    except SystemExit as end:
        text = held_stderr.release(write=False)
        problem = text and hydra_problem(text, config, overrides)
        # told as runner tells bad input, with the fix, instead of Hydra's words
        if problem:
            print(f"error: {problem}", file=sys.stderr)
        elif text:
            sys.stderr.write(text)
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        # refused by a sweeper, or by Hydra: the folders made for this command go again if empty
        if code:
            for folder in asked.missing:
                remove_empty(folder)
        return code
    except KeyboardInterrupt:
        # a second signal, or a stop that ended a sweep
        held_stderr.release()
        print(f"interrupted{asked.continue_sweep('; continue the sweep with: ')}", file=sys.stderr)
        return 130
    finally:
        # the launcher ran the jobs elsewhere, or a flag printed and returned
        held_stderr.release()
    return 1 if asked.command.trains and _sweep_incomplete() else 0


def _sweep_incomplete() -> bool:
    """Whether the last sweep of this process left jobs that did not complete (its summary counts them). Hydra
    imports its callback for every `runner train` (configs/train.yaml), so asking costs nothing."""
    from runner.sweeps.jobs import SweepSummary

    return SweepSummary.incomplete > 0


if __name__ == "__main__":
    sys.exit(main())
