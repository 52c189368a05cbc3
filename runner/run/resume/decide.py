"""Fresh, continue, keep or refuse: what a training command does with the run directory it was given.

    runner train resume=outputs/2026-11-22/10-31-07              # resume=: continue, or refuse
    runner train hydra.run.dir=outputs/2026-11-22/10-31-07       # a plain start: fresh, continue, or refuse
    runner train -m resume=outputs/multirun/2026-11-22/10-31-07  # a sweep's jobs: keep, continue, or start

Each answer is read from the directory's state alone (summary.json's status, whether checkpoints/last.pt exists) and
what the command asked; nothing here writes. `RunDir.claim` (run/rundir.py) asks `decide` under the directory's lock, a
resumed sweep asks `sweep_job_decision` for each job (sweeps/jobs.py), and the command line asks
`resume_argument_problem` before Hydra runs (commands/__init__.resume_argument, the train record's check). What a
continuing run may change is then planned from its last.pt (plan.py)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from runner.config.command_line import command_arg
from runner.io.errors import RunnerError

# a resumed sweep keeps these jobs as they are: results, which the same config on CPU would give again, byte for byte
# (a pruned trial is completed)
KEPT = ("completed", "diverged")


@dataclass(frozen=True)
class Decision:
    """What a claim of a run directory does: start a fresh run there, or continue the run in it."""

    fresh: bool
    # what the terminal is told of it, or None
    note: str | None = None


def found_status(status: str | None, has_checkpoint: bool) -> str | None:
    """The state of the run in a directory whose lock the caller holds: a `running` run's process is gone, and a
    run that checkpointed always recorded a status, so both are `interrupted`."""
    if status == "running" or (status is None and has_checkpoint):
        return "interrupted"
    return status


def decide(path: Path, status: str | None, has_checkpoint: bool, resume: bool) -> Decision:
    """The claim of `path` (its lock held): a fresh run where nothing has checkpointed yet (a fresh start loses
    nothing), the run in it continued where `resume` asks for it or the run is interrupted (a requeued SLURM job,
    the same command again), and refused otherwise: runner never trains over a run."""
    found = found_status(status, has_checkpoint)
    if not has_checkpoint:
        if resume:
            stopped = f" (its run is {found} before its first checkpoint)" if found else ""
            raise RunnerError(
                f"resume={path} has no checkpoints/last.pt{stopped}, so there is nothing to resume. "
                f"Start the run again with its original command, or pass the directory of a run that trained."
            )
        return Decision(fresh=True)
    if resume:
        return Decision(fresh=False)
    if found == "interrupted":
        again = command_arg("resume", path)
        return Decision(fresh=False, note=f"{path} holds an interrupted run: resuming it (runner train {again})")
    raise RunnerError(
        f"{path} already holds a {found} run, and runner never trains over a run. To train it further, "
        f"run: runner train {command_arg('resume', path)} trainer.epochs=N (N above the epochs it has). "
        f"For a new run, leave out hydra.run.dir or point it at a new directory. Nothing was changed."
    )


def sweep_job_decision(status: str | None, has_checkpoint: bool) -> Literal["keep", "resume", "start"]:
    """In a resumed sweep, what a job whose directory holds a run does: `keep` a completed or diverged one as it is;
    claim a failed one that checkpointed as `resume=` would (continued from its last.pt: a plain start refuses a
    failed run); else `start` as the sweep's command does, and the claim decides (an interrupted run continues,
    a run that stopped before its first checkpoint starts afresh)."""
    if status in KEPT:
        return "keep"
    if status == "failed" and has_checkpoint:
        return "resume"
    return "start"


def resume_argument_problem(resume: str) -> str | None:
    """Why `runner train resume=RESUME` (without -m) cannot start, read from the path alone, or None: a sweep's
    directory (its multirun.yaml and no summary.json) is resumed with -m; a path that is no directory names nothing
    (Hydra would create it)."""
    path = Path(resume)
    if (path / "multirun.yaml").is_file() and not (path / "summary.json").is_file():
        return (
            f"{command_arg('resume', resume)} is a sweep, not a run: resume it with runner train -m "
            f"{command_arg('resume', resume)}, or one of its jobs with resume=<its job directory>."
        )
    if not path.is_dir():
        return (
            f"{command_arg('resume', resume)} names nothing: there is no such directory, so there is nothing to "
            f"resume. Pass the directory of a runner training run, e.g. resume=outputs/2026-11-22/10-31-07."
        )
    return None
