"""A sweep's jobs when it resumes, and its end: summary.csv, sweep.png and a table of every job, best first.

Hydra throws each job's result away; the callback (configs/train.yaml, hydra.callbacks) reads
each job's summary.json instead, so it works the same with every launcher: basic, joblib,
submitit, and it covers the jobs a resumed sweep kept.

    runner train -m resume=outputs/multirun/2026-11-22/10-31-07   # the sweep's own command, in its directory

A resumed sweep enumerates the same jobs into the same directories, and what each does is decided
from what its directory holds (sweep_job asks run/resume's sweep_job_decision): completed or
diverged, kept as it is (the same config on CPU would give the same bytes again); interrupted,
continued from its last.pt (RunDir resumes it, bit-exact); failed, continued from its last.pt if
it has one, else run afresh; nothing yet, run.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from hydra.experimental.callback import Callback

from runner.commands import report
from runner.config.arguments import overrides_of
from runner.config.command_line import command_arg, override
from runner.io.errors import RunnerError
from runner.run.records import overrides, read_summary, status_of
from runner.run.resume.decide import sweep_job_decision
from runner.sweeps import folds, repeats

if TYPE_CHECKING:
    from omegaconf import DictConfig


def sweep_job(cfg: DictConfig, run_dir: str | Path, job_overrides: list[str], num: int) -> dict[str, Any] | None:
    """In a sweep, the job whose directory already holds a run: its summary when it is kept as it is, else None
    (and for a failed run with a last.pt, cfg.resume is set so that it continues). Writes nothing."""
    from omegaconf import open_dict

    path = Path(run_dir)
    if not (path / "summary.json").is_file():
        return None
    ran_with = overrides(path)
    if sorted(ran_with) != sorted(job_overrides):
        raise RunnerError(
            f"sweep job {num}'s directory {path} holds a run of {' '.join(ran_with) or 'the defaults'}, but this "
            f"sweep's job {num} is {' '.join(job_overrides) or 'the defaults'}: a sweep resumes only with its own "
            f"command. Resume it with runner train -m {command_arg('resume', path.parent)}, or start a new sweep "
            f"(leave out hydra.sweep.dir). Nothing was changed."
        )
    status = status_of(path)
    decision = sweep_job_decision(status, (path / "checkpoints" / "last.pt").is_file())
    if decision == "keep":
        print(f"sweep job {num} ({' '.join(job_overrides)}): {status} earlier, kept as it is", flush=True)
        return read_summary(path)
    if decision == "resume":
        # RunDir would refuse to start over a run that checkpointed; it continues instead
        with open_dict(cfg):
            cfg.resume = str(path)
    return None


class SweepSummary(Callback):
    """The end of a sweep. The sweepers (sweeps/grid.py, search.py), which run in this process, add what no job
    directory holds: the jobs a fail_fast sweep did not start, the trials refused before they ran."""

    # jobs of the last sweep that did not complete; the CLI exits non-zero when > 0
    incomplete: ClassVar[int] = 0
    # jobs a fail_fast sweep did not start
    not_started: ClassVar[int] = 0
    # (trial number, why) of the Optuna trials that could not run
    refused: ClassVar[list[tuple[int, str]]] = []
    # {job directory: status} of every job the sweepers launched, as its task returned it: a job whose own record
    # could not be written (a full disk) is still counted, though no summary.json says how it ended
    outcomes: ClassVar[dict[str, str | None]] = {}

    def on_multirun_start(self, config: DictConfig, **kwargs: Any) -> None:
        from runner.config.command_line import held_stderr

        # the sweep composed; under the joblib or submitit launcher its jobs run elsewhere
        held_stderr.release()
        SweepSummary.incomplete, SweepSummary.not_started, SweepSummary.refused = 0, 0, []
        SweepSummary.outcomes = {}

    def on_multirun_end(self, config: DictConfig, **kwargs: Any) -> None:
        """The sweep's table and files. Until they are written the sweep counts as incomplete: Hydra turns an error
        raised here into a warning, and the sweep would exit 0 without its records."""
        from runner.io.console import error
        from runner.io.errors import storage_error

        SweepSummary.incomplete = max(SweepSummary.incomplete, 1)
        try:
            self._summarise(Path(config.hydra.sweep.dir))
        except Exception as err:
            told = storage_error(err)
            if told is None:
                raise
            error(f"the sweep's summary was not written: {told}")

    def _summarise(self, sweep_dir: Path) -> None:
        # a sweep of quick checks still gets its table
        runs = report.find_runs([sweep_dir], quick_checks=True)
        console = report.console()
        not_done = []
        if runs:
            rows, curves = report.build(runs)
            # seed=0,1,2: mean ± std per setting
            grouped = repeats.repeat_groups(rows)
            report.write_outputs(rows, curves, sweep_dir, grouped)
            report.show(rows, jobs=f"sweep: {len(rows)} jobs, best first ({sweep_dir})")
            not_done = [r for r in rows if r["status"] not in ("completed", "pruned")]
            if not_done:
                console.print(
                    f"[red]{len(not_done)} of {len(rows)} jobs did not complete[/]: "
                    + ", ".join(f"job {r['job']} {r['status']}" for r in not_done)
                )
            for row in rows:
                if row["retries"]:
                    console.print(f"job {row['job']} was retried after failed attempts: {row['retries']}")
            console.print(f"wrote {sweep_dir / 'summary.csv'}, {'groups.csv, ' if grouped else ''}sweep.png")
            # dataset.folds: the folds' predictions on their held-out samples, in one file
            oof, missing = folds.write_oof(sweep_dir)
            for line in missing:
                console.print(f"[red]out-of-fold predictions incomplete[/]: {line}")
            if oof:
                console.print(f"wrote {oof}: each training-pool sample predicted by the fold that held it out")
        for number, why in SweepSummary.refused:
            console.print(f"[red]trial {number} was refused[/]: {why}")
        if SweepSummary.not_started:
            jobs = f"{SweepSummary.not_started} job{'s' * (SweepSummary.not_started != 1)}"
            console.print(f"[red]{jobs} not started[/] (hydra.sweeper.fail_fast)")
        listed = {Path(r["run_dir"]).resolve() for r in rows} if runs else set()
        unlisted = [
            (path, status)
            for path, status in SweepSummary.outcomes.items()
            if status not in ("completed", "pruned") and Path(path).resolve() not in listed
        ]
        for path, status in unlisted:
            console.print(f"[red]job {path} {status or 'failed'}[/], and its summary.json was not written")
        SweepSummary.incomplete = len(not_done) + len(unlisted) + SweepSummary.not_started + len(SweepSummary.refused)


def resume_arguments(sweep_dir: str | Path, args: list[str]) -> tuple[list[str], str | None]:
    """`runner train -m resume=SWEEP`: the sweep's own command again, into its own directory (Hydra enumerates the
    same jobs in the same order); each job then decides from its directory (sweep_job). Returns (args, problem)."""
    saved = Path(sweep_dir) / "multirun.yaml"
    from runner.run.records import sweep_overrides

    # multirun.yaml missing or unreadable (a crash while it was written, before runner wrote it atomically, or damage
    # since): a job's summary.json holds the sweep's command as it was typed
    recorded = sweep_overrides(sweep_dir) is None and _recorded_command(sweep_dir)
    if not saved.is_file() and not recorded:
        return args, (
            f"{command_arg('resume', sweep_dir)} with -m names no sweep: there is no {saved}. Pass the directory of a "
            f"runner train -m sweep, e.g. resume=outputs/multirun/2026-11-22/10-31-07 (for one run, drop -m)."
        )
    extra = [a for a in args if a not in ("-m", "--multirun") and not a.startswith("resume=")]
    own = overrides_of(extra)
    flags = [a for a in extra if a not in own and not a.startswith(("hydra.", "hydra/"))]
    if own:
        return args, (
            f"{command_arg('resume', sweep_dir)} continues the sweep as it was started, so '{own[0]}' cannot be added: "
            f"it would change the jobs already run. Give only Hydra's options (e.g. hydra/launcher=parallel); to train "
            f"one job further, resume that job's directory on its own (runner train resume=DIR trainer.epochs=N)."
        )
    if recorded:
        return _recorded_arguments(sweep_dir, args)
    overrides = sweep_overrides(sweep_dir)
    if overrides is None:
        # no job recorded the command either: none has started, so nothing of the sweep is lost by starting it again
        return args, (
            f"{saved} is not the multirun.yaml runner writes (it is damaged, or empty after a crash), and none of the "
            f"sweep's jobs has recorded its command, so the sweep cannot be resumed from it. No job has trained: "
            f"run the sweep's own command again (runner train -m with its overrides), adding "
            f"{command_arg('hydra.sweep.dir', sweep_dir)}."
        )
    task, hydra = overrides
    hydra_overrides = [o for o in hydra if not o.startswith(("hydra.sweep.dir=", "hydra.mode="))]
    config_dir = _saved_config_dir(saved)
    if config_dir and not any(f in ("--config-dir", "-cd") or f.startswith("--config-dir=") for f in flags):
        # the sweep's own: its options may live there
        flags = ["--config-dir", config_dir, *flags]
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


def _recorded_command(sweep_dir: str | Path) -> list[str] | None:
    """The sweep's command as its first job recorded it (summary.json's `command`: `runner train -m ...`), as the
    arguments after `train`; None where no job recorded one. A job started by a resume recorded the resume's command,
    which holds no overrides: it is passed over."""
    if not Path(sweep_dir).is_dir():
        return None
    jobs = sorted((p for p in Path(sweep_dir).iterdir() if p.name.isdigit()), key=lambda p: int(p.name))
    for job in jobs:
        try:
            argv = shlex.split(read_summary(job).get("command") or "")
        except ValueError:
            continue
        rest = argv[argv.index("train") + 1 :] if "train" in argv else []
        if ("-m" in rest or "--multirun" in rest) and not any(a.startswith("resume=") for a in rest):
            return rest
    return None


def _recorded_arguments(sweep_dir: str | Path, args: list[str]) -> tuple[list[str], None]:
    """resume_arguments for a sweep whose multirun.yaml is missing or unreadable: the command its jobs recorded,
    into this directory (the sweep writes multirun.yaml again as it starts)."""
    extra = [a for a in args if a not in ("-m", "--multirun") and not a.startswith("resume=")]
    # called where a job recorded it
    recorded = [a for a in _recorded_command(sweep_dir) or [] if not a.startswith("hydra.sweep.dir=")]
    command = [*recorded, override("hydra.sweep.dir", sweep_dir), *extra]
    print(
        f"{Path(sweep_dir) / 'multirun.yaml'} is missing or unreadable; its jobs recorded the sweep's command. "
        f"Resuming the sweep in {sweep_dir}: runner train {shlex.join(command)}",
        file=sys.stderr,
    )
    return command, None


def _saved_config_dir(multirun_yaml: Path) -> str | None:
    """The --config-dir a sweep was started with (Hydra records it among hydra.runtime.config_sources), or None."""
    from omegaconf import OmegaConf

    try:
        sources = OmegaConf.load(multirun_yaml).hydra.runtime.config_sources
    except Exception:
        return None
    return next((s.path for s in sources if s.provider == "command-line" and s.schema == "file"), None)
