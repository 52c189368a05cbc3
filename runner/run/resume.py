"""`runner train resume=RUN_DIR`: continue a run in its own directory from checkpoints/last.pt.

    runner train resume=outputs/2026-11-22/10-31-07                     # where it stopped
    runner train resume=outputs/2026-11-22/10-31-07 trainer.epochs=20   # and further
    runner train resume=outputs/2026-11-22/10-31-07 optimizer.lr=1e-4   # with a lower learning rate

The run's own config comes from last.pt. Each override on the command line is looked up in
RESUME_OVERRIDES: it is either applied for real to the continuing run, or refused, with the
reason, before anything in the run directory is touched.
"""

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from pathlib import Path

from hydra.core.override_parser.overrides_parser import OverridesParser
from omegaconf import OmegaConf

from runner.config.checks import apply_overrides
from runner.config.command_line import DATA_FILE_KEYS, command_arg
from runner.inference.loading import run_config
from runner.io.errors import RunnerError
from runner.io.serialization import safe_load
from runner.training.recipe import KNOBS, Recipe
from runner.training.schedules import whole_run


def trainer_rules():
    """The resume table's trainer rows, from the knobs' declarations (training/recipe.py): each key, and each
    group of keys (trainer.ema) as a whole, applied only when every key in it is."""
    rows = [(k.path, k.resume is not None, k.resume or k.refuse) for k in KNOBS]
    for group in dict.fromkeys(k.key.split(".")[0] for k in KNOBS if "." in k.key):
        inner = [row for row in rows if row[0].startswith(f"trainer.{group}.")]
        refused = next((row for row in inner if not row[1]), None)
        rows.append((f"trainer.{group}", refused is None, (refused or inner[0])[2]))
    return rows


# What `resume=RUN KEY=VALUE` does with each key; the first pattern that matches decides.
# (pattern, applied, what it does when applied / why it is refused). A key no pattern matches is refused.
RESUME_OVERRIDES = [
    *trainer_rules(),
    ("logger", True, "the trackers from here on (metrics.csv holds the whole run either way)"),
    ("logger.*", True, "the trackers from here on (metrics.csv holds the whole run either way)"),
    ("device", True, "where the run continues: its weights and optimizer state are moved there"),
    ("device.*", True, "where the run continues: its weights and optimizer state are moved there"),
    ("dataset.root", True, "where the same data is read from"),
    # a table's or arrays' own files, moved: their SHA-256 (dataset.sha256) is checked, so they are the same files
    *((key, True, "where the same file is read from (its SHA-256 is checked)") for key in DATA_FILE_KEYS),
    ("dataset.download", True, "whether missing files may be downloaded"),
    ("dataset.workers", True, "decoding processes"),
    ("dataset.in_memory", True, "decoded into memory, or streamed"),
    ("dataset.memory_limit_gb", True, "decoded into memory, or streamed"),
    ("dataset.cache_dir", True, "where the decoded tensors are cached"),
    ("optimizer", False, "last.pt holds the state of the run's own optimizer, which another cannot take over"),
    ("optimizer._*", False, "last.pt holds the state of the run's own optimizer, which another cannot take over"),
    ("optimizer.param_groups", False, "last.pt holds the state of the optimizer's own parameter groups"),
    (
        "optimizer.*",
        True,
        "set on the restored optimizer (lr, momentum, weight_decay, betas...), in every parameter group but those "
        "optimizer.param_groups gives that option of their own; with a scheduler, a new lr becomes its base from "
        "here on",
    ),
    ("scheduler", False, "last.pt holds the run's schedule, which another schedule cannot continue"),
    ("scheduler.*", False, "last.pt holds the run's schedule, which another schedule cannot continue"),
    ("model", False, "a resumed run keeps its model: last.pt holds that architecture's weights"),
    ("model.*", False, "a resumed run keeps its model: last.pt holds that architecture's weights"),
    ("dataset", False, "it would change the data the run trains on"),
    ("dataset.*", False, "it would change the data the run trains on"),
    ("seed", False, "every RNG state is restored from last.pt, so a seed would change nothing"),
    ("init_from", False, "a resumed run's weights are last.pt's: where it started from is part of its history"),
    ("trainer.precision", False, "the loss scale and the numerics in last.pt belong to the run's precision"),
    ("trainer.monitor", False, "best.pt and the best epoch so far were chosen by the run's own metric"),
    ("trainer.monitor_mode", False, "best.pt and the best epoch so far were chosen by the run's own metric"),
]


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


