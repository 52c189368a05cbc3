"""95 % intervals on test figures: Wilson's score interval for a proportion (accuracy, top-5 accuracy), a seeded
percentile bootstrap over the test samples for every other figure (Efron & Tibshirani 1993, ch. 13).

    intervals("classification", y, probabilities, scores(...), seed=0)
    -> {"accuracy": Interval(low=0.951, high=0.971, n=1000, method="wilson"), ...}
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from runner.stats import weighted
from runner.stats.metrics import as_targets, predicted, probabilities

# scipy.stats.norm.ppf(0.975): the two-sided 95 % normal quantile
Z95 = 1.959963984540054
# figures that are a share of the samples, for which Wilson's interval is exact enough and needs no resampling
PROPORTIONS = ("accuracy", "top5_accuracy")
# resamples drawn at once: bounds the (CHUNK, N) count matrices to a few tens of MB
CHUNK = 250


@dataclass(frozen=True)
class Interval:
    low: float
    high: float
    n: int
    # "wilson" or "bootstrap"
    method: str

    def as_dict(self) -> dict[str, Any]:
        """As summary.json's `intervals` records it."""
        return asdict(self)


def wilson(successes: int, n: int) -> tuple[float, float]:
    """Wilson's 95 % score interval for `successes` out of `n` (Wilson 1927; Newcombe 1998, method 3: 81 of 263 gives
    [0.2553, 0.3662])."""
    if n <= 0:
        return (math.nan, math.nan)
    p, z2 = successes / n, Z95 * Z95
    centre = (p + z2 / (2 * n)) / (1 + z2 / n)
    half = Z95 / (1 + z2 / n) * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    # at 0 or n successes the bound is 0 or 1 exactly, which rounding would miss by an ulp
    return (0.0 if successes == 0 else centre - half, 1.0 if successes == n else centre + half)


def counts(n: int, resamples: int, seed: int) -> np.ndarray:
    """(n, resamples) float64: how often each of n samples is drawn in each bootstrap resample (n draws with
    replacement), from numpy's seeded generator: the same seed gives the same counts."""
    rng = np.random.default_rng(seed)
    drawn = rng.integers(0, n, size=(resamples, n)) * resamples + np.arange(resamples)[:, None]
    return np.bincount(drawn.ravel(), minlength=n * resamples).reshape(n, resamples).astype(np.float64)


def resampled(
    task: str, y: Any, out: Any, names: list[str], *, seed: int, resamples: int = 1000, threshold: float | None = None
) -> dict[str, np.ndarray]:
    """{figure: (resamples,) values}: each figure on each bootstrap resample of the test samples."""
    if task == "classification":
        y, out = np.asarray(y, dtype=np.int64), probabilities(out)
    else:
        y, out = as_targets(y), as_targets(out)
    rng = np.random.default_rng(seed)
    parts: list[dict[str, np.ndarray]] = []
    for start in range(0, resamples, CHUNK):
        drawn = counts(len(y), min(CHUNK, resamples - start), int(rng.integers(2**63)))
        if task == "classification":
            parts.append(weighted.classification(y, out, drawn, names, threshold))
        else:
            parts.append(weighted.regression(y, out, drawn, names))
    return {name: np.concatenate([part[name] for part in parts]) for name in names}


def bootstrap(
    task: str, y: Any, out: Any, names: list[str], *, seed: int, resamples: int = 1000, threshold: float | None = None
) -> dict[str, tuple[float, float]]:
    """{figure: (low, high)}: the 2.5th and 97.5th percentiles of each figure over `resamples` seeded bootstrap
    resamples of the test samples (a resample where the figure is undefined, e.g. AUROC without a positive, is left
    out)."""
    found = {}
    for name, values in resampled(task, y, out, names, seed=seed, resamples=resamples, threshold=threshold).items():
        finite = values[np.isfinite(values)]
        low, high = np.percentile(finite, [2.5, 97.5]) if len(finite) else (math.nan, math.nan)
        found[name] = (float(low), float(high))
    return found


def intervals(
    task: str,
    y: Any,
    out: Any,
    values: dict[str, float],
    *,
    seed: int,
    resamples: int = 1000,
    threshold: float | None = None,
) -> dict[str, Interval]:
    """{figure: Interval} for each figure of `values` (scores' answer): Wilson for PROPORTIONS, the bootstrap for the
    rest. NaN figures get no interval."""
    n = len(y)
    found: dict[str, Interval] = {}
    shown_values = [name for name, value in values.items() if math.isfinite(value)]
    if task == "classification":
        y, out = np.asarray(y, dtype=np.int64), probabilities(out)
        # the samples right: counted for accuracy, read back from the share for top-5 (n times it is a whole number)
        hits = {"accuracy": int((predicted(out, threshold) == y).sum())}
        for name in (name for name in shown_values if name in PROPORTIONS):
            found[name] = Interval(*wilson(hits.get(name, round(values[name] * n)), n), n, "wilson")
    rest = [name for name in shown_values if name not in found]
    if rest:
        ranges = bootstrap(task, y, out, rest, seed=seed, resamples=resamples, threshold=threshold)
        found.update({name: Interval(*ranges[name], n, "bootstrap") for name in rest})
    return {name: found[name] for name in values if name in found}


def figure(value: float) -> str:
    """A figure as results tables show it: 3 decimals, thousands grouped (0.962, 220.912, 12,345.600)."""
    return f"{value:,.3f}"


def shown(value: float, low: float, high: float, n: int) -> str:
    """'0.962 [0.951, 0.971] n=1,000'."""
    return f"{figure(value)} [{figure(low)}, {figure(high)}] n={n:,}"
