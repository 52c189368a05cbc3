"""runner report's sections: runs ranked only against runs of the same data, the one rule of "best", and the verdicts.

    runner report 'outputs/2026-12-07/*'          # a heading per dataset; failed and refused runs listed apart
    runner report outputs/multirun/2026-12-07/10-31-07 --best    # the best run's directory, by the one rule

Runs are compared only where they are scored on the same thing: the same data, task, target and test split (the
dataset keys run/records.data_fingerprint reads from .hydra/config.yaml). The best run of a section is the first of
report.sort_rows among the completed runs with a finite monitored value: the monitored validation metric in its
direction, ties to the lower val_loss of the best epoch, then the earlier job (training/recipe.ranking). The star of
the table, summary.csv's `chosen`, sweep.png's mark, `--best` and an Optuna search's optimization_results.yaml all
take it from best_row. No test figure chooses. Where the best run's interval overlaps the next one's (Wilson's on the
validation accuracy, or the t-interval of repeats), they are named not distinguishable instead of starred.

Nothing here imports torch.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from runner.run import records
from runner.stats.compare import overlapping, paired, worded
from runner.training.recipe import finite

Row = dict[str, Any]

# the verdicts printed per section at most: a grid of many settings has many pairs that differ in one key
MAX_VERDICTS = 12


def data_label(fingerprint: dict[str, Any] | None) -> str:
    """A section's heading: `csv (classification sha256 1a2b3c4d5e6f) target=label test_fraction=0.2 split_seed=0`."""
    if fingerprint is None:
        return "(no recorded config)"
    f = dict(fingerprint)
    name = str(f.pop("name", "data"))
    for key in ("path", "train_path", "root"):
        if key in f:
            f[key] = Path(str(f[key])).name
    sha = f.pop("sha256", None)
    shown = " ".join(f"{k}={v}" for k, v in f.items() if k not in ("task", "num_classes"))
    task = f.get("task", "")
    # one SHA-256 per file (path, or train_path, val_path, test_path), each shortened as git shortens a commit
    sha_text = f" sha256 {','.join(str(h)[:12] for h in (sha if isinstance(sha, list) else [sha]))}" if sha else ""
    return f"{name} ({task}{sha_text}) {shown}".strip()


def run_data(run_dir: Path) -> str:
    """The data section a run belongs to (data_label of its fingerprint)."""
    return data_label(records.data_fingerprint(run_dir))


def split_by_test_rows(rows: Iterable[Row]) -> None:
    """Runs of one data section tested on different samples (summary.json's test_rows, data/duplicates.split_digest)
    go to sections of their own, named by their test rows: the dataset keys do not always fix the test split
    (dataset.folds, group, duplicates=drop, a validation fraction drawn first from a training file). A run without the
    record (refused before its data was read, or recorded by an earlier version) stays in its keys' section."""
    rows = list(rows)
    seen: dict[str, set[str]] = {}
    for row in rows:
        if row.get("test_rows"):
            seen.setdefault(row["data"], set()).add(row["test_rows"])
    for row in rows:
        if row.get("test_rows") and len(seen[row["data"]]) > 1:
            row["data"] = f"{row['data']} test rows {row['test_rows']}"


def ranked(row: Row) -> bool:
    """A run ranked in its section's table: one that trained (a failed or refused run is listed apart)."""
    return row["status"] != "failed" or finite(row.get("best"))