def resume_rule(key):
    """(applied, text) for an override of `key` on a resumed run."""
    for pattern, applied, text in RESUME_OVERRIDES:
        if fnmatchcase(key, pattern):
            return applied, text
    return False, "it is not a setting a resumed run can change"


@dataclass
class Resume:
    """What a resumed run continues from: its config with the overrides applied, and its last.pt."""

    cfg: object
    checkpoint: dict
    changes: dict = field(default_factory=dict)  # key -> (value in the run, value from now on)
    lifted: bool = False  # a completed run continues: the override raised what stopped it

    def restore(self, state):
        """Load last.pt into `state`, then apply the overridden optimizer settings for real."""
        state.load_state_dict(self.checkpoint)
        specs = _value(self.cfg, "optimizer.param_groups") or []
        for key, (_, new) in self.changes.items():
            if key.startswith("optimizer."):
                name = key.split(".", 1)[1]
                # optimizer.param_groups[i] is group i + 1 (training/build.py); one that sets `name` keeps its own
                own = {i + 1 for i, spec in enumerate(specs) if name in spec}
                set_optimizer_value(state.optimizer, state.scheduler, name, new, keep=own)
        if self.lifted:
            state.stopped_by = None  # the limit that ended the run was raised: train on


def _value(cfg, key):
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def set_optimizer_value(optimizer, scheduler, name, value, keep=()):
    """optimizer.`name`=`value` on the restored optimizer: in every parameter group but those in `keep` (indices of the
    groups optimizer.param_groups gave their own `name`, which the new value does not reach, as in a new run with the
    same config); for lr, the scheduler's base rate of the same groups."""
    for i, group in enumerate(optimizer.param_groups):
        if i in keep:
            continue
        if name not in group:
            settings = ", ".join(k for k in group if k != "params")
            raise RunnerError(
                f"resume: optimizer.{name} is not a setting of {type(optimizer).__name__} "
                f"(it has: {settings}). Drop it, or start a new run."
            )
        group[name] = tuple(value) if isinstance(group[name], tuple) else value
    if name == "lr" and scheduler is not None:
        scheduler.set_base_lr(value, keep)


