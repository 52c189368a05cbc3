"""All resumable state in one place, and the seeding that starts it.

    checkpoints/last.pt  TrainState.state_dict(): model, optimizer, scheduler, counters,
                         RNG states and the resolved config, all tensors and plain data
    checkpoints/best.pt  model.state_dict() at the best validation metric, as in the tutorials:
                         model.load_state_dict(torch.load(path, weights_only=True))

The run directory (run/rundir.py) writes them atomically; inference/loading.py reads a run's model back.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, cast

import numpy as np
import torch

from runner.io.errors import RunnerError

if TYPE_CHECKING:
    from pathlib import Path

    from torch.optim.swa_utils import AveragedModel

    from runner.data.batches import BatchIndices
    from runner.training.checkpoints import Kept
    from runner.training.schedules import Schedule


def ema_model(model: torch.nn.Module, decay: float, warmup: bool) -> AveragedModel:
    """torch's AveragedModel of `model` as an exponential moving average with `decay`, BatchNorm statistics included.

    With `warmup`, the average after t updates moves with min(decay, (1 + t) / (10 + t)) instead: 0.18 at
    the second update, 0.9 at the 80th, `decay` (0.999) from the 8,990th on. Without it, 0.999 over the default
    run's 200 steps leaves 0.999 ** 200 = 82 % of the average on the initial weights (18 % test accuracy). The
    rule is TensorFlow's tf.train.ExponentialMovingAverage(num_updates=t); timm's ModelEmaV3 warms up for the same
    reason with a power curve. t is the AveragedModel's own n_averaged, saved in last.pt, so a resume continues it
    bit for bit."""
    from torch.optim.swa_utils import AveragedModel

    @torch.no_grad()
    def update(
        averaged: tuple[torch.Tensor, ...] | list[torch.Tensor],
        current: tuple[torch.Tensor, ...] | list[torch.Tensor],
        n_averaged: torch.Tensor | int,
    ) -> None:
        # called once per device and dtype group of each update (BatchNorm's int64 counter is its own group), so t is
        # read from n_averaged each time: on a GPU, one host sync per step
        # updates so far (the first one copied the weights)
        t = int(n_averaged)
        rate = min(decay, (1 + t) / (10 + t)) if warmup else decay
        # as torch's get_ema_multi_avg_fn
        if averaged[0].is_floating_point():
            torch._foreach_lerp_(averaged, current, 1 - rate)
        else:
            for a, c in zip(averaged, current):
                a.copy_(a * rate + c * (1 - rate))

    return AveragedModel(model, multi_avg_fn=update, use_buffers=True)


def mismatches(model: torch.nn.Module, state_dict: dict) -> list[str]:
    """Every key and shape in which `state_dict` and `model` differ, as readable lines."""
    own = model.state_dict()
    problems = [f"missing {k} {tuple(v.shape)}" for k, v in own.items() if k not in state_dict]
    problems += [f"unexpected {k} {tuple(v.shape)}" for k, v in state_dict.items() if k not in own]
    problems += [
        f"{k}: checkpoint {tuple(v.shape)} vs model {tuple(own[k].shape)}"
        for k, v in state_dict.items()
        if k in own and v.shape != own[k].shape
    ]
    return problems


def load_weights(model: torch.nn.Module, state_dict: object, source: str | Path) -> None:
    """model.load_state_dict(state_dict), but a mismatch lists every key and shape that differs."""
    if not isinstance(state_dict, dict) or not all(isinstance(v, torch.Tensor) for v in state_dict.values()):
        raise RunnerError(
            f"{source} is not a model state_dict (a dict of tensors). Point ckpt= at a runner checkpoint."
        )
    problems = mismatches(model, state_dict)
    if problems:
        shown = "; ".join(problems[:8]) + (f"; and {len(problems) - 8} more" if len(problems) > 8 else "")
        raise RunnerError(
            f"the weights in {source} do not fit the model {type(model).__name__} ({len(problems)} mismatched keys: "
            f"{shown}). Evaluate with the model the run was trained with (drop model overrides), or pick the matching "
            f"checkpoint."
        )
    model.load_state_dict(state_dict)


def seed_all(seed: int) -> None:
    """Seed every RNG a run may draw from: python, numpy, torch (CPU and all GPUs)."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def rng_state() -> dict:
    """Every RNG the run draws from, as tensors and plain data (so weights_only loads them)."""
    _kind, keys, pos, has_gauss, gauss = cast("tuple", np.random.get_state())
    version, py_state, py_gauss = random.getstate()
    state = {
        "torch": torch.get_rng_state(),
        "numpy": {"keys": torch.from_numpy(keys.astype(np.int64)), "pos": pos, "has_gauss": has_gauss, "gauss": gauss},
        "python": {"version": version, "state": list(py_state), "gauss": py_gauss},
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    torch.set_rng_state(state["torch"])
    n = state["numpy"]
    np.random.set_state(("MT19937", n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
    p = state["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def own_share(state: dict) -> dict:
    """This process's own part of a last.pt: its RNG states and its share of the epoch's summed training loss and
    sample count (`ranks`, one entry per rank, written under torchrun) when the run resumes on as many processes as
    it was saved from. On another number of processes: rank 0's RNG states (`rng`) for every rank (a fresh run seeds
    every rank alike), and the whole of the epoch's loss so far on rank 0, none on the others, so that the epoch's
    summed train_loss counts every sample once."""
    from runner.training import distributed

    rank = distributed.current()
    ranks = state.get("ranks")
    if ranks and len(ranks) == rank.world:
        return ranks[rank.rank]
    # another number of processes: the epoch's loss so far, all of it, goes to rank 0 (the ranks' shares are summed
    # at the epoch's end), none to the others; every rank continues from rank 0's RNG, as a fresh run's ranks start
    shares = ranks or [{"loss_sum": state["loss_sum"], "seen": state["seen"]}]
    total = (sum(s["loss_sum"] for s in shares), sum(s["seen"] for s in shares)) if rank.main else (0.0, 0)
    return {"rng": state["rng"], "loss_sum": total[0], "seen": total[1]}


@dataclass
class TrainState:
    """Everything a run needs to continue exactly where it stopped, at an epoch's end or mid-epoch.

    One name per role for the weights: `model` is what last.pt saves and every step updates, `validated_model` what
    validation sees and best.pt holds (the EMA's average with trainer.ema.decay, else `model`); the loop's Job runs
    `model` through its `net` (DDP, compiled)."""

    model: torch.nn.Module
    optimizer: torch.optim.Optimizer
    # the learning-rate schedule, or None for a constant learning rate (last.pt's "scheduler", torch's word)
    schedule: Schedule | None
    # 16-mixed's loss scale (disabled otherwise)
    scaler: torch.amp.GradScaler
    # the training batches' order: its generator draws each epoch's permutation and augmentation
    order: BatchIndices
    # the resolved config, plain data
    config: dict
    # epochs completed
    epoch: int = 0
    # optimizer steps taken
    step: int = 0
    # batches done in the epoch under way (0 at an epoch's end); last.pt's "batch"
    batches_done: int = 0
    # that epoch's summed training loss so far, and its sample count
    loss_sum: float = 0.0
    seen: int = 0
    # best value of the monitored metric so far, and its val_loss, which breaks ties
    best_metric: float | None = None
    best_val_loss: float | None = None
    best_epoch: int = 0
    # torch's AveragedModel of `model` (trainer.ema.decay), or None
    ema: AveragedModel | None = None
    # the learning rate of the last optimizer step (metrics.csv's lr)
    lr: float | None = None
    # training time so far, over every resume; counted only under trainer.max_time (else 0: the same bytes)
    train_s: float = 0.0
    # trainer.early_stopping: the best monitored value, and the validations since it last improved by more than
    # min_delta
    early_best: float | None = None
    stale_epochs: int = 0
    # why training ended before trainer.epochs: early_stopping, max_steps, max_time or pruned
    stopped_by: str | None = None
    # the checkpoints kept beside last.pt and best.pt (training/checkpoints.py), or None
    kept: Kept | None = None

    COUNTERS: ClassVar[tuple] = ("epoch", "step", "loss_sum", "seen", "best_metric", "best_val_loss", "best_epoch")
    # with their defaults: keys a last.pt written before the recipe knobs lacks
    RECIPE: ClassVar[dict] = {
        "lr": None,
        "train_s": 0.0,
        "early_best": None,
        "stale_epochs": 0,
        "stopped_by": None,
    }

    def share(self) -> dict:
        """This process's part of last.pt under torchrun (own_share reads it back): its RNG states, and its share of
        the epoch's summed training loss and samples (the loop sets loss_sum and seen before each save)."""
        return {"rng": rng_state(), "loss_sum": float(self.loss_sum), "seen": self.seen}

    @property
    def validated_model(self) -> torch.nn.Module:
        """The module whose weights validation sees and best.pt holds: the EMA's average, or the model itself."""
        return self.ema.module if self.ema is not None else self.model

    def state_dict(self) -> dict:
        generator = self.order.generator
        # the training order shuffles, so it has its generator (data/batches.BatchIndices)
        assert generator is not None
        # the keys are last.pt's since before the fields' names: a resume reads files older than them
        return {
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.schedule.state_dict() if self.schedule is not None else None,
            "scaler": self.scaler.state_dict(),
            "data_generator": generator.get_state(),
            "epoch_data_state": self.order.epoch_state if self.batches_done else None,
            "rng": rng_state(),
            "config": self.config,
            "epoch": self.epoch,
            "step": self.step,
            "batch": self.batches_done,
            "loss_sum": float(self.loss_sum),
            "seen": self.seen,
            "best_metric": self.best_metric,
            "best_val_loss": self.best_val_loss,
            "best_epoch": self.best_epoch,
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "kept": self.kept.state_dict() if self.kept is not None else None,
            **{key: getattr(self, key) for key in self.RECIPE},
        }

    def load_state_dict(self, state: dict) -> None:
        load_weights(self.model, state["model"], "last.pt")
        self.optimizer.load_state_dict(state["optimizer"])
        if self.schedule is not None:
            self.schedule.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        generator = self.order.generator
        assert generator is not None
        generator.set_state(state["data_generator"])
        own = own_share(state)
        set_rng_state(own["rng"])
        if self.ema is not None:
            # a last.pt without EMA weights was refused before anything was built (run/resume/plan.py)
            self.ema.load_state_dict(state["ema"])
        for key in self.COUNTERS:
            setattr(self, key, state[key])
        # this rank's share of the epoch so far
        self.loss_sum, self.seen = own["loss_sum"], own["seen"]
        self.batches_done = state["batch"]
        for key, default in self.RECIPE.items():
            setattr(self, key, state.get(key, default))
        if self.kept is not None and state.get("kept"):
            self.kept.load_state_dict(state["kept"])
        # stopped mid-epoch: finish that epoch's permutation first
        if self.batches_done:
            self.order.resume(state["epoch_data_state"], self.batches_done)
