"""The trainer's knobs (configs/trainer/default.yaml), each declared once, and the rules the loop applies.

A knob is one field of `Recipe`: its type, the values it accepts, the example its error
message shows, and what a resume may do with it. From these declarations come the value checks
(config/checks.py), the closed key set of `trainer`, the trainer rows of the resume table
(run/resume/table.py) and the `Recipe` the loop reads. Adding a knob is a line in
default.yaml, a field here, and the code that uses it.
"""

from __future__ import annotations

import math
import numbers
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields, replace
from typing import TYPE_CHECKING, Any, TypeGuard, cast, overload

from omegaconf import OmegaConf

from runner.io.errors import RunnerError

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from runner.training.state import TrainState


def is_int(v: object) -> TypeGuard[int]:
    return isinstance(v, int) and not isinstance(v, bool)


def is_number(v: object) -> TypeGuard[float]:
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


@dataclass(frozen=True)
class Accepts:
    """The values a setting accepts: a test and its description in words ("an integer >= 1")."""

    # the test's result is read as true or false
    test: Callable[[Any], object]
    words: str

    def __call__(self, value: object) -> object:
        return self.test(value)


def integer(low: int, null: bool = False) -> Accepts:
    """An integer >= low (or None where `null`)."""
    words = f"an integer >= {low}"
    test = lambda v: is_int(v) and v >= low  # noqa: E731
    return Accepts(lambda v: v is None or test(v), f"null or {words}") if null else Accepts(test, words)


def one_of(*values: object, words: str) -> Accepts:
    """One of `values`."""
    return Accepts(lambda v: v in values, words)


# an example a knob's error message shows, as typed in YAML
Example = int | float | str | list[str] | list[int]

FLAG = Accepts(lambda v: isinstance(v, bool), "true or false")


def duration_s(value: object, strict: bool = True) -> float | None:
    """trainer.max_time in seconds: a number of seconds, or "DD:HH:MM:SS" (Lightning's form; "HH:MM:SS", "MM:SS" too).

    None stays None; a value that is neither returns None when not `strict`, and raises RunnerError otherwise."""
    if value is None:
        return None
    if is_number(value) and value > 0:
        return float(value)
    parts = str(value).split(":") if isinstance(value, str) else []
    if 2 <= len(parts) <= 4 and all(p.strip().isdigit() for p in parts):
        seconds = sum(int(p) * unit for p, unit in zip(reversed(parts), (1, 60, 3600, 86400)))
        if seconds > 0:
            return float(seconds)
    if strict:
        raise RunnerError(
            f"trainer.max_time must be null, seconds, or DD:HH:MM:SS, got {value!r}. "
            f"Type it as trainer.max_time=00:01:30:00."
        )
    return None


def knob(
    accepts: Accepts,
    example: Example,
    *,
    resume: str | None = None,
    refuse: str | None = None,
    key: str | None = None,
    convert: Callable[[Any], Any] | None = None,
) -> Any:
    """A field of Recipe: `trainer.KEY` accepts `accepts`; `example` is the value its error message suggests.

    On a resume the override is applied, with `resume` saying what it does, or refused with the reason `refuse`.
    `key` is the config key where it differs from the field's name; `convert` turns the config value into the
    field's (max_time's DD:HH:MM:SS into seconds)."""
    assert (resume is None) != (refuse is None), "a knob is either applied on resume or refused"
    meta = dict(accepts=accepts, example=example, resume=resume, refuse=refuse, key=key, convert=convert)
    return field(metadata=meta)


def batch_count(value: object, null: bool = True) -> bool:
    """A number of batches: an integer >= 1 or a fraction in (0, 1] of the split's batches (Lightning's
    limit_*_batches and overfit_batches take both); None (off) where `null`."""
    if value is None:
        return null
    if is_int(value):
        return value >= 1
    return isinstance(value, float) and 0 < value <= 1


