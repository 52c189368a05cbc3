"""The figures a task is judged by, each declared once with its direction and its source, computed by scikit-learn.

Classification: `out` is (N, K) class probabilities, `y` (N,) integer labels. Regression: `out` and `y` are (N, T)
in the targets' own units (a 1-D array is one target). A figure that does not apply to the data (AUROC where a class
has no sample, MAPE where a target is 0, top-5 accuracy with 5 classes or fewer) is left out of `scores`' answer
unless named, and NaN where named. docs/metrics.md defines each one.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

PREFIXES = ("val_", "test_", "train_")
# Guo et al., "On Calibration of Modern Neural Networks" (ICML 2017), and torchmetrics' CalibrationError default
ECE_BINS = 15
TOP_K = 5


@dataclass(frozen=True)
class Metric:
    name: str
    # "classification" or "regression"
    task: str
    # "max" where a larger value is better
    mode: str
    # the function that computes it, as docs/metrics.md cites it
    source: str
    # decided by the predicted labels, so a binary task's threshold moves it
    thresholded: bool = False


def _metric(name: str, task: str, mode: str, source: str, thresholded: bool = False) -> tuple[str, Metric]:
    return name, Metric(name, task, mode, source, thresholded)


C, R = "classification", "regression"
METRICS: dict[str, Metric] = dict(
    [
        _metric("accuracy", C, "max", "sklearn.metrics.accuracy_score", True),
        _metric("balanced_accuracy", C, "max", "sklearn.metrics.balanced_accuracy_score", True),
        _metric("precision_macro", C, "max", "sklearn.metrics.precision_score(average='macro')", True),
        _metric("recall_macro", C, "max", "sklearn.metrics.recall_score(average='macro')", True),
        _metric("f1_macro", C, "max", "sklearn.metrics.f1_score(average='macro')", True),
        _metric("precision_weighted", C, "max", "sklearn.metrics.precision_score(average='weighted')", True),
        _metric("recall_weighted", C, "max", "sklearn.metrics.recall_score(average='weighted')", True),
        _metric("f1_weighted", C, "max", "sklearn.metrics.f1_score(average='weighted')", True),
        _metric("top5_accuracy", C, "max", "sklearn.metrics.top_k_accuracy_score(k=5)"),
        _metric("auroc", C, "max", "sklearn.metrics.roc_auc_score (binary; multi_class='ovr', average='macro')"),
        _metric("average_precision", C, "max", "sklearn.metrics.average_precision_score(average='macro')"),
        _metric("log_loss", C, "min", "sklearn.metrics.log_loss"),
        _metric("ece", C, "min", "expected calibration error, 15 equal-width bins (Guo et al. 2017)"),
        _metric("mae", R, "min", "sklearn.metrics.mean_absolute_error"),
        _metric("rmse", R, "min", "sklearn.metrics.root_mean_squared_error"),
        _metric("r2", R, "max", "sklearn.metrics.r2_score"),
        _metric("median_ae", R, "min", "sklearn.metrics.median_absolute_error"),
        _metric("mape", R, "min", "sklearn.metrics.mean_absolute_percentage_error"),
    ]
)


def names(task: str, num_classes: int | None = None) -> list[str]:
    """The figures of `task`, in METRICS' order; top5_accuracy only where there are more than 5 classes (or the number
    of classes is not known)."""
    found = [m.name for m in METRICS.values() if m.task == task]
    if task == "classification" and num_classes is not None and num_classes <= TOP_K:
        found.remove("top5_accuracy")
    return found


def bare(name: str) -> str:
    """The figure's name without a val_, test_ or train_ prefix."""
    for prefix in PREFIXES:
        if name.startswith(prefix):
            return name[len(prefix) :]
    return name


