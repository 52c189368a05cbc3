"""The command line's arguments, before Hydra reads them: path arguments made what the user meant (a leading ~, a
path Hydra's grammar would refuse or misread), what Hydra would otherwise report with a traceback (a user config that
shadows a built-in, invalid YAML, an output directory that cannot be written), and the launchers' arguments (torchrun's
other ranks, a SLURM job's tasks started one by one). Nothing here imports torch or Hydra.

The checks a command declares (runner/commands/__init__.py, `Command.checks`) are pure functions of the arguments
and the environment: `check(args, env)` returns the arguments Hydra is to read, or a `Refusal`.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from runner.config.command_line import override, override_value

if TYPE_CHECKING:
    from collections.abc import Mapping

MULTIRUN = frozenset(("-m", "--multirun"))
# the flags that print instead of running a job: the command writes nothing
PRINTS = ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help")
# Hydra's modes: one at a time
MODES = ("-m", "--multirun", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")


@dataclass(frozen=True)
class Refusal:
    """A command line refused before Hydra reads it: what stderr gets (nothing on a process of a job of several
    that is not the first: the first says it) and the exit code."""

    text: str
    exit_code: int


def given(args: list[str], *keys: str) -> str | None:
    """The value of the first `KEY=value` in `args` whose KEY is one of `keys`, as Hydra gives it to the config
    ('resume="runs/lr=0.001"': runs/lr=0.001); None when there is none."""

    prefixes = tuple(f"{key}=" for key in keys)
    return next((override_value(a) for a in args if a.startswith(prefixes)), None)


def path_arguments(args: list[str]) -> list[str]:
    """Every path argument (command_line.PATH_KEYS) made what the user meant, before anything reads them.

    A leading ~ (or ~user) becomes the home folder, in the text as given, so quotes and interpolations
    (`"~/runs/${now:%H}"`) stay: Hydra would make a folder named ~ of 'hydra.run.dir="~/runs/a"' (quoted, since its
    grammar refuses a bare ~). A path Hydra's grammar refuses (`runs/lr=0.001`, `ü`) is quoted for it, and so is
    one it would misread that exists (a sweep job's directory named from its overrides, `lr=0.1,seed=0`, which
    Hydra reads as a list). Only a comma in a path that does not exist stays Hydra's to read: a sweep over paths."""
    from runner.config.command_line import PATH_KEYS, grammar_refuses

    fixed = []
    for arg in args:
        key, _, value = arg.partition("=")
        if key in PATH_KEYS:
            leading = re.match(r"""(['"]?)(~[\w.-]*)(?=/|$|['"])""", value)
            home = os.path.expanduser(leading.group(2)) if leading else None
            if leading and home and home != leading.group(2) and not set(home) & set("\\'\"$"):
                value = f"{leading.group(1)}{home}{value[leading.end() :]}"
                arg = f"{key}={value}"
            # the user's own quoting, or an interpolation
            quoted = value[:1] in ("'", '"') or "${" in value
            if not quoted and (grammar_refuses(arg) or _exists(value)):
                # as it is when Hydra reads it back as this path, else quoted
                arg = override(key, value)
        fixed.append(arg)
    return fixed


def user_paths(args: list[str], env: Mapping[str, str]) -> list[str]:
    """path_arguments, as a command's check."""
    return path_arguments(args)


def _exists(path: str) -> bool:
    try:
        return Path(path).exists()
    # a name too long for the file system: unwritable_dir tells it
    except OSError:
        return False


