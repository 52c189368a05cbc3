"""Repeats: runs that differ only in their seed, as one group with the mean and sample standard deviation of their
best monitored metric and test metric (`runner report`, `--group-by`, and the end of a sweep of seed=0,1,2).

Nothing here imports torch.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runner.io.tables import csv_table, markdown_table

if TYPE_CHECKING:
    from rich.table import Table

# overrides that do not make a run another experiment
NOT_A_SETTING = ("seed", "hydra.", "resume")


def settings(row: dict[str, Any]) -> dict[str, str]:
    """{key: value} of a run's overrides, seeds and Hydra's own keys left out."""
    pairs = (o.partition("=") for o in row["overrides"].split())
    return {k: v for k, _, v in pairs if not k.startswith(NOT_A_SETTING)}


def _seed(row: dict[str, Any]) -> str:
    return next((o.partition("=")[2] for o in row["overrides"].split() if o.startswith("seed=")), "0")


def _mean_std(values: Iterable[object]) -> tuple[float | None, float | None, int]:
    """(mean, sample standard deviation (n - 1), n) of the numbers in `values`; std is None for fewer than two."""
    numbers = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not numbers:
        return None, None, 0
    mean = sum(numbers) / len(numbers)
    std = math.sqrt(sum((v - mean) ** 2 for v in numbers) / (len(numbers) - 1)) if len(numbers) > 1 else None
    return mean, std, len(numbers)


def aggregate(rows: Iterable[dict[str, Any]], group_by: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Group runs that share their settings except the seed (or, with `group_by`, share those keys' values).

    Each group: its label, monitor, members, the completed members' seeds, and mean / std / n of their best
    monitored metric and test metric; best group first (groups with a completed run before the others).
    """
    found: dict[tuple[str, tuple[tuple[str, str], ...]], list[dict[str, Any]]] = {}
    for row in rows:
        # the chosen keys, seed among them if asked for
        if group_by:
            every = {k: v for k, _, v in (o.partition("=") for o in row["overrides"].split())}
            key = tuple((k, every.get(k, "0" if k == "seed" else "")) for k in group_by)
        else:
            key = tuple(sorted(settings(row).items()))
        found.setdefault((row["monitor"], key), []).append(row)
    # shared by every group: not shown
    common = set.intersection(*(set(key) for _, key in found)) if len(found) > 1 else set()
    out: list[dict[str, Any]] = []
    for (monitor, key), members in found.items():
        shown = [(k, v) for k, v in key if (k, v) not in common] or list(key)
        done = [r for r in members if r["status"] == "completed"]
        best, best_std, n = _mean_std([r["best"] for r in done])
        test, test_std, _ = _mean_std([r["test"] for r in done])
        out.append(
            {
                "group": " ".join(f"{k}={v}" for k, v in shown) or "(defaults)",
                "monitor": monitor,
                "mode": members[0]["mode"],
                "n": n,
                "runs": len(members),
                "seeds": " ".join(sorted({_seed(r) for r in done}, key=lambda x: (len(x), x))),
                "best_mean": best,
                "best_std": best_std,
                "test_metric": members[0]["test_metric"],
                "test_mean": test,
                "test_std": test_std,
                "members": members,
            }
        )
    sizes: dict[str, int] = {}
    for g in out:
        sizes[g["monitor"]] = sizes.get(g["monitor"], 0) + g["runs"]
    return sorted(
        out,
        key=lambda g: (
            -sizes[g["monitor"]],
            g["monitor"],
            g["n"] == 0,
            -(g["best_mean"] or 0) if g["mode"] == "max" else (g["best_mean"] or 0),
        ),
    )


def repeat_groups(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]] | None:
    """aggregate(rows) when some runs differ only in their seed (so that grouping them says something), else None."""
    grouped = aggregate(rows)
    return grouped if any(g["runs"] > 1 for g in grouped) else None


def _pm(mean: float | None, std: float | None) -> str:
    if mean is None:
        return ""
    return f"{mean:.4g} ± {std:.2g}" if std is not None else f"{mean:.4g}"


GROUP_COLUMNS = [
    "group",
    "monitor",
    "n",
    "runs",
    "seeds",
    "best_mean",
    "best_std",
    "test_metric",
    "test_mean",
    "test_std",
]


def groups_to_csv(groups_: Iterable[dict[str, Any]]) -> str:
    return csv_table(groups_, GROUP_COLUMNS)


def groups_to_markdown(groups_: Sequence[dict[str, Any]]) -> str:
    first = groups_[0]
    header = [
        "group",
        "n",
        "seeds",
        f"best {first['monitor']} (mean ± std)",
        f"{first['test_metric'] or 'test'} (mean ± std)",
    ]
    rows = [
        [g["group"], g["n"], g["seeds"], _pm(g["best_mean"], g["best_std"]), _pm(g["test_mean"], g["test_std"])]
        for g in groups_
    ]
    return markdown_table(header, rows)


def groups_to_table(groups_: Sequence[dict[str, Any]], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in (
        "",
        "group",
        "n",
        "seeds",
        f"best {groups_[0]['monitor']} (mean ± std)",
        f"{groups_[0]['test_metric'] or 'test'} (mean ± std)",
    ):
        table.add_column(col, overflow="fold")
    for i, g in enumerate(groups_):
        n = f"{g['n']}" + (f" of {g['runs']}" if g["runs"] != g["n"] else "")
        table.add_row(
            "*" if i == 0 and g["n"] else "",
            g["group"],
            n,
            g["seeds"],
            _pm(g["best_mean"], g["best_std"]),
            _pm(g["test_mean"], g["test_std"]),
        )
    return table
