"""`runner train`: build the parts a config names, train, checkpoint, test the best weights.

    runner train                                   # cnn on digits, the default
    runner train model=mlp dataset=sum_pairs       # the tutorials' regression
    runner train -m optimizer.lr=0.1,0.01,0.001    # one run directory per job

A job reads in four steps: check the config, set up (device, data, model, optimizer),
fit (the loop below), finish (test best.pt, plot, summary.json).
"""

import contextlib
import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from omegaconf import OmegaConf

from runner import distributed, plots
from runner.build import build_model, build_optimizer, build_scheduler, plain, resolve_device, summarize
from runner.checkpoint import TrainState, restore_model, save, seed_all
from runner.config import check_config
from runner.console import RunConsole, config_tree, model_table, results_table
from runner.data import build_data, make_batches, train_transform
from runner.errors import RunnerError
from runner.files import MetricsCSV
from runner.distributed import all_sum
from runner.metrics import TASKS, evaluate
from runner.summary import RunRecord


@dataclass
class Data:
    train: object  # data.Batches or loader.LoaderBatches
    val: object
    test: object
    num_classes: int


@dataclass
class Precision:
    """`trainer.precision` as an autocast context and a gradient scaler (a no-op unless 16-mixed)."""

    dtype: object  # None for full precision
    device_type: str
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, precision, device):
        dtype = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}[str(precision)]
        return cls(dtype, device.type, torch.amp.GradScaler(device.type, enabled=dtype is torch.float16))

    def autocast(self):
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()


def configure_torch(trainer_cfg):
    """Threads and determinism: what makes two runs of one config on CPU give the same bytes."""
    if trainer_cfg.num_threads:
        torch.set_num_threads(trainer_cfg.num_threads)
    if trainer_cfg.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def use_channels_last(setting, input_shape, device):
    """`auto`: channels-last for images on CPU and CUDA, where it measured faster (README, Figures)."""
    if setting == "auto":
        return len(input_shape) == 3 and device.type in ("cpu", "cuda")
    return bool(setting) and len(input_shape) == 3


def setup_data(dataset_cfg, trainer_cfg, device, seed, channels_last, rank):
    splits, normalize = build_data(dataset_cfg, device)
    normalize.channels_last = channels_last
    if trainer_cfg.batch_size % rank.world or trainer_cfg.eval_batch_size % rank.world:
        raise RunnerError(
            f"trainer.batch_size={trainer_cfg.batch_size} and trainer.eval_batch_size={trainer_cfg.eval_batch_size} are global "
            f"batch sizes and must divide evenly among the {rank.world} processes. Use multiples of {rank.world}."
        )
    if trainer_cfg.batch_size > len(splits.train):
        raise RunnerError(
            f"trainer.batch_size={trainer_cfg.batch_size} is larger than the training split of {dataset_cfg.name} "
            f"({len(splits.train)} samples), so an epoch would have no full batch. Use trainer.batch_size={len(splits.train)} or less."
        )
    generator = torch.Generator().manual_seed(seed)  # data order and augmentation, apart from the model's RNG
    shard = dict(rank=rank.rank, world=rank.world)  # under torchrun, each process takes its share of every batch
    transform = train_transform(dataset_cfg.get("augment"), normalize, generator, **shard)
    train = make_batches(splits.train, trainer_cfg.batch_size, transform, device, shuffle=True, generator=generator, **shard)
    val = make_batches(splits.val, trainer_cfg.eval_batch_size, normalize, device, **shard)
    test = make_batches(splits.test, trainer_cfg.eval_batch_size, normalize, device, **shard)
    return Data(train, val, test, dataset_cfg.num_classes), splits


def monitor_of(trainer_cfg, task):
    """(metric name, 'min' or 'max') that decides best.pt."""
    monitor = trainer_cfg.monitor or f"val_{task.metric}"
    mode = trainer_cfg.monitor_mode or ("min" if "loss" in monitor else task.mode)
    return monitor, mode


