"""The `runner` command: `runner train|eval|predict|export [key=value ...] [Hydra flags]`, `runner report PATHS`,
`runner diff A B`.

The subcommand picks the primary config (configs/train.yaml, eval.yaml, predict.yaml, export.yaml); the rest
of the command line is Hydra's, unchanged: overrides, --help, --cfg job, --info, -m,
--config-dir. Nothing here imports torch, so `runner --help` answers at once.
"""

import os
import shutil
import sys
import traceback
from pathlib import Path

from runner.config.arguments import (
    given,
    overrides_of,
    path_arguments,
    preflight,
    slurm_tasks_alone,
    torchrun_arguments,
)
from runner.config.command_line import command_arg, override
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


_sweep = {}  # {"dir": the sweep's directory} once a job of a sweep has started, for the message of a stopped sweep
_selected = []  # the run's own group choices that main() put before the user's eval overrides
# predict/export: {"made": whether this command creates out=} or {"missing": outputs/<command>, outputs if new}
_out = {}


def _task(cfg):
    """Hydra's task function: run the job named by the primary config, report user errors plainly.

    In a sweep a failed job returns its failure instead of raising, so the other jobs run
    and the sweep summary (runner/sweeps/jobs.py) lists it; the sweep then exits non-zero.
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
            from runner.config.arguments import launcher_without_sweep
            from runner.config.checks import checked_value

            alone = None if multirun else launcher_without_sweep(hydra_cfg.overrides.hydra)
            if alone:
                raise RunnerError(alone)
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
            from runner.sweeps.jobs import sweep_job
            from runner.sweeps.search import trial_reporter

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
        from runner.io.errors import storage_error

        # a write the storage refused anywhere in the job (a library's too): one paragraph naming the file, no traceback
        err = storage_error(err) or err
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
            if _first_process(hydra_cfg) or not _told_by_rank_0(err):
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


def _first_process(hydra_cfg=None):
    """False in the processes of a job of several other than its first (torchrun's, a SLURM job's tasks), from
    their launcher's environment: also before, or without, their process group."""
    if hydra_cfg is not None and hydra_cfg.job.config_name != "train":
        return True
    from runner.training.distributed import first_process

    return first_process()


def _told_by_rank_0(err):
    """Whether rank 0 of this job of several processes says what `err` says: a stop, which every rank agrees on and
    rank 0 tells with the rank it was sent to. Not a lost process, which rank 0 may be."""
    from runner.io.errors import Interrupted
    from runner.training import distributed

    return isinstance(err, Interrupted) and not distributed.lost_a_peer()


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


def _hydra_dir():
    """The job's folder Hydra is making or writing in, once it has one (None before)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf

    return OmegaConf.select(HydraConfig.get(), "runtime.output_dir") if HydraConfig.initialized() else None


def _tell_hydra_storage_errors():
    """What Hydra itself writes before or around runner's code (a job's folder, its .hydra/ files for eval; a sweep's
    job folders) is told as runner tells a write the storage refused, naming the file: Hydra would print the OSError
    as a traceback. Both wrap Hydra's module-level functions, which Hydra looks up when it calls them."""
    import hydra._internal.utils as hydra_utils
    import hydra.core.utils as hydra_core

    if getattr(hydra_utils.run_and_report, "told_by_runner", False):
        return
    report, save_config = hydra_utils.run_and_report, hydra_core._save_config

    def run_and_report(func):
        def guarded():
            from runner.io.errors import StorageError, storage_error

            try:
                return func()
            except Exception as err:
                # what reaches here unconverted is Hydra's own work (its job folder, its log file, its records):
                # runner's task tells its own errors first, so an I/O or permission error here is a write's too
                told = (
                    None
                    if os.environ.get("HYDRA_FULL_ERROR") == "1"
                    else storage_error(err, where=_hydra_dir() or "the output folder Hydra was making")
                )
                # runner's other errors go on to Hydra's report, as they did
                if not isinstance(told, StorageError):
                    raise
            from runner.config.command_line import held_stderr
            from runner.io.console import error

            held_stderr.release()
            where = (
                f" Continue the sweep with: runner train -m {command_arg('resume', _sweep['dir'])}" if _sweep else ""
            )
            error(f"{told}{where}")
            raise SystemExit(told.exit_code)

        return report(guarded)

    def saved_config(cfg, filename, output_dir):
        try:
            return save_config(cfg, filename, output_dir)
        except OSError as err:
            from runner.io.errors import StorageError

            # a write, of Hydra's record of the job (a failed write() names no file): an EIO or EACCES is one too
            raise StorageError.of(err.filename or output_dir / filename, err) from err

    run_and_report.told_by_runner = True
    hydra_utils.run_and_report, hydra_core._save_config = run_and_report, saved_config


