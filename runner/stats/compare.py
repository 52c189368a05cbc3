"""Repeats and verdicts: a setting's mean over seeds or folds with its interval, and whether two settings really differ.

    runner report outputs/multirun/2026-12-07/10-31-07     # lr=0.01,0.001 x seed=0,1,2,3,4: a verdict per pair
    runner diff 'sweep/lr=0.01/*' 'sweep/lr=0.001/*'       # two groups of runs, paired by seed or fold

A setting repeated over seeds (or folds) has its mean, sample std and a 95 % Student-t interval of the mean. Two
settings that differ in one key are compared run by run, paired by seed or fold: the paired differences, their 95 %
percentile bootstrap interval (seeded, 10,000 resamples), and the two-sided p-value of an exact paired permutation test
(every sign flip of the differences; Good, "Permutation Tests", 2nd ed., 2000, ch. 3; a Monte-Carlo sample of 100,000
flips past 16 pairs). The permutation test is exact for any n, and says what small n can do: with n pairs its smallest
p-value is 2 / 2^n, so fewer than 6 pairs can never reach 0.05 (scipy.stats.wilcoxon has the same floor). Where the
interval holds 0 the verdict is "not distinguishable with N seeds", with the n that would settle it: the smallest n at
which the t-interval of the mean difference, given the observed mean and std, excludes 0 (at least 6, the permutation
test's own floor). Nothing here imports torch.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

# the interval's coverage, and the p-value a difference is called real at
LEVEL = 0.95
RESAMPLES = 10_000
# past this many pairs the 2^n sign flips are sampled, not enumerated
EXACT_UP_TO = 16
SAMPLED_FLIPS = 100_000
# the fewest pairs whose exact permutation p-value can be below 0.05 (2 / 2^6 = 0.031)
FEWEST_PAIRS = 6


@dataclass(frozen=True)
class Spread:
    """A setting's values over its repeats: mean, sample std (n - 1; None for one), and the 95 % t-interval of the
    mean (None for fewer than two)."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int


def spread(values: Sequence[float]) -> Spread | None:
    """Spread of the finite numbers in `values` (the Student-t interval of their mean); None when there are none."""
    from scipy import stats

    x = np.array([v for v in values if isinstance(v, (int, float)) and math.isfinite(v)], dtype=np.float64)
    if not len(x):
        return None
    mean = float(x.mean())
    if len(x) < 2:
        return Spread(mean, None, None, None, 1)
    std = float(x.std(ddof=1))
    half = float(stats.t.ppf(0.5 + LEVEL / 2, len(x) - 1)) * std / math.sqrt(len(x))
    return Spread(mean, std, mean - half, mean + half, len(x))


@dataclass(frozen=True)
class Verdict:
    """B - A over the pairs both settings ran (`keys`: the seeds or folds), as `paired` finds it."""

    keys: tuple[str, ...]
    differences: tuple[float, ...]
    mean: float
    low: float
    high: float
    p_value: float
    # the smallest p-value these many pairs can give (2 / 2^n)
    p_floor: float
    # the pairs that would settle it (None: it is settled, or the mean difference is 0 and no n would)
    needed: int | None

    @property
    def n(self) -> int:
        return len(self.differences)

    @property
    def distinguishable(self) -> bool:
        """The interval excludes 0 and the permutation test rejects equality at 0.05."""
        return (self.low > 0 or self.high < 0) and self.p_value < 1 - LEVEL


def permutation_p(differences: Sequence[float] | np.ndarray, *, seed: int = 0) -> float:
    """Two-sided p-value of the paired permutation (sign-flip) test of a mean difference of 0: the share of the 2^n
    sign assignments whose |mean| is at least the observed one (exact up to EXACT_UP_TO pairs, else sampled)."""
    d = np.asarray(differences, dtype=np.float64)
    observed = abs(d.mean())
    if len(d) <= EXACT_UP_TO:
        signs = np.array(list(itertools.product((1.0, -1.0), repeat=len(d))))
    else:
        signs = np.random.default_rng(seed).choice((1.0, -1.0), size=(SAMPLED_FLIPS, len(d)))
    means = np.abs(signs @ d) / len(d)
    # a relative tolerance: the observed assignment itself must count, whatever the float rounding of its sum
    return float(np.mean(means >= observed * (1 - 1e-12)))


