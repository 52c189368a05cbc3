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

import math

from omegaconf import OmegaConf
from torch.optim.lr_scheduler import LinearLR, OneCycleLR, SequentialLR

from runner.io.errors import RunnerError
from runner.training.build import instantiate

SCHEDULE_KEYS = ("interval", "warmup_epochs")  # read here, not passed to the scheduler's class
WHOLE_RUN_KEYS = ("T_max", "total_iters", "total_steps")  # null = the rest of the run


class Schedule:
    """A torch LRScheduler and when it steps; saved in last.pt as the scheduler's own state_dict.

    `parts` are the schedulers it is made of (the warmup ramp and the main one, chained by SequentialLR),
    whose base rates a resume with a new optimizer.lr sets."""

    def __init__(self, scheduler, interval, parts=None):
        self.scheduler, self.interval = scheduler, interval
        self.parts = parts or [scheduler]

    def after_step(self):
        if self.interval == "step":
            self.scheduler.step()

    def after_epoch(self):
        if self.interval == "epoch":
            self.scheduler.step()

    def state_dict(self):
        return self.scheduler.state_dict()

    def load_state_dict(self, state):
        self.scheduler.load_state_dict(state)

    def set_base_lr(self, lr, keep=()):
        """A new learning rate from here on (resume optimizer.lr=...): the base of every scheduler in the chain, for
        every parameter group but those in `keep` (groups with a rate of their own)."""
        if any(isinstance(s, OneCycleLR) for s in self.parts):
            raise RunnerError(
                "resume: optimizer.lr cannot change a onecycle schedule, whose every step's rate was laid out "
                "from scheduler.max_lr at the start. Start a new run for another peak rate."
            )
        for s in self.parts:  # SequentialLR has no base rate of its own: its parts do
            s.base_lrs = [base if i in keep else lr for i, base in enumerate(s.base_lrs)]


def whole_run(scheduler_cfg):
    """Whether the schedule's length was laid out from the run's length (so the run cannot be made longer on resume)."""
    return scheduler_cfg.get("_target_") is not None and (
        any(k in scheduler_cfg and scheduler_cfg[k] is None for k in WHOLE_RUN_KEYS)
        or bool(scheduler_cfg.get("warmup_epochs"))
    )


def check_schedule(scheduler_cfg):
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


def build_schedule(scheduler_cfg, optimizer, *, steps_per_epoch, epochs, max_steps=None):
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
        resolved = OmegaConf.to_container(scheduler_cfg, resolve=True)  # max_lr: ${optimizer.lr} needs the whole config
        args = {k: v for k, v in resolved.items() if k not in SCHEDULE_KEYS}
        args.update({k: total - warmup for k in WHOLE_RUN_KEYS if k in args and args[k] is None})
        main = instantiate(args)(optimizer)
    if not warmup:
        return Schedule(main, interval) if main is not None else None
    ramp = LinearLR(optimizer, start_factor=1 / warmup, end_factor=1.0, total_iters=warmup)
    if main is None:
        return Schedule(ramp, interval)
    return Schedule(SequentialLR(optimizer, [ramp, main], milestones=[warmup]), interval, parts=[ramp, main])


def steps_per_epoch(batches, accumulate):
    """Optimizer steps in an epoch of `batches` when gradients of `accumulate` batches make one step."""
    return math.ceil(batches / accumulate)
