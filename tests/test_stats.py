"""runner/stats, in the pytest process: every figure against scikit-learn's own function on the same seeded
predictions (to 1e-6), the weighted forms the bootstrap uses against scikit-learn's sample_weight=, Wilson's interval
against Newcombe's published value, and the bootstrap seeded, reproducible and around its point value."""

import math

import numpy as np
import pytest
from sklearn import metrics as skm

from runner.stats import intervals, metrics, weighted

TOLERANCE = 1e-6


def probabilities(k, n=400, seed=0, signal=1.0):
    """(y, (n, k) probabilities) where the true class gets a `signal` head start: a classifier better than chance."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, k, n)
    logits = rng.normal(size=(n, k))
    logits[np.arange(n), y] += signal
    p = np.exp(logits)
    return y, p / p.sum(axis=1, keepdims=True)


def regression(targets, n=300, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.normal(3.0, 2.0, size=(n, targets))
    return y, y + rng.normal(0, 0.7, size=(n, targets))


def calibration_error(y, p, bins=15):
    """ECE as Guo et al. 2017 write it (eq. 3), bin by bin: (m-1)/M < confidence <= m/M."""
    confidence, correct = p.max(axis=1), p.argmax(axis=1) == y
    total = 0.0
    for m in range(1, bins + 1):
        inside = (confidence > (m - 1) / bins) & (confidence <= m / bins)
        if inside.any():
            total += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return total


def sklearn_classification(y, p, weight=None):
    """Every classification figure straight from scikit-learn, written out here independently of runner/stats."""
    k = p.shape[1]
    pred = p.argmax(axis=1)
    w = dict(sample_weight=weight)
    found = {
        "accuracy": skm.accuracy_score(y, pred, **w),
        "balanced_accuracy": skm.balanced_accuracy_score(y, pred, **w),
        "log_loss": skm.log_loss(y, p, labels=np.arange(k), **w),
        "ece": calibration_error(np.repeat(y, weight.astype(int)), np.repeat(p, weight.astype(int), axis=0))
        if weight is not None
        else calibration_error(y, p),
    }
    for average in ("macro", "weighted"):
        found[f"precision_{average}"] = skm.precision_score(y, pred, average=average, zero_division=0, **w)
        found[f"recall_{average}"] = skm.recall_score(y, pred, average=average, zero_division=0, **w)
        found[f"f1_{average}"] = skm.f1_score(y, pred, average=average, zero_division=0, **w)
    if k == 2:
        found["auroc"] = skm.roc_auc_score(y, p[:, 1], **w)
        found["average_precision"] = skm.average_precision_score(y, p[:, 1], **w)
    else:
        found["auroc"] = skm.roc_auc_score(y, p, multi_class="ovr", average="macro", **w)
        found["average_precision"] = skm.average_precision_score(y, p, average="macro", **w)
    if k > 5:
        found["top5_accuracy"] = skm.top_k_accuracy_score(y, p, k=5, labels=np.arange(k), **w)
    return found


def sklearn_regression(y, out, weight=None):
    w = dict(sample_weight=weight)
    return {
        "mae": skm.mean_absolute_error(y, out, **w),
        "rmse": skm.root_mean_squared_error(y, out, **w),
        "r2": skm.r2_score(y, out, **w),
        "median_ae": skm.median_absolute_error(y, out, **w),
        "mape": skm.mean_absolute_percentage_error(y, out, **w),
    }


def close(found, expected):
    assert set(found) == set(expected), set(found) ^ set(expected)
    wrong = {name: (found[name], expected[name]) for name in expected if abs(found[name] - expected[name]) > TOLERANCE}
    assert not wrong, wrong


@pytest.mark.parametrize("k", [2, 5, 10])
def test_every_classification_figure_is_scikit_learns(k):
    y, p = probabilities(k)
    found = metrics.scores("classification", y, p)
    # every figure of the task is there (top-5 only beyond 5 classes), and none is trivially 0 or 1
    assert list(found) == metrics.names("classification", k)
    assert all(0 < value < 2 for value in found.values()), found
    close(found, sklearn_classification(y, p))


@pytest.mark.parametrize("targets", [1, 2])
def test_every_regression_figure_is_scikit_learns(targets):
    y, out = regression(targets)
    found = metrics.scores("regression", y, out)
    assert list(found) == metrics.names("regression")
    close(found, sklearn_regression(y, out))
    # one target as a 1-D array reads as (N, 1)
    if targets == 1:
        close(metrics.scores("regression", y[:, 0], out[:, 0]), found)


@pytest.mark.parametrize("k", [2, 5, 10])
def test_the_bootstraps_weighted_figures_are_scikit_learns_with_sample_weight(k):
    y, p = probabilities(k, n=300, seed=k)
    # ties in the scores too, which the AUROC and average precision count as scikit-learn does
    p = np.round(p, 2)
    p = p / p.sum(axis=1, keepdims=True)
    names = metrics.names("classification", k)
    counts = intervals.counts(len(y), 3, seed=1)
    assert (counts == 0).any() and (counts > 1).any() and np.all(counts.sum(axis=0) == len(y))
    found = weighted.classification(y, p, counts, names)
    for b in range(3):
        close({name: values[b] for name, values in found.items()}, sklearn_classification(y, p, counts[:, b]))


@pytest.mark.parametrize("targets", [1, 2])
def test_the_bootstraps_weighted_regression_figures_are_scikit_learns(targets):
    y, out = regression(targets)
    counts = intervals.counts(len(y), 3, seed=2)
    found = weighted.regression(y, out, counts, metrics.names("regression"))
    for b in range(3):
        expected = sklearn_regression(y, out, counts[:, b])
        close({name: values[b] for name, values in found.items()}, expected)
        # and the figure of the resample itself (the samples repeated by their counts)
        repeated = np.repeat(np.arange(len(y)), counts[:, b].astype(int))
        assert abs(found["median_ae"][b] - skm.median_absolute_error(y[repeated], out[repeated])) < TOLERANCE


def test_a_threshold_decides_a_binary_tasks_labels():
    y, p = probabilities(2, signal=0.5)
    at_half, low = (
        metrics.scores("classification", y, p, threshold=0.5),
        metrics.scores("classification", y, p, threshold=0.2),
    )
    assert abs(at_half["accuracy"] - skm.accuracy_score(y, p.argmax(axis=1))) < TOLERANCE
    assert abs(low["recall_macro"] - skm.recall_score(y, p[:, 1] >= 0.2, average="macro")) < TOLERANCE
    # ranking figures do not depend on it
    assert low["auroc"] == at_half["auroc"] and low["accuracy"] != at_half["accuracy"]
    tuned = metrics.tuned_threshold(y, p)
    # F1 at every threshold there is, by hand: 2 TP / (2 TP + FP + FN)
    cut = p[:, 1][None, :] >= np.unique(p[:, 1])[:, None]
    tp = (cut & (y == 1)).sum(axis=1)
    best = (2 * tp / (cut.sum(axis=1) + (y == 1).sum())).max()
    assert abs(skm.f1_score(y, p[:, 1] >= tuned) - best) < TOLERANCE and best > skm.f1_score(y, p[:, 1] >= 0.5)


def test_per_class_rows():
    y, p = probabilities(3)
    rows = metrics.per_class(y, p)
    pred = p.argmax(axis=1)
    assert [row["support"] for row in rows] == list(np.bincount(y, minlength=3))
    for c, row in enumerate(rows):
        assert row["recall"] == pytest.approx(((pred == c) & (y == c)).sum() / (y == c).sum())
        assert row["precision"] == pytest.approx(((pred == c) & (y == c)).sum() / (pred == c).sum())


def test_figures_that_do_not_apply_are_left_out_or_nan_where_named():
    y, p = probabilities(5)
    assert "top5_accuracy" not in metrics.scores("classification", y, p)
    # a class with no sample: no one-vs-rest AUROC
    y = np.where(y == 4, 0, y)
    found = metrics.scores("classification", y, p)
    assert "auroc" not in found and "average_precision" not in found and "f1_macro" in found
    assert math.isnan(metrics.scores("classification", y, p, names=["auroc"])["auroc"])
    target, out = regression(1)
    target[3] = 0.0
    assert "mape" not in metrics.scores("regression", target, out) and "mae" in metrics.scores(
        "regression", target, out
    )
    with pytest.raises(ValueError, match="mae: no classification figure; the known ones: accuracy"):
        metrics.scores("classification", y, p, names=["mae"])


def test_directions():
    assert metrics.direction("val_f1_macro") == "max" and metrics.direction("test_mae") == "min"
    assert metrics.direction("train_loss") == "min" and metrics.direction("val_log_loss") == "min"
    assert metrics.direction("r2") == "max" and metrics.direction("val_ece") == "min"
    with pytest.raises(ValueError, match="'val_f2' is no figure"):
        metrics.direction("val_f2")


def test_wilson_against_newcombes_published_interval():
    # Newcombe (1998), Statistics in Medicine 17:857-872, Table I, example (c): 81/263, Wilson's score interval
    low, high = intervals.wilson(81, 263)
    assert (round(low, 4), round(high, 4)) == (0.2553, 0.3662)
    assert intervals.wilson(0, 10)[0] == 0.0 and intervals.wilson(10, 10)[1] == 1.0
    assert 0 < intervals.wilson(0, 10)[1] < 0.35


def test_the_bootstrap_is_seeded_and_holds_its_point_value():
    y, p = probabilities(3, n=500)
    names = ["f1_macro", "auroc", "log_loss", "ece"]
    first = intervals.bootstrap("classification", y, p, names, seed=7, resamples=200)
    assert first == intervals.bootstrap("classification", y, p, names, seed=7, resamples=200)
    assert first != intervals.bootstrap("classification", y, p, names, seed=8, resamples=200)
    point = metrics.scores("classification", y, p, names=names)
    for name in names[:-1]:
        low, high = first[name]
        assert low < point[name] < high, (name, low, point[name], high)
    # binned ECE is biased upward, more so on a resample (its duplicates fill bins unevenly): its percentile interval
    # may lie above the point value, as docs/metrics.md says
    assert first["ece"][1] > point["ece"]


def test_intervals_pick_wilson_for_proportions_and_the_bootstrap_for_the_rest():
    y, out = regression(2)
    values = metrics.scores("regression", y, out)
    found = intervals.intervals("regression", y, out, values, seed=0, resamples=200)
    assert {i.method for i in found.values()} == {"bootstrap"} and all(i.n == len(y) for i in found.values())
    y, p = probabilities(10, n=1000)
    values = metrics.scores("classification", y, p)
    found = intervals.intervals("classification", y, p, values, seed=0, resamples=200)
    assert list(found) == list(values)
    assert found["accuracy"].method == "wilson" and found["top5_accuracy"].method == "wilson"
    assert found["f1_macro"].method == "bootstrap"
    hits = int((p.argmax(axis=1) == y).sum())
    assert (found["accuracy"].low, found["accuracy"].high) == intervals.wilson(hits, 1000)
    low, high = intervals.wilson(hits, 1000)
    assert found["accuracy"].as_dict() == {"low": low, "high": high, "n": 1000, "method": "wilson"}


def test_shown():
    assert intervals.shown(0.9624, 0.9512, 0.97149, 1000) == "0.962 [0.951, 0.971] n=1,000"
    assert intervals.shown(2209.5, 2100, 2300.25, 12) == "2,209.500 [2,100.000, 2,300.250] n=12"
