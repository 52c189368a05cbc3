"""The training loop: forward, backward, update; evaluate, log, checkpoint; stop when asked.

It reads top to bottom in one function. What it needs comes in as arguments (see
runner/jobs/train.py for how they are built); all state that must survive a stop lives in
`state` (checkpoint.TrainState), so a stopped run resumes bit for bit.
"""

import time
from dataclasses import dataclass

import torch

from runner.distributed import all_sum
from runner.errors import Diverged, Interrupted
from runner.metrics import evaluate


@dataclass
class Data:
    train: object  # data.Batches or loader.LoaderBatches: this process's share of each batch
    val: object
    test: object
    num_classes: int


@dataclass(frozen=True)
class Monitor:
    """The metric that picks best.pt (a column of metrics.csv) and whether lower ('min') or higher ('max') is better."""

    name: str
    mode: str

    @classmethod
    def of(cls, trainer_cfg, task):
        name = trainer_cfg.monitor or f"val_{task.metric}"
        return cls(name, trainer_cfg.monitor_mode or ("min" if "loss" in name else task.mode))

    def improved(self, row, state):
        """Better than the best so far; ties on the metric (accuracy on a small split saturates) go to the lower val_loss."""
        sign = 1 if self.mode == "min" else -1
        key = (sign * row[self.name], row["val_loss"])
        return state.best_metric is None or key < (sign * state.best_metric, state.best_val_loss)


def fit(state, net, data, task, precision, trainer_cfg, monitor, run, console, stop, timings):
    """Train until trainer.epochs.

    `net` is the model as it runs (DDP, compiled or neither); `state.model` is what is saved.
    `run` (rundir.RunDir) writes metrics.csv and the checkpoints (nothing on the other processes
    of a torchrun job); `stop` is a signals.StopSignals in its deferred mode; `timings` gets the
    wall-clock time of the first step.
    """
    model, optimizer, scheduler, scaler = state.model, state.optimizer, state.scheduler, state.scaler
    device = next(model.parameters()).device
    every = trainer_cfg.checkpoint_every_n_steps
    while state.epoch < trainer_cfg.epochs:
        epoch, lr = state.epoch + 1, optimizer.param_groups[0]["lr"]

        # forward, backward, update (from batch state.batch when resuming mid-epoch)
        model.train()
        start = time.perf_counter()
        loss_sum, seen, first_bad = torch.tensor(float(state.loss_sum), device=device), state.seen, torch.tensor(-1, device=device)
        with console.progress() as bar:
            progress = bar.add_task(f"epoch {epoch}/{trainer_cfg.epochs}", total=len(data.train), completed=state.batch, status="")
            for x, y in data.train:
                with precision.autocast():
                    loss = task.loss(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if trainer_cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), trainer_cfg.grad_clip)
                optimizer_step(scaler, optimizer, state.step + 1, epoch, lr)
                scaler.update()
                state.step, state.batch = state.step + 1, state.batch + 1
                timings.setdefault("first_step_at", time.time())
                loss_sum += loss.detach() * len(y)
                seen += len(y)
                first_bad = torch.where((first_bad < 0) & ~torch.isfinite(loss.detach()), state.step, first_bad)  # no host sync
                if state.step % trainer_cfg.log_every_n_steps == 0:
                    check_finite(first_bad, epoch, lr)
                    if console.interactive:
                        bar.update(progress, completed=state.batch, status=f"loss {loss.item():.4f}  {seen / (time.perf_counter() - start):,.0f} samples/s")
                if stop.requested or (every and state.step % every == 0):
                    state.loss_sum, state.seen = float(loss_sum), seen
                    check_finite(first_bad, epoch, lr)
                    run.save_last(state)
                    if stop.requested:
                        raise Interrupted(f"stopped by {stop.requested} in epoch {epoch} after step {state.step}; last.pt holds this step")
        check_finite(first_bad, epoch, lr)
        seen_all = torch.tensor(float(seen), device=device)
        all_sum(loss_sum, seen_all)  # over processes, under torchrun
        train_time = time.perf_counter() - start
        train_loss = float(loss_sum) / float(seen_all)  # the one host sync of the epoch
        if scheduler is not None:
            scheduler.step()
        state.epoch, state.batch, state.loss_sum, state.seen = epoch, 0, 0.0, 0

        # evaluate
        val, _ = evaluate(net, data.val, task, data.num_classes, precision)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], f"val_{task.metric}": val[task.metric],
               "lr": lr, "epoch_time_s": time.perf_counter() - start, "train_samples_per_s": float(seen_all) / train_time}

        # log and checkpoint: best.pt when the monitored metric improves, last.pt every epoch
        run.append_row(row)
        if monitor.improved(row, state):
            state.best_metric, state.best_val_loss, state.best_epoch = row[monitor.name], row["val_loss"], epoch
            run.save_best(model)
        run.save_last(state)
        console.print(
            f"epoch {epoch:>3}/{trainer_cfg.epochs}  train_loss {train_loss:.4f}  val_loss {val['loss']:.4f}  "
            f"val_{task.metric} {val[task.metric]:.4f}  lr {lr:.2g}  {row['train_samples_per_s']:,.0f} samples/s  "
            f"{row['epoch_time_s']:.2f}s" + ("  *" if state.best_epoch == epoch else "")
        )
        if stop.requested:
            raise Interrupted(f"stopped by {stop.requested} after epoch {epoch}; last.pt holds it")


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