def preflight(args: list[str], writes: bool = True) -> str | None:
    """What Hydra would report with a traceback, reported plainly: a user config that shadows a built-in or is not
    valid YAML (for every flag: `--cfg job` too), and, when the command `writes`, an output directory that cannot
    be created or written to. Returns an error message or None."""
    import yaml

    for i, arg in enumerate(args):
        config_dir = (
            args[i + 1]
            if arg in ("--config-dir", "-cd") and i + 1 < len(args)
            else (arg.split("=", 1)[1] if arg.startswith("--config-dir=") else None)
        )
        if not config_dir:
            continue
        for path in sorted(Path(config_dir).rglob("*.yaml")):
            relative = path.relative_to(config_dir)
            # Hydra searches runner's own configs first and would ignore this file
            if _builtin_config(relative):
                group, option = relative.parent.as_posix(), relative.stem
                fix = (
                    f"Rename it (e.g. {group}/my_{option}.yaml, then {group}=my_{option})"
                    if group != "."
                    else "Rename it, and override keys on the command line instead"
                )
                return (
                    f"{path} has the name of runner's built-in config {relative.as_posix()}, which Hydra would use "
                    f"instead of yours, silently. {fix}."
                )
            try:
                yaml.safe_load(path.read_text())
            except yaml.YAMLError as err:
                mark = getattr(err, "problem_mark", None)
                where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
                problem = getattr(err, "problem", None) or err
                return f"{path} is not valid YAML{where}: {problem}. Fix the file and run again."
    return _unwritable_output(args) if writes else None