def direction(name: str) -> str:
    """ "min" or "max": the better way for a figure or a column of metrics.csv (val_f1_macro, test_mae, train_loss);
    a loss is minimised. Raises ValueError for a name that is neither a loss nor a known figure."""
    metric = bare(name)
    if metric not in METRICS and (metric == "loss" or metric.endswith("_loss")):
        return "min"
    if metric not in METRICS:
        raise ValueError(f"{name!r} is no figure runner knows: a loss or one of {', '.join(METRICS)}")
    return METRICS[metric].mode


def as_targets(values: Any) -> np.ndarray:
    """Regression values as a float64 (N, T) array."""
    array = np.asarray(values, dtype=np.float64)
    return array.reshape(len(array), -1)


def predicted(out: np.ndarray, threshold: float | None = None) -> np.ndarray:
    """The predicted labels: the most probable class, or for two classes with a `threshold`, class 1 where its
    probability is at least the threshold (scikit-learn's FixedThresholdClassifier rule, `y_score >= threshold`)."""
    if threshold is not None and out.shape[1] == 2:
        return (out[:, 1] >= threshold).astype(np.int64)
    return out.argmax(axis=1)


def applies(name: str, y: np.ndarray, out: np.ndarray) -> bool:
    """Whether figure `name` is defined on these predictions (see the module's docstring)."""
    if name == "top5_accuracy":
        return out.shape[1] > TOP_K
    if name in ("auroc", "average_precision"):
        return bool(np.all(np.bincount(y, minlength=out.shape[1]) > 0))
    if name == "mape":
        return bool(np.all(y != 0))
    return True


def scores(
    task: str, y: Any, out: Any, *, names: list[str] | None = None, threshold: float | None = None
) -> dict[str, float]:
    """{figure: value} by scikit-learn's functions: `names`, or every figure of `task` that applies to the data.
    A named figure that does not apply is NaN. `threshold` (two classes only) decides the predicted labels."""
    chosen = names if names is not None else [m.name for m in METRICS.values() if m.task == task]
    unknown = [n for n in chosen if n not in METRICS or METRICS[n].task != task]
    if unknown:
        raise ValueError(f"{', '.join(unknown)}: no {task} figure; the known ones: {', '.join(_names_of(task))}")
    if task == "classification":
        y, out = np.asarray(y, dtype=np.int64), probabilities(out)
        compute = _classification
    else:
        y, out = as_targets(y), as_targets(out)
        compute = _regression
    found = {}
    for name in chosen:
        if applies(name, y, out):
            found[name] = float(compute(name, y, out, threshold))
        elif names is not None:
            found[name] = float("nan")
    return found


def _names_of(task: str) -> list[str]:
    return [m.name for m in METRICS.values() if m.task == task]


def probabilities(out: Any) -> np.ndarray:
    """Float64 rows that sum to 1: softmax in float32 is off by ~1e-7, which scikit-learn's checks may refuse."""
    array = np.asarray(out, dtype=np.float64)
    return array / array.sum(axis=1, keepdims=True)


def _classification(name: str, y: np.ndarray, out: np.ndarray, threshold: float | None) -> float:
    from sklearn import metrics as skm

    k = out.shape[1]
    labels = np.arange(k)
    pred = predicted(out, threshold)
    with warnings.catch_warnings():
        # a class never predicted has no precision: 0 by zero_division, as said in docs/metrics.md
        warnings.simplefilter("ignore")
        if name == "accuracy":
            return skm.accuracy_score(y, pred)
        if name == "balanced_accuracy":
            return skm.balanced_accuracy_score(y, pred)
        if name.startswith(("precision_", "recall_", "f1_")):
            kind, average = name.rsplit("_", 1)
            function = {"precision": skm.precision_score, "recall": skm.recall_score, "f1": skm.f1_score}[kind]
            return function(y, pred, average=average, zero_division=0)
        if name == "top5_accuracy":
            return skm.top_k_accuracy_score(y, out, k=TOP_K, labels=labels)
        if name == "auroc":
            if k == 2:
                return skm.roc_auc_score(y, out[:, 1])
            return skm.roc_auc_score(y, out, multi_class="ovr", average="macro", labels=labels)
        if name == "average_precision":
            if k == 2:
                return skm.average_precision_score(y, out[:, 1])
            return skm.average_precision_score(y, out, average="macro")
        if name == "log_loss":
            return skm.log_loss(y, out, labels=labels)
    return expected_calibration_error(y, out)


