"""The training loop: forward, backward, update; evaluate, log, checkpoint; stop when asked.

`fit(job, run, console, stop)` reads top to bottom: an epoch of batches (`train_epoch`, each batch a `train_step`,
whose optimizer steps are `update`), then its end (`end_epoch`: validate, best.pt, early stopping, last.pt). What it
trains is a `Job`, built by training/setup.py; every setting it reads is in `job.recipe` (training/recipe.py); all
state that must survive a stop lives in `job.state` (training/state.py), so a stopped run resumes bit for bit.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import torch

from runner.io.errors import Diverged
from runner.training.distributed import all_sum, first_non_negative, max_over_ranks
from runner.training.metrics import Outputs, epoch_figures, evaluate, figures, fixed_threshold
from runner.training.recipe import Monitor, Recipe, TrainClock, early_stopping

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from runner.data.batches import Batches
    from runner.data.stream import LoaderBatches
    from runner.inference.card import ModelCard
    from runner.io.console import RunConsole
    from runner.io.signals import StopSignals
    from runner.run.rundir import RunDir
    from runner.training.device import Precision
    from runner.training.distributed import AgreedStop
    from runner.training.freezing import Freezer
    from runner.training.init_from import Init
    from runner.training.metrics import Task
    from runner.training.state import TrainState


@dataclass
class Data:
    """The batches of each split, this process's share of each batch (data/batches.py, or data/stream.py for files
    streamed from disk)."""

    train: Batches | LoaderBatches
    val: Batches | LoaderBatches
    test: Batches | LoaderBatches
    num_classes: int
    # regression targets standardised by a table dataset: one std per output, or None
    target_std: torch.Tensor | None = None
    # and the mean: a regression's outputs back in the targets' units for runner/stats (MAPE divides by them)
    target_mean: torch.Tensor | None = None
    # trainer.limit_*_batches: {split: {"batches": taken, "of": a whole pass}}, for the splits limited
    limits: dict | None = None
    # trainer.class_weights as F.cross_entropy's weight= (on the device), or None
    class_weights: torch.Tensor | None = None
    # what summary.json records of the data from the start: validation's size, class_weights, sampler
    records: dict | None = None


@dataclass
class Job:
    """Everything a training job is made of once it is set up (training/setup.py).

    One name per role for the weights: `state.model` is what last.pt saves, `net` what runs (DDP, compiled, or the
    model itself), `validated_model` what is validated and best.pt holds (state.validated_model: with
    trainer.ema.decay, the average of the weights; else the model, run through `net`)."""

    cfg: DictConfig
    recipe: Recipe
    # the loss and metric of cfg.dataset.task
    task: Task
    device: torch.device
    precision: Precision
    channels_last: bool
    monitor: Monitor
    data: Data
    # split sizes
    samples: dict
    state: TrainState
    net: torch.nn.Module
    # the preprocessing that turns raw inputs into the model's
    card: ModelCard
    # the weights the model started from (init_from=), or None
    init: Init | None = None
    # training FLOPs of one sample, counted when first asked (training/flops.count_later): None where they could not
    # be counted
    flops: Callable[[], float | None] | None = None
    # trainer.freeze's parameters, or None
    freezer: Freezer | None = None
    # the baselines on the same split (data/baselines.py: the trivial one, scikit-learn's), fitted when first asked (at
    # the run's end); None on the processes of torchrun that do not write
    baselines: Callable[[], dict] | None = None
    # an Optuna trial's pruner (sweeps/search.trial_pruner): given each epoch's monitored metric, True stops the run
    pruner: Callable[[int, float], bool] | None = None

    @property
    def validated_model(self) -> torch.nn.Module:
        return self.state.ema.module if self.state.ema is not None else self.net


def fit(job: Job, run: RunDir, console: RunConsole, stop: StopSignals | AgreedStop) -> float | None:
    """Train until trainer.epochs, or until early stopping, max_steps, max_time or a pruner ends the run
    (state.stopped_by).

    `run` (run.rundir.RunDir) writes metrics.csv and the checkpoints (nothing on the other processes
    of a torchrun job); `stop` is the io.signals.StopSignals looked at after each optimizer step, between
    validation batches and after each epoch; `job.pruner(epoch, value)`, in a trial of an Optuna search with a pruner
    (sweeps/search.trial_pruner), is given each epoch's monitored metric and returns True to stop the run
    there (stopped_by "pruned"). Returns the wall-clock time (unix seconds) of this process's first optimizer step,
    or None if it took none (summary.json's start-up figure)."""
    state, recipe = job.state, job.recipe
    # training time counts over resumes
    clock = TrainClock(state.train_s)
    first_step_at = None
    while state.epoch < recipe.epochs and state.stopped_by is None:
        epoch = state.epoch + 1
        started = time.perf_counter()
        loss_sum, seen, first = train_epoch(job, run=run, console=console, stop=stop, epoch=epoch, clock=clock)
        first_step_at = first_step_at or first
        seen_all = torch.tensor(float(seen), device=loss_sum.device)
        # this process's, as last.pt holds it: all_sum sums in place
        own_loss_sum = loss_sum.clone()
        # over processes, under torchrun
        all_sum(loss_sum, seen_all)
        train_time = time.perf_counter() - started
        # the one host sync of the epoch
        train_loss = float(loss_sum) / float(seen_all)
        # validated before the epoch's counters move on, so that a stop here can save the epoch's training
        val = validate(job, run=run, stop=stop, epoch=epoch, loss_sum=own_loss_sum, seen=seen)
        if state.schedule is not None:
            state.schedule.after_epoch()
        state.epoch, state.batches_done, state.loss_sum, state.seen = epoch, 0, 0.0, 0
        row = {"epoch": epoch, "train_loss": train_loss, "train_samples_per_s": float(seen_all) / train_time}
        end_epoch(job, run=run, console=console, row=row, val=val, started=started, clock=clock)
        stop.check(f"after epoch {epoch}; last.pt holds it")
    return first_step_at


def validate(
    job: Job, *, run: RunDir, stop: StopSignals | AgreedStop, epoch: int, loss_sum: torch.Tensor, seen: int
) -> dict:
    """The validation metrics of the epoch just trained ({} without a validation split: dataset.val_fraction=0). A
    stop between its batches saves last.pt as it stood after the epoch's last step, so that the resume validates the
    epoch, and raises Interrupted (after max_steps or max_time cut the epoch short, last.pt stays as it was: the
    resume repeats those steps)."""
    state = job.state
    if not job.samples["val"]:
        return {}

    def safe_point():
        if stop.requested and state.stopped_by is None:
            state.loss_sum, state.seen = float(loss_sum), seen
            run.save_last(state)
            stop.check(f"while validating epoch {epoch}; last.pt holds its training, and a resume validates it")
        stop.check(f"while validating epoch {epoch}; a resume repeats its steps from last.pt")

    # trainer.metrics and a monitored figure (runner/stats) need the per-sample outputs; the default run does not
    names = epoch_figures(job.recipe.metrics, job.monitor.name, job.task)
    keep = Outputs() if names else None
    val, _ = evaluate(
        job.validated_model,
        job.data.val,
        task=job.task,
        num_classes=job.data.num_classes,
        precision=job.precision,
        stop=safe_point,
        target_std=job.data.target_std,
        target_mean=job.data.target_mean,
        keep=keep,
    )
    if keep is not None:
        val |= figures(job.task, keep, names, fixed_threshold(job.recipe.threshold, job.data.num_classes))
    return val


def train_epoch(
    job: Job, *, run: RunDir, console: RunConsole, stop: StopSignals | AgreedStop, epoch: int, clock: TrainClock
) -> tuple[torch.Tensor, int, float | None]:
    """One pass over the training batches, from batch state.batches_done when resuming mid-epoch.

    Returns (the summed loss as a tensor on the device, samples seen, unix time of the first step or None).
    Checkpoints last.pt every trainer.checkpoint_every_n_steps and when a stop was asked for, then raises
    Interrupted; ends the epoch early at max_steps or max_time."""
    state, recipe, n_batches = job.state, job.recipe, len(job.data.train)
    device = next(state.model.parameters()).device
    state.lr = state.lr if state.batches_done else state.optimizer.param_groups[0]["lr"]
    loss_sum = torch.tensor(float(state.loss_sum), device=device)
    seen = state.seen
    # the first step whose loss was not finite, without a host sync
    first_bad = torch.tensor(-1, device=device)
    first_step_at = None
    started = time.perf_counter()
    if train_mode(job, epoch):
        console.print(f"epoch {epoch}: trainer.unfreeze_at_epoch, every parameter trains from here on")
    with console.progress() as bar:
        progress = bar.add_task(
            f"epoch {epoch}/{recipe.epochs}", total=n_batches, completed=state.batches_done, status=""
        )
        for x, y in job.data.train:
            # the step this batch's gradients go into
            step = state.step + 1
            loss, stepped = train_step(job, x, y, done=state.batches_done, n_batches=n_batches, epoch=epoch)
            state.batches_done += 1
            loss_sum += loss * len(y)
            seen += len(y)
            first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss), step, first_bad)
            # gradients of this batch wait for the rest of the group
            if not stepped:
                continue
            first_step_at = first_step_at or time.time()
            # trainer.every_n_steps
            if state.kept is not None:
                state.kept.after_step(state.step, **keeping(run, state))
            if state.step % recipe.log_every_n_steps == 0:
                check_finite(first_bad, epoch, state.lr)
                if run.logs_steps:
                    run.log_step(state.step, loss.item())
                if console.interactive:
                    rate = seen / (time.perf_counter() - started)
                    bar.update(
                        progress, completed=state.batches_done, status=f"loss {loss.item():.4f}  {rate:,.0f} samples/s"
                    )
            # only then: a time in last.pt would make same-seed checkpoints differ
            if recipe.max_time is not None:
                # one time for every rank: they stop at the same step
                state.train_s = max_over_ranks(clock())
            state.stopped_by = recipe.limit_reached(state.step, state.train_s)
            # max_steps or max_time: this epoch ends here, validated like any other
            if state.stopped_by:
                break
            if stop.requested or recipe.checkpoint_due(state.step):
                state.loss_sum, state.seen = float(loss_sum), seen
                check_finite(first_bad, epoch, state.lr)
                run.save_last(state)
                stop.check(f"in epoch {epoch} after step {state.step}; last.pt holds this step")
    check_finite(first_bad, epoch, state.lr)
    return loss_sum, seen, first_step_at


