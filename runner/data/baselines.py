"""The baselines a network's test figure is read against, fitted on the training split and scored on the test split:
the trivial baseline of every dataset (always the majority class; always the mean, or the median, of the targets),
and scikit-learn's models on the flattened inputs (a linear model; HistGradientBoosting for features of shape [F])
where the split is small enough. Every figure is runner/stats/metrics.scores' on their predictions, so it is the
figure the run reports, computed alike; docs/metrics.md defines them.

    runner train dataset=csv dataset.path=t.csv dataset.target=y     # results: the trivial baseline, then scikit-learn
    runner train dataset=csv dataset.path=t.csv dataset.target=y dataset.baselines=false     # the trivial one alone
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from runner.data.splits import Split, Splits
    from runner.data.stream import FileSplit

# scikit-learn's models fit on a seeded sample of at most MAX_ROWS training rows and MAX_VALUES input values (rows x
# values per row), so they take seconds: 20,000 rows of a table, 5,102 of 28 x 28 images, 1,302 of 3 x 32 x 32 ones
MAX_ROWS = 20_000
MAX_VALUES = 4_000_000
# and only on inputs of at most this many values per sample, flattened (3 x 32 x 32 images; 64 x 64 ones are left out)
MAX_FEATURES = 3_072
# the figures each baseline is scored by
FIGURES = {"classification": ("accuracy", "f1_macro", "log_loss"), "regression": ("mae", "rmse", "r2")}
# the trivial predictors, by task: fitted on the training split's targets alone, never its inputs
TRIVIAL = {"classification": ("majority class",), "regression": ("mean", "median")}


def baselines(
    splits: Splits, task: str, num_classes: int, *, seed: int = 0, models: bool = True
) -> dict[str, dict[str, float]]:
    """{name: {test_<figure>: value}} on the test split, the trivial baseline first: the majority class (its class
    prior as the probabilities: accuracy, f1_macro, log_loss) or the mean and the median of the training targets
    (mae, rmse, r2, in the targets' own units); then, with `models` and inputs held in memory of at most
    MAX_FEATURES values per sample, scikit-learn's linear model (LogisticRegression / Ridge after a StandardScaler)
    on the flattened inputs, and HistGradientBoosting where the inputs are features of shape [F]. The models fit on
    a sample of the training split (seeded by `seed`) of at most MAX_ROWS rows and MAX_VALUES input values."""
    y_train, y_test = (truth(split, task, splits.target_scale) for split in (splits.train, splits.test))
    found = trivial(task, y_train, y_test, num_classes)
    x = getattr(splits.train, "x", None)
    if models and x is not None and math.prod(x.shape[1:]) <= MAX_FEATURES:
        found.update(fitted(splits, task, num_classes, seed=seed))
    return found


def truth(split: Split | FileSplit, task: str, target_scale: dict[str, list[float]] | None) -> np.ndarray:
    """A split's targets as numpy: class indices (N,), or regression targets (N, T) in their own units (unscaled by
    the dataset's target_scale)."""
    from runner.data.splits import Split

    if not isinstance(split, Split):
        # a streamed image folder: (path, class) pairs
        return np.array([label for _, label in split.samples], dtype=np.int64)
    if task == "classification":
        return split.y.cpu().numpy().astype(np.int64)
    y = split.y.cpu().double().numpy().reshape(len(split), -1)
    if target_scale:
        y = y * np.asarray(target_scale["std"]) + np.asarray(target_scale["mean"])
    return y


def trivial(task: str, y_train: np.ndarray, y_test: np.ndarray, num_classes: int) -> dict[str, dict[str, float]]:
    """The trivial baseline's figures on the test targets `y_test`: the training split's class prior as every test
    sample's probabilities (its most frequent class as the prediction), or its mean and its median per target."""
    from runner.stats.metrics import scores

    if task == "classification":
        prior = np.bincount(y_train, minlength=num_classes) / len(y_train)
        constants = {"majority class": prior}
    else:
        constants = {"mean": y_train.mean(axis=0), "median": np.median(y_train, axis=0)}
    names = list(FIGURES[task])
    return {
        name: named(scores(task, y_test, np.tile(value, (len(y_test), 1)), names=names))
        for name, value in constants.items()
    }


def fitted(splits: Splits, task: str, num_classes: int, *, seed: int) -> dict[str, dict[str, float]]:
    """scikit-learn's models fitted on the training split's flattened inputs, scored on the test split."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from runner.stats.metrics import scores

    train, test = splits.train, splits.test
    features = train.x.dim() == 2
    x_train, x_test = (split.x.cpu().reshape(len(split), -1).numpy().astype(np.float32) for split in (train, test))
    y_train = train.y.cpu().numpy()
    rows = min(MAX_ROWS, MAX_VALUES // x_train.shape[1])
    if len(x_train) > rows:
        keep = np.random.default_rng(seed).choice(len(x_train), rows, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    y_test = truth(test, task, splits.target_scale)
    models: dict[str, Any]
    if task == "classification":
        models = {"logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))}
        if features:
            models["HistGradientBoosting"] = HistGradientBoostingClassifier(random_state=seed)
    else:
        y_train = y_train.reshape(len(y_train), -1)
        models = {"ridge": make_pipeline(StandardScaler(), Ridge())}
        # HistGradientBoosting predicts one target
        if features and y_train.shape[1] == 1:
            models["HistGradientBoosting"] = HistGradientBoostingRegressor(random_state=seed)
    scale = splits.target_scale or {"mean": [0.0], "std": [1.0]}
    found = {}
    for name, model in models.items():
        model.fit(x_train, y_train if task == "classification" or y_train.shape[1] > 1 else y_train.ravel())
        if task == "classification":
            out = np.zeros((len(x_test), num_classes))
            # a class the training sample lacks has no column of its own
            out[:, model.classes_] = model.predict_proba(x_test)
        else:
            # the targets' own units, as the run reports them
            out = model.predict(x_test).reshape(y_test.shape) * np.asarray(scale["std"]) + np.asarray(scale["mean"])
        found[name] = named(scores(task, y_test, out, names=list(FIGURES[task])))
    return found


def named(figures: dict[str, float]) -> dict[str, float]:
    """{test_<figure>: value}, as summary.json's `test` names them."""
    return {f"test_{name}": value for name, value in figures.items()}


def trivial_figure(baselines: dict[str, Any], metric: str) -> tuple[str, float] | None:
    """(name, value): the trivial baseline's test `metric` in a `baselines` record (summary.json's, eval's metrics.json)
    where it has one, the better of the mean and the median; None for a record without it (a run from before it)."""
    from runner.stats.metrics import direction

    key = f"test_{metric}"
    found = [
        (name, float(record[key]))
        for name, record in baselines.items()
        if name in TRIVIAL["classification"] + TRIVIAL["regression"] and isinstance(record, dict) and key in record
    ]
    if not found:
        return None
    return (max if direction(metric) == "max" else min)(found, key=lambda item: item[1])


def beats_trivial(test: dict[str, float], baselines: dict[str, Any], metric: str) -> bool | None:
    """Whether the test figure `metric` in `test` ({test_<figure>: value}) is better than the trivial baseline's (a
    tie does not beat it); None where either is missing."""
    from runner.stats.metrics import direction

    value, trivial_one = test.get(f"test_{metric}"), trivial_figure(baselines, metric)
    if value is None or trivial_one is None:
        return None
    # a diverged run's NaN beats nothing
    if math.isnan(value):
        return False
    return value > trivial_one[1] if direction(metric) == "max" else value < trivial_one[1]


def baseline_rows(baselines: dict[str, Any], metric: str) -> list[tuple[str, float]]:
    """The results table's rows of the baselines' test `metric`, the trivial baseline first."""
    key, rows = f"test_{metric}", []
    for name, record in baselines.items():
        if not isinstance(record, dict) or key not in record:
            continue
        trivial_one = name in TRIVIAL["classification"] + TRIVIAL["regression"]
        shown = f"{key} of the {name} (trivial baseline)" if trivial_one else f"{key} of {name} (scikit-learn)"
        rows.append((shown, record[key]))
    return rows


def trivial_verdict(test: dict[str, float], baselines: dict[str, Any], metric: str) -> str | None:
    """The line said after the results table of a run whose test `metric` does not beat the trivial baseline's; None
    where it does (or where either figure is missing)."""
    if beats_trivial(test, baselines, metric) is not False:
        return None
    name, value = trivial_figure(baselines, metric) or ("", 0.0)
    constant = "the majority class of the training split" if name == "majority class" else f"the training {name}"
    return (
        f"test_{metric} {test[f'test_{metric}']:.4f} does not beat the trivial baseline: always predicting {constant} "
        f"scores {value:.4f} on the same test split. The model has learned nothing from the inputs that a constant "
        f"does not do: check that the inputs carry the target, then the recipe (epochs, learning rate, model size)."
    )
