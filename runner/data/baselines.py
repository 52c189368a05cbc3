"""What scikit-learn makes of a dataset of features, beside the network's figure: is the network worth it?"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from runner.data.splits import Splits

# baselines fit on at most this many training rows (a seeded sample), so they take seconds
MAX_ROWS = 20_000


def baselines(splits: Splits, task: str, seed: int = 0) -> dict[str, float]:
    """scikit-learn's models on the same encoded training split (features (N, F)), scored on the same test split: a
    linear model (LogisticRegression / Ridge, after a StandardScaler) and HistGradientBoosting, so a network's test
    figure has a context. {name: test accuracy (classification) or MAE in the targets' own units (regression)}.
    A training split of more than MAX_ROWS rows is sampled down to MAX_ROWS (seeded by `seed`)."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = splits.train.x.cpu().numpy(), splits.test.x.cpu().numpy()
    y_train, y_test = splits.train.y.cpu().numpy(), splits.test.y.cpu().numpy()
    if len(x_train) > MAX_ROWS:
        keep = np.random.default_rng(seed).choice(len(x_train), MAX_ROWS, replace=False)
        x_train, y_train = x_train[keep], y_train[keep]
    if task == "classification":
        models = {
            "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "HistGradientBoosting": HistGradientBoostingClassifier(random_state=seed),
        }

        def score(model: Any) -> float:
            return float((model.predict(x_test) == y_test).mean())

    else:
        y_train, y_test = y_train.reshape(len(y_train), -1), y_test.reshape(len(y_test), -1)
        models = {"ridge": make_pipeline(StandardScaler(), Ridge())}
        # HistGradientBoosting predicts one target
        if y_train.shape[1] == 1:
            models["HistGradientBoosting"] = HistGradientBoostingRegressor(random_state=seed)
        # MAE in the targets' units
        std = np.asarray((splits.target_scale or {"std": [1.0]})["std"])

        def score(model: Any) -> float:
            return float((np.abs(model.predict(x_test).reshape(y_test.shape) - y_test) * std).mean())

    out = {}
    for name, model in models.items():
        model.fit(x_train, y_train if task == "classification" or y_train.shape[1] > 1 else y_train.ravel())
        out[name] = score(model)
    return out
