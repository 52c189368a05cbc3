"""logger=tensorboard: event files in <run>/tensorboard/, for `tensorboard --logdir outputs`.

    runner train logger=tensorboard                  # <run>/tensorboard/: tensorboard --logdir outputs
    runner train -m optimizer.lr=0.1,0.01 logger=tensorboard   # the sweep's jobs side by side, with their settings

Everything is logged against the optimizer step (Lightning's x-axis): the training loss every
trainer.log_every_n_steps, each epoch's row of metrics.csv at the step that ended it, and at the
end the test metrics, the confusion matrix as a figure and the run's hyperparameters (the hparams
plugin, written into the run's own event directory so that a sweep's jobs line up in its table).
A fresh run also writes its command and environment as text (the Text tab). A resume opens the
writer with purge_step = the step after last.pt's, so TensorBoard drops what a process that then
died logged after its checkpoint: no step appears twice.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.io.tables import markdown_table
from runner.loggers.flatten import flatten, scalars

if TYPE_CHECKING:
    import torch

# metrics.csv's columns as TensorBoard tags
TAGS = {
    "train_loss": "train/loss",
    "val_loss": "val/loss",
    "lr": "train/lr",
    "epoch": "train/epoch",
    "epoch_time_s": "time/epoch_s",
    "train_samples_per_s": "time/train_samples_per_s",
}


def _tag(column: str) -> str:
    return TAGS.get(column) or (f"val/{column[4:]}" if column.startswith("val_") else column)


class TensorBoard:
    """A torch.utils.tensorboard.SummaryWriter in <run>/<dir>/."""

    def __init__(
        self, run_dir: Path, options: Mapping[str, Any], record: dict[str, Any], purge_step: int | None = None
    ) -> None:
        from torch.utils.tensorboard import (
            # check_loggers saw tensorboard is installed
            SummaryWriter,
        )

        self.writer = SummaryWriter(
            log_dir=str(run_dir / options.get("dir", "tensorboard")),
            purge_step=purge_step,
            flush_secs=options.get("flush_secs", 10),
        )
        # a fresh run: what it was started with, and where
        if purge_step is None:
            self.writer.add_text("provenance", provenance_markdown(record["summary"]), 0)

    def log_step(self, step: int, loss: float) -> None:
        self.writer.add_scalar("train/loss_step", loss, step)

    def log_epoch(self, row: Mapping[str, Any], step: int) -> None:
        for column, value in row.items():
            if isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(_tag(column), value, step)

    def log_end(
        self,
        step: int,
        record: dict[str, Any],
        results: Mapping[str, Any],
        confusion: torch.Tensor | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        # a classification's: the confusion matrix comes with its class names
        if confusion is not None and class_names is not None:
            from runner.io.plots import confusion_figure

            self.writer.add_figure("test/confusion_matrix", confusion_figure(confusion, class_names), step)
        metrics = {f"hparam/{k}": v for k, v in results.items() if isinstance(v, (int, float)) and math.isfinite(v)}
        self.writer.add_hparams(
            scalars(record["config"]),
            metrics,
            run_name=".",
            # "." = this run's own event directory
        )

    def close(self, record: dict[str, Any]) -> None:
        self.writer.close()


def provenance_markdown(summary: Mapping[str, Any]) -> str:
    """The command and summary.json's environment as a Markdown table (TensorBoard renders it)."""
    rows = {"command": f"`{summary.get('command', '')}`", **flatten(summary.get("environment") or {})}
    return markdown_table(["", ""], rows.items())
