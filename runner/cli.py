"""The `runner` command: `runner train|eval|predict|export [key=value ...] [Hydra flags]`, `runner report PATHS`,
`runner diff A B`.

The subcommand picks the primary config (configs/train.yaml, eval.yaml, predict.yaml, export.yaml); the rest
of the command line is Hydra's, unchanged: overrides, --help, --cfg job, --info, -m,
--config-dir. Nothing here imports torch, so `runner --help` answers at once.
"""

import contextlib
import os
import re
import shlex
import shutil
import sys
import traceback
from pathlib import Path

from runner.config.command_line import command_arg, override, override_value
from runner.io.files import remove_empty

USAGE = """\
usage: runner COMMAND [key=value ...] [hydra flags]

commands:
  train    train a model:               runner train model=cnn dataset=digits
  eval     evaluate a run's checkpoint: runner eval ckpt=outputs/2026-11-22/10-31-07
  predict  a run's model on new inputs: runner predict ckpt=outputs/2026-11-22/10-31-07 input=photos/
  export   safetensors, pt2, onnx:      runner export ckpt=outputs/2026-11-22/10-31-07 format=onnx
  lr-find  a learning-rate range test:  runner lr-find model=mlp optimizer=sgd
  report   compare runs and sweeps:     runner report outputs/multirun/2026-11-22/10-31-07
  diff     two runs, key by key:        runner diff outputs/2026-11-22/10-31-07 outputs/2026-11-23/09-12-44

`runner COMMAND --help` lists every config group, its options and every key you can override.
Sweeps: runner train -m optimizer.lr=0.1,0.01,0.001
"""

COMMANDS = ("train", "eval", "predict", "export", "lr-find", "report", "diff")


def _given(args, *keys):
    """The value of the first `KEY=value` in `args` whose KEY is one of `keys`, as Hydra gives it to the config
    ('resume="runs/lr=0.001"': runs/lr=0.001); None when there is none."""

    prefixes = tuple(f"{key}=" for key in keys)
    return next((override_value(a) for a in args if a.startswith(prefixes)), None)


def _path_arguments(args):
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
            home = leading and os.path.expanduser(leading.group(2))
            if leading and home != leading.group(2) and not set(home) & set("\\'\"$"):
                value = f"{leading.group(1)}{home}{value[leading.end() :]}"
                arg = f"{key}={value}"
            quoted = value[:1] in ("'", '"') or "${" in value  # the user's own quoting, or an interpolation
            if not quoted and (grammar_refuses(arg) or _exists(value)):
                arg = override(key, value)  # as it is when Hydra reads it back as this path, else quoted
        fixed.append(arg)
    return fixed


def _exists(path):
    try:
        return Path(path).exists()
    except OSError:  # a name too long for the file system: unwritable_dir tells it
        return False


_sweep = {}  # {"dir": the sweep's directory} once a job of a sweep has started, for the message of a stopped sweep
_selected = []  # the run's own group choices that main() put before the user's eval overrides
# predict/export: {"made": whether this command creates out=} or {"missing": outputs/<command>, outputs if new}
_out = {}


