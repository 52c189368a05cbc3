"""Repeats: runs that differ only in their seed, as one group with the mean and sample standard deviation of their
best monitored metric and test metric (`runner report`, `--group-by`, and the end of a sweep of seed=0,1,2).

Nothing here imports torch.
"""

import math

from runner.io.tables import csv_table, markdown_table

NOT_A_SETTING = ("seed", "hydra.", "resume")  # overrides that do not make a run another experiment


def settings(row):
    """{key: value} of a run's overrides, seeds and Hydra's own keys left out."""
    pairs = (o.partition("=") for o in row["overrides"].split())
    return {k: v for k, _, v in pairs if not k.startswith(NOT_A_SETTING)}


def _seed(row):
    return next((o.partition("=")[2] for o in row["overrides"].split() if o.startswith("seed=")), "0")


def _mean_std(values):
    """(mean, sample standard deviation (n - 1), n) of the numbers in `values`; std is None for fewer than two."""
    values = [v for v in values if isinstance(v, (int, float)) and not math.isnan(v)]
    if not values:
        return None, None, 0
    mean = sum(values) / len(values)
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1)) if len(values) > 1 else None
    return mean, std, len(values)


def aggregate(rows, group_by=None):
    """Group runs that share their settings except the seed (or, with `group_by`, share those keys' values).

    Each group: its label, monitor, members, the completed members' seeds, and mean / std / n of their best
    monitored metric and test metric; best group first (groups with a completed run before the others).
    """
    found = {}
    for row in rows:
        if group_by:  # the chosen keys, seed among them if asked for
            every = {k: v for k, _, v in (o.partition("=") for o in row["overrides"].split())}
            key = tuple((k, every.get(k, "0" if k == "seed" else "")) for k in group_by)
        else:
            key = tuple(sorted(settings(row).items()))
        found.setdefault((row["monitor"], key), []).append(row)
    common = (
        set.intersection(*(set(key) for _, key in found)) if len(found) > 1 else set()
    )  # shared by every group: not shown
    out = []
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
    sizes = {}
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


def repeat_groups(rows):
    """aggregate(rows) when some runs differ only in their seed (so that grouping them says something), else None."""
    grouped = aggregate(rows)
    return grouped if any(g["runs"] > 1 for g in grouped) else None


def _pm(mean, std):
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


def groups_to_csv(groups_):
    return csv_table(groups_, GROUP_COLUMNS)


def groups_to_markdown(groups_):
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


def groups_to_table(groups_, title):
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