def bootstrap_mean(differences: Sequence[float] | np.ndarray, *, seed: int = 0) -> tuple[float, float]:
    """The 95 % percentile bootstrap interval of the mean of `differences` (RESAMPLES resamples, seeded)."""
    d = np.asarray(differences, dtype=np.float64)
    picks = np.random.default_rng(seed).integers(0, len(d), size=(RESAMPLES, len(d)))
    means = d[picks].mean(axis=1)
    tail = (1 - LEVEL) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return float(low), float(high)


def pairs_needed(mean: float, std: float) -> int | None:
    """The smallest n (at least FEWEST_PAIRS) at which t_{0.975, n-1} * std / sqrt(n) < |mean|: the pairs whose
    t-interval would exclude 0 if the observed mean and std held. None for a mean of 0."""
    from scipy import stats

    if mean == 0 or not math.isfinite(mean):
        return None
    if std == 0:
        return FEWEST_PAIRS
    n = FEWEST_PAIRS
    while float(stats.t.ppf(0.5 + LEVEL / 2, n - 1)) * std / math.sqrt(n) >= abs(mean):
        n += 1
        # a difference this small against its noise: past a million pairs the estimate says nothing more
        if n > 1_000_000:
            return None
    return n


def paired(a: Mapping[str, float], b: Mapping[str, float], *, seed: int = 0) -> Verdict | None:
    """The verdict of B - A over the keys (seeds, folds) both ran with a finite value; None for fewer than 2 pairs."""
    keys = tuple(
        sorted(
            (k for k in a.keys() & b.keys() if math.isfinite(a[k]) and math.isfinite(b[k])),
            key=lambda k: (len(k), k),
        )
    )
    if len(keys) < 2:
        return None
    d = np.array([b[k] - a[k] for k in keys], dtype=np.float64)
    low, high = bootstrap_mean(d, seed=seed)
    p = permutation_p(d, seed=seed)
    mean = float(d.mean())
    settled = (low > 0 or high < 0) and p < 1 - LEVEL
    needed = None if settled else pairs_needed(mean, float(d.std(ddof=1)))
    floor = 2 / 2 ** len(keys) if len(keys) <= EXACT_UP_TO else 1 / SAMPLED_FLIPS
    return Verdict(keys, tuple(float(x) for x in d), mean, low, high, p, min(floor, 1.0), needed)


def worded(verdict: Verdict, *, mode: str, repeats: str = "seeds") -> str:
    """One sentence: the mean difference B - A with its interval and p-value, and what it means for a metric whose
    better direction is `mode` ("max" or "min"). `repeats` names what the pairs are (seeds, folds)."""
    v = verdict
    figures = (
        f"B - A = {v.mean:+.4g} [{v.low:+.4g}, {v.high:+.4g}] (95 % bootstrap), p = {v.p_value:.3g} "
        f"({'exact' if v.n <= EXACT_UP_TO else 'sampled'} paired permutation test, {v.n} {repeats})"
    )
    if v.distinguishable:
        better = "B" if (v.mean > 0) == (mode == "max") else "A"
        return f"{figures}: {better} is better."
    floor = (
        f"; {v.n} pairs cannot give p < 0.05 (the smallest p-value they can give is {v.p_floor:.3g})"
        if v.p_floor >= 1 - LEVEL
        else ""
    )
    more = (
        f"; about {v.needed} {repeats} would settle it if the observed mean and spread held"
        if v.needed and v.needed > v.n
        else ""
    )
    return f"{figures}: not distinguishable with {v.n} {repeats}{floor}{more}."


def overlapping(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether two intervals (low, high) overlap: neither lies wholly above the other."""
    return a[0] <= b[1] and b[0] <= a[1]