def sections(rows: Iterable[Row]) -> list[tuple[str, list[Row]]]:
    """[(data label, its ranked rows)], in the order given (report.sort_rows puts each section's rows together)."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        if ranked(row):
            out.setdefault(row.get("data") or "", []).append(row)
    return list(out.items())


def apart(rows: Iterable[Row]) -> list[Row]:
    """The failed and refused runs, listed after every section."""
    return [r for r in rows if not ranked(r)]


def folded(rows: Iterable[Row]) -> bool:
    """Whether rows hold jobs of a k-fold cross-validation (a dataset.fold override): each is validated on its own fold,
    so no run is best among them; the best setting is the repeat group with the best mean (sweeps/repeats.py)."""
    return any(o.startswith("dataset.fold=") for r in rows for o in str(r.get("overrides") or "").split())


def best_row(rows: Sequence[Row]) -> Row | None:
    """The best of rows sorted by report.sort_rows (one section, one monitor): the first that completed with a finite
    monitored value. The one rule of best (see the module docstring)."""
    return next((r for r in rows if r["status"] == "completed" and finite(r.get("best"))), None)


def val_interval(row: Row) -> tuple[float, float] | None:
    """Wilson's 95 % interval of a run's best validation accuracy over its validation samples; None for another
    monitor (only a proportion has an interval from its count alone)."""
    from runner.stats.intervals import wilson

    n = row.get("val_samples")
    if row.get("monitor") != "val_accuracy" or not finite(row.get("best")) or not isinstance(n, int) or n <= 0:
        return None
    return wilson(round(row["best"] * n), n)


def not_distinguishable(rows: Sequence[Row]) -> list[Row]:
    """The runs of one section and monitor whose validation interval overlaps the best run's, the best run first;
    [] where the best stands apart (or has no interval)."""
    best = best_row(rows)
    mine = val_interval(best) if best else None
    if best is None or mine is None:
        return []
    tied = [
        r
        for r in rows
        if r is not best
        and r["status"] == "completed"
        and r["monitor"] == best["monitor"]
        and (theirs := val_interval(r)) is not None
        and overlapping(mine, theirs)
    ]
    return [best, *tied] if tied else []


def chosen(rows: Sequence[Row]) -> dict[int, str]:
    """{id(row): "best" or "not distinguishable from the best"} for each section and monitor of sorted rows: what
    summary.csv's `chosen` column and the tables' marks say."""
    out: dict[int, str] = {}
    parts: dict[tuple[str, str], list[Row]] = {}
    for row in rows:
        if ranked(row):
            parts.setdefault((row.get("data") or "", row["monitor"]), []).append(row)
    for part in parts.values():
        best = best_row(part)
        if best is None or folded(part):
            continue
        tied = not_distinguishable(part)
        out[id(best)] = "best" if not tied else "best, not distinguishable from those marked ~"
        for row in tied[1:]:
            out[id(row)] = "~ not distinguishable from the best"
    return out


def test_cell(row: Row) -> str:
    """The test figure with its 95 % interval where summary.json records one: `0.962 [0.951, 0.971] n=1,000`."""
    value, interval = row.get("test"), row.get("test_interval")
    if not finite(value):
        return "" if value is None else str(value)
    if isinstance(interval, dict) and finite(interval.get("low")) and finite(interval.get("high")):
        from runner.stats.intervals import shown

        return shown(value, interval["low"], interval["high"], int(interval.get("n") or 0))
    return f"{value:.4g}"


def baseline_line(rows: Sequence[Row]) -> str | None:
    """The baselines of a section's data (summary.json's `baselines`: the trivial one first, then scikit-learn's), in
    one line: `baselines on the test split: majority class 0.678, logistic regression 0.912`. Fitted on each run's
    training split, so runs of other folds or validation fractions have their own: then their mean is shown."""
    values: dict[str, list[float]] = {}
    for row in rows:
        found = row.get("baselines")
        for name, value in found.items() if isinstance(found, dict) else []:
            figure = _baseline_value(value, row.get("test_metric"))
            if figure is not None:
                values.setdefault(name, []).append(figure)
    if not values:
        return None
    parts = [f"{name} {sum(v) / len(v):.4g}" for name, v in values.items()]
    varied = any(len(set(v)) > 1 for v in values.values())
    note = f" (the mean over {max(map(len, values.values()))} runs' training splits, which differ)" if varied else ""
    return f"baselines on the test split{note}: " + ", ".join(parts)


def _baseline_value(value: object, metric: str | None) -> float | None:
    """A baseline's figure: a number as it is, or from a {figure: value} record the run's test metric (else the
    first number)."""
    if isinstance(value, dict):
        pick = value.get(metric) if metric in value else value.get((metric or "")[5:])
        pick = pick if finite(pick) else next((v for v in value.values() if finite(v)), None)
        return float(pick) if finite(pick) else None
    return float(value) if finite(value) else None


def trivial_losers(rows: Sequence[Row]) -> list[Row]:
    """The runs whose test figure does not beat the trivial baseline (summary.json's `beats_trivial`: false)."""
    return [r for r in rows if r.get("beats_trivial") is False]


def verdicts(groups_: Sequence[dict[str, Any]], repeats: str) -> list[str]:
    """One sentence per pair of settings that differ in one key and ran >= 2 of the same seeds or folds: the paired
    difference of their best monitored metric (stats/compare.paired), the better-ranked setting as A."""
    out = []
    for i, a in enumerate(groups_):
        for b in groups_[i + 1 :]:
            if a["monitor"] != b["monitor"] or len(a["by_repeat"].keys() & b["by_repeat"].keys()) < 2:
                continue
            keys = a["settings"].keys() | b["settings"].keys()
            differ = [k for k in keys if a["settings"].get(k) != b["settings"].get(k)]
            if len(differ) != 1:
                continue
            verdict = paired(a["by_repeat"], b["by_repeat"])
            if verdict is None:
                continue
            (key,) = differ
            names = f"A {key}={a['settings'].get(key, '(default)')}, B {key}={b['settings'].get(key, '(default)')}"
            out.append(f"{names}, best {a['monitor']}: {worded(verdict, mode=a['mode'], repeats=repeats)}")
    if len(out) > MAX_VERDICTS:
        return [*out[:MAX_VERDICTS], f"... and {len(out) - MAX_VERDICTS} more pairs (--format csv lists the groups)"]
    return out