def class_weights_ok(value: object) -> bool:
    """trainer.class_weights: None, "balanced", or a list of numbers >= 0, not all 0."""
    if value is None or value == "balanced":
        return True
    if not (isinstance(value, (list, tuple)) or OmegaConf.is_list(value)):
        return False
    weights = list(cast("Any", value))
    return bool(weights) and all(is_number(w) and w >= 0 for w in weights) and any(w > 0 for w in weights)


BATCHES = Accepts(batch_count, "null, a number of batches >= 1, or a fraction of them in (0, 1], e.g. 0.25")

MONITOR = Accepts(
    lambda v: v is None or v == "train_loss" or (isinstance(v, str) and v.startswith("val_")),
    "null, train_loss, or a validation metric such as val_loss",
)
PICKED_BEST = "best.pt and the best epoch so far were chosen by the run's own metric"
FROM_NEXT_STEP = "from the next step"
LIFTS = "a larger value (or null) continues a run it stopped"
FROZEN = "which parameters trained in which epoch is part of the run so far (training/freezing.py)"
QUICK_CHECK = "a quick check is run again, not resumed into a run of another kind"
STEPS_LAID_OUT = "the step counter and the schedule were laid out with the run's own number of steps per epoch"
EMA_REFUSED = "best.pt and the validations so far were made with the run's own EMA weights"


