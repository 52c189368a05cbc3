"""What a run that cannot continue can do instead: its newest intact weights as a new run's init_from, or its own
command again, as one new run in a new folder.

    runner train trainer.epochs=12 init_from=outputs/2026-11-22/10-31-07/checkpoints/best.pt

Told where last.pt cannot be read (plan.read_checkpoint): last.pt alone holds the optimizer, schedule, counters and
RNG states, and no earlier copy of it is kept.
"""

from __future__ import annotations

from pathlib import Path

from runner.config.command_line import command_arg


def unresumable(last: Path) -> str:
    """What a run whose last.pt cannot be read can do: last.pt alone holds the optimizer, schedule, counters and RNG
    states, and no earlier copy of it is kept, so the run cannot continue exactly; the newest intact file of its
    weights (a kept epoch's, best.pt) can start a new run (init_from) in a fresh folder, with the run's own command."""
    import zipfile

    from runner.io.serialization import damaged_member
    from runner.run.records import read_summary

    run_dir = last.parent.parent
    # the kept checkpoints (training/checkpoints.py) and best.pt, newest first: model weights, as init_from takes them
    weights = sorted(
        (p for p in last.parent.glob("*.pt") if p.name not in ("last.pt", "averaged.pt")),
        key=lambda p: p.stat().st_mtime,
        reverse=True,
    )
    # a file cut short is no zip archive, and only an archive whose CRC-32s check out is intact
    good = next((p for p in weights if zipfile.is_zipfile(p) and damaged_member(p) is None), None)
    command = fresh_command(run_dir, read_summary(run_dir).get("command") or "runner train")
    cannot = (
        "last.pt is the one file that holds the run's optimizer, schedule, counters and RNG states, and no earlier "
        "copy of it is kept, so the run cannot continue where it stopped"
    )
    if good is None:
        return f"{cannot}. Start it again, in a new folder, with its own command: {command}"
    return (
        f"{cannot}. Its newest intact weights are {good}: start a new run from them (with a fresh optimizer and "
        f"schedule, in a new folder) with: {command} {command_arg('init_from', good)}, or start it again with its "
        f"own command: {command}"
    )


def fresh_command(run_dir: Path, command: str) -> str:
    """The recorded `command` of the run in `run_dir` as one new run in a new folder: without hydra.run.dir (run again
    in the same folder, it would find the same last.pt and resume it), hydra.sweep.*, resume= and init_from=; a sweep
    job's command (-m with the whole sweep) as the job alone, its swept keys at the job's own values."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from runner.run.records import overrides

    parser = OverridesParser.create()
    kept, swept = [], set()
    for token in shlex.split(command):
        if token in ("-m", "--multirun"):
            continue
        try:
            parsed = parser.parse_override(token) if "=" in token and not token.startswith("-") else None
        # not an override Hydra reads: the program, the command, a flag
        except Exception:
            parsed = None
        if parsed is None:
            kept.append(token)
            continue
        key = parsed.key_or_group
        if key in ("resume", "init_from") or key.startswith(("hydra.run.", "hydra.sweep.")):
            continue
        if parsed.is_sweep_override():
            swept.add(key)
            continue
        kept.append(token)
    # the job's own values of the swept keys (.hydra/overrides.yaml)
    for token in overrides(run_dir):
        try:
            if parser.parse_override(token).key_or_group in swept:
                kept.append(token)
        except Exception:
            continue
    return " ".join(shlex.quote(token) for token in kept)