def plan_resume(cfg, last, status, overrides):
    """Check a resume of the run whose last.pt is `last` and whose state is `status`; write nothing."""
    try:
        ckpt = safe_load(last)
    except RunnerError as err:
        raise RunnerError(f"{str(err).rstrip('.')}. {unresumable(last)}") from None
    if not isinstance(ckpt, dict) or not {"config", "optimizer", "epoch", "batch", "rng"} <= set(ckpt):
        raise RunnerError(
            f"{last} is not a runner training checkpoint (no optimizer, counters or config). It cannot be resumed."
        )
    parsed = zip(overrides, OverridesParser.create().parse_overrides(list(overrides)))
    given = [
        (text, o.key_or_group)
        for text, o in parsed
        if o.key_or_group != "resume" and not o.key_or_group.startswith("hydra")
    ]
    saved = run_config(ckpt["config"])
    if saved.trainer.get("fast_dev_run"):
        raise RunnerError(
            f"{last.parent.parent} is a trainer.fast_dev_run check (a few batches of each split, one epoch): it is run "
            f"again, not resumed. Run the check again, or train for real without trainer.fast_dev_run."
        )
    run_cfg = apply_overrides(OmegaConf.create(OmegaConf.to_container(saved)), cfg, overrides)
    OmegaConf.update(run_cfg, "resume", str(last.parent.parent), force_add=True)
    changes = {}
    for override, key in given:  # an override that repeats the run's own value (the same command again) changes nothing
        old, new = (_value(c, key) for c in (saved, run_cfg))
        if old == new:
            continue
        applied, why = resume_rule(key)
        if not applied:
            raise RunnerError(
                f"resume: '{override}' is refused: {why}. Start a new run for it; on resume only the "
                f"settings in the resume table of docs/resume.md (epochs, device, optimizer values, where the data is) "
                f"may change."
            )
        changes[key] = (old, new)
    done, epochs = ckpt["epoch"], run_cfg.trainer.epochs
    stopped_by = ckpt.get("stopped_by") if status == "completed" else None
    resized = [k for k in ("trainer.epochs", "trainer.max_steps", "trainer.batch_size") if k in changes]
    if resized and whole_run(saved.scheduler):
        typed = next(text for text, key in given if key == resized[0])
        raise RunnerError(
            f"resume: '{typed}' is refused: the run's schedule ({saved.scheduler._target_}, warmup "
            f"{saved.scheduler.get('warmup_epochs', 0)} epochs) was laid out over the run's own length in steps, "
            f"and would end (or fail) before the longer run does. Start a new run with the length you want."
        )
    if stopped_by:
        lift = lifts(stopped_by, ckpt, run_cfg)
        if lift:
            raise RunnerError(
                f"resume: the run completed: {stopped_by} stopped it at epoch {done}, step {ckpt['step']}. "
                f"To train it further, {lift}."
            )
        return Resume(run_cfg, ckpt, changes, lifted=True)
    if status == "completed" and epochs <= done:
        raise RunnerError(
            f"resume: the run already completed its {done} epochs. To train it further, add "
            f"trainer.epochs={done + 10} (or any number above {done})."
        )
    held = done + 1 if ckpt["batch"] else done  # saved mid-epoch: that epoch has begun, and is part of the run
    if epochs < held:
        within = f" and {ckpt['batch']} batches of epoch {done + 1}" if ckpt["batch"] else ""
        raise RunnerError(
            f"resume: trainer.epochs={epochs} is fewer than last.pt holds ({done} epochs{within}, "
            f"{ckpt['step']} steps): the run would end without the steps it already took. Give "
            f"trainer.epochs={held} or more."
        )
    if ckpt["batch"] and "trainer.batch_size" in changes:
        raise RunnerError(
            f"resume: last.pt was saved in the middle of epoch {done + 1} (after {ckpt['batch']} batches of "
            f"{changes['trainer.batch_size'][0]}), and that epoch must finish with the batches it began with. "
            f"Resume without trainer.batch_size, let it finish an epoch, then change it."
        )
    return Resume(run_cfg, ckpt, changes)


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

    from runner.run.records import overrides

    parser = OverridesParser.create()
    kept, swept = [], set()
    for token in shlex.split(command):
        if token in ("-m", "--multirun"):
            continue
        try:
            parsed = parser.parse_override(token) if "=" in token and not token.startswith("-") else None
        except Exception:  # not an override Hydra reads: the program, the command, a flag
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
    for token in overrides(run_dir):  # the job's own values of the swept keys (.hydra/overrides.yaml)
        try:
            if parser.parse_override(token).key_or_group in swept:
                kept.append(token)
        except Exception:
            continue
    return " ".join(shlex.quote(token) for token in kept)


def lifts(stopped_by, ckpt, cfg):
    """None when `cfg` lets a run that `stopped_by` ended train on; otherwise the override that would, in words."""
    recipe = Recipe.of(cfg.trainer)
    if recipe.epochs <= ckpt["epoch"]:
        return f"add trainer.epochs={ckpt['epoch'] + 10} (or any number above {ckpt['epoch']})"
    if stopped_by == "early_stopping" and recipe.patience is not None and ckpt["stale_epochs"] >= recipe.patience:
        return (
            f"raise trainer.early_stopping.patience above {ckpt['stale_epochs']} (the validations since the last "
            f"improvement), or set it to null"
        )
    if stopped_by == "max_steps" and recipe.max_steps is not None and recipe.max_steps <= ckpt["step"]:
        return f"raise trainer.max_steps above {ckpt['step']}, or set it to null"
    if stopped_by == "max_time" and recipe.max_time is not None and recipe.max_time <= ckpt["train_s"]:
        return f"raise trainer.max_time above the {ckpt['train_s']:.0f} s the run has trained, or set it to null"
    return None
