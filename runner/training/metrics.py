"""What a task trains on and reports: classification is cross-entropy and accuracy, regression MSE and MAE."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F

from runner.training.distributed import all_sum
from runner.training.recipe import TASK_METRICS

if TYPE_CHECKING:
    from torch import nn


@dataclass(frozen=True)
class Task:
    # (outputs, targets) -> mean loss over the batch
    loss: Callable[..., torch.Tensor]
    # the metric reported per epoch and at test time
    metric: str
    # "max" if a larger metric is better
    mode: str


TASKS = {
    "classification": Task(F.cross_entropy, *TASK_METRICS["classification"]),
    "regression": Task(F.mse_loss, *TASK_METRICS["regression"]),
}


@torch.inference_mode()
def evaluate(
    model: nn.Module,
    batches: Iterable[tuple[torch.Tensor, torch.Tensor]],
    *,
    task: Task,
    num_classes: int,
    precision: Any = None,
    stop: Callable[[], None] | None = None,
    target_std: torch.Tensor | None = None,
) -> tuple[dict[str, float], torch.Tensor | None]:
    """Mean loss and the task's metric over `batches`; for classification also the confusion matrix.
    `target_std` (a tensor of one std per output, on the model's device): regression targets were standardised by it,
    so the MAE is reported in the targets' own units (the loss stays in standardised units).

    Sums stay on the device until the end: one host sync per evaluation, not per batch. `stop`, when
    given, is called before each batch: a safe point where it may raise io.errors.Interrupted.
    """
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    n, loss_sum, metric_sum = (
        torch.zeros((), dtype=torch.long, device=device),
        torch.zeros((), device=device),
        torch.zeros((), device=device),
    )
    confusion = (
        torch.zeros(num_classes, num_classes, dtype=torch.long, device=device) if task.metric == "accuracy" else None
    )
    for x, y in batches:
        if stop is not None:
            stop()
        if precision is not None:
            with precision.autocast():
                out = model(x)
            out = out.float()
        else:
            out = model(x)
        loss_sum = loss_sum + task.loss(out, y, reduction="sum") / (out.shape[1] if task.metric == "mae" else 1)
        # a classification's (task.metric "accuracy"): the one with a confusion matrix
        if confusion is not None:
            pred = out.argmax(dim=1)
            metric_sum = metric_sum + (pred == y).sum()
            confusion += torch.bincount(y * num_classes + pred, minlength=num_classes**2).reshape(num_classes, -1)
        else:
            errors = (out - y).abs() if target_std is None else (out - y).abs() * target_std
            metric_sum = metric_sum + errors.mean(dim=1).sum()
        n += len(y)
    model.train(was_training)
    # under torchrun
    all_sum(n, loss_sum, metric_sum, *([confusion] if confusion is not None else []))
    result = {"loss": float(loss_sum) / float(n), task.metric: float(metric_sum) / float(n)}
    return result, None if confusion is None else confusion.cpu()


def loss_floor(task: Task, label_smoothing: float, num_classes: int) -> float:
    """The lowest training loss there is: for cross-entropy with label smoothing e over K classes, the entropy of the
    smoothed targets (1 - e + e/K on the true class, e/K on each other: torch's F.cross_entropy); 0 otherwise."""
    if task.metric != "accuracy" or not label_smoothing:
        return 0.0
    e, k = label_smoothing, num_classes
    true = 1 - e + e / k
    return -true * math.log(true) - (k - 1) * (e / k) * math.log(e / k)


def per_class_accuracy(confusion: torch.Tensor, class_names: Sequence[str]) -> dict[str, float | None]:
    """{class name: accuracy} from a confusion matrix (rows: true class, columns: predicted); None for a class with
    no sample in it (no accuracy to speak of, not 0)."""
    totals = confusion.sum(dim=1)
    return {
        name: float(confusion[i, i]) / float(totals[i]) if totals[i] else None for i, name in enumerate(class_names)
    }