@dataclass(frozen=True)
class Recipe:
    """Every trainer setting a job reads, checked and typed, built once in setup (`Recipe.of(cfg.trainer)`)."""

    epochs: int = knob(
        integer(1),
        10,
        resume="trains on to this many epochs: no fewer than last.pt holds, more than a completed run has",
    )
    batch_size: int = knob(integer(1), 64, resume="from the next epoch on; refused when last.pt was saved mid-epoch")
    eval_batch_size: int = knob(integer(1), 512, resume="for validation and the final test")
    monitor: str | None = knob(MONITOR, "val_loss", refuse=PICKED_BEST)
    monitor_mode: str | None = knob(one_of(None, "min", "max", words="null, min or max"), "max", refuse=PICKED_BEST)
    # the figures each validation computes besides the loss and the task's own (runner/stats); checked against the
    # task's names in training/metrics.check_figures
    metrics: tuple[str, ...] | None = knob(
        Accepts(
            lambda v: (
                v is None
                or ((isinstance(v, (list, tuple)) or OmegaConf.is_list(v)) and all(isinstance(n, str) and n for n in v))
            ),
            "null or a list of figure names, e.g. [f1_macro,auroc] (docs/metrics.md)",
        ),
        ["f1_macro", "auroc"],
        refuse="metrics.csv's columns were laid out with the run's own figures",
        convert=lambda v: tuple(str(n) for n in v),
    )
    # a binary task's decision threshold on class 1's probability, or "tuned" (the F1-best on validation at best.pt)
    threshold: float | str = knob(
        Accepts(lambda v: v == "tuned" or (is_number(v) and 0 < v < 1), "a number in (0, 1) or tuned"),
        0.3,
        resume="for the final test and the model card, which predict and export read",
        convert=lambda v: v if isinstance(v, str) else float(v),
    )
    deterministic: bool = knob(FLAG, "true", resume="torch.use_deterministic_algorithms")
    num_threads: int | None = knob(integer(1, null=True), 2, resume="torch's CPU threads")
    grad_clip: float | None = knob(
        Accepts(lambda v: v is None or (is_number(v) and v > 0), "null or a number > 0"), 1.0, resume=FROM_NEXT_STEP
    )
    log_every_n_steps: int = knob(integer(1), 10, resume=FROM_NEXT_STEP)
    precision: str = knob(
        Accepts(lambda v: str(v) in ("32", "bf16", "16-mixed"), "32, bf16 or 16-mixed"),
        "bf16",
        refuse="the loss scale and the numerics in last.pt belong to the run's precision",
        convert=str,
    )
    channels_last: bool | str = knob(
        one_of("auto", True, False, words="auto, true or false"),
        "auto",
        resume="the memory format (the same values, laid out differently)",
    )
    compile: bool = knob(FLAG, "true", resume="torch.compile, or not")
    checkpoint_every_n_steps: int | None = knob(integer(1, null=True), 100, resume=FROM_NEXT_STEP)
    accumulate_grad_batches: int = knob(
        integer(1),
        4,
        refuse=STEPS_LAID_OUT,
    )
    label_smoothing: float = knob(
        Accepts(lambda v: is_number(v) and 0 <= v < 1, "a number in [0, 1)"), 0.1, resume=FROM_NEXT_STEP
    )
    # the training loss's weight per class (F.cross_entropy's weight=); its length is checked against the dataset's
    # classes in config/checks.py
    class_weights: str | tuple[float, ...] | None = knob(
        Accepts(class_weights_ok, "null, balanced, or a list of one number >= 0 per class, e.g. [1,10]"),
        "balanced",
        resume=FROM_NEXT_STEP,
        convert=lambda v: v if isinstance(v, str) else tuple(float(w) for w in v),
    )
    patience: int | None = knob(
        integer(1, null=True),
        3,
        key="early_stopping.patience",
        resume="from the next validation; a larger patience (or null) continues a run it stopped",
    )
    min_delta: float = knob(
        Accepts(lambda v: is_number(v) and v >= 0, "a number >= 0"),
        0.001,
        key="early_stopping.min_delta",
        resume="from the next validation",
    )
    ema_decay: float | None = knob(
        Accepts(lambda v: v is None or (is_number(v) and 0 < v < 1), "null or a number between 0 and 1"),
        0.999,
        key="ema.decay",
        refuse=EMA_REFUSED,
    )
    ema_warmup: bool = knob(FLAG, "false", key="ema.warmup", refuse=EMA_REFUSED)
    freeze: tuple = knob(
        Accepts(
            lambda v: (
                (isinstance(v, (list, tuple)) or OmegaConf.is_list(v)) and all(isinstance(p, str) and p for p in v)
            ),
            "a list of parameter or module name patterns, e.g. [features]",
        ),
        ["features"],
        refuse=FROZEN,
        convert=tuple,
    )
    unfreeze_at_epoch: int | None = knob(integer(2, null=True), 3, refuse=FROZEN)
    max_steps: int | None = knob(integer(1, null=True), 1000, resume=f"stops the run at this step; {LIFTS}")
    ddp_timeout: float | None = knob(
        # at most a year: datetime.timedelta overflows on larger numbers of seconds (inf, 1e300)
        Accepts(lambda v: v is None or (is_number(v) and 0 < v <= 31_536_000), "null or seconds, > 0 and <= 31536000"),
        300,
        resume="the resuming command's own value (given, or null: torch's), not the run's, for this launch's processes",
    )
    max_time: float | None = knob(
        Accepts(lambda v: v is None or duration_s(v, strict=False) is not None, "null, seconds, or DD:HH:MM:SS"),
        "00:01:30:00",
        convert=duration_s,
        resume=f"stops the run after this much training in all; {LIFTS}",
    )
    # which checkpoints a run keeps beside last.pt and best.pt (training/checkpoints.py; Lightning's ModelCheckpoint)
    save_top_k: int = knob(
        Accepts(lambda v: is_int(v) and (v >= 1 or v == -1), "an integer >= 1, or -1 for every epoch"),
        3,
        refuse="the epochs kept so far were chosen by the run's own k",
    )
    every_n_epochs: int | None = knob(integer(1, null=True), 5, resume="from the next epoch")
    every_n_steps: int | None = knob(integer(1, null=True), 500, resume=FROM_NEXT_STEP)
    save_total_limit: int | None = knob(
        integer(1, null=True), 3, resume="from the next periodic checkpoint, the oldest beyond it removed"
    )
    average_top_k: bool = knob(FLAG, "true", resume="at the end of training")
    profile: bool = knob(FLAG, "true", resume="profiles the window's steps counted from the resume")
    profile_steps: tuple = knob(
        Accepts(
            lambda v: (
                (isinstance(v, (list, tuple)) or OmegaConf.is_list(v))
                and len(v) == 3
                and all(is_int(n) for n in v)
                and v[0] >= 0
                and v[1] >= 0
                and v[2] >= 1
            ),
            "[wait, warmup, active]: optimizer steps, wait and warmup >= 0, active >= 1",
        ),
        [1, 1, 3],
        resume="profiles the window's steps counted from the resume",
        convert=tuple,
    )
    # Lightning's names and meanings (Trainer(fast_dev_run=, overfit_batches=, limit_train_batches=, ...))
    fast_dev_run: bool | int = knob(
        Accepts(lambda v: isinstance(v, bool) or (is_int(v) and v >= 1), "false, true or a number of batches >= 1"),
        "true",
        refuse=QUICK_CHECK,
    )
    overfit_batches: int | float = knob(
        Accepts(lambda v: v == 0 or batch_count(v, null=False), "0 or a number of batches >= 1 (or a fraction)"),
        4,
        refuse=QUICK_CHECK,
    )
    limit_train_batches: int | float | None = knob(BATCHES, 0.25, refuse=STEPS_LAID_OUT)
    limit_val_batches: int | float | None = knob(BATCHES, 10, resume="from the next validation")
    limit_test_batches: int | float | None = knob(BATCHES, 10, resume="for the final test")

    def __post_init__(self) -> None:
        """The refusals that read two knobs together, beside the knobs (Ludwig's config schema checks there)."""
        # trainer.average_top_k needs more than one kept checkpoint to average; save_total_limit caps the periodic
        # ones, which every_n_epochs or every_n_steps make; the two quick checks are one or the other
        if self.save_total_limit and not (self.every_n_epochs or self.every_n_steps):
            raise RunnerError(
                f"trainer.save_total_limit={self.save_total_limit} caps the periodic checkpoints, and there are none: "
                f"set trainer.every_n_epochs=5 or trainer.every_n_steps=500 with it, or drop it."
            )
        if self.fast_dev_run and self.overfit_batches:
            raise RunnerError(
                "trainer.fast_dev_run and trainer.overfit_batches are two different checks (one epoch of every split; "
                "many epochs of the same batches). Run one, then the other."
            )
        if self.average_top_k and self.save_top_k == 1:
            raise RunnerError(
                "trainer.average_top_k averages the checkpoints trainer.save_top_k keeps, and save_top_k=1 keeps one "
                "(the average of one checkpoint is that checkpoint). Start the run with trainer.save_top_k=3 (a "
                "resume keeps its run's k), or drop trainer.average_top_k."
            )
        if self.unfreeze_at_epoch is not None and not self.freeze:
            raise RunnerError(
                f"trainer.unfreeze_at_epoch={self.unfreeze_at_epoch} unfreezes nothing: trainer.freeze is empty. "
                f"Give the parameters to freeze until then, e.g. 'trainer.freeze=[features]', or drop it."
            )

    @classmethod
    def of(cls, trainer_cfg: DictConfig) -> Recipe:
        """The Recipe of a checked `trainer` config node (config/checks.py has refused bad values already)."""
        values: dict[str, Any] = {}
        for knob_ in KNOBS:
            value = OmegaConf.select(trainer_cfg, knob_.key)
            values[knob_.name] = knob_.convert(value) if knob_.convert and value is not None else value
        recipe = cls(**values)
        if recipe.fast_dev_run:  # Lightning's: N batches (1 for true) of each split, one epoch
            n = 1 if recipe.fast_dev_run is True else recipe.fast_dev_run
            recipe = replace(
                recipe,
                epochs=1,
                max_steps=None,
                max_time=None,
                limit_train_batches=n,
                limit_val_batches=n,
                limit_test_batches=n,
            )
        return recipe

    @property
    def quick_check(self) -> str | None:
        """ "fast_dev_run" or "overfit_batches" for a run that checks the setup and is not a result (`runner report`
        leaves it out), else None."""
        if self.fast_dev_run:
            return "fast_dev_run"
        return "overfit_batches" if self.overfit_batches else None

    def starts_update(self, batches_done: int) -> bool:
        """True when the next batch begins a new group of accumulated gradients (its gradients start from zero)."""
        return batches_done % self.accumulate_grad_batches == 0

    def ends_update(self, batches_done: int, n_batches: int) -> bool:
        """True when the batch just done closes a group: the optimizer steps. The epoch's last batch always does,
        so a short last group steps too (Lightning's accumulate_grad_batches)."""
        return batches_done % self.accumulate_grad_batches == 0 or batches_done == n_batches

    def group_size(self, batches_done: int, n_batches: int) -> int:
        """The size of the accumulation group of the batch after `batches_done` in an epoch of `n_batches` (fewer
        than accumulate_grad_batches for a short last group): each loss is divided by it, so a step is its mean."""
        start = batches_done - batches_done % self.accumulate_grad_batches
        return min(self.accumulate_grad_batches, n_batches - start)

    def checkpoint_due(self, step: int) -> bool:
        """True when trainer.checkpoint_every_n_steps asks for last.pt after optimizer step `step`."""
        every = self.checkpoint_every_n_steps
        if not every:
            return False
        return step % every == 0

    def limit_reached(self, step: int, train_s: float) -> str | None:
        """ "max_steps" or "max_time" once the run has reached it after `step` steps and `train_s` seconds, else
        None."""
        if self.max_steps is not None and step >= self.max_steps:
            return "max_steps"
        if self.max_time is not None and train_s >= self.max_time:
            return "max_time"
        return None


