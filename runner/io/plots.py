"""loss_curve.png, confusion_matrix.png, reliability.png, sweep.png, lr_find.png. matplotlib is imported here only,
when a plot is drawn.

Figures are matplotlib.figure.Figure objects drawn by the Agg renderer, without pyplot: no GUI
backend is looked for, no global figure list to close, and 0.25 s less to import at every run's end.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.io.files import atomic_write

if TYPE_CHECKING:
    import torch
    from matplotlib.figure import Figure


def figure(**kwargs: Any) -> Figure:
    """A new matplotlib Figure, not registered with pyplot."""
    from matplotlib.figure import Figure

    return Figure(**kwargs)


def save(fig: Figure, path: str | Path, dpi: int = 110) -> None:
    """`fig` as a PNG at `path`, written atomically."""
    atomic_write(path, lambda f: fig.savefig(f, format="png", dpi=dpi, bbox_inches="tight"))


def loss_curve(rows: Sequence[Mapping[str, Any]], metric: str, path: str | Path) -> None:
    """Train and validation loss per epoch on the left, the validation metric on the right."""
    epochs = [r["epoch"] for r in rows]
    fig = figure(figsize=(10, 3.8))
    ax_loss, ax_metric = fig.subplots(1, 2)
    ax_loss.plot(epochs, [r["train_loss"] for r in rows], marker="o", label="train")
    # a run without a validation split (dataset.val_fraction=0) has no val_ columns: their lines stay empty
    ax_loss.plot(epochs, [r.get("val_loss", math.nan) for r in rows], marker="o", label="validation")
    ax_loss.set(xlabel="epoch", ylabel="loss", title="loss")
    ax_loss.legend()
    ax_metric.plot(epochs, [r.get(f"val_{metric}", math.nan) for r in rows], marker="o", color="tab:green")
    ax_metric.set(xlabel="epoch", ylabel=metric, title=f"validation {metric}")
    for ax in (ax_loss, ax_metric):
        ax.grid(alpha=0.3)
        ax.xaxis.get_major_locator().set_params(integer=True)
    save(fig, path)


def reliability_diagram(bins: Sequence[Mapping[str, float]], ece: float, path: str | Path) -> None:
    """reliability.png: each confidence bin's accuracy (bars) beside its mean confidence (dots) (Guo et al. 2017,
    figure 1), the diagonal where a calibrated model's bars would end, the count of samples per bin below. `bins`:
    stats.metrics.reliability_bins' rows (low, high, count, accuracy, confidence)."""
    fig = figure(figsize=(5, 6))
    ax, ax_count = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    width = [b["high"] - b["low"] for b in bins]
    left = [b["low"] for b in bins]
    ax.bar(left, [b["accuracy"] for b in bins], width=width, align="edge", edgecolor="black", label="accuracy")
    centres = [(b["low"] + b["high"]) / 2 for b in bins]
    ax.plot(centres, [b["confidence"] for b in bins], "o", color="tab:red", label="mean confidence")
    ax.plot([0, 1], [0, 1], linestyle="--", color="gray")
    ax.set(ylabel="accuracy", xlim=(0, 1), ylim=(0, 1), title=f"reliability (test), ECE {ece:.3f}")
    ax.legend(loc="upper left")
    ax_count.bar(left, [b["count"] for b in bins], width=width, align="edge", edgecolor="black")
    ax_count.set(xlabel="confidence (top class' probability)", ylabel="samples")
    save(fig, path)


def confusion_matrix(confusion: torch.Tensor, class_names: Sequence[str], path: str | Path) -> None:
    """Counts of (true class, predicted class) on the test split, as a PNG."""
    save(confusion_figure(confusion, class_names), path)


def confusion_figure(confusion: torch.Tensor, class_names: Sequence[str]) -> Figure:
    """The confusion matrix as a matplotlib figure (TensorBoard's add_figure takes it as it is)."""
    n = len(class_names)
    fig = figure(figsize=(1.0 + 0.5 * n, 0.8 + 0.5 * n))
    ax = fig.subplots()
    ax.imshow(confusion.numpy(), cmap="Blues")
    ax.set_xticks(range(n), class_names, rotation=45, ha="right")
    ax.set_yticks(range(n), class_names)
    ax.set(xlabel="predicted", ylabel="true", title="confusion matrix (test)")
    peak = max(int(confusion.max()), 1)
    for i in range(n):
        for j in range(n):
            count = int(confusion[i, j])
            ax.text(
                j, i, str(count), ha="center", va="center", fontsize=7, color="white" if count > peak / 2 else "black"
            )
    return fig


def lr_find_curve(
    lrs: Sequence[float], losses: Sequence[float], smoothed: Sequence[float], best: int, path: str | Path
) -> None:
    """The range test's loss against the learning rate (log scale): each step's and the smoothed one, the suggested
    learning rate (index `best`) marked."""
    fig = figure(figsize=(6.4, 4))
    ax = fig.subplots()
    ax.plot(lrs, losses, color="tab:blue", alpha=0.3, label="loss of the step")
    ax.plot(lrs, smoothed, color="tab:blue", label="smoothed")
    ax.plot(lrs[best], smoothed[best], "o", color="tab:red", markersize=8, label=f"suggested: {lrs[best]:.2g}")
    finite = [v for v in (*losses, *smoothed) if math.isfinite(v)]
    # the steps that diverged would squash the rest
    low, top = min(finite), smoothed[0] * 1.5
    ax.set_ylim(low - 0.05 * (top - low), max(top, low + 1e-12))
    ax.set(xscale="log", xlabel="learning rate", ylabel="training loss", title="learning-rate range test")
    ax.grid(alpha=0.3)
    ax.legend()
    save(fig, path)