def _regression(name: str, y: np.ndarray, out: np.ndarray, threshold: float | None) -> float:
    from sklearn import metrics as skm

    function = {
        "mae": skm.mean_absolute_error,
        "rmse": skm.root_mean_squared_error,
        "r2": skm.r2_score,
        "median_ae": skm.median_absolute_error,
        "mape": skm.mean_absolute_percentage_error,
    }[name]
    return function(y, out)


def expected_calibration_error(y: np.ndarray, out: np.ndarray, bins: int = ECE_BINS) -> float:
    """ECE (Guo et al. 2017, eq. 3): the mean over the bins (m-1)/M < confidence <= m/M of |accuracy - confidence|,
    weighted by the share of samples in the bin; the confidence is the top class' probability."""
    confidence = out.max(axis=1)
    correct = out.argmax(axis=1) == y
    which = confidence_bin(confidence, bins)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += abs(correct[inside].sum() - confidence[inside].sum())
    return total / len(y)


def reliability_bins(y: Any, out: Any, bins: int = ECE_BINS) -> list[dict[str, float]]:
    """The rows of a reliability diagram: for each non-empty confidence bin ((m-1)/M, m/M]), its edges, its number of
    samples, their accuracy and their mean confidence (the top class' probability)."""
    y, out = np.asarray(y, dtype=np.int64), probabilities(out)
    confidence, correct = out.max(axis=1), out.argmax(axis=1) == y
    which = confidence_bin(confidence, bins)
    return [
        {
            "low": b / bins,
            "high": (b + 1) / bins,
            "count": int((which == b).sum()),
            "accuracy": float(correct[which == b].mean()),
            "confidence": float(confidence[which == b].mean()),
        }
        for b in range(bins)
        if (which == b).any()
    ]


def confidence_bin(confidence: np.ndarray, bins: int = ECE_BINS) -> np.ndarray:
    """The bin of each confidence among `bins` equal-width bins, right edge included: ((m-1)/M, m/M]."""
    return np.clip(np.ceil(confidence * bins).astype(np.int64) - 1, 0, bins - 1)


def per_class(y: Any, out: Any, *, threshold: float | None = None) -> list[dict[str, float | int]]:
    """One row per class (by index): precision, recall, F1 and support (sklearn.metrics.precision_recall_fscore_support,
    zero_division=0)."""
    from sklearn.metrics import precision_recall_fscore_support

    y, out = np.asarray(y, dtype=np.int64), probabilities(out)
    labels = np.arange(out.shape[1])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        precision, recall, f1, support = precision_recall_fscore_support(
            y, predicted(out, threshold), labels=labels, zero_division=0
        )
    return [
        {"precision": float(p), "recall": float(r), "f1": float(f), "support": int(s)}
        for p, r, f, s in zip(precision, recall, f1, support)
    ]


def tuned_threshold(y: Any, out: Any) -> float:
    """The probability of class 1 at or above which a binary prediction is class 1 that maximises F1 on (y, out)
    (sklearn.metrics.precision_recall_curve's thresholds; the lowest of tied ones). 0.5 where y holds one class."""
    from sklearn.metrics import precision_recall_curve

    y, out = np.asarray(y, dtype=np.int64), probabilities(out)
    if out.shape[1] != 2 or len(np.unique(y)) < 2:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, out[:, 1])
    denominator = precision[:-1] + recall[:-1]
    f1 = np.divide(2 * precision[:-1] * recall[:-1], denominator, out=np.zeros_like(denominator), where=denominator > 0)
    return float(thresholds[int(np.argmax(f1))])