@overload
def batches_of(value: float, full: int, key: str) -> int: ...
@overload
def batches_of(value: None, full: int, key: str) -> None: ...
def batches_of(value: float | None, full: int, key: str) -> int | None:
    """The number of batches trainer.KEY=`value` (None, a count or a fraction) takes of a pass of `full` batches: None
    for all, else at most `full`. A fraction takes int(fraction x full) batches, as Lightning's limit_*_batches do, and
    is refused (RunnerError) where that is none."""
    if value is None:
        return None
    n = value if is_int(value) else int(value * full)
    if n < 1:
        batches = f"the {full} batches" if full > 1 else "the one batch"
        fraction = f" or a fraction of at least {1 / full:.3g}" if full > 1 else "; null takes it all"
        raise RunnerError(
            f"trainer.{key}={value} of {batches} of a pass is no batch at all. Use trainer.{key}=1 (one "
            f"batch){fraction}."
        )
    return min(n, full)


@dataclass(frozen=True)
class Knob:
    """One declared trainer setting, as the checks and the resume table read it."""

    name: str  # the Recipe field
    key: str  # under trainer., e.g. early_stopping.patience
    accepts: Accepts
    example: Example
    resume: str | None  # what an override does on resume (applied), or None
    refuse: str | None  # why an override is refused on resume, or None
    # the config value to the field's (str, tuple, duration_s), or None
    convert: Callable[[Any], Any] | None

    @property
    def path(self) -> str:
        return f"trainer.{self.key}"