def _task(cfg):
    """Hydra's task function: run the job named by the primary config, report user errors plainly.

    In a sweep a failed job returns its failure instead of raising, so the other jobs run
    and the sweep summary (runner/commands/sweep.py) lists it; the sweep then exits non-zero.
    """
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from runner.config.checks import check_keys, check_resolves, command_keys, pin_input_shape
    from runner.config.command_line import held_stderr
    from runner.io import signals
    from runner.io.console import error
    from runner.io.errors import Interrupted, RunnerError

    held_stderr.release()  # the config composed: what Hydra wrote is not an error
    hydra_cfg = HydraConfig.get()
    multirun = hydra_cfg.mode == RunMode.MULTIRUN
    if multirun:
        _sweep["dir"] = hydra_cfg.sweep.dir
    try:
        stop = signals.install()
        if hydra_cfg.job.config_name == "train":
            from runner.config.checks import checked_value
            from runner.training import distributed

            # torchrun, or hydra/launcher=slurm with several tasks: one process group, one run
            distributed.join(checked_value(cfg, "trainer.ddp_timeout"))
            stop = distributed.agreed(stop)  # so that a stop before the job starts is every process's
        stop.check("before the job started; nothing was changed")  # a sweep stops here, between its jobs
        if hydra_cfg.job.config_name not in ("train", "lr_find"):  # `+key=` is refused by every command, not ignored
            check_keys(cfg, top=command_keys(hydra_cfg.job.config_name))
        if hydra_cfg.job.config_name in ("predict", "export"):
            return _use_job(cfg, hydra_cfg)
        if hydra_cfg.job.config_name == "lr_find":
            from runner.commands.lr_find import lr_find_job

            _absolute_root(cfg)
            return lr_find_job(cfg, hydra_cfg.runtime.output_dir, list(hydra_cfg.overrides.task))
        if hydra_cfg.job.config_name == "eval":
            from runner.commands.eval import eval_job

            user_overrides = list(hydra_cfg.overrides.task)[len(_selected) :]
            return eval_job(cfg, hydra_cfg.runtime.output_dir, user_overrides)
        from runner.commands.train import train_job
        from runner.run.rundir import provenance

        _absolute_root(cfg)  # before the resolvers read the files (dataset=csv): one plan, of the recorded path
        if not cfg.get("resume"):  # a resumed run's config is its own (last.pt), checked against the resume table
            pin_input_shape(cfg)
            check_resolves(cfg)
            check_keys(cfg)
        _share_cores(cfg, hydra_cfg)
        run_dir = distributed.broadcast(hydra_cfg.runtime.output_dir)  # under torchrun: rank 0's, for every rank
        user_overrides = list(hydra_cfg.overrides.task)[len(_selected) :]
        continue_with = report = None
        if multirun:
            from runner.commands.search import trial_reporter
            from runner.commands.sweep import sweep_job

            # rank 0 alone reads the job's directory (another task's claim could already have marked it running)
            kept, resume = distributed.decided_by_rank_0(
                lambda: (sweep_job(cfg, run_dir, user_overrides, hydra_cfg.job.num), cfg.get("resume"))
            )
            if kept is not None:
                return kept
            if resume:
                from omegaconf import open_dict

                with open_dict(cfg):
                    cfg.resume = resume
            continue_with = f"runner train -m {command_arg('resume', hydra_cfg.sweep.dir)}"
            report = distributed.asked_of_rank_0(lambda: trial_reporter(hydra_cfg))
        record = provenance(cfg, HydraConfig.instance().cfg)
        summary = train_job(cfg, run_dir, user_overrides, record, continue_with=continue_with, report=report)
        return summary
    except Exception as err:
        sweep = multirun
        out_dir = Path(hydra_cfg.runtime.output_dir)
        if hydra_cfg.job.config_name == "train":
            _unstarted(out_dir, err, sweep, cfg)
        elif hydra_cfg.job.config_name == "lr_find":  # its files are written last: a failure leaves its folder empty
            remove_empty(out_dir, parents=1)
        elif hydra_cfg.job.config_name == "eval" and {p.name for p in out_dir.iterdir()} <= {".hydra"}:
            shutil.rmtree(out_dir / ".hydra", ignore_errors=True)  # refused before eval.log: Hydra's record only
            remove_empty(out_dir, parents=1)
        elif hydra_cfg.job.config_name in ("predict", "export") and _out.get("made", True):
            remove_empty(out_dir, parents=0 if "made" in _out else 1)  # a folder that existed before the command stays
        for folder in _out.get("missing", []):  # outputs/eval, outputs: made by Hydra for this command
            remove_empty(folder)
        if os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        if isinstance(err, RunnerError):
            error(str(err))
            if not sweep:
                sys.exit(err.exit_code)
            if isinstance(err, Interrupted) and _first_process(hydra_cfg):
                raise KeyboardInterrupt from None  # a stop ends the whole sweep, not one job (told by task 0's result)
        elif not sweep:
            raise  # a bug, not bad input: Hydra shows the traceback
        else:
            traceback.print_exc()
        # as the run directory tells it (a run that diverged raised too): the sweepers retry only `failed`
        from runner.run.records import read_summary, status_of

        recorded = read_summary(out_dir) if (out_dir / "summary.json").is_file() else {}
        status = status_of(out_dir, recorded) if recorded else None
        # retried by a sweeper (max_retries) unless runner refused the job in its setup: bad input fails again
        retry = not isinstance(err, RunnerError) or "params" in recorded
        return {"status": status or "failed", "error": str(err) or type(err).__name__, "retry": retry}
    finally:
        if os.environ.get("SUBMITIT_EXECUTOR"):  # a task of a submitit job runs this one job, then its process ends
            _leave_process_group()