def train_mode(job: Job, epoch: int) -> bool:
    """The model in training mode for `epoch`, trainer.freeze's BatchNorm layers back in eval after model.train() (so
    their statistics stay as they were: training/freezing.py). True at the epoch trainer.unfreeze_at_epoch unfreezes
    everything. `runner lr-find` trains in it too."""
    job.state.model.train()
    return job.freezer is not None and job.freezer.at(epoch)


def train_step(
    job: Job, x: torch.Tensor, y: torch.Tensor, *, done: int, n_batches: int, epoch: int
) -> tuple[torch.Tensor, bool]:
    """One training batch as every step takes it, the loop's and `runner lr-find`'s: its accumulation group's
    gradients zeroed at the group's first batch, its forward and backward pass (`forward_backward`), and the optimizer
    step (`update`) after the group's last. `done` batches of the epoch's `n_batches` came before it. Returns (the
    batch's loss, detached; True when the optimizer stepped)."""
    recipe = job.recipe
    if recipe.starts_update(done):
        job.state.optimizer.zero_grad(set_to_none=True)
    loss = forward_backward(job, x, y, group=recipe.group_size(done, n_batches))
    stepped = recipe.ends_update(done + 1, n_batches)
    if stepped:
        update(job, epoch)
    return loss, stepped