KNOBS = tuple(
    Knob(
        f.name,
        f.metadata["key"] or f.name,
        f.metadata["accepts"],
        f.metadata["example"],
        f.metadata["resume"],
        f.metadata["refuse"],
        f.metadata["convert"],
    )
    for f in fields(Recipe)
)


def trainer_keys(group: str = "") -> tuple[str, ...]:
    """The keys of `trainer` (or of its sub-node `group`, e.g. "ema") that runner reads, in declaration order."""
    prefix = f"{group}." if group else ""
    keys = [k.key[len(prefix) :].split(".")[0] for k in KNOBS if k.key.startswith(prefix)]
    return tuple(dict.fromkeys(keys))


def finite(value: object) -> TypeGuard[float]:
    """True for a real number that is neither NaN nor infinite: the only monitored values that can be best."""
    return is_number(value) and math.isfinite(value)


def early_stopping(
    value: float, best: float | None, stale: int, *, mode: str, min_delta: float
) -> tuple[float | None, int]:
    """(best, stale validations) after one more validation of the monitored metric (Lightning's EarlyStopping rule).

    An improvement is a change by more than `min_delta` in the direction of `mode` ("min" or "max")
    over `best` (None before the first validation); it resets `stale` to 0, anything else adds one. A NaN or
    infinite value is never an improvement, nor ever `best` (`(x - nan) > d` is False, so a NaN best would stop
    every later epoch from improving on it): it counts as one more validation that did not improve."""
    if not finite(value):
        return (best if finite(best) else None), stale + 1
    sign = 1 if mode == "max" else -1
    if not finite(best) or sign * (value - best) > min_delta:
        return value, 0
    return best, stale + 1