def fit(state, net, data, task, precision, trainer_cfg, run_dir, console, on_first_step):
    """The training loop: one epoch per pass, then evaluate, log and checkpoint.

    `net` is the model as it runs (DDP, compiled or neither); `state.model` is what is saved.
    `run_dir` is None on every process but the first under torchrun: they write nothing.
    """
    model, optimizer, scheduler, scaler = state.model, state.optimizer, state.scheduler, precision.scaler
    monitor, mode = monitor_of(trainer_cfg, task)
    device = next(model.parameters()).device
    metrics_csv, rows = MetricsCSV(run_dir / "metrics.csv") if run_dir else None, []
    while state.epoch < trainer_cfg.epochs:
        epoch, lr = state.epoch + 1, optimizer.param_groups[0]["lr"]

        # forward, backward, update
        model.train()
        start, loss_sum, seen = time.perf_counter(), torch.zeros((), device=device), 0
        with console.progress() as bar:
            progress = bar.add_task(f"epoch {epoch}/{trainer_cfg.epochs}", total=len(data.train), status="")
            for i, (x, y) in enumerate(data.train):
                with precision.autocast():
                    loss = task.loss(net(x), y)
                optimizer.zero_grad(set_to_none=True)
                scaler.scale(loss).backward()
                if trainer_cfg.grad_clip:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(model.parameters(), trainer_cfg.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                state.step += 1
                if state.step == 1:
                    on_first_step()
                loss_sum += loss.detach() * len(y)
                seen += len(y)
                if console.interactive and (i + 1) % trainer_cfg.log_every_n_steps == 0:
                    rate = seen / (time.perf_counter() - start)
                    bar.update(progress, completed=i + 1, status=f"loss {loss.item():.4f}  {rate:,.0f} samples/s")
        seen_all = torch.tensor(float(seen), device=device)
        all_sum(loss_sum, seen_all)  # over processes, under torchrun
        seen = int(seen_all)  # the one host sync of the epoch
        train_loss = float(loss_sum) / seen
        train_time = time.perf_counter() - start
        if not math.isfinite(train_loss):
            raise RunnerError(
                f"the training loss became {train_loss} in epoch {epoch} (learning rate {lr:g}): training diverged. "
                f"Lower optimizer.lr (e.g. optimizer.lr={lr / 10:g}) or set trainer.grad_clip=1.0."
            )
        if scheduler is not None:
            scheduler.step()
        state.epoch = epoch

        # evaluate
        val, _ = evaluate(net, data.val, task, data.num_classes, precision)
        row = {"epoch": epoch, "train_loss": train_loss, "val_loss": val["loss"], f"val_{task.metric}": val[task.metric],
               "lr": lr, "epoch_time_s": time.perf_counter() - start, "train_samples_per_s": seen / train_time}

        # log and checkpoint: best.pt when the monitored metric improves, last.pt every epoch
        rows.append(row)
        if metrics_csv:
            metrics_csv.append(row)
        if monitor not in row:
            raise RunnerError(f"trainer.monitor={monitor} is not a column of metrics.csv ({', '.join(row)}). Use one of the val_ columns.")
        # ties on the metric (accuracy on a small validation split saturates) go to the lower val_loss
        sign = 1 if mode == "min" else -1
        key = (sign * row[monitor], row["val_loss"])
        if state.best_metric is None or key < (sign * state.best_metric, state.best_val_loss):
            state.best_metric, state.best_val_loss, state.best_epoch = row[monitor], row["val_loss"], epoch
            if run_dir:
                save(model.state_dict(), run_dir / "checkpoints" / "best.pt")
        if run_dir:
            save(state.state_dict(), run_dir / "checkpoints" / "last.pt")
        console.print(
            f"epoch {epoch:>3}/{trainer_cfg.epochs}  train_loss {train_loss:.4f}  val_loss {val['loss']:.4f}  "
            f"val_{task.metric} {val[task.metric]:.4f}  lr {lr:.2g}  {row['train_samples_per_s']:,.0f} samples/s  "
            f"{row['epoch_time_s']:.2f}s" + ("  *" if state.best_epoch == epoch else "")
        )
    return rows


def test_best(model_cfg, data, task, run_dir, device, precision, channels_last):
    """Test metrics of best.pt, loaded from disk into a fresh model: the same path `runner eval` takes."""
    model = restore_model(model_cfg, run_dir / "checkpoints" / "best.pt", device, channels_last)
    metrics, _ = evaluate(model, data.test, task, data.num_classes, precision)
    return metrics


def train_job(cfg, run_dir):
    """Run one training job in `run_dir` (Hydra's output directory) and return its summary.

    Under torchrun every process runs this, with rank 0's `run_dir`; only rank 0 writes.
    """
    run_dir, rank = Path(run_dir), distributed.current()
    console = RunConsole(run_dir / "train.log" if rank.main else None, quiet=not rank.main)
    record = RunRecord(run_dir / "summary.json" if rank.main else None, kind="train")
    try:
        check_config(cfg)
        task = TASKS[cfg.dataset.task]
        console.print(f"[bold]runner train[/]  {cfg.dataset.name} x {cfg.model._target_.rsplit('.', 1)[-1]}  ->  {run_dir}")
        console.detail(config_tree(OmegaConf.to_container(cfg, resolve=True)))

        configure_torch(cfg.trainer)
        device = resolve_device(cfg.device.name, rank.local)
        channels_last = use_channels_last(cfg.trainer.channels_last, cfg.dataset.input_shape, device)
        precision = Precision.of(cfg.trainer.precision, device)
        seed_all(cfg.seed)  # model init and dropout; the data order has its own generator
        data, splits = setup_data(cfg.dataset, cfg.trainer, device, cfg.seed, channels_last, rank)
        model = build_model(cfg.model).to(device)
        layers = summarize(model, cfg.dataset.input_shape, cfg.dataset.num_classes, device)
        if channels_last:
            model = model.to(memory_format=torch.channels_last)
        params = sum(p.numel() for p in model.parameters())
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        console.detail(model_table(cfg.model._target_, layers, params, trainable))
        optimizer = build_optimizer(cfg.optimizer, model.parameters())
        scheduler = build_scheduler(cfg.scheduler, optimizer)
        state = TrainState(model, optimizer, scheduler, data.train.generator, plain(cfg))
        net = distributed.wrap(model, device)
        net = torch.compile(net) if cfg.trainer.compile else net
        monitor, mode = monitor_of(cfg.trainer, task)
        record.update(status="running", task=cfg.dataset.task, device=str(device), processes=rank.world, params=params,
                      trainable_params=trainable, monitor=monitor, monitor_mode=mode, channels_last=channels_last,
                      samples={"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)})
        console.print(f"{device}  {params:,} parameters  {len(splits.train)}/{len(splits.val)}/{len(splits.test)} train/val/test samples")

        setup_s = record.elapsed()
        first_step = {}
        rows = fit(state, net, data, task, precision, cfg.trainer, run_dir if rank.main else None, console,
                   on_first_step=lambda: first_step.setdefault("at", time.time()))
        train_s = record.elapsed() - setup_s
        in_sync = distributed.in_sync(model)  # DDP's promise, checked: every process ends with the same weights
        distributed.barrier()  # best.pt is on disk before any process reads it
        test = test_best(cfg.model, data, task, run_dir, device, precision, channels_last)
        if rank.main:
            plots.loss_curve(rows, task.metric, run_dir / "loss_curve.png")

        best_row = rows[state.best_epoch - 1] if state.best_epoch <= len(rows) else rows[-1]
        summary = record.update(
            status="completed", epochs=state.epoch, steps=state.step,
            best={"epoch": state.best_epoch, **{k: v for k, v in best_row.items() if k.startswith("val_")}},
            final=rows[-1], test={f"test_{k}": v for k, v in test.items()}, ranks_in_sync=in_sync,
            timings={"setup_s": setup_s, "train_s": train_s, "total_s": record.elapsed(),
                     "first_step_at": first_step.get("at")},  # unix time, for the benchmark's start-up figure
        )
        console.print(results_table(
            "results",
            [(f"best {monitor} (epoch {state.best_epoch})", state.best_metric), ("final train_loss", rows[-1]["train_loss"]),
             *((f"test_{k} (best.pt)", v) for k, v in test.items()), ("time", f"{record.elapsed():.1f} s")],
        ))
        console.print(f"run directory: {run_dir}")
        return summary
    except BaseException as err:
        record.failed(err)
        console.failed(err)
        raise
    finally:
        console.close()
