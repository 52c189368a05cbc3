"""`runner lr-find`: the learning-rate range test, on the setup `runner train` would build.

    runner lr-find                                         # cnn on digits with Adam, the default
    runner lr-find model=mlp optimizer=sgd trainer.batch_size=128
    runner lr-find init_from=outputs/2026-11-22/10-31-07   # the lr to fine-tune a run's best.pt with

Leslie Smith's test (Cyclical Learning Rates for Training Neural Networks, 2015), as Lightning's Tuner.lr_find
runs it: lr_find.num_training optimizer steps whose learning rate grows exponentially from lr_find.min_lr to
lr_find.max_lr; each step's loss is smoothed (an exponential average, beta 0.98, debiased); the test stops early
once the smoothed loss exceeds lr_find.early_stop_threshold times its lowest. The suggestion is the learning rate
where the smoothed loss falls fastest against log10(lr) (fastai's "steepest"; Lightning takes the slope against
lr itself), after skipping the first 10 steps and the last (Lightning's skip_begin and skip_end).

It writes lr_find.csv, lr_find.png and lr_find.json to outputs/lr_find/DATE/TIME, only once the test has run (a
stop or an error leaves nothing). The model it trains is thrown away: a run's directory (init_from=) is only read,
and `runner train` with the same seed starts from the same weights as if the test had not run.
"""

from __future__ import annotations

import math
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, cast

import torch
from omegaconf import OmegaConf

from runner.config.checks import CLOSED, check_keys, unknown_key
from runner.io.console import RunConsole
from runner.io.errors import Diverged, RunnerError
from runner.io.files import atomic_write, write_json
from runner.io.signals import job_stop
from runner.training import distributed
from runner.training.loop import train_mode, train_step
from runner.training.setup import setup

if TYPE_CHECKING:
    from collections.abc import Iterator, Sequence

    from omegaconf import DictConfig

    from runner.io.signals import StopSignals
    from runner.run.rundir import RunDir
    from runner.training.loop import Job

# the loss's smoothing (Lightning's _LRCallback, fastai's lr_find)
BETA = 0.98
# steps left out of the suggestion (Lightning's suggestion() defaults)
SKIP_BEGIN, SKIP_END = 10, 1
SETTINGS = ("min_lr", "max_lr", "num_training", "early_stop_threshold")


class RangeTest:
    """The learning rates and losses of a range test, step by step: `lr(step)` to train a step with, `record(loss)`
    after it, which says whether the test should stop (the loss diverged or is not finite)."""

    def __init__(
        self, min_lr: float, max_lr: float, num_training: int, early_stop_threshold: float | None = 4.0
    ) -> None:
        self.min_lr, self.max_lr, self.num_training = min_lr, max_lr, num_training
        self.threshold = early_stop_threshold
        self.lrs: list[float] = []
        self.losses: list[float] = []
        self.smoothed: list[float] = []
        self.average, self.best = 0.0, math.inf

    def lr(self, step: int) -> float:
        """The learning rate of step `step` (0-based): min_lr at the first, max_lr at the last, exponential between."""
        return self.min_lr * (self.max_lr / self.min_lr) ** (step / (self.num_training - 1))

    def record(self, lr: float, loss: float) -> bool:
        """Record step's `lr` and `loss` (a float); True when the test should stop here."""
        self.average = BETA * self.average + (1 - BETA) * loss
        smoothed = self.average / (1 - BETA ** (len(self.losses) + 1))
        self.lrs.append(lr)
        self.losses.append(loss)
        self.smoothed.append(smoothed)
        if not math.isfinite(smoothed):
            return True
        diverged = self.threshold is not None and len(self.losses) > 1 and smoothed > self.threshold * self.best
        self.best = min(self.best, smoothed)
        return diverged

    @property
    def stopped_early(self) -> bool:
        return len(self.losses) < self.num_training

    def suggestion(self) -> int | None:
        """The index of the suggested step: the steepest fall of the smoothed loss against log10(lr), over the steps
        kept (the first SKIP_BEGIN and the last SKIP_END left out; non-finite losses too). None with fewer than 2."""
        kept = [i for i in range(SKIP_BEGIN, len(self.smoothed) - SKIP_END) if math.isfinite(self.smoothed[i])]
        if len(kept) < 2:
            return None
        loss = torch.tensor([self.smoothed[i] for i in kept], dtype=torch.float64)
        log_lr = torch.tensor([self.lrs[i] for i in kept], dtype=torch.float64).log10()
        slope = torch.gradient(loss, spacing=[log_lr])[0]
        return kept[int(slope.argmin())]