def _first_process(hydra_cfg=None):
    """False in the processes of a job of several other than its first (torchrun's, a SLURM job's tasks), from
    their launcher's environment: also before, or without, their process group."""
    if hydra_cfg is not None and hydra_cfg.job.config_name != "train":
        return True
    from runner.training.distributed import first_process

    return first_process()


def _unstarted(run_dir, err, sweep, cfg):
    """A training job that failed before its run directory was written (its config does not compose):
    a single run leaves no directory; a sweep's job records `failed` there, so the sweep lists it."""
    from runner.io.errors import Interrupted

    path = Path(run_dir)
    if not _first_process() or path.resolve() == Path.cwd().resolve() or not path.is_dir() or any(path.iterdir()):
        return  # rank 0 alone records a job of several processes; a directory with anything in it is RunDir's
    if sweep and not isinstance(err, Interrupted):  # a job stopped before it began is run by the sweep's resume
        from hydra.core.hydra_config import HydraConfig

        from runner.io.console import RunConsole
        from runner.run.rundir import RunDir, provenance

        try:  # recorded as any run that fails is: .hydra/, train.log, summary.json saying `failed` and why
            record = provenance(cfg, HydraConfig.instance().cfg)
            with RunDir.claim(path, RunConsole(quiet=True), provenance=record, alone=True):
                raise err
        except Exception:
            pass  # the job's own error reaches the user below
        return
    remove_empty(path, parents=1)


def _use_job(cfg, hydra_cfg):
    """`runner predict` and `runner export`: they write only once everything is read and checked."""
    if hydra_cfg.job.config_name == "predict":
        from runner.commands.predict import predict_job

        return predict_job(cfg, hydra_cfg.runtime.output_dir)
    from runner.commands.export import export_job

    return export_job(cfg, hydra_cfg.runtime.output_dir)


def _preflight(args, writes=True):
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
        for path in sorted(Path(config_dir).rglob("*.yaml")) if config_dir else ():
            relative = path.relative_to(config_dir)
            if _builtin_config(relative):  # Hydra searches runner's own configs first and would ignore this file
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


def _unwritable_output(args):
    """The directory the command would write (hydra.run.dir, hydra.sweep.dir, predict's and export's out=, the run
    that resume= continues, else outputs/), when it cannot be created or written to: the message, with the key that
    points elsewhere. None when it can."""
    from runner.io.files import unwritable_dir

    key = next((k for k in ("hydra.run.dir", "hydra.sweep.dir", "out", "resume") if _given(args, k)), None)
    out = _given(args, key) if key else "outputs"
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