# Each task's metric (metrics.csv's val_<metric>, summary.json's test_<metric>) and whether larger ("max") is better.
TASK_METRICS = {"classification": ("accuracy", "max"), "regression": ("mae", "min")}


def monitor_rule(
    task: str, monitor: str | None = None, monitor_mode: str | None = None, validated: bool = True
) -> tuple[str, str]:
    """(metric, "min" or "max"): what picks best.pt for a `task` run with trainer.monitor and trainer.monitor_mode.

    The metric is `monitor`, or the task's own val_ metric; the mode is `monitor_mode`, or "min" for a loss
    and the task's direction otherwise. A run without a validation split (not `validated`: dataset.val_fraction=0)
    and no monitor of its own keeps its last epoch as best.pt: ("epoch", "max"). Torch-free, so `runner report`
    reads it too."""
    if not validated and not monitor:
        return "epoch", "max"
    from runner.stats.metrics import direction

    metric = TASK_METRICS[task][0]
    name = monitor or f"val_{metric}"
    return name, monitor_mode or direction(name)


@dataclass(frozen=True)
class Monitor:
    """The metric that picks best.pt (a column of metrics.csv) and whether lower ('min') or higher ('max') is better."""

    name: str
    mode: str

    @classmethod
    def of(cls, recipe: Recipe, task: str, validated: bool = True) -> Monitor:
        """The monitor of a run of `task` ("classification" or "regression") with `recipe`; without a validation split
        (not `validated`), the last epoch unless trainer.monitor=train_loss (monitor_rule)."""
        return cls(*monitor_rule(task, recipe.monitor, recipe.monitor_mode, validated))

    def improved(self, row: dict, state: TrainState) -> bool:
        """Better than the best so far, in the monitor's order (`ranking`): a NaN or infinite value is never better. A
        row without validation (dataset.val_fraction=0) has no val_loss to break a tie."""
        if not finite(row[self.name]):
            return False
        best = ranking(state.best_metric, state.best_val_loss, mode=self.mode)
        return ranking(row[self.name], row.get("val_loss"), mode=self.mode) < best


def ranking(value: object, val_loss: object, *, mode: str) -> tuple[int, float, float]:
    """Where a monitored `value` with its `val_loss` ranks, as a sort key, best first: the value in its direction
    (`mode` "min" or "max"); ties on it (accuracy on a small split saturates) to the lower val_loss. A NaN, infinite or
    missing value ranks after every real one (Lightning #2636: a NaN that became best stayed best, since nothing
    compares below it), and such a val_loss only loses the tie. The one order of best.pt (Monitor.improved), the k
    best checkpoints (training/checkpoints.Kept) and `runner report`'s rows."""
    tie = val_loss if finite(val_loss) else math.inf
    if not finite(value):
        return (1, 0.0, tie)
    sign = 1 if mode == "min" else -1
    return (0, sign * value, tie)


class TrainClock:
    """Training time over resumes: the seconds last.pt held plus this process's since it started training.

    `now` is the clock (time.monotonic; a test passes its own)."""

    def __init__(self, before: float, now: Callable[[], float] = time.monotonic) -> None:
        self.before, self.now, self.started = before, now, now()

    def __call__(self) -> float:
        return self.before + self.now() - self.started