def check_settings(cfg: DictConfig) -> None:
    """cfg.lr_find's values, checked (RunnerError naming the fix)."""
    settings = cfg.lr_find
    for key in settings:
        if key not in SETTINGS:
            raise RunnerError(unknown_key(f"lr_find.{key}", SETTINGS))
    low, high, steps = settings.min_lr, settings.max_lr, settings.num_training
    threshold = settings.early_stop_threshold
    if not all(isinstance(v, (int, float)) and not isinstance(v, bool) and 0 < v < math.inf for v in (low, high)):
        raise RunnerError(
            f"lr_find.min_lr and lr_find.max_lr must be numbers > 0, got {low!r} and {high!r}. Use e.g. "
            f"lr_find.min_lr=1e-6 lr_find.max_lr=1."
        )
    if low >= high:
        raise RunnerError(
            f"lr_find.min_lr={low:g} must be below lr_find.max_lr={high:g}: the test raises the learning rate from "
            f"one to the other. Use e.g. lr_find.min_lr={high / 1e6:g}."
        )
    if not isinstance(steps, int) or isinstance(steps, bool) or steps < SKIP_BEGIN + SKIP_END + 2:
        raise RunnerError(
            f"lr_find.num_training must be an integer >= {SKIP_BEGIN + SKIP_END + 2}, got {steps!r}: the suggestion "
            f"leaves out the first {SKIP_BEGIN} steps and the last. Use lr_find.num_training=100."
        )
    if threshold is not None and not (isinstance(threshold, (int, float)) and threshold > 1):
        raise RunnerError(
            f"lr_find.early_stop_threshold must be null or a number > 1, got {threshold!r}. Use "
            f"lr_find.early_stop_threshold=4."
        )


def lr_find_job(cfg: DictConfig, out_dir: str | Path, overrides: Sequence[str]) -> dict:
    """Run the range test on cfg's setup and write its files to `out_dir`; return lr_find.json's content.

    `overrides` are the command line's, for the `runner train` line it prints."""
    check_keys(cfg, top=(*CLOSED[""], "lr_find"))
    check_settings(cfg)
    if cfg.get("resume"):
        raise RunnerError(
            "runner lr-find takes no resume=: it tests learning rates from a run's start. Give the run's weights with "
            "init_from=RUN_DIR instead, to find the learning rate to fine-tune them with."
        )
    quick = [k for k in ("fast_dev_run", "overfit_batches") if cfg.trainer.get(k)]
    if quick:
        raise RunnerError(
            f"runner lr-find with trainer.{quick[0]}: a range test is its own quick check. Drop trainer.{quick[0]}."
        )
    console = RunConsole()
    s = cfg.lr_find
    test = RangeTest(s.min_lr, s.max_lr, s.num_training, s.early_stop_threshold)
    # a signal stops the test at its next step, before anything is written
    with job_stop() as stop:
        # a fresh run directory as far as setup reads one (it writes none)
        scratch = cast("RunDir", _Scratch(Path(out_dir)))
        rank = distributed.current()
        job = setup(cfg, scratch, overrides=overrides, console=console, rank=rank, stop=stop, command="lr-find")
        ratios = group_ratios(cfg.optimizer)
        assert len(ratios) == len(job.state.optimizer.param_groups), (ratios, job.state.optimizer)
        groups = "" if set(ratios) == {1.0} else "; each parameter group at its own ratio to optimizer.lr"
        console.print(
            f"range test: {s.num_training} steps, learning rate {s.min_lr:g} -> {s.max_lr:g} (exponential), batch "
            f"{job.recipe.batch_size} x {job.recipe.accumulate_grad_batches} accumulated{groups}"
        )
        run_steps(job, test, stop, ratios)
    best = test.suggestion()
    if best is None:
        raise RunnerError(too_few_steps(test, overrides))
    lr = float(f"{test.lrs[best]:.2g}")
    result = write(out_dir, test, best, lr, overrides, ratios)
    console.print(curve_text(test, best))
    console.print(
        f"suggested learning rate: {lr:g} (the smoothed loss falls fastest there, at step {best + 1} of "
        f"{len(test.losses)}{', stopped early: the loss diverged' if test.stopped_early else ''})"
    )
    console.print(f"train with it:\n  {result['train_with']}", soft_wrap=True)
    console.print(f"files: {Path(out_dir) / 'lr_find.png'}, lr_find.csv, lr_find.json", soft_wrap=True)
    return result


def run_steps(job: Job, test: RangeTest, stop: StopSignals, ratios: list[float]) -> None:
    """The test's optimizer steps, each batch taken by the training loop's own step (training/loop.py's train_mode
    and train_step: trainer.freeze's BatchNorm layers in eval, trainer.accumulate_grad_batches' groups as an epoch
    makes them, label_smoothing, grad_clip, the precision's loss scaler), cycling through the training batches, each
    parameter group at the step's learning rate times its `ratios` entry, until the test says stop (a loss that
    diverged or is not finite; an update that overflowed). `stop` is looked at after each step: a signal raises
    Interrupted there."""
    state = job.state
    # the test sets every step's rate; nothing is averaged
    state.schedule = state.ema = None
    n_batches = len(job.data.train)
    batches: Iterator[tuple[torch.Tensor, torch.Tensor]] = iter(())
    done = n_batches
    train_mode(job, epoch=1)
    for step in range(test.num_training):
        lr = test.lr(step)
        for group, ratio in zip(state.optimizer.param_groups, ratios):
            group["lr"] = lr * ratio
        total, stepped = 0.0, False
        while not stepped:
            # a pass ended (or none began): another
            if done == n_batches:
                batches, done = iter(job.data.train), 0
            x, y = next(batches)
            size = job.recipe.group_size(done, n_batches)
            try:
                loss, stepped = train_step(job, x, y, done=done, n_batches=n_batches, epoch=1)
            except Diverged:
                # the update overflowed the parameters' dtype: as far as the rate can go
                test.record(lr, math.inf)
                return
            total += loss.item() / size
            done += 1
        if test.record(lr, total):
            return
        stop.check(f"at step {step + 1} of the range test; nothing was written")