def run_choices(args, groups):
    """`dataset=X model=Y ...` as the run named by `ckpt=` (or `resume=`) chose them.

    eval.yaml composes the same groups as training; selecting the run's own options first
    means an override like `dataset.root=...` is checked against the run's dataset, not the
    default one. Options that are not among runner's configs (a user's --config-dir) are left out.
    """
    from importlib.resources import files

    from omegaconf import OmegaConf

    from runner.io.files import run_dir_of

    ckpt = given(args, "ckpt", "resume")
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


def _without_hydra(command, rest):
    """`runner report` and `runner diff`, which read runs without Hydra: a refusal (a RunnerError) or a write the
    storage refused (summary.csv, sweep.png) is told in one paragraph, as every other command's, not as a traceback."""
    from runner.io.console import error
    from runner.io.errors import storage_error

    if command == "report":
        from runner.commands.report import main
    else:
        from runner.commands.diff import main
    try:
        return main(rest)
    except Exception as err:
        told = storage_error(err)
        if told is None or os.environ.get("HYDRA_FULL_ERROR") == "1":
            raise
        error(str(told))
        return told.exit_code


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
    if command in ("report", "diff"):
        return _without_hydra(command, rest)

    import hydra

    rest = path_arguments(rest)
    if command == "lr-find" and (int(os.environ.get("WORLD_SIZE", "1")) > 1 or {"-m", "--multirun"} & set(rest)):
        print(
            "error: runner lr-find runs one range test in one process: start it without torchrun and without -m (for "
            "several settings, run it once per setting).",
            file=sys.stderr,
        )
        return 2
    if command == "train" and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        rest = torchrun_arguments(rest)
        if rest is None:
            return 2
    elif command == "train" and int(os.environ.get("SLURM_NTASKS", "1")) > 1 and not {"-m", "--multirun"} & set(rest):
        print(slurm_tasks_alone(int(os.environ["SLURM_NTASKS"])), file=sys.stderr)
        return 2
    modes = [a for a in rest if a in ("-m", "--multirun", "--cfg", "-c", "--info", "-i", "--shell-completion", "-sc")]
    if len({"-m" if m == "--multirun" else m for m in modes}) > 1:  # Hydra raises a ValueError with a traceback
        print(
            f"error: {' and '.join(modes)} cannot be combined: Hydra prints the config (--cfg, --info) of one job, "
            f"not of a sweep. Drop -m and give one value per key to see a job's config.",
            file=sys.stderr,
        )
        return 2
    problem = preflight(
        rest, writes=not any(a in ("--help", "-h", "--cfg", "-c", "--info", "--hydra-help") for a in rest)
    )
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 1
    resume = given(rest, "resume") if command == "train" else None
    multirun = command == "train" and ("-m" in rest or "--multirun" in rest)
    if resume and multirun:
        from runner.sweeps.jobs import resume_arguments

        rest, problem = resume_arguments(resume, rest)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        resume = None
    if resume:
        from runner.run.resume import resume_argument_problem

        problem = resume_argument_problem(resume)
        if problem:
            print(f"error: {problem}", file=sys.stderr)
            return 1
        # the run continues in its own directory (runner/run/rundir.py decides how); put before the user's arguments,
        # since argparse takes no override after a flag's value (`--cfg job hydra.run.dir=...`)
        rest = [override("hydra.run.dir", resume), *rest]
    out = given(rest, "out") if command in ("predict", "export") else None
    if out and out != "null":
        _out.update(made=not Path(out).exists())
        rest = [override("hydra.run.dir", out), *rest]
    elif command != "train" or not given(rest, "hydra.run.dir", "hydra.sweep.dir"):
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
    _tell_hydra_storage_errors()
    held_stderr.install()
    try:
        config = command.replace("-", "_")  # lr-find's is configs/lr_find.yaml
        hydra.main(config_path="pkg://runner.configs", config_name=config, version_base="1.3")(_task)()
    except SystemExit as end:
        text = held_stderr.release(write=False)
        problem = text and hydra_problem(text, config, overrides_of(argv[1:]))
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
    sweep = sys.modules.get("runner.sweeps.jobs")
    return 1 if sweep and sweep.SweepSummary.incomplete else 0


if __name__ == "__main__":
    sys.exit(main())
