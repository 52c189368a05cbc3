"""The training loop: forward, backward, update; evaluate, log, checkpoint; stop when asked.

It reads top to bottom in one function. What it needs comes in as arguments (see
runner/commands/train.py for how they are built); all state that must survive a stop lives in
`state` (checkpoint.TrainState), so a stopped run resumes bit for bit.
"""

import time
from dataclasses import dataclass

import torch

from runner.training.distributed import all_sum
from runner.io.errors import Diverged, Interrupted
from runner.training.metrics import evaluate
from runner.training.recipe import Recipe


@dataclass
class Data:
    train: object  # data.Batches or loader.LoaderBatches: this process's share of each batch
    val: object
    test: object
    num_classes: int


def fit(state, net, data, task, precision, trainer_cfg, monitor, run, console, stop, timings):
    """Train until trainer.epochs, or until early stopping, max_steps or max_time ends the run (state.stopped_by).

    `net` is the model as it runs (DDP, compiled or neither); `state.model` is what is saved, and
    `state.ema` (when trainer.ema.decay is set) is what is validated and saved as best.pt.
    `run` (rundir.RunDir) writes metrics.csv and the checkpoints (nothing on the other processes
    of a torchrun job); `stop` is a signals.StopSignals in its deferred mode; `timings` gets the
    wall-clock time of the first step.
    """
    model, optimizer, schedule, scaler = state.model, state.optimizer, state.scheduler, state.scaler
    recipe = Recipe.of(trainer_cfg)
    averaged = state.ema.module if state.ema is not None else None  # with an EMA, what validation, best.pt and the test see
    evaluated = net if averaged is None else averaged
    device = next(model.parameters()).device
    every, n_batches = trainer_cfg.checkpoint_every_n_steps, len(data.train)
    smoothing = {"label_smoothing": recipe.label_smoothing} if recipe.label_smoothing else {}
    clock, train_s0 = time.monotonic(), state.train_s  # training time counts over resumes
    while state.epoch < recipe.epochs and state.stopped_by is None:
        epoch = state.epoch + 1
        state.lr = state.lr if state.batch else optimizer.param_groups[0]["lr"]

        # forward, backward, update (from batch state.batch when resuming mid-epoch); an update every `accumulate` batches
        model.train()
        start = time.perf_counter()
        loss_sum, seen, first_bad = torch.tensor(float(state.loss_sum), device=device), state.seen, torch.tensor(-1, device=device)
        with console.progress() as bar:
            progress = bar.add_task(f"epoch {epoch}/{recipe.epochs}", total=n_batches, completed=state.batch, status="")
            for x, y in data.train:
                if state.batch % recipe.accumulate == 0:
                    optimizer.zero_grad(set_to_none=True)
                with precision.autocast():
                    loss = task.loss(net(x), y, **smoothing)
                scaler.scale(loss / recipe.accumulate if recipe.accumulate > 1 else loss).backward()
                state.batch += 1
                loss_sum += loss.detach() * len(y)
                seen += len(y)
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), state.step + 1, first_bad)  # no host sync
                if state.batch % recipe.accumulate and state.batch < n_batches:
                    continue  # gradients of this batch wait for the rest of the group
                state.lr = optimizer.param_groups[0]["lr"]
                if trainer_cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), trainer_cfg.grad_clip)
                optimizer_step(scaler, optimizer, state.step + 1, epoch, state.lr)
                scaler.update()
                state.step += 1
                if state.ema is not None:
                    state.ema.update_parameters(model)
                if schedule is not None:
                    schedule.after_step()
                timings.setdefault("first_step_at", time.time())
                if state.step % trainer_cfg.log_every_n_steps == 0:
                    check_finite(first_bad, epoch, state.lr)
                    if run.logs_steps:
                        run.log_step(state.step, loss.item())
                    if console.interactive:
                        bar.update(progress, completed=state.batch, status=f"loss {loss.item():.4f}  {seen / (time.perf_counter() - start):,.0f} samples/s")
                if recipe.max_time is not None:  # only then: a time in last.pt would make same-seed checkpoints differ
                    state.train_s = train_s0 + time.monotonic() - clock
                state.stopped_by = recipe.limit_reached(state, state.train_s)
                if state.stopped_by:
                    break  # max_steps or max_time: this epoch ends here, validated like any other
                if stop.requested or (every and state.step % every == 0):
                    state.loss_sum, state.seen = float(loss_sum), seen
                    check_finite(first_bad, epoch, state.lr)
                    run.save_last(state)
                    if stop.requested:
                        raise Interrupted(f"stopped by {stop.requested} in epoch {epoch} after step {state.step}; last.pt holds this step")
        check_finite(first_bad, epoch, state.lr)
        seen_all = torch.tensor(float(seen), device=device)
        all_sum(loss_sum, seen_all)  # over processes, under torchrun
        train_time = time.perf_counter() - start
        train_loss = float(loss_sum) / float(seen_all)  # the one host sync of the epoch
        if schedule is not None:
            schedule.after_epoch()
        state.epoch, state.batch, state.loss_sum, state.seen = epoch, 0, 0.0, 0

        # evaluate
        val, _ = evaluate(evaluated, data.val, task, data.num_classes, precision)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], f"val_{task.metric}": val[task.metric],
               "lr": state.lr, "epoch_time_s": time.perf_counter() - start, "train_samples_per_s": float(seen_all) / train_time}

        # log and checkpoint: best.pt when the monitored metric improves, last.pt every epoch
        run.append_row(row, state.step)
        if monitor.improved(row, state):
            state.best_metric, state.best_val_loss, state.best_epoch = row[monitor.name], row["val_loss"], epoch
            run.save_best(model if averaged is None else averaged)
        if recipe.early_stop(row[monitor.name], state, monitor.mode):
            state.stopped_by = "early_stopping"
        if recipe.max_time is not None:
            state.train_s = train_s0 + time.monotonic() - clock
        run.save_last(state)
        console.print(
            f"epoch {epoch:>3}/{recipe.epochs}  train_loss {train_loss:.4f}  val_loss {val['loss']:.4f}  "
            f"val_{task.metric} {val[task.metric]:.4f}  lr {state.lr:.2g}  {row['train_samples_per_s']:,.0f} samples/s  "
            f"{row['epoch_time_s']:.2f}s" + ("  *" if state.best_epoch == epoch else "")
        )
        if state.stopped_by:
            console.print(stop_message(state, recipe, monitor))
        if stop.requested:
            raise Interrupted(f"stopped by {stop.requested} after epoch {epoch}; last.pt holds it")


