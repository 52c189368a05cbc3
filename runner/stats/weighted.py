"""Every figure of metrics.py under per-sample weights, for many weightings at once: column b of `weights` (N, B)
counts how often each test sample is drawn in resample b of the bootstrap, so the figure of that resample is the
figure under those weights (scikit-learn's `sample_weight=`, which tests/test_stats.py checks them against).

Computed from weighted sums (per-sample columns times the weights, per-class sums through a sparse matrix) and, for
AUROC and average precision, sums at each distinct score of a positive, rather than by calling scikit-learn once per
resample and figure.
"""

from __future__ import annotations

import numpy as np

from runner.stats.metrics import ECE_BINS, TOP_K, confidence_bin, predicted


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a / b, 0 where b is 0 (scikit-learn's zero_division=0)."""
    return np.divide(a, b, out=np.zeros(np.broadcast(a, b).shape), where=b != 0)


def classification(
    y: np.ndarray, out: np.ndarray, weights: np.ndarray, names: list[str], threshold: float | None = None
) -> dict[str, np.ndarray]:
    """{figure: (B,) values} for classification figures `names` under each column of `weights` (N, B)."""
    n, k = out.shape
    pred = predicted(out, threshold)
    confidence = out.max(axis=1)
    correct = (out.argmax(axis=1) == y).astype(np.float64)
    eps = np.finfo(np.float64).eps
    # per class, (B, k): the weight of the samples of each true class, of each predicted class, and of those right
    true, guessed = _grouped(y, k, weights).T, _grouped(pred, k, weights).T
    tp = _grouped(np.where(pred == y, y, k), k + 1, weights)[:k].T
    total = weights.sum(axis=0).astype(np.float64)
    columns = []
    if "top5_accuracy" in names:
        top = np.argsort(out, axis=1, kind="mergesort")[:, ::-1][:, :TOP_K]
        columns.append((top == y[:, None]).any(axis=1)[:, None].astype(np.float64))
    columns.append(-np.log(np.clip(out[np.arange(n), y], eps, 1 - eps))[:, None])
    bins = np.eye(ECE_BINS)[confidence_bin(confidence)]
    columns += [bins * correct[:, None], bins * confidence[:, None]]
    sums = _sums(np.hstack(columns), weights)
    # scikit-learn's labels: those in y_true or y_pred of this resample
    present = (true + guessed) > 0
    per_class = {"precision": _divide(tp, guessed), "recall": _divide(tp, true), "f1": _divide(2 * tp, true + guessed)}
    found: dict[str, np.ndarray] = {}
    for name in names:
        if name == "accuracy":
            found[name] = tp.sum(axis=1) / total
        elif name == "balanced_accuracy":
            found[name] = (per_class["recall"] * (true > 0)).sum(axis=1) / (true > 0).sum(axis=1)
        elif name.endswith("_macro"):
            found[name] = (per_class[name[: -len("_macro")]] * present).sum(axis=1) / present.sum(axis=1)
        elif name.endswith("_weighted"):
            found[name] = (per_class[name[: -len("_weighted")]] * true).sum(axis=1) / total
        elif name == "top5_accuracy":
            found[name] = sums[:, 0] / total
        elif name == "log_loss":
            found[name] = sums[:, -2 * ECE_BINS - 1] / total
        elif name == "ece":
            right, sure = sums[:, -2 * ECE_BINS : -ECE_BINS], sums[:, -ECE_BINS:]
            found[name] = np.abs(right - sure).sum(axis=1) / total
    ranks = [name for name in names if name in ("auroc", "average_precision")]
    if ranks:
        # one-vs-rest over the classes, macro: class 1 alone for two classes
        ranked = [_ranked(out[:, c], y == c, weights) for c in ([1] if k == 2 else range(k))]
        for name in ranks:
            found[name] = np.mean([pair[0 if name == "auroc" else 1] for pair in ranked], axis=0)
    return found


def _ranked(score: np.ndarray, positive: np.ndarray, weights: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(AUROC, average precision) of one class' scores, each (B,), NaN where a resample lacks positives (or, for AUROC,
    negatives).

    AUROC: the chance that a positive outscores a negative, ties counted half (the trapezoidal area of scikit-learn's
    roc_auc_score). Average precision: the sum over thresholds, high to low, of (recall_t - recall_t-1) *
    precision_t (average_precision_score), where recall moves only at a positive's score. Both need, at each distinct
    score u_k of a positive, the positives' weight there and the negatives' weight below and at it: one sparse sum
    over the samples each, then arrays of one row per u_k rather than per sample."""
    import scipy.sparse as sp

    n = len(score)
    values, group = np.unique(score[positive], return_inverse=True)
    m = len(values)
    s_neg = score[~positive]
    # bucket 2k: negatives between u_(k-1) and u_k; 2k+1: equal to u_k; 2m: above every positive
    segment = np.searchsorted(values, s_neg, side="left")
    tie = (segment < m) & (values[np.minimum(segment, max(m - 1, 0))] == s_neg) if m else np.zeros(len(s_neg), bool)
    bucket = 2 * segment + tie
    to_yes = sp.csr_matrix((np.ones(len(group)), (group, np.flatnonzero(positive))), shape=(m, n))
    to_no = sp.csr_matrix((np.ones(len(bucket)), (bucket, np.flatnonzero(~positive))), shape=(2 * m + 1, n))
    yes, no = to_yes @ weights, to_no @ weights
    running = np.cumsum(no, axis=0)
    below, level = running[0 : 2 * m : 2], no[1 : 2 * m : 2]
    positives, negatives = yes.sum(axis=0), running[-1]
    with np.errstate(invalid="ignore", divide="ignore"):
        pairs = (yes * (below + level / 2)).sum(axis=0)
        auroc = np.where(positives * negatives > 0, pairs / (positives * negatives), np.nan)
        # at or above u_k: the positives' and the negatives' weight
        tp, fp = positives - np.cumsum(yes, axis=0) + yes, negatives - below
        average_precision = np.where(positives > 0, (yes * _divide(tp, tp + fp)).sum(axis=0) / positives, np.nan)
    return auroc, average_precision


def regression(y: np.ndarray, out: np.ndarray, weights: np.ndarray, names: list[str]) -> dict[str, np.ndarray]:
    """{figure: (B,) values} for regression figures `names` under each column of `weights`; y and out (N, T), the mean
    over the targets as scikit-learn's multioutput='uniform_average'."""
    error = out - y
    # centred, so that the weighted sum of squares around the weighted mean loses no digits
    centred = y - y.mean(axis=0)
    total = weights.sum(axis=0)[:, None]
    eps = np.finfo(np.float64).eps
    found: dict[str, np.ndarray] = {}
    for name in names:
        if name == "mae":
            per_target = _sums(np.abs(error), weights) / total
        elif name == "rmse":
            per_target = np.sqrt(_sums(error**2, weights) / total)
        elif name == "r2":
            spread = _sums(centred**2, weights) - _sums(centred, weights) ** 2 / total
            per_target = 1 - _divide(_sums(error**2, weights), spread)
        elif name == "mape":
            per_target = _sums(np.abs(error) / np.maximum(np.abs(y), eps), weights) / total
        else:
            per_target = np.stack([_median(np.abs(error[:, t]), weights) for t in range(y.shape[1])], axis=1)
        found[name] = per_target.mean(axis=1)
    return found


def _grouped(keys: np.ndarray, size: int, weights: np.ndarray) -> np.ndarray:
    """(size, B): the weight under each of the (N, B) `weights` of the samples of each key 0..size-1 (one sparse sum,
    so k classes cost N * B, not the N * k^2 * B of a dense confusion matrix per resample)."""
    import scipy.sparse as sp

    n = len(keys)
    return np.asarray(sp.csr_matrix((np.ones(n), (keys, np.arange(n))), shape=(size, n)) @ weights)


def _sums(columns: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """(B, M): the weighted sum of each of the (N, M) per-sample `columns` under each of the (N, B) `weights`."""
    return (columns.T @ weights).T


def _median(values: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """The median of each resample with integer counts `weights` (the median of the values repeated by their counts:
    the mean of the two middle ones for an even total, as numpy's median and scikit-learn's averaged inverted CDF)."""
    order = np.argsort(values, kind="mergesort")
    ordered = values[order]
    cumulative = np.cumsum(weights[order], axis=0)
    total = cumulative[-1]
    low = (cumulative < np.floor((total + 1) / 2)).sum(axis=0)
    high = (cumulative < np.floor(total / 2) + 1).sum(axis=0)
    return (ordered[low] + ordered[high]) / 2
