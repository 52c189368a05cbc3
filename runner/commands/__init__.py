"""What `runner --help` lists, one module per command (train.py, eval.py, predict.py, export.py, lr_find.py, report.py,
diff.py), and `COMMANDS`, each command declared once: the CLI (runner/cli.py) dispatches from these records. Report's
parts: report_sections.py (a section per dataset, the one rule of best, verdicts), report_tables.py (its tables),
report_plot.py (sweep.png).

A new command is one `Command` below and its module: its job function is named by text (imported when the command
runs, so that `runner --help` stays torch-free), its argv checks are runner/config/arguments.py's pure functions
(the arguments in, the new arguments or a `Refusal` out).
"""

from __future__ import annotations

import pkgutil
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from runner.config.arguments import (
    MULTIRUN,
    Refusal,
    given,
    launcher_arguments,
    one_mode,
    one_process,
    out_argument,
    user_paths,
    writable_output,
)
from runner.config.command_line import override
from runner.sweeps.folds import folds_argument

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    ArgvCheck = Callable[[list[str], Mapping[str, str]], "list[str] | Refusal"]


@dataclass(frozen=True)
class Command:
    """One command of `runner`, as the CLI needs to know it."""

    name: str
    # its line in `runner --help`: what it does, then an example
    what: str
    example: str
    # "module:function", imported when the command runs; Hydra's commands' take (cfg, out_dir[, overrides]), report's
    # and diff's the arguments after the command
    job: str
    # the primary config, configs/<config>.yaml; None: the command reads runs without Hydra
    config: str | None = None
    # the command line's checks before Hydra reads it, in order (runner/config/arguments.py)
    checks: tuple[ArgvCheck, ...] = ()
    # a training run: a run directory of its own (RunDir records a failure there), its config checked in full, a
    # sweep's jobs, one job of several processes (torchrun, SLURM); else a folder that a failure removes if empty
    trains: bool = False
    # `+key=` refused at the top level (config/checks.command_keys); lr-find's job and train check their own
    closed_keys: bool = True
    # dataset.root and the dataset's files made absolute, as a run records them (train, and lr-find's setup)
    data_paths: bool = False
    # the job takes the user's overrides after the output folder (eval's record, lr-find's `runner train` line)
    overrides: bool = False
    # the key that names a run whose own group choices are selected before the user's overrides, and those groups
    run_key: str | None = None
    run_groups: tuple[str, ...] = ()
    # the folders under outputs/ that Hydra makes for the command's own folder: a failure removes them if empty
    outputs: tuple[str, ...] = ()

    def job_function(self) -> Callable[..., Any]:
        """The job, imported now (the standard library's reader of "module:name", as data/kinds.py's)."""
        return pkgutil.resolve_name(self.job)

    def usage(self) -> str:
        """Its line in `runner --help`."""
        return f"  {self.name:<9}{self.what:<29}{self.example}"


def resume_argument(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """`runner train resume=DIR`: the run continues in its own directory (runner/run/rundir.py decides how), so
    hydra.run.dir=DIR goes first (argparse takes no override after a flag's value: `--cfg job hydra.run.dir=...`);
    with -m, DIR is a sweep, resumed with its own command (sweeps/jobs.resume_arguments)."""
    resume = given(args, "resume")
    if not resume:
        return args
    if MULTIRUN & set(args):
        from runner.sweeps.jobs import resume_arguments

        args, problem = resume_arguments(resume, args)
        return Refusal(f"error: {problem}", 1) if problem else args
    from runner.run.resume import resume_argument_problem

    problem = resume_argument_problem(resume)
    if problem:
        return Refusal(f"error: {problem}", 1)
    return [override("hydra.run.dir", resume), *args]


# every Hydra command's arguments: paths made what the user meant first, and what Hydra would report with a traceback
PATHS = (user_paths,)
HYDRAS = (one_mode, writable_output)

COMMANDS = {
    command.name: command
    for command in (
        Command(
            "train",
            "train a model:",
            "runner train model=cnn dataset=digits",
            job="runner.commands.train:train_job",
            config="train",
            checks=(*PATHS, folds_argument, launcher_arguments, *HYDRAS, resume_argument),
            trains=True,
            closed_keys=False,
            data_paths=True,
            overrides=True,
            run_key="resume",
            run_groups=("dataset", "model", "optimizer", "scheduler"),
            outputs=("outputs/multirun", "outputs/fast_dev_run/multirun", "outputs/fast_dev_run"),
        ),
        Command(
            "eval",
            "evaluate a run's checkpoint:",
            "runner eval ckpt=outputs/2026-11-22/10-31-07",
            job="runner.commands.eval:eval_job",
            config="eval",
            checks=(*PATHS, *HYDRAS),
            overrides=True,
            run_key="ckpt",
            run_groups=("dataset", "model"),
            outputs=("outputs/eval",),
        ),
        Command(
            "predict",
            "a run's model on new inputs:",
            "runner predict ckpt=outputs/2026-11-22/10-31-07 input=photos/",
            job="runner.commands.predict:predict_job",
            config="predict",
            checks=(*PATHS, *HYDRAS, out_argument),
            outputs=("outputs/predict",),
        ),
        Command(
            "export",
            "safetensors, pt2, onnx:",
            "runner export ckpt=outputs/2026-11-22/10-31-07 format=onnx",
            job="runner.commands.export:export_job",
            config="export",
            checks=(*PATHS, *HYDRAS, out_argument),
            outputs=("outputs/export",),
        ),
        Command(
            "lr-find",
            "a learning-rate range test:",
            "runner lr-find model=mlp optimizer=sgd",
            job="runner.commands.lr_find:lr_find_job",
            config="lr_find",
            checks=(*PATHS, one_process, *HYDRAS),
            closed_keys=False,
            data_paths=True,
            overrides=True,
            outputs=("outputs/lr_find",),
        ),
        Command(
            "report",
            "compare runs and sweeps:",
            "runner report outputs/multirun/2026-11-22/10-31-07",
            job="runner.commands.report:main",
        ),
        Command(
            "diff",
            "two runs, key by key:",
            "runner diff outputs/2026-11-22/10-31-07 outputs/2026-11-23/09-12-44",
            job="runner.commands.diff:main",
        ),
    )
}


def checked_arguments(command: Command, args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """`args` through every check of `command`, in order: the arguments Hydra is to read, or the first refusal."""
    for check in command.checks:
        checked = check(args, env)
        if isinstance(checked, Refusal):
            return checked
        args = checked
    return args
