"""What a task trains on and reports: classification is cross-entropy and accuracy, regression MSE and MAE."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf

from runner.io.errors import RunnerError
from runner.training.distributed import all_sum
from runner.training.recipe import TASK_METRICS

if TYPE_CHECKING:
    from torch import nn

    from runner.data.splits import Splits


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


@dataclass
class Outputs:
    """The per-sample outputs of one evaluation, kept for runner/stats: classification's softmax probabilities,
    regression's predictions in the targets' own units, with the targets; after `evaluate`, `y` and `out` hold them as
    float64 numpy arrays (int64 labels) in the dataset's order, every torchrun process's samples on every process."""

    batches: list[tuple[torch.Tensor, torch.Tensor]] = field(default_factory=list)
    y: Any = None
    out: Any = None

    def add(self, out: torch.Tensor, y: torch.Tensor, task: Task, scale: tuple[Any, Any]) -> None:
        std, mean = scale
        if task.metric == "accuracy":
            self.batches.append((out.float().softmax(dim=1), y))
        else:
            # a dataset that standardised its targets (tables, arrays): back to their units, MAPE divides by them
            unit = (lambda v: v * std + mean) if std is not None else (lambda v: v)
            self.batches.append((unit(out.float().double()), unit(y.double())))

    def gather(self) -> None:
        """Every process's batches, back in the dataset's order: rank r's part of each global batch is its samples
        r, r + world, ... (data/batches.BatchIndices)."""
        mine = [(out.cpu().double().numpy(), y.cpu().numpy()) for out, y in self.batches]
        ranks = _everyones(mine)
        wholes = [tuple(_interleave([rank[j][i] for rank in ranks]) for i in (0, 1)) for j in range(len(mine))]
        self.batches = []
        self.out = np.concatenate([w[0] for w in wholes]) if wholes else np.zeros((0, 1))
        self.y = np.concatenate([w[1] for w in wholes]) if wholes else np.zeros((0,))


def _interleave(parts: list[np.ndarray]) -> np.ndarray:
    """One global batch from the processes' parts, part r at rows r, r + world, ..."""
    whole = np.concatenate(parts)
    for r, part in enumerate(parts):
        whole[r :: len(parts)] = part
    return whole


def _everyones(value: Any) -> list[Any]:
    """[every torchrun process's `value`] in rank order on every process; [value] in a single process."""
    import torch.distributed as dist

    if not dist.is_initialized():
        return [value]
    found: list[Any] = [None] * dist.get_world_size()
    dist.all_gather_object(found, value)
    return found


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
    target_mean: torch.Tensor | None = None,
    keep: Outputs | None = None,
) -> tuple[dict[str, float], torch.Tensor | None]:
    """Mean loss and the task's metric over `batches`; for classification also the confusion matrix.
    `target_std` (a tensor of one std per output, on the model's device): regression targets were standardised by it,
    so the MAE is reported in the targets' own units (the loss stays in standardised units). `keep`, where given,
    gets the per-sample outputs (`Outputs`; `target_mean` with `target_std` puts a regression's back in its units).

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
        if keep is not None:
            keep.add(out, y, task, (target_std, target_mean))
    model.train(was_training)
    # under torchrun
    all_sum(n, loss_sum, metric_sum, *([confusion] if confusion is not None else []))
    if keep is not None:
        keep.gather()
    result = {"loss": float(loss_sum) / float(n), task.metric: float(metric_sum) / float(n)}
    return result, None if confusion is None else confusion.cpu()


def target_mean(splits: Splits, device: str | torch.device) -> torch.Tensor | None:
    """The mean a dataset subtracted from its regression targets (Splits.target_scale, with build.target_scale_std's
    std) as a tensor on `device`, or None: evaluate puts a regression's kept outputs back in the targets' units."""
    scale = splits.target_scale
    return torch.tensor(scale["mean"], dtype=torch.float32, device=device) if scale else None


def labelled_confusion(confusion: torch.Tensor | None, kept: Outputs, threshold: float | None) -> torch.Tensor | None:
    """The confusion matrix (rows: true class, columns: predicted; int64, CPU) of the labels the figures count:
    `evaluate`'s argmax count as it is, or for a 2-class `threshold` the labels that threshold gives
    (stats.metrics.predicted), so that the matrix, per-class counts and the figures agree."""
    if confusion is None or threshold is None:
        return confusion
    from runner.stats.metrics import predicted

    k = confusion.shape[0]
    labels = predicted(kept.out, threshold)
    return torch.from_numpy(np.bincount(kept.y * k + labels, minlength=k * k).reshape(k, k))


def fixed_threshold(threshold: float | str | None, num_classes: int) -> float | None:
    """trainer.threshold as the labels of a 2-class validation or test take it: None (the argmax) for the default
    0.5, for "tuned" (decided at the end, stats.metrics.tuned_threshold) and for more classes."""
    if num_classes != 2 or threshold in (None, 0.5, "tuned"):
        return None
    return float(threshold)


def epoch_figures(metrics: Sequence[str] | None, monitor: str, task: Task) -> list[str]:
    """The runner/stats figures each validation computes: trainer.metrics and the monitored val_<figure>, less the
    loss and the task's own metric, which evaluate measures on the device."""
    wanted = [*(metrics or []), *([monitor[len("val_") :]] if monitor.startswith("val_") else [])]
    return [name for name in dict.fromkeys(wanted) if name not in ("loss", task.metric)]


