"""sweep.png: every run's validation curve, the best run marked by the one rule of best (report_sections.best_row),
and the best monitored value against each swept numeric parameter, with repeats' mean and std.

    runner report outputs/multirun/2026-12-07/10-31-07      # rewrites the sweep's sweep.png

matplotlib is imported only here, when a plot is drawn (runner/io/plots.figure).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from runner.commands.report_sections import best_row, folded
from runner.commands.report_tables import _differing
from runner.sweeps.repeats import repeats_word, settings

Row = dict[str, Any]
Curve = list[tuple[int, float]]


def _numeric_params(rows: Sequence[Row]) -> dict[str, list[float | None]]:
    """{param: [value per row]} for overrides whose values are numbers and differ between runs."""
    params: dict[str, list[float | None]] = {}
    for i, row in enumerate(rows):
        for override in row["overrides"].split():
            key, _, value = override.partition("=")
            try:
                params.setdefault(key, [None] * len(rows))[i] = float(value)
            except ValueError:
                continue
    return {k: v for k, v in params.items() if len({x for x in v if x is not None}) > 1}


def plot(
    rows: Sequence[Row],
    curves: Sequence[Curve],
    path: Path,
    groups_: Sequence[dict[str, Any]] | None = None,
) -> None:
    """Every run's validation curve on one axis; the best metric against each swept numeric parameter
    (with `groups_`, repeats over seeds: each group's mean with its standard deviation as an error bar)."""
    from runner.io.plots import figure, save

    # the first section's and monitor's, on one axis: runs of other data are not compared
    comparable = [
        i for i, r in enumerate(rows) if r["monitor"] == rows[0]["monitor"] and r.get("data") == rows[0].get("data")
    ]
    rows, curves = [rows[i] for i in comparable], [curves[i] for i in comparable]
    # seeds are averaged over
    params = {k: v for k, v in _numeric_params(rows).items() if not (groups_ and k == "seed")}
    fig = figure(figsize=(5.5 * (1 + len(params)), 4))
    axes = fig.subplots(1, 1 + len(params), squeeze=False)
    ax = axes[0][0]
    # a k-fold's jobs are validated on other folds: none is best (the groups' means are, on the right)
    best = None if folded(rows) else best_row(rows)
    for row, curve, overrides in zip(rows, curves, _differing(rows)):
        if curve:
            label = overrides if len(overrides) <= 50 else overrides[:49] + "…"
            mark = " (best)" if row is best else ""
            ax.plot(*zip(*curve), marker="o", markersize=3, label=f"{row['job']}{mark}: {label}")
    if best is not None and isinstance(best.get("best_epoch"), int):
        # the one rule's choice (report_sections.best_row), at its best epoch: the star of the table and summary.csv
        ax.plot(best["best_epoch"], best["best"], marker="*", markersize=14, color="gold", markeredgecolor="black")
    ax.set(xlabel="epoch", ylabel=rows[0]["monitor"] if rows else "", title="validation curves")
    ax.xaxis.get_major_locator().set_params(integer=True)
    # a sweep whose jobs all failed has no curve to name
    if any(curves):
        ax.legend(fontsize=7)
    ax.grid(alpha=0.3)
    for ax, (param, values) in zip(axes[0][1:], params.items()):
        points = [(v, r["best"]) for v, r in zip(values, rows) if v is not None and r["best"] is not None]
        if points:
            ax.scatter(*zip(*points), alpha=0.35 if groups_ else 1.0, label="runs" if groups_ else None)
        means = [
            (float(settings(g["members"][0])[param]), g["best_mean"], g["best_std"] or 0.0)
            for g in groups_ or []
            if g["monitor"] == rows[0]["monitor"] and g["best_mean"] is not None and param in settings(g["members"][0])
        ]
        if means:
            means.sort()
            ax.errorbar(
                *zip(*[(x, m) for x, m, _ in means]),
                yerr=[sd for _, _, sd in means],
                marker="o",
                capsize=4,
                color="black",
                label=f"mean ± std over {repeats_word(groups_ or [])}",
            )
            ax.legend(fontsize=7)
        positive = [v for v in values if v]
        if "lr" in param.split(".")[-1] or (positive and min(positive) > 0 and max(positive) / min(positive) >= 100):
            ax.set_xscale("log")
        ax.set(xlabel=param, ylabel=f"best {rows[0]['monitor']}", title=f"best {rows[0]['monitor']} vs {param}")
        ax.grid(alpha=0.3)
    save(fig, path, dpi=100)
