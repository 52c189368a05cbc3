"""Repeats: runs that differ only in their seed or their fold (dataset.fold, one job of dataset.folds=K), as one
group with the mean, sample standard deviation and 95 % Student-t interval (stats/compare.spread) of their best
monitored metric and test metric (`runner report`, `--group-by`, and the end of a sweep of seed=0,1,2 or of folds).

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runner.io.tables import csv_table, markdown_table
from runner.stats.compare import overlapping, spread

if TYPE_CHECKING:
    from rich.table import Table

# overrides that do not make a run another experiment: prefixes, and the repeat keys themselves (dataset.fold is one
# fold of a dataset.folds=K cross-validation; dataset.folds is a setting)
NOT_A_SETTING = ("seed", "hydra.", "resume")
REPEAT_KEYS = ("seed", "dataset.fold")


def settings(row: dict[str, Any]) -> dict[str, str]:
    """{key: value} of a run's overrides, seeds, folds and Hydra's own keys left out."""
    pairs = (o.partition("=") for o in row["overrides"].split())
    return {k: v for k, _, v in pairs if not k.startswith(NOT_A_SETTING) and k not in REPEAT_KEYS}


def _override(row: dict[str, Any], key: str, default: str) -> str:
    return next((o.partition("=")[2] for o in row["overrides"].split() if o.partition("=")[0] == key), default)


def _seed(row: dict[str, Any]) -> str:
    return _override(row, "seed", "0")


def repeat_key(row: dict[str, Any]) -> str:
    """What pairs a run with its twin in another setting: its seed, and its fold where it is one of a k-fold's jobs
    (`0`, `fold 2`, `0 fold 2`)."""
    fold = _override(row, "dataset.fold", "")
    seed = _override(row, "seed", "")
    return " ".join(p for p in (seed, f"fold {fold}" if fold else "") if p) or "0"


def repeats_word(groups_: Iterable[dict[str, Any]]) -> str:
    """What the repeats are, for a sentence: seeds, folds, or seeds x folds."""
    folds = any(g["folds"] for g in groups_)
    seeds = any(g["seeds"] not in ("", "0") for g in groups_)
    return "seeds x folds" if folds and seeds else "folds" if folds else "seeds"


def _sorted_labels(values: Iterable[str]) -> str:
    return " ".join(sorted(set(values), key=lambda x: (len(x), x)))


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
        found.setdefault((row["monitor"], (("data", row.get("data") or ""), *key)), []).append(row)
    # shared by every group: not shown
    common = set.intersection(*(set(key) for _, key in found)) if len(found) > 1 else set()
    out: list[dict[str, Any]] = []
    for (monitor, key), members in found.items():
        shown = [(k, v) for k, v in key if (k, v) not in common] or list(key)
        done = [r for r in members if r["status"] == "completed"]
        best, test = spread([r["best"] for r in done]), spread([r["test"] for r in done])
        folds = [_override(r, "dataset.fold", "") for r in done]
        out.append(
            {
                "group": " ".join(f"{k}={v}" for k, v in shown if k != "data") or "(defaults)",
                "data": members[0].get("data") or "",
                "monitor": monitor,
                "mode": members[0]["mode"],
                "n": best.n if best else 0,
                "runs": len(members),
                "seeds": _sorted_labels(_seed(r) for r in done),
                "folds": _sorted_labels(f for f in folds if f),
                "best_mean": best and best.mean,
                "best_std": best and best.std,
                "best_low": best and best.low,
                "best_high": best and best.high,
                "test_metric": members[0]["test_metric"],
                "test_mean": test and test.mean,
                "test_std": test and test.std,
                "test_low": test and test.low,
                "test_high": test and test.high,
                # the best monitored value of each repeat, for a verdict between settings (stats/compare.paired)
                "by_repeat": {repeat_key(r): r["best"] for r in done if isinstance(r["best"], (int, float))},
                "settings": dict(key[1:]),
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
    """aggregate(rows) when some runs differ only in their seed or fold (so that grouping them says something), else
    None."""
    grouped = aggregate(rows)
    return grouped if any(g["runs"] > 1 for g in grouped) else None


def _pm(mean: float | None, std: float | None, low: float | None = None, high: float | None = None) -> str:
    if mean is None:
        return ""
    shown = f"{mean:.4g} ± {std:.2g}" if std is not None else f"{mean:.4g}"
    return shown + (f" [{low:.4g}, {high:.4g}]" if low is not None and high is not None else "")


GROUP_COLUMNS = [
    "group",
    "monitor",
    "n",
    "runs",
    "seeds",
    "folds",
    "best_mean",
    "best_std",
    "best_low",
    "best_high",
    "test_metric",
    "test_mean",
    "test_std",
    "test_low",
    "test_high",
    "data",
]


def groups_to_csv(groups_: Iterable[dict[str, Any]]) -> str:
    return csv_table(groups_, GROUP_COLUMNS)


def _repeats_cell(g: dict[str, Any]) -> str:
    if not g["folds"]:
        return g["seeds"]
    return f"folds {g['folds']}" + (f", seeds {g['seeds']}" if g["seeds"] != "0" else "")


def marks(groups_: Sequence[dict[str, Any]]) -> list[str]:
    """Each group's mark, in the order given (best first): `*` on the best group with completed runs, or `~` on every
    group whose interval of the best monitored metric overlaps the first's (not distinguishable from it: no star)."""
    out = ["" for _ in groups_]
    if not groups_ or not groups_[0]["n"]:
        return out
    first = groups_[0]
    if first["best_low"] is None:
        out[0] = "*"
        return out
    tied = [
        i
        for i, g in enumerate(groups_[1:], 1)
        if g["monitor"] == first["monitor"]
        and g["best_low"] is not None
        and overlapping((first["best_low"], first["best_high"]), (g["best_low"], g["best_high"]))
    ]
    for i in [0, *tied] if tied else []:
        out[i] = "~"
    out[0] = out[0] or "*"
    return out


def groups_to_markdown(groups_: Sequence[dict[str, Any]]) -> str:
    first = groups_[0]
    header = [
        "",
        "group",
        "n",
        "repeats",
        f"best {first['monitor']} (mean ± std [95 % t-interval])",
        f"{first['test_metric'] or 'test'} (mean ± std [95 % t-interval])",
    ]
    rows = [
        [
            mark,
            g["group"],
            g["n"],
            _repeats_cell(g),
            _pm(g["best_mean"], g["best_std"], g["best_low"], g["best_high"]),
            _pm(g["test_mean"], g["test_std"], g["test_low"], g["test_high"]),
        ]
        for g, mark in zip(groups_, marks(groups_))
    ]
    return markdown_table(header, rows)


def groups_to_table(groups_: Sequence[dict[str, Any]], title: str) -> Table:
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    for col in (
        "",
        "group",
        "n",
        "repeats",
        f"best {groups_[0]['monitor']} (mean ± std [95 % t-interval])",
        f"{groups_[0]['test_metric'] or 'test'} (mean ± std [95 % t-interval])",
    ):
        table.add_column(col, overflow="fold")
    for g, mark in zip(groups_, marks(groups_)):
        n = f"{g['n']}" + (f" of {g['runs']}" if g["runs"] != g["n"] else "")
        table.add_row(
            mark,
            g["group"],
            n,
            _repeats_cell(g),
            _pm(g["best_mean"], g["best_std"], g["best_low"], g["best_high"]),
            _pm(g["test_mean"], g["test_std"], g["test_low"], g["test_high"]),
        )
    return table
