"""`runner train`: build the parts a config names, train, checkpoint, test the best weights.

    runner train                                   # cnn on digits, the default
    runner train model=mlp dataset=sum_pairs       # the tutorials' regression
    runner train -m optimizer.lr=0.1,0.01,0.001    # one run directory per job

    runner train resume=outputs/2026-11-22/10-31-07 # continue a stopped run (runner/resume.py)

A job reads in four steps: check the config, set up (device, data, model, optimizer),
fit (runner/loop.py), finish (test best.pt, plot, summary.json).
"""

import contextlib
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
from runner.errors import Interrupted, RunnerError
from runner.files import MetricsCSV, truncate_metrics
from runner.loop import Data, fit
from runner.metrics import TASKS, evaluate
from runner.resume import load_resume, resumable
from runner.signals import StopSignals
from runner.summary import RunRecord


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


def test_best(model_cfg, data, task, run_dir, device, precision, channels_last):
    """Test metrics of best.pt, loaded from disk into a fresh model: the same path `runner eval` takes."""
    model = restore_model(model_cfg, run_dir / "checkpoints" / "best.pt", device, channels_last)
    metrics, _ = evaluate(model, data.test, task, data.num_classes, precision)
    return metrics


class RunFiles:
    """What the loop writes into the run directory; nothing at all on the other processes of a torchrun job."""

    def __init__(self, run_dir, write, monitor, mode):
        self.run_dir, self.write, self.monitor, self.mode = run_dir, write, monitor, mode
        self.metrics = MetricsCSV(run_dir / "metrics.csv")

    def append_row(self, row):
        if self.write:
            self.metrics.append(row)

    def save_best(self, model):
        if self.write:
            save(model.state_dict(), self.run_dir / "checkpoints" / "best.pt")

    def save_last(self, state):
        if self.write:
            save(state.state_dict(), self.run_dir / "checkpoints" / "last.pt")


def train_job(cfg, run_dir, overrides=()):
    """Run (or resume) one training job in `run_dir` (Hydra's output directory) and return its summary.

    Under torchrun every process runs this, with rank 0's `run_dir`; only rank 0 writes.
    `overrides` are the command line's, applied on top of a resumed run's own config.
    """
    run_dir, rank = Path(run_dir), distributed.current()
    resume = None
    if cfg.get("resume") or resumable(run_dir):  # a requeued job (SLURM) finds its own run directory
        cfg, resume, earlier_rows = load_resume(cfg.get("resume") or run_dir, cfg, overrides)  # checks; writes nothing
        check_config(cfg)  # before the run directory is touched
    console = RunConsole(run_dir / "train.log" if rank.main else None, quiet=not rank.main)
    record = RunRecord(run_dir / "summary.json" if rank.main else None, kind="train", resume=resume is not None)
    try:
        check_config(cfg)
        task = TASKS[cfg.dataset.task]
        verb = f"resuming from epoch {resume['epoch']}, step {resume['step']}" if resume else "->"
        console.print(f"[bold]runner train[/]  {cfg.dataset.name} x {cfg.model._target_.rsplit('.', 1)[-1]}  {verb}  {run_dir}")
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
        state = TrainState(model, optimizer, scheduler, precision.scaler, data.train.indices, plain(cfg))
        rows = []
        if resume:
            state.load_state_dict(resume)  # weights, optimizer, scheduler, counters, every RNG, the data order
            if rank.main:
                truncate_metrics(run_dir / "metrics.csv", state.epoch)
            rows = earlier_rows
        net = distributed.wrap(model, device)
        net = torch.compile(net) if cfg.trainer.compile else net
        monitor, mode = monitor_of(cfg.trainer, task)
        record.update(status="running", task=cfg.dataset.task, device=str(device), processes=rank.world, params=params,
                      trainable_params=trainable, monitor=monitor, monitor_mode=mode, channels_last=channels_last,
                      samples={"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)})
        console.print(f"{device}  {params:,} parameters  {len(splits.train)}/{len(splits.val)}/{len(splits.test)} train/val/test samples")

        setup_s, timings = record.elapsed(), {}
        with StopSignals() as stop:
            try:
                files = RunFiles(run_dir, rank.main, monitor, mode)
                rows += fit(state, net, data, task, precision, cfg.trainer, files, console, stop, timings)
            except Interrupted as err:
                record.update(epochs=state.epoch, steps=state.step)
                raise Interrupted(f"{err}. Continue it with: runner train resume={run_dir}") from None
            finally:
                stop.hand_on()  # under submitit, its own SIGUSR2 handler requeues the job now that last.pt is saved
        train_s = record.elapsed() - setup_s
        in_sync = distributed.in_sync(model)  # DDP's promise, checked: every process ends with the same weights
        distributed.barrier()  # best.pt is on disk before any process reads it
        test = test_best(cfg.model, data, task, run_dir, device, precision, channels_last)
        if rank.main:
            plots.loss_curve(rows, task.metric, run_dir / "loss_curve.png")

        best_row = next(r for r in rows if int(r["epoch"]) == state.best_epoch)
        summary = record.update(
            status="completed", epochs=state.epoch, steps=state.step,
            best={"epoch": state.best_epoch, **{k: v for k, v in best_row.items() if k.startswith("val_")}},
            final=rows[-1], test={f"test_{k}": v for k, v in test.items()}, ranks_in_sync=in_sync,
            timings={"setup_s": setup_s, "train_s": train_s, "total_s": record.elapsed(),
                     "first_step_at": timings.get("first_step_at")},  # unix time, for the benchmark's start-up figure
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