def forward_backward(job: Job, x: torch.Tensor, y: torch.Tensor, group: int) -> torch.Tensor:
    """One batch's forward and backward pass, as every training step takes it (the precision's autocast and loss
    scaler, trainer.label_smoothing): its gradients are added to those of its accumulation group, the loss divided
    by `group`, the group's number of batches (Recipe.group_size), so that a step is their mean. Returns the batch's
    loss, detached. train_step calls it for every batch, `runner lr-find`'s too."""
    recipe = job.recipe
    smoothing = {"label_smoothing": recipe.label_smoothing} if recipe.label_smoothing else {}
    # trainer.class_weights: the training loss alone is weighted (validation's and the test's are plain)
    weights = {"weight": job.data.class_weights} if job.data.class_weights is not None else {}
    with job.precision.autocast():
        loss = job.task.loss(job.net(x), y, **smoothing, **weights)
    job.state.scaler.scale(loss / group if group > 1 else loss).backward()
    return loss.detach()


def update(job: Job, epoch: int) -> None:
    """One optimizer step from the accumulated gradients: clip, step through the loss scaler, EMA, schedule."""
    state, recipe = job.state, job.recipe
    state.lr = state.optimizer.param_groups[0]["lr"]
    if recipe.grad_clip:
        state.scaler.unscale_(state.optimizer)
        torch.nn.utils.clip_grad_norm_(state.model.parameters(), recipe.grad_clip)
    optimizer_step(state.scaler, state.optimizer, step=state.step + 1, epoch=epoch, lr=state.lr)
    state.scaler.update()
    state.step += 1
    if state.ema is not None:
        state.ema.update_parameters(state.model)
    if state.schedule is not None:
        state.schedule.after_step()


