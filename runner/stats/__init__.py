"""Statistics on a run's predictions, torch-free (numpy, scipy, scikit-learn), for every layer that reports a figure.

    metrics.py    METRICS: each figure a task is judged by, its direction and its source; `scores` (scikit-learn's
                  own functions), the per-class table, the binary decision threshold
    weighted.py   the same figures under per-sample counts, vectorised over many resamples at once (the bootstrap's)
    intervals.py  95 % intervals: Wilson for proportions, a seeded percentile bootstrap for the rest; `shown`
    compare.py    settings compared over seeds or folds: paired differences, their interval and p-value

    from runner.stats.metrics import scores
    from runner.stats.intervals import intervals, shown
    values = scores("classification", y, probabilities)
    ranges = intervals("classification", y, probabilities, values, seed=0)

scikit-learn is imported inside the functions that use it, so that `runner --help` stays light.
docs/metrics.md defines every figure and names its source.
"""
