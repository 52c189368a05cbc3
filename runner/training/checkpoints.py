"""The checkpoints a run keeps beside last.pt and best.pt: the k best epochs (trainer.save_top_k), one every N epochs
or steps (trainer.every_n_epochs, every_n_steps; the newest trainer.save_total_limit of them), and the average of the
k best (trainer.average_top_k: timm's avg_checkpoints).

    runner train trainer.save_top_k=3 trainer.average_top_k=true
    runner train trainer.every_n_epochs=5 trainer.save_total_limit=2
    runner eval ckpt=outputs/2026-11-22/10-31-07/checkpoints/averaged.pt

Each file is a model state_dict like best.pt (the validated weights: the EMA's with trainer.ema.decay), in
checkpoints/, named as Lightning's ModelCheckpoint names them (epoch=003-val_accuracy=0.9583.pt, epoch=005.pt,
step=000500.pt), written atomically by the run directory. A new file is written before the one it replaces goes;
which files are kept is part of last.pt, so a resumed run ends with the files an uninterrupted one keeps.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import torch

from runner.training.recipe import finite, ranking

if TYPE_CHECKING:
    from collections.abc import Callable, Iterable, Sequence
    from pathlib import Path

    from runner.training.recipe import Monitor, Recipe


class Kept:
    """Which checkpoints trainer.save_top_k, every_n_epochs, every_n_steps and save_total_limit keep.

    `save(name)` writes the validated weights to checkpoints/NAME, `remove(name)` deletes checkpoints/NAME (a missing
    file is no error: a crash between a save and last.pt leaves last.pt naming a file already gone)."""

    def __init__(self, recipe: Recipe, monitor: Monitor) -> None:
        self.k, self.monitor = recipe.save_top_k, monitor
        self.every_epochs, self.every_steps = recipe.every_n_epochs, recipe.every_n_steps
        self.limit = recipe.save_total_limit
        # {"epoch", "metric", "val_loss", "file"} of the k best epochs, best first
        self.top: list[dict] = []
        # the periodic files kept, oldest first
        self.periodic: list[str] = []

    def after_epoch(self, row: dict, epoch: int, *, save: Callable[[str], None], remove: Callable[[str], None]) -> None:
        """Keep epoch `epoch` (metrics.csv's `row`) among the k best if it is one, and its periodic file if due. An
        epoch whose monitored value is NaN or infinite is never one of the k best (nor best.pt: Monitor.improved)."""
        value = row[self.monitor.name]
        # k=1: best.pt alone, as without the knob
        if self.k != 1 and finite(value):
            # no val_loss without a validation split (dataset.val_fraction=0, trainer.monitor=train_loss)
            entry: dict[str, Any] = {
                "epoch": epoch,
                "metric": value,
                "val_loss": row.get("val_loss"),
                "file": self.top_file(epoch, value),
            }
            ranked = sorted([e for e in self.top if e["epoch"] != epoch] + [entry], key=self.rank)
            kept = ranked if self.k == -1 else ranked[: self.k]
            files = {e["file"] for e in kept}
            if entry in kept:
                save(entry["file"])
            # by file: a repeated epoch may write its file again under the same name
            for gone in self.top:
                if gone["file"] not in files:
                    remove(gone["file"])
            self.top = kept
        if self.every_epochs and epoch % self.every_epochs == 0:
            self._periodic(f"epoch={epoch:03d}.pt", save, remove)

    def after_step(self, step: int, *, save: Callable[[str], None], remove: Callable[[str], None]) -> None:
        """Keep step `step`'s periodic file if trainer.every_n_steps asks for it."""
        if self.every_steps and step % self.every_steps == 0:
            self._periodic(f"step={step:06d}.pt", save, remove)

    def top_file(self, epoch: int, value: float) -> str:
        return f"epoch={epoch:03d}-{self.monitor.name}={value:.4f}.pt"

    def rank(self, entry: dict) -> tuple:
        """Best first, in the monitor's order (training/recipe.ranking, as Monitor.improved picks best.pt, so the
        first of the k best is best.pt's epoch), then the earlier epoch. A NaN kept by a run before NaN was refused
        ranks last, so it is the first to go."""
        return (*ranking(entry["metric"], entry["val_loss"], mode=self.monitor.mode), entry["epoch"])

    def _periodic(self, name: str, save: Callable[[str], None], remove: Callable[[str], None]) -> None:
        save(name)
        self.periodic = [p for p in self.periodic if p != name] + [name]
        while self.limit and len(self.periodic) > self.limit:
            remove(self.periodic.pop(0))

    def state_dict(self) -> dict:
        return {"top": [dict(e) for e in self.top], "periodic": list(self.periodic)}

    def load_state_dict(self, state: dict) -> None:
        self.top, self.periodic = [dict(e) for e in state["top"]], list(state["periodic"])


def average(states: Iterable[dict]) -> dict:
    """The mean of the model state_dicts `states` (an iterable, read one at a time; timm's avg_checkpoints): each
    tensor summed in float64 and divided, then cast back to its dtype (an integer buffer, BatchNorm's
    num_batches_tracked, rounds toward zero). BatchNorm's running statistics are averaged like the weights, not
    recomputed for the averaged weights (as timm does)."""
    total: dict[str, torch.Tensor] = {}
    dtypes: dict[str, torch.dtype] = {}
    n = 0
    for state in states:
        if not n:
            total = {k: v.to(torch.float64) for k, v in state.items()}
            dtypes = {k: v.dtype for k, v in state.items()}
        else:
            for key, value in state.items():
                total[key] += value.to(torch.float64)
        n += 1
    return {k: (v / n).to(dtypes[k]) for k, v in total.items()}


def average_files(paths: Sequence[Path]) -> dict:
    """average() of the kept checkpoint files `paths`, loaded one at a time; RunnerError naming a missing one."""
    from runner.io.errors import RunnerError
    from runner.io.serialization import safe_load

    missing = [p for p in paths if not p.is_file()]
    if missing:
        raise RunnerError(
            f"trainer.average_top_k: {missing[0]} is gone (deleted by hand, or lost with a crash between a save and "
            f"last.pt), so the kept checkpoints cannot be averaged. The run's best.pt and its test stand; start a new "
            f"run to average."
        )
    return average(safe_load(p) for p in paths)