def writable_output(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """preflight as a command's check: a command that only prints (--help, --cfg, --info) writes nothing."""
    problem = preflight(args, writes=not any(a in PRINTS for a in args))
    return Refusal(f"error: {problem}", 1) if problem else args


def one_mode(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """Hydra's modes one at a time: given -m with --cfg, Hydra raises a ValueError with a traceback."""
    modes = [a for a in args if a in MODES]
    if len({"-m" if m == "--multirun" else m for m in modes}) > 1:
        return Refusal(
            f"error: {' and '.join(modes)} cannot be combined: Hydra prints the config (--cfg, --info) of one job, "
            f"not of a sweep. Drop -m and give one value per key to see a job's config.",
            2,
        )
    return args


def one_process(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """`runner lr-find`: one range test, in one process (not under torchrun, not a sweep)."""
    if int(env.get("WORLD_SIZE", "1")) > 1 or MULTIRUN & set(args):
        return Refusal(
            "error: runner lr-find runs one range test in one process: start it without torchrun and without -m (for "
            "several settings, run it once per setting).",
            2,
        )
    return args


def out_argument(args: list[str], env: Mapping[str, str]) -> list[str]:
    """predict's and export's out=: the folder Hydra makes and the command writes in (hydra.run.dir)."""
    out = given(args, "out")
    return [override("hydra.run.dir", out), *args] if out and out != "null" else args


def launcher_arguments(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """`runner train` as one process of a job of several: torchrun's ranks (torchrun_arguments), or a SLURM job's
    tasks started one by one without a sweep, refused (slurm_tasks_alone)."""
    if int(env.get("WORLD_SIZE", "1")) > 1:
        return torchrun_arguments(args, env)
    tasks = int(env.get("SLURM_NTASKS", "1"))
    if tasks > 1 and not MULTIRUN & set(args):
        return Refusal(slurm_tasks_alone(tasks), 2)
    return args


def _unwritable_output(args: list[str]) -> str | None:
    """The directory the command would write (hydra.run.dir, hydra.sweep.dir, predict's and export's out=, the run
    that resume= continues, else outputs/), when it cannot be created or written to: the message, with the key that
    points elsewhere. None when it can."""
    from runner.io.files import unwritable_dir

    key = next((k for k in ("hydra.run.dir", "hydra.sweep.dir", "out", "resume") if given(args, k)), None)
    out = (given(args, key) if key else None) or "outputs"
    if out == "null":
        key, out = None, "outputs"
    problem = unwritable_dir(out)
    if not problem:
        return None
    fix = {
        None: "Run from a directory you can write to, or point hydra.run.dir (hydra.sweep.dir for -m) at one.",
        "resume": "Make it writable (chmod u+w), or copy the run somewhere you can write and resume the copy.",
    }.get(key, f"Point {key}= at a folder you can create and write to.")
    return f"{problem} {fix}"


def overrides_of(args: list[str]) -> list[str]:
    """The config overrides in a command line: neither flags (and their values) nor Hydra's own."""
    flags = {i for i, a in enumerate(args) if a.startswith("-")}
    flags |= {
        i + 1 for i in flags if args[i] in ("--config-dir", "-cd", "--cfg", "-c", "--package", "-p", "--info", "-i")
    }
    return [a for i, a in enumerate(args) if i not in flags and not a.startswith(("hydra.", "hydra/"))]


def _builtin_config(relative: Path) -> bool:
    """True when runner ships a config at this path (model/cnn.yaml, train.yaml)."""
    from importlib.resources import files

    return files("runner.configs").joinpath(*relative.parts).is_file()


def torchrun_arguments(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """Under torchrun: only rank 0 gets a run directory of its own. A refusal when the command cannot run under
    torchrun, which rank 0 alone says (every process of the job starts here)."""
    first = int(env.get("RANK", "0")) == 0
    problem = None
    if MULTIRUN & set(args):
        problem = "runner: -m/--multirun cannot run under torchrun; launch one torchrun per configuration."
    elif int(env.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and not given(args, "hydra.run.dir", "resume"):
        problem = (
            "error: torchrun --max-restarts restarts every process of the job with the same command, and runner "
            "resumes a run only in the same directory, which a new start's date and time would not be: name it with "
            "hydra.run.dir=DIR (or resume=DIR). Nothing was changed."
        )
    if problem:
        return Refusal(problem if first else "", 2)
    # the process group is joined in the task, with trainer.ddp_timeout
    if first:
        return args
    # the other ranks write nothing: no directory, no .hydra; they are given rank 0's directory in the task
    return [*args, "hydra.run.dir=.", "hydra.output_subdir=null"]


def slurm_tasks_alone(tasks: int) -> str:
    """Why `runner train` refuses to run, by itself, as one of a SLURM job's `tasks` (srun runner train, or a batch
    script of --ntasks=2 without srun): each task would train alone, and every task but one would write a run
    directory of its own or clash with another's (lightning-hydra-template#393)."""
    return (
        f"error: this is a SLURM job of {tasks} tasks (SLURM_NTASKS={tasks}), and runner would train in each of them "
        f"alone. For one run over the job's GPUs, start one torchrun per node, which starts a process per GPU: srun "
        f"--ntasks-per-node=1 torchrun --nnodes=$SLURM_NNODES --nproc-per-node=GPUS --rdzv-backend=c10d "
        f"--rdzv-endpoint=$(scontrol show hostnames $SLURM_JOB_NODELIST | head -n1):29500 -m runner train ...; or "
        f"submit from a login node with runner train -m hydra/launcher=slurm_ddp. For one process, ask SLURM for "
        f"--ntasks=1. Nothing was changed."
    )


def launcher_without_sweep(hydra_overrides: list[str]) -> str | None:
    """Why a `runner train` job that Hydra runs alone (no -m, no hydra.mode=MULTIRUN from a config such as
    hparams_search) is refused when its command line names a launcher (hydra/launcher=..., hydra.launcher.KEY=...,
    among Hydra's own `hydra_overrides`): Hydra uses a launcher only for a sweep, so the job would run here, in one
    process, with the launcher's settings silently ignored (hydra.launcher.tasks_per_node=2 would train alone).
    None when it names none."""
    named = next((o for o in hydra_overrides if o.startswith(("hydra/launcher=", "hydra.launcher."))), None)
    if named is None:
        return None
    return (
        f"{named} takes effect only in a sweep: without -m Hydra runs this one job here, in this process, and ignores "
        f"the launcher. Add -m (a sweep of one job is one run, in outputs/multirun/): runner train -m {named} ..."
    )
