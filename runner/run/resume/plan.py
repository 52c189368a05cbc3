"""`runner train resume=RUN_DIR`: what a continuing run continues with, planned from its last.pt before anything in
its directory is touched, and restored into its state.

    runner train resume=outputs/2026-11-22/10-31-07                     # where it stopped
    runner train resume=outputs/2026-11-22/10-31-07 trainer.epochs=20   # and further
    runner train resume=outputs/2026-11-22/10-31-07 optimizer.lr=1e-4   # with a lower learning rate

The run's own config comes from last.pt. Each override on the command line is looked up in the resume table
(table.py): it is either applied for real to the continuing run, or refused, with the reason. A completed run
continues only when an override lifts what stopped it (`lifts`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from omegaconf import OmegaConf

from runner.io.errors import RunnerError
from runner.run.resume.advice import unresumable
from runner.run.resume.table import resume_rule
from runner.training.recipe import Recipe

if TYPE_CHECKING:
    from collections.abc import Collection, Sequence

    import torch
    from omegaconf import DictConfig

    from runner.training.schedules import Schedule
    from runner.training.state import TrainState

# what last.pt holds that no other checkpoint does (TrainState.state_dict)
RESUMABLE = frozenset({"config", "optimizer", "epoch", "batch", "rng"})


@dataclass
class Resume:
    """What a resumed run continues from: its config with the overrides applied, and its last.pt."""

    cfg: DictConfig
    checkpoint: dict[str, Any]
    # key -> (value in the run, value from now on)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    # a completed run continues: the override raised what stopped it
    lifted: bool = False

    def restore(self, state: TrainState) -> None:
        """Load last.pt into `state`, then apply the overridden optimizer settings for real."""
        state.load_state_dict(self.checkpoint)
        specs = _value(self.cfg, "optimizer.param_groups") or []
        for key, (_, new) in self.changes.items():
            if key.startswith("optimizer."):
                name = key.split(".", 1)[1]
                # optimizer.param_groups[i] is group i + 1 (training/build.py); one that sets `name` keeps its own
                own = {i + 1 for i, spec in enumerate(specs) if name in spec}
                set_optimizer_value(state.optimizer, state.schedule, name, new, keep=own)
        if self.lifted:
            # the limit that ended the run was raised: train on
            state.stopped_by = None

    @property
    def resuming_from(self) -> str:
        """Where the run continues, in the words of the stop that saved last.pt ("stopped by SIGTERM in epoch 2
        after step 234"): its "epoch" counts finished epochs, "batch" the batches done in the one under way."""
        epoch, step = self.checkpoint["epoch"], self.checkpoint["step"]
        if self.checkpoint.get("batch"):
            return f"resuming in epoch {epoch + 1} after step {step}"
        return f"resuming after epoch {epoch}, step {step}"

    @property
    def saved_world(self) -> int:
        """The number of processes that trained the run (last.pt's `ranks`, written under torchrun; else one)."""
        return len(self.checkpoint.get("ranks") or [None])


def _value(cfg: DictConfig, key: str) -> Any:
    value = OmegaConf.select(cfg, key)
    return OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value


def set_optimizer_value(
    optimizer: torch.optim.Optimizer, schedule: Schedule | None, name: str, value: Any, keep: Collection[int] = ()
) -> None:
    """optimizer.`name`=`value` on the restored optimizer: in every parameter group but those in `keep` (indices of the
    groups optimizer.param_groups gave their own `name`, which the new value does not reach, as in a new run with the
    same config); for lr, the schedule's base rate of the same groups."""
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
    if name == "lr" and schedule is not None:
        schedule.set_base_lr(value, keep)


def read_checkpoint(last: Path) -> dict[str, Any]:
    """last.pt, refused by name where it cannot be read or is no runner training checkpoint."""
    from runner.io.serialization import safe_load

    try:
        ckpt = safe_load(last)
    except RunnerError as err:
        raise RunnerError(f"{str(err).rstrip('.')}. {unresumable(last)}") from None
    if not isinstance(ckpt, dict) or not set(ckpt) >= RESUMABLE:
        raise RunnerError(
            f"{last} is not a runner training checkpoint (no optimizer, counters or config). It cannot be resumed."
        )
    return ckpt


def plan_resume(cfg: DictConfig, last: Path, status: str | None, overrides: Sequence[str]) -> Resume:
    """Check a resume of the run whose last.pt is `last` and whose state is `status`; write nothing."""
    ckpt = read_checkpoint(last)
    return plan(cfg, ckpt, status, overrides, run_dir=last.parent.parent)


def plan(cfg: DictConfig, ckpt: dict[str, Any], status: str | None, overrides: Sequence[str], run_dir: Path) -> Resume:
    """The resume of the run in `run_dir` whose last.pt holds `ckpt` and whose state is `status`, with the command
    line's `overrides` (composed into `cfg`): its config and changes, or the refusal that names what to type instead.
    Reads and writes nothing."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    from runner.config.checks import apply_overrides
    from runner.inference.loading import run_config
    from runner.training.schedules import whole_run

    parsed = zip(overrides, OverridesParser.create().parse_overrides(list(overrides)))
    given = [
        (text, o.key_or_group)
        for text, o in parsed
        if o.key_or_group != "resume" and not o.key_or_group.startswith("hydra")
    ]
    saved = run_config(ckpt["config"])
    if saved.trainer.get("fast_dev_run"):
        raise RunnerError(
            f"{run_dir} is a trainer.fast_dev_run check (a few batches of each split, one epoch): it is run "
            f"again, not resumed. Run the check again, or train for real without trainer.fast_dev_run."
        )
    # a copy of the DictConfig `saved` (OmegaConf.create's type allows a ListConfig too)
    copy = cast("DictConfig", OmegaConf.create(OmegaConf.to_container(saved)))
    run_cfg = apply_overrides(copy, cfg, overrides)
    OmegaConf.update(run_cfg, "resume", str(run_dir), force_add=True)
    changes = {}
    # an override that repeats the run's own value (the same command again) changes nothing
    for override, key in given:
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
    if OmegaConf.select(run_cfg, "trainer.ema.decay") and ckpt.get("ema") is None:
        raise RunnerError(
            "last.pt holds no EMA weights (the run trained without trainer.ema.decay), so this "
            "resume cannot continue an EMA. Resume without trainer.ema.decay."
        )
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
    # saved mid-epoch: that epoch has begun, and is part of the run
    held = done + 1 if ckpt["batch"] else done
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


def lifts(stopped_by: str, ckpt: dict[str, Any], cfg: DictConfig) -> str | None:
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