def stop_message(state, recipe, monitor):
    """What ended the run before trainer.epochs, in a line."""
    if state.stopped_by == "early_stopping":
        return (f"early stopping: {monitor.name} has not improved by more than {recipe.min_delta:g} for {state.stale_epochs} "
                f"epochs (trainer.early_stopping.patience={recipe.patience}); best {state.best_metric:.4f} at epoch {state.best_epoch}")
    if state.stopped_by == "max_steps":
        return f"stopped at trainer.max_steps={recipe.max_steps} in epoch {state.epoch}; that epoch was validated on the steps it took"
    return (f"stopped at trainer.max_time ({recipe.max_time:g} s of training) after step {state.step} in epoch {state.epoch}; "
            f"that epoch was validated on the steps it took")


def optimizer_step(scaler, optimizer, step, epoch, lr):
    """scaler.step(optimizer), where an update too large for the parameters' dtype is a divergence, not a crash
    (Adam with optimizer.lr=1e300 overflows converting the step size to float32)."""
    try:
        scaler.step(optimizer)
    except RuntimeError as err:
        if "overflow" not in str(err):
            raise
        raise Diverged(
            f"the optimizer's update overflowed at step {step} (epoch {epoch}, learning rate {lr:g}: {err}): training "
            f"diverged. The last good checkpoint is kept. Lower optimizer.lr (e.g. optimizer.lr=0.001) and start again."
        ) from None


def check_finite(first_bad, epoch, lr):
    """Raise Diverged if a step's loss was NaN or infinite (one host sync)."""
    step = int(first_bad)
    if step >= 0:
        raise Diverged(
            f"the training loss became NaN or infinite at step {step} (epoch {epoch}, learning rate {lr:g}): training "
            f"diverged. The last good checkpoint is kept. Lower optimizer.lr (e.g. optimizer.lr={lr / 10:g}) or set "
            f"trainer.grad_clip=1.0, and start again."
        )
