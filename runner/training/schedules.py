"""Learning-rate schedules: any torch.optim.lr_scheduler, stepped per epoch or per optimizer step, after a warmup.

    scheduler=cosine      cosine to zero over the whole run, per step     (CosineAnnealingLR)
    scheduler=linear      linear decay to zero over the whole run, per step (LinearLR)
    scheduler=onecycle    warm up to max_lr, then anneal, per step        (OneCycleLR)
    scheduler=step        x gamma every step_size epochs                  (StepLR)
    scheduler.warmup_epochs=0.5   a linear warmup in front of any of them (LinearLR + SequentialLR)

Beside the scheduler's own arguments, its config has two keys runner reads (SCHEDULE_KEYS):
`interval` (epoch or step, Lightning's name: what one scheduler.step() means) and
`warmup_epochs` (timm's name; fractional with interval=step). A length argument left null
(T_max, total_iters, total_steps) means the whole run after the warmup, counted in the
interval's unit, which the trainer knows only once the data is loaded.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Sequence
from typing import TYPE_CHECKING, Any

from torch.optim import Optimizer
from torch.optim.lr_scheduler import LinearLR, OneCycleLR, SequentialLR

from runner.io.errors import RunnerError
from runner.training.build import instantiate, plain

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch.optim.lr_scheduler import LRScheduler

# read here, not passed to the scheduler's class
SCHEDULE_KEYS = ("interval", "warmup_epochs")
# null = the rest of the run
WHOLE_RUN_KEYS = ("T_max", "total_iters", "total_steps")


class Schedule:
    """A torch LRScheduler and when it steps; saved in last.pt as the scheduler's own state_dict.

    `parts` are the schedulers it is made of (the warmup ramp and the main one, chained by SequentialLR),
    whose base rates a resume with a new optimizer.lr sets."""

    def __init__(self, scheduler: LRScheduler, interval: str, parts: Sequence[LRScheduler] | None = None) -> None:
        self.scheduler, self.interval = scheduler, interval
        self.parts = parts or [scheduler]

    def after_step(self) -> None:
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self) -> None:
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self) -> dict[str, Any]:
        return self.scheduler.state_dict()

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.scheduler.load_state_dict(state)

    def set_base_lr(self, lr: float, keep: Collection[int] = ()) -> None:
        """A new learning rate from here on (resume optimizer.lr=...): the base of every scheduler in the chain, for
        every parameter group but those in `keep` (groups with a rate of their own)."""
        if any(isinstance(s, OneCycleLR) for s in self.parts):
            raise RunnerError(
                "resume: optimizer.lr cannot change a onecycle schedule, whose every step's rate was laid out "
                "from scheduler.max_lr at the start. Start a new run for another peak rate."
            )
        # SequentialLR has no base rate of its own: its parts do
        for s in self.parts:
            s.base_lrs = [base if i in keep else lr for i, base in enumerate(s.base_lrs)]


def whole_run(scheduler_cfg: DictConfig) -> bool:
    """Whether the schedule's length was laid out from the run's length (so the run cannot be made longer on resume)."""
    return scheduler_cfg.get("_target_") is not None and (
        any(k in scheduler_cfg and scheduler_cfg[k] is None for k in WHOLE_RUN_KEYS)
        or bool(scheduler_cfg.get("warmup_epochs"))
    )


def check_schedule(scheduler_cfg: DictConfig) -> None:
    """The keys runner reads, and combinations that cannot work; without building anything."""
    interval, warmup = scheduler_cfg.get("interval", "epoch"), scheduler_cfg.get("warmup_epochs", 0)
    if interval not in ("epoch", "step"):
        raise RunnerError(
            f"scheduler.interval must be epoch or step, got {interval!r}: whether one scheduler step is an "
            f"epoch or an optimizer step. Type it as scheduler.interval=step."
        )
    if isinstance(warmup, bool) or not isinstance(warmup, (int, float)) or warmup < 0:
        raise RunnerError(
            f"scheduler.warmup_epochs must be a number >= 0, got {warmup!r}. Type it as scheduler.warmup_epochs=1."
        )
    if warmup and interval == "epoch" and warmup != int(warmup):
        raise RunnerError(
            f"scheduler.warmup_epochs={warmup} is a fraction of an epoch, but this schedule steps once per epoch. "
            f"Add scheduler.interval=step, or give a whole number of epochs."
        )
    if warmup and str(scheduler_cfg.get("_target_", "")).endswith("OneCycleLR"):
        raise RunnerError(
            "scheduler.warmup_epochs does not apply to onecycle, which warms up itself over its first "
            "pct_start of the run. Set scheduler.pct_start instead (e.g. scheduler.pct_start=0.1), and warmup_epochs=0."
        )


def build_schedule(
    scheduler_cfg: DictConfig,
    optimizer: Optimizer,
    *,
    steps_per_epoch: int,
    epochs: int,
    max_steps: int | None = None,
) -> Schedule | None:
    """The Schedule for `optimizer`, or None for a constant rate without warmup.

    `steps_per_epoch` counts optimizer steps (batches / accumulate_grad_batches); the run's length is
    `epochs` of them, or `max_steps` when that comes first.
    """
    check_schedule(scheduler_cfg)
    interval = scheduler_cfg.get("interval", "epoch")
    per = 1 if interval == "epoch" else steps_per_epoch
    total = epochs * per if interval == "epoch" or max_steps is None else min(epochs * per, max_steps)
    warmup = round(scheduler_cfg.get("warmup_epochs", 0) * per)
    if warmup >= total:
        raise RunnerError(
            f"scheduler.warmup_epochs={scheduler_cfg.warmup_epochs} is {warmup} {interval}s, as long as the "
            f"whole run ({total} {interval}s), so the schedule would never start. Use a shorter warmup."
        )
    main = None
    if scheduler_cfg.get("_target_") is not None:
        # max_lr: ${optimizer.lr} needs the whole config
        resolved = plain(scheduler_cfg)
        args = {k: v for k, v in resolved.items() if k not in SCHEDULE_KEYS}
        args.update({k: total - warmup for k in WHOLE_RUN_KEYS if k in args and args[k] is None})
        if str(args.get("_target_", "")).endswith("OneCycleLR"):
            args = onecycle_args(args, optimizer, total)
        main = instantiate(args)(optimizer)
    if not warmup:
        return Schedule(main, interval) if main is not None else None
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup)
    if main is None:
        return Schedule(ramp, interval)
    return Schedule(SequentialLR(optimizer, [ramp, main], milestones=[warmup]), interval, parts=[ramp, main])


def onecycle_args(args: dict[str, Any], optimizer: Optimizer, run_steps: int) -> dict[str, Any]:
    """OneCycleLR's arguments for `optimizer` over a run of `run_steps` optimizer steps.

    Each parameter group peaks at its own rate: a max_lr given as one number (configs/scheduler/onecycle.yaml's
    ${optimizer.lr}) is the peak of the groups at optimizer.lr, and every other group (optimizer.param_groups) peaks
    at the same multiple of its own lr; OneCycleLR itself would give every group that one number. And the phases are
    laid out so that torch can compute them: it puts the peak at step pct_start x total_steps (counted from 1) and
    divides by each phase's length, zero for a warm-up of exactly one step (`trainer.max_steps=4` at the default
    pct_start=0.25). That warm-up peaks at the first step, as a pct_start a billionth smaller lays it out; any other
    phase of no length is refused naming scheduler.pct_start."""
    # a list of max_lr reaches OneCycleLR as a list (a ListConfig is not one to it)
    args = {**args, "_convert_": "all"}
    total, pct = args.get("total_steps"), args.get("pct_start", 0.3)
    if isinstance(total, int) and total < run_steps:
        raise RunnerError(
            f"scheduler.total_steps={total} is shorter than the run ({run_steps} optimizer steps): onecycle cannot "
            f"step past its end. Use scheduler.total_steps=null (the whole run), or trainer.max_steps={total}."
        )
    base = optimizer.defaults["lr"]
    if isinstance(args.get("max_lr"), (int, float)) and base:
        scale = args["max_lr"] / base
        args["max_lr"] = [group["lr"] * scale for group in optimizer.param_groups]
    if not isinstance(total, int) or not isinstance(pct, (int, float)) or not 0 <= pct <= 1:
        # OneCycleLR's own checks say what is wrong
        return args
    ends = _onecycle_ends(pct, total, args.get("three_phase", False))
    if ends[0] == 0.0:
        args["pct_start"] = pct = pct * (1 - 1e-9)
        ends = _onecycle_ends(pct, total, args.get("three_phase", False))
    if any(b == a for a, b in zip([0.0, *ends], ends)):
        raise RunnerError(
            f"scheduler.pct_start={args['pct_start']:g} over the run's {total} optimizer steps leaves onecycle a phase "
            f"of no length, which torch's OneCycleLR cannot lay out. Use scheduler.pct_start=0.3."
        )
    return args


def _onecycle_ends(pct: float, total: int, three_phase: bool) -> list[float]:
    """The last step of each of OneCycleLR's phases, as torch computes them (counted from 0)."""
    if three_phase:
        return [float(pct * total) - 1, float(2 * pct * total) - 2, total - 1]
    return [float(pct * total) - 1, total - 1]


def steps_per_epoch(batches: int, accumulate: int) -> int:
    """Optimizer steps in an epoch of `batches` when gradients of `accumulate` batches make one step."""
    return math.ceil(batches / accumulate)