def end_epoch(
    job: Job, *, run: RunDir, console: RunConsole, row: dict, val: dict, started: float, clock: TrainClock
) -> None:
    """Log the epoch's row with its validation `val`, save best.pt when the monitored metric improved, count early
    stopping, ask the pruner (`job.pruner`), save last.pt."""
    state, recipe, monitor, task = job.state, job.recipe, job.monitor, job.task
    epoch = row["epoch"]
    # without a validation split (dataset.val_fraction=0), metrics.csv has no val_ columns
    validated = {f"val_{k}": v for k, v in val.items()}
    row = {
        "epoch": epoch,
        "train_loss": row["train_loss"],
        **validated,
        "lr": state.lr,
        "epoch_time_s": time.perf_counter() - started,
        "train_samples_per_s": row["train_samples_per_s"],
    }
    run.append_row(row, state.step)
    if monitor.improved(row, state):
        state.best_metric, state.best_val_loss, state.best_epoch = row[monitor.name], row.get("val_loss"), epoch
        run.save_best(state.validated_model)
    # trainer.save_top_k, every_n_epochs
    if state.kept is not None:
        state.kept.after_epoch(row, epoch, **keeping(run, state))
    if recipe.patience is not None:
        state.early_best, state.stale_epochs = early_stopping(
            row[monitor.name], state.early_best, state.stale_epochs, mode=monitor.mode, min_delta=recipe.min_delta
        )
        if state.stale_epochs >= recipe.patience:
            state.stopped_by = "early_stopping"
    if job.pruner is not None and state.stopped_by is None and job.pruner(epoch, row[monitor.name]):
        state.stopped_by = "pruned"
    if recipe.max_time is not None:
        state.train_s = max_over_ranks(clock())
    run.save_last(state)
    shown = f"val_loss {val['loss']:.4f}  val_{task.metric} {val[task.metric]:.4f}  " if val else ""
    console.print(
        f"epoch {epoch:>3}/{recipe.epochs}  train_loss {row['train_loss']:.4f}  {shown}lr {state.lr:.2g}  "
        f"{row['train_samples_per_s']:,.0f} samples/s  {row['epoch_time_s']:.2f}s"
        + ("  *" if state.best_epoch == epoch else "")
    )
    if state.stopped_by:
        console.print(stop_message(state, recipe, monitor))


def keeping(run: RunDir, state: TrainState) -> dict:
    """What training/checkpoints.Kept writes and deletes with: the validated weights, in the run directory."""
    return {"save": lambda name: run.save_weights(state.validated_model, name), "remove": run.remove_checkpoint}


def _best(state: TrainState) -> str:
    """The best monitored value so far in words; none while every validation was NaN or infinite."""
    if not state.best_epoch:
        return "none yet: every validation was NaN or infinite"
    return f"{state.best_metric:.4f} at epoch {state.best_epoch}"


def stop_message(state: TrainState, recipe: Recipe, monitor: Monitor) -> str:
    """What ended the run before trainer.epochs, in a line."""
    if state.stopped_by == "early_stopping":
        return (
            f"early stopping: {monitor.name} has not improved by more than {recipe.min_delta:g} for "
            f"{state.stale_epochs} "
            f"epochs (trainer.early_stopping.patience={recipe.patience}); best {_best(state)}"
        )
    if state.stopped_by == "pruned":
        return (
            f"pruned: the search's pruner stopped this trial after epoch {state.epoch} ({monitor.name} "
            f"best {_best(state)}); its best.pt is tested as for any run"
        )
    if state.stopped_by == "max_steps":
        return (
            f"stopped at trainer.max_steps={recipe.max_steps} in epoch {state.epoch}; that epoch was validated on "
            f"the steps it took"
        )
    return (
        f"stopped at trainer.max_time ({recipe.max_time:g} s of training) after step {state.step} in epoch "
        f"{state.epoch}; that epoch was validated on the steps it took"
    )


def optimizer_step(
    scaler: torch.amp.GradScaler, optimizer: torch.optim.Optimizer, *, step: int, epoch: int, lr: float
) -> None:
    """scaler.step(optimizer), where an update too large for the parameters' dtype is a divergence, not a crash
    (Adam with optimizer.lr=1e300 overflows converting the step size to float32)."""
    try:
        scaler.step(optimizer)
    except RuntimeError as err:
        if "overflow" not in str(err):
            raise
        raise Diverged(
            f"the optimizer's update overflowed at step {step} (epoch {epoch}, learning rate {lr:g}: {err}): training "
            f"diverged. Checkpoints saved before it, if any, are kept. Lower optimizer.lr (e.g. optimizer.lr=0.001) "
            f"and start again."
        ) from None


def check_finite(first_bad: torch.Tensor, epoch: int, lr: float | None) -> None:
    """Raise Diverged if a step's loss was NaN or infinite (one host sync); under torchrun, on every rank when any
    rank's share of a batch was, at the first such step of any rank (so that the ranks stop together). `lr` is the
    last step's learning rate (None only before a first step, which no loss precedes)."""
    step = first_non_negative(first_bad)
    if step >= 0:
        lr = math.nan if lr is None else lr
        raise Diverged(
            f"the training loss became NaN or infinite at step {step} (epoch {epoch}, learning rate {lr:g}): training "
            f"diverged. Checkpoints saved before it, if any, are kept. Lower optimizer.lr (e.g. "
            f"optimizer.lr={lr / 10:g}) or set trainer.grad_clip=1.0, and start again."
        )