def task_name(task: Task) -> str:
    """ "classification" or "regression": runner/stats' word for `task`."""
    return "classification" if task.metric == "accuracy" else "regression"


def figures(task: Task, kept: Outputs, names: list[str], threshold: float | None = None) -> dict[str, float]:
    """runner/stats' figures `names` (trainer.metrics, the monitored one) on an evaluation's kept outputs."""
    from runner.stats.metrics import scores

    return scores(task_name(task), kept.y, kept.out, names=names, threshold=threshold)


def test_figures(
    task: Task, measured: dict[str, float], kept: Outputs, *, seed: int, threshold: float | None = None
) -> tuple[dict[str, float], dict[str, dict[str, Any]]]:
    """({figure: value}, {figure: its interval as summary.json records it}) of a final test or `runner eval`: the
    loss and the task's metric as `evaluate` measured them (the figures eval and training agree on to the last digit),
    every other figure of the task from runner/stats on the kept outputs (accuracy too where a binary threshold
    decides the labels), each but the loss with its 95 % interval (stats/intervals.py, seeded by `seed`)."""
    from runner.stats.intervals import intervals
    from runner.stats.metrics import scores

    name = task_name(task)
    found = scores(name, kept.y, kept.out, threshold=threshold)
    values = {**found, **{k: v for k, v in measured.items() if not (k == "accuracy" and threshold is not None)}}
    ordered = {"loss": values.pop("loss"), **values}
    ranges = intervals(name, kept.y, kept.out, values, seed=seed, threshold=threshold)
    return ordered, {k: r.as_dict() for k, r in ranges.items()}


def check_figures(task: str, num_classes: object, trainer: Any) -> None:
    """trainer.metrics, trainer.monitor and trainer.threshold against the run's task: each figure one runner/stats
    knows for it, the monitor a column the run writes (val_loss, train_loss, val_<figure>), a threshold other than
    0.5 on a 2-class task only. Raises RunnerError naming the known ones."""
    from runner.stats.metrics import METRICS, bare, names

    known = names(task, num_classes if isinstance(num_classes, int) else None)
    figures = list(OmegaConf.select(trainer, "metrics") or []) if trainer is not None else []
    monitor = OmegaConf.select(trainer, "monitor") if trainer is not None else None
    threshold = OmegaConf.select(trainer, "threshold") if trainer is not None else None

    def why(name: str) -> str:
        elsewhere = METRICS[name].task if name in METRICS and METRICS[name].task != task else None
        if elsewhere:
            return f"{name} is a {elsewhere} figure, and this is a {task} run"
        if name == "top5_accuracy":
            return f"top-5 accuracy needs more than 5 classes, and this run has {num_classes}"
        return f"{name} is no {task} figure runner knows"

    listed = f"The {task} figures: {', '.join(known)} (docs/metrics.md)"
    for name in figures:
        if name not in known:
            raise RunnerError(f"trainer.metrics: {why(name)}. {listed}; e.g. trainer.metrics=[{known[1]}].")
    if monitor not in (None, "val_loss", "train_loss") and (
        not str(monitor).startswith("val_") or bare(str(monitor)) not in known
    ):
        raise RunnerError(
            f"trainer.monitor={monitor} is not a column this {task} run writes to metrics.csv "
            f"({why(bare(str(monitor)))}). Use trainer.monitor=val_loss, train_loss or val_<figure>, e.g. "
            f"val_{known[1]}. {listed}."
        )
    if threshold not in (None, 0.5) and (task != "classification" or num_classes != 2):
        what = "values, no classes" if task != "classification" else f"{num_classes} classes, each its argmax"
        raise RunnerError(
            f"trainer.threshold={threshold} decides between 2 classes by class 1's probability, but this is a {task} "
            f"run ({what}). Drop it (trainer.threshold=0.5 is the default and does nothing here)."
        )


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