def _resume_sweep(sweep_dir, args):
    """`runner train -m resume=SWEEP`: the sweep's own command again, into its own directory (Hydra enumerates the
    same jobs in the same order); each job then decides from its directory (sweep_job). Returns (args, problem)."""
    saved = Path(sweep_dir) / "multirun.yaml"
    if not saved.is_file():
        return args, (
            f"{command_arg('resume', sweep_dir)} with -m names no sweep: there is no {saved}. Pass the directory of a "
            f"runner train -m sweep, e.g. resume=outputs/multirun/2026-11-22/10-31-07 (for one run, drop -m)."
        )
    extra = [a for a in args if a not in ("-m", "--multirun") and not a.startswith("resume=")]
    own = _overrides_of(extra)
    flags = [a for a in extra if a not in own and not a.startswith(("hydra.", "hydra/"))]
    if own:
        return args, (
            f"{command_arg('resume', sweep_dir)} continues the sweep as it was started, so '{own[0]}' cannot be added: "
            f"it would change the jobs already run. Give only Hydra's options (e.g. hydra/launcher=parallel); to train "
            f"one job further, resume that job's directory on its own (runner train resume=DIR trainer.epochs=N)."
        )
    from runner.run.records import sweep_overrides

    overrides = sweep_overrides(sweep_dir)
    if overrides is None:
        return args, (
            f"{saved} is not the multirun.yaml Hydra writes (no hydra.overrides in it), so the sweep's command "
            f"cannot be read from it. Run the sweep's original command again with "
            f"{command_arg('hydra.sweep.dir', sweep_dir)}."
        )
    task, hydra = overrides
    hydra_overrides = [o for o in hydra if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    config_dir = _saved_config_dir(saved)
    if config_dir and not any(f in ("--config-dir", "-cd") or f.startswith("--config-dir=") for f in flags):
        flags = ["--config-dir", config_dir, *flags]  # the sweep's own: its options may live there
    # flags first: argparse takes no override after a flag's value
    command = [
        "-m",
        *flags,
        *task,
        *hydra_overrides,
        override("hydra.sweep.dir", sweep_dir),
        *(a for a in extra if a not in flags),
    ]
    print(f"resuming the sweep in {sweep_dir}: runner train {shlex.join(command)}", file=sys.stderr)
    return command, None


def _overrides_of(args):
    """The config overrides in a command line: neither flags (and their values) nor Hydra's own."""
    flags = {i for i, a in enumerate(args) if a.startswith("-")}
    flags |= {
        i + 1 for i in flags if args[i] in ("--config-dir", "-cd", "--cfg", "-c", "--package", "-p", "--info", "-i")
    }
    return [a for i, a in enumerate(args) if i not in flags and not a.startswith(("hydra.", "hydra/"))]


def _saved_config_dir(multirun_yaml):
    """The --config-dir a sweep was started with (Hydra records it among hydra.runtime.config_sources), or None."""
    from omegaconf import OmegaConf

    try:
        sources = OmegaConf.load(multirun_yaml).hydra.runtime.config_sources
    except Exception:
        return None
    return next((s.path for s in sources if s.provider == "command-line" and s.schema == "file"), None)


def _builtin_config(relative):
    """True when runner ships a config at this path (model/cnn.yaml, train.yaml)."""
    from importlib.resources import files

    return files("runner.configs").joinpath(*relative.parts).is_file()


def _torchrun(args):
    """Under torchrun: only rank 0 gets a run directory of its own."""
    if any(a in ("-m", "--multirun") for a in args):
        print(
            "runner: -m/--multirun cannot run under torchrun; launch one torchrun per configuration.", file=sys.stderr
        )
        return None
    if int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0")) > 0 and not _given(args, "hydra.run.dir", "resume"):
        print(
            "error: torchrun --max-restarts restarts every process of the job with the same command, and runner "
            "resumes a run only in the same directory, which a new start's date and time would not be: name it with "
            "hydra.run.dir=DIR (or resume=DIR). Nothing was changed.",
            file=sys.stderr,
        )
        return None
    if int(os.environ.get("RANK", "0")) == 0:  # the process group is joined in _task, with trainer.ddp_timeout
        return args
    # the other ranks write nothing: no directory, no .hydra; they are given rank 0's directory in _task
    return [*args, "hydra.run.dir=.", "hydra.output_subdir=null"]


def _slurm_tasks_alone(tasks):
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


def _absolute_root(cfg):
    """dataset.root and a dataset's own files (dataset.path, ...: DATA_FILE_KEYS) as absolute paths (`~` expanded):
    the run records where its data is, so that eval, predict and export from another directory find it."""
    from omegaconf import OmegaConf, open_dict

    from runner.config.command_line import DATA_FILE_KEYS

    if "dataset" not in cfg:
        return
    for key in ("root", *(k.removeprefix("dataset.") for k in DATA_FILE_KEYS)):
        if (
            key not in cfg.dataset
            or OmegaConf.is_interpolation(cfg.dataset, key)
            or OmegaConf.is_missing(cfg.dataset, key)
        ):
            continue  # an interpolation is checked by check_resolves; a ??? by check_config
        value = cfg.dataset.get(key)
        if not isinstance(value, str) or not value:
            continue
        absolute = str(Path(value).expanduser().absolute())
        if absolute != value:
            with open_dict(cfg):
                cfg.dataset[key] = absolute


def _share_cores(cfg, hydra_cfg):
    """Jobs launched side by side (joblib's n_jobs, submitit's cpus_per_task) split the cores between them."""
    from hydra.types import RunMode
    from omegaconf import open_dict

    launcher = hydra_cfg.get("launcher") or {}
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


def _register_sweepers():
    """runner's sweepers (hydra_plugins/runner_sweepers), registered by hand as well (Hydra finds plugins by walking
    the hydra_plugins package on disk, which an editable install does not expose to it), and runner's grid sweeper
    stored as hydra/sweeper=basic, Hydra's default, so that every -m sweep gets its retries and fail_fast while
    hparams_search configs can still select another sweeper."""
    from hydra.core.config_store import ConfigStore
    from hydra.core.plugins import Plugins

    plugins = Plugins.instance()  # scans first: the scan executes Hydra's plugin modules again
    import hydra_plugins.runner_sweepers as ours

    for sweeper in (ours.GridSweeper, ours.OptunaSweeper):
        plugins.register(sweeper)
    ConfigStore.instance().store(group="hydra/sweeper", name="basic", node=ours.GridSweeperConf, provider="runner")


def run_choices(args, groups):
    """`dataset=X model=Y ...` as the run named by `ckpt=` (or `resume=`) chose them.

    eval.yaml composes the same groups as training; selecting the run's own options first
    means an override like `dataset.root=...` is checked against the run's dataset, not the
    default one. Options that are not among runner's configs (a user's --config-dir) are left out.
    """
    from importlib.resources import files

    from omegaconf import OmegaConf

    from runner.io.files import run_dir_of

    ckpt = _given(args, "ckpt", "resume")
    if not ckpt:
        return []
    run_dir = run_dir_of(ckpt)
    try:
        choices = OmegaConf.load(run_dir / ".hydra" / "hydra.yaml").hydra.runtime.choices
    except Exception:  # not a runner run directory: eval reports that itself, with a better message
        return []
    configs = files("runner.configs")
    return [
        f"{group}={choices[group]}"
        for group in groups
        if group in choices and configs.joinpath(group, f"{choices[group]}.yaml").is_file()
    ]


def main(argv=None):
    """The `runner` command; returns its exit code. From its first line a stop signal is only recorded
    (runner/io/signals.py): the command stops at its next safe point, or at once on a second signal. The
    recorder stays installed after the command, and the signals are ignored once every exit handler ran, so that a
    signal while the process exits is not a kill."""
    import atexit

    from runner.io import signals

    stop = signals.install()
    atexit.register(signals.ignore)  # registered first, so run last: after every other exit handler
    try:
        return _main(argv, stop)
    except KeyboardInterrupt:  # a second signal, or a stop that ended a sweep
        where = f"; continue the sweep with: runner train -m {command_arg('resume', _sweep['dir'])}" if _sweep else ""
        print(f"interrupted{where}", file=sys.stderr)
        return 130
    finally:
        _leave_process_group()


def _leave_process_group():
    """The process group of a job of several processes (torchrun's, a SLURM job's tasks) ended before the process
    exits (runner/training/distributed.py's leave); nothing when torch.distributed was never imported."""
    distributed = sys.modules.get("runner.training.distributed")
    if distributed is not None:
        with contextlib.suppress(Exception):  # the command has ended and said how: an exit is no place for a traceback
            distributed.leave()


def _main(argv, stop):
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        print(USAGE, end="")
        return 0
    if argv[0] in ("-V", "--version"):
        from runner import __version__

        print(f"runner {__version__}")
        return 0
    command, rest = argv[0], argv[1:]
    if command not in COMMANDS:
        print(
            f"runner: unknown command '{command}'. Use one of: {', '.join(COMMANDS)} (see runner --help).",
            file=sys.stderr,
        )
        return 2
    if command == "report":
        from runner.commands.report import main as report_main

        return report_main(rest)
    if command == "diff":
        from runner.commands.diff import main as diff_main

        return diff_main(rest)

    import hydra

    rest = _path_arguments(rest)
    if command == "lr-find" and (int(os.environ.get("WORLD_SIZE", "1")) > 1 or {"-m", "--multirun"} & set(rest)):
        print(
            "error: runner lr-find runs one range test in one process: start it without torchrun and without -m (for "
            "several settings, run it once per setting).",
            file=sys.stderr,
        )
        return 2
    if command == "train" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        rest = _torchrun(rest)
        if rest is None:
            return 2
    elif command == "train" and int(os.environ.get("SLURM_NTASKS", "1")) > 1 and not {"-m", "--multirun"} & set(rest):
        print(_slurm_tasks_alone(int(os.environ["SLURM_NTASKS"])), file=sys.stderr)
        return 2
    modes = [a for a in rest if a in ("-m", "--multirun", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")]
    if len({"-m" if m == "--multirun" else m for m in modes}) > 1:  # Hydra raises a ValueError with a traceback
        print(
            f"error: {' and '.join(modes)} cannot be combined: Hydra prints the config (--cfg, --info) of one job, "
            f"not of a sweep. Drop -m and give one value per key to see a job's config.",
            file=sys.stderr,
        )
        return 2
    problem = _preflight(
        rest, writes=not any(a in ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help") for a in rest)
    )
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    resume = _given(rest, "resume") if command == "train" else None
    multirun = command == "train" and ("-m" in rest or "--multirun" in rest)
    if resume and multirun:
        rest, problem = _resume_sweep(resume, rest)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        resume = None
    if resume and (Path(resume) / "multirun.yaml").is_file() and not (Path(resume) / "summary.json").is_file():
        print(
            f"error: {command_arg('resume', resume)} is a sweep, not a run: resume it with runner train -m "
            f"{command_arg('resume', resume)}, or one of its jobs with resume=<its job directory>.",
            file=sys.stderr,
        )
        return 1
    if resume:
        if not Path(resume).is_dir():  # Hydra would create it
            print(
                f"error: {command_arg('resume', resume)} names nothing: there is no such directory, so there is "
                f"nothing to resume. Pass the directory of a runner training run, e.g. "
                f"resume=outputs/2026-11-22/10-31-07.",
                file=sys.stderr,
            )
            return 1
        # the run continues in its own directory (runner/run/rundir.py decides how); put before the user's arguments,
        # since argparse takes no override after a flag's value (`--cfg job hydra.run.dir=...`)
        rest = [override("hydra.run.dir", resume), *rest]
    out = _given(rest, "out") if command in ("predict", "export") else None
    if out and out != "null":
        _out.update(made=not Path(out).exists())
        rest = [override("hydra.run.dir", out), *rest]
    elif command != "train" or not _given(rest, "hydra.run.dir", "hydra.sweep.dir"):
        # made by Hydra for this command: removed again if it fails and they are empty
        subfolder = [Path("outputs", "multirun" if command == "train" else command.replace("-", "_"))]  # -m, search
        if command == "train":  # trainer.fast_dev_run's
            subfolder += [Path("outputs", "fast_dev_run", "multirun"), Path("outputs", "fast_dev_run")]
        _out.update(missing=[p for p in (*subfolder, Path("outputs")) if not p.exists()])
    if command == "eval" or resume:
        _selected[:] = run_choices(
            rest, ("dataset", "model", "optimizer", "scheduler") if resume else ("dataset", "model")
        )
        rest = _selected + rest  # the user's own overrides come later and win
    from runner.config.resolvers import register_resolvers

    register_resolvers()
    sys.argv = [f"runner {command}", *rest]  # Hydra reads sys.argv
    if stop.requested:  # during the imports: nothing has been written yet
        print(
            f"interrupted: stopped by {stop.requested} before the command started; nothing was changed", file=sys.stderr
        )
        return 130
    from runner.config.command_line import held_stderr, hydra_problem

    _register_sweepers()
    held_stderr.install()
    try:
        config = command.replace("-", "_")  # lr-find's is configs/lr_find.yaml
        hydra.main(config_path="pkg://runner.configs", config_name=config, version_base="1.3")(_task)()
    except SystemExit as end:
        text = held_stderr.release(write=False)
        problem = text and hydra_problem(text, config, _overrides_of(argv[1:]))
        if problem:  # told as runner tells bad input, with the fix, instead of Hydra's words
            print(f"error: {problem}", file=sys.stderr)
        elif text:
            sys.stderr.write(text)
        code = end.code if isinstance(end.code, int) else (0 if end.code is None else 1)
        if code:  # refused by a sweeper, or by Hydra: the folders made for this command go again if empty
            for folder in _out.get("missing", []):
                remove_empty(folder)
        return code
    finally:
        held_stderr.release()  # the launcher ran the jobs elsewhere, or a flag printed and returned
    sweep = sys.modules.get("runner.commands.sweep")
    return 1 if sweep and sweep.SweepSummary.incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