def group_ratios(optimizer_cfg: DictConfig) -> list[float]:
    """Each parameter group's learning rate over optimizer.lr, as optimizer.param_groups sets them (the groups in
    training/build.py's order: the parameters no entry selects first, at optimizer.lr, then one group per entry).
    Read from the config: the optimizer's own rates are already a schedule's first step's (onecycle's
    max_lr / div_factor, a warmup's first fraction) once setup has built it."""
    base = optimizer_cfg.lr
    groups = optimizer_cfg.get("param_groups")
    entries = cast("list[dict]", OmegaConf.to_container(groups, resolve=True)) if groups else []
    return [1.0] + [entry.get("lr", base) / base for entry in entries]


def too_few_steps(test: RangeTest, overrides: Sequence[str]) -> str:
    """Why the test has no suggestion (it stopped within the steps the suggestion leaves out), with a command that
    the command accepts: the range moved to end where the loss diverged, from a millionth of that rate (below
    lr_find.min_lr where it is lower), so the fall comes after the first steps."""
    high = float(f"{test.lrs[-1]:.3g}")
    low = float(f"{min(test.min_lr, high / 1e6):.3g}")
    moved = ("lr_find.min_lr", "lr_find.max_lr")
    kept = [o for o in overrides if o.lstrip("+~").split("=")[0] not in moved]
    command = shlex.join(["runner", "lr-find", *kept, f"lr_find.min_lr={low:g}", f"lr_find.max_lr={high:g}"])
    return (
        f"the range test stopped after {len(test.losses)} steps, at learning rate {test.lrs[-1]:.3g} (the loss "
        f"diverged), too few for a suggestion (the first {SKIP_BEGIN} and the last are left out). Start the range "
        f"lower and end it there: {command} (or raise lr_find.early_stop_threshold)."
    )


def write(
    out_dir: str | Path, test: RangeTest, best: int, lr: float, overrides: Sequence[str], ratios: list[float]
) -> dict:
    """lr_find.csv (every step), lr_find.png (the curve, the suggestion marked) and lr_find.json."""
    from runner.io.plots import lr_find_curve

    out = Path(out_dir)
    rows = ["step,lr,loss,smoothed_loss"]
    rows += [f"{i + 1},{a!r},{b!r},{c!r}" for i, (a, b, c) in enumerate(zip(test.lrs, test.losses, test.smoothed))]
    atomic_write(out / "lr_find.csv", lambda f: f.write(("\n".join(rows) + "\n").encode()))
    lr_find_curve(test.lrs, test.losses, test.smoothed, best, out / "lr_find.png")
    key = lambda o: o.lstrip("+~").split("=")[0]  # noqa: E731
    kept = [o for o in overrides if key(o) != "optimizer.lr" and not key(o).startswith(("lr_find.", "hydra."))]
    result = {
        "kind": "lr_find",
        "suggested_lr": lr,
        "step": best + 1,
        "steps": len(test.losses),
        "stopped_early": test.stopped_early,
        # each parameter group's rate over optimizer.lr, kept through the test
        "group_ratios": ratios,
        "settings": {
            "min_lr": test.min_lr,
            "max_lr": test.max_lr,
            "num_training": test.num_training,
            "early_stop_threshold": test.threshold,
        },
        "rule": "steepest fall of the smoothed loss (beta 0.98) against log10(lr), the first 10 steps and the last "
        "left out",
        "train_with": shlex.join(["runner", "train", *kept, f"optimizer.lr={lr:g}"]),
    }
    write_json(out / "lr_find.json", result)
    return result


def curve_text(test: RangeTest, best: int, rows: int = 12) -> str:
    """The smoothed loss at `rows` learning rates spread over the test, as bars, the suggested one marked."""
    n = len(test.smoothed)
    picks = sorted({round(i * (n - 1) / (rows - 1)) for i in range(rows)} | {best})
    finite = [test.smoothed[i] for i in picks if math.isfinite(test.smoothed[i])]
    low, high = min(finite), max(finite)
    lines = ["     lr   smoothed loss"]
    for i in picks:
        value = test.smoothed[i]
        width = round(30 * (value - low) / (high - low)) if math.isfinite(value) and high > low else 30
        mark = "  <- suggested" if i == best else ""
        lines.append(f"{test.lrs[i]:7.1e}  {value:8.4f}  {'#' * max(width, 1)}{mark}")
    return "\n".join(lines)


class _Scratch:
    """What train's setup() asks of a run directory, for a job that claims none: a fresh one, nothing to record."""

    fresh = True

    def __init__(self, path: Path) -> None:
        self.path = path

    def record_config(self, cfg: DictConfig) -> None:
        pass
