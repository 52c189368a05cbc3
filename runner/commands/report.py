"""Comparing runs: one row per run, a section per dataset and test split (report_sections.py), sorted by the monitored
metric by the one rule of best, as a table, CSV or Markdown (report_tables.py), with sweep.png (report_plot.py).

    runner report outputs/multirun/2026-11-22/10-31-07          # a sweep (rewrites its summary.csv, sweep.png)
    runner report outputs/2026-11-22/* --sort test_accuracy     # runs started separately
    runner report 'outputs/**/' --format markdown > notes.md
    runner report outputs/multirun/2026-11-22/10-31-07 --best   # the best run's directory

The sweep callback (runner/sweeps/jobs.py) calls the same functions at the end of `runner train -m`.
Nothing here imports torch; matplotlib only when a plot is drawn.
"""

from __future__ import annotations

import argparse
import csv
import glob
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import yaml

from runner.commands.report_plot import plot
from runner.commands.report_sections import chosen, run_data, split_by_test_rows
from runner.commands.report_tables import (
    COLUMNS,
    console,
    grouping,
    groups,
    markdown_sections,
    print_best,
    show,
    to_csv,
    to_markdown,
    to_table,
    to_tables,
)
from runner.io.errors import one_line
from runner.run import records
from runner.sweeps.repeats import groups_to_csv
from runner.training.recipe import monitor_rule, ranking

# the names report's callers (sweeps/jobs.py, the tests) read here, wherever they now live
__all__ = [
    "COLUMNS",
    "build",
    "console",
    "find_runs",
    "groups",
    "plot",
    "read_run",
    "show",
    "sort_rows",
    "to_csv",
    "to_markdown",
    "to_table",
    "to_tables",
    "write_outputs",
]

# a run's row of the report, and its validation curve: (epoch, the monitored metric)
Row = dict[str, Any]
Curve = list[tuple[int, float]]


def find_runs(paths: Iterable[str | Path], quick_checks: bool = False) -> list[Path]:
    """Training run directories (those with a summary.json of kind train) under the given paths or globs. Quick checks
    (trainer.fast_dev_run, trainer.overfit_batches: their summary's `quick_check`) are not results and are left out,
    unless `quick_checks` (a sweep of them gets its own table)."""
    found: list[Path] = []
    for pattern in paths:
        matches: list[str | Path] = [*glob.glob(str(Path(pattern).expanduser()), recursive=True)] or [pattern]
        for match in matches:
            p = Path(match)
            candidates = [p] if (p / "summary.json").is_file() else sorted(s.parent for s in p.rglob("summary.json"))
            summaries = ((c, records.read_summary(c)) for c in candidates)
            found += [
                c for c, s in summaries if s.get("kind") == "train" and (quick_checks or not s.get("quick_check"))
            ]
    return sorted(set(found), key=lambda d: (str(d.parent), _job_number(d)))


def _job_number(run_dir: Path) -> int:
    return int(run_dir.name) if run_dir.name.isdigit() else -1


def _configured_monitor(run_dir: Path) -> tuple[str, str]:
    """(metric, mode) a run that failed before training would have monitored, from its .hydra/config.yaml."""
    try:
        cfg = yaml.safe_load((run_dir / ".hydra" / "config.yaml").read_text())
        trainer = cfg["trainer"]
        return monitor_rule(cfg["dataset"]["task"], trainer.get("monitor"), trainer.get("monitor_mode"))
    except (OSError, yaml.YAMLError, TypeError, KeyError, AttributeError):
        return "val_loss", "min"


def _status(run_dir: Path, summary: dict[str, Any]) -> str:
    """summary.json's status, `running` with its process gone as `interrupted`, and a trial an Optuna pruner
    stopped as `pruned` (a completed run, ranked below the runs that trained to their end)."""
    status = records.status_of(run_dir, summary) or "unknown"
    return "pruned" if status == "completed" and summary.get("stopped_by") == "pruned" else status


def _retries(run_dir: Path) -> str:
    """The failed attempts of a sweep job that its sweeper retried, as one cell: `1: <error> (retried from its
    last.pt)`; empty when the job was not retried. They are in the sweep's attempts.json, under the job directory's
    path in the sweep (`0`, `job0`, `lr=0.1/seed=0`): looked for up to three folders above the run."""
    for sweep in list(run_dir.parents)[:3]:
        try:
            attempts = json.loads((sweep / records.ATTEMPTS).read_text())
        except (OSError, ValueError):
            continue
        found = (attempts.get(run_dir.relative_to(sweep).as_posix()) if isinstance(attempts, dict) else None) or []
        return "; ".join(
            f"{i}: {a.get('error', '')[:120]} (retried from {a.get('from')})" for i, a in enumerate(found, 1)
        )
    return ""


def read_run(run_dir: Path) -> tuple[Row, Curve]:
    """One row of the report, and the run's validation curve of its monitored metric."""
    s = records.read_summary(run_dir)
    monitor, mode = (s["monitor"], s.get("monitor_mode")) if s.get("monitor") else _configured_monitor(run_dir)
    # a run without a validation split (dataset.val_fraction=0) records monitor "epoch": its best.pt is its last
    # epoch, and an epoch's number is no figure to rank runs by
    best = None if monitor == "epoch" else (s.get("best") or {}).get(monitor)
    tests = s.get("test") or {}
    test_key = (
        f"test_{monitor[4:]}"
        if f"test_{monitor[4:]}" in tests
        else next((k for k in tests if k != "test_loss"), "test_loss")
    )
    test = (test_key, tests.get(test_key))
    best_record = s.get("best") or {}
    row = {
        "job": run_dir.name,
        "overrides": " ".join(records.overrides(run_dir)),
        "status": _status(run_dir, s),
        "monitor": monitor,
        "best": best,
        "best_epoch": (s.get("best") or {}).get("epoch"),
        "final_val_loss": (s.get("final") or {}).get("val_loss"),
        # the tie-break of the one rule of best: the best epoch's val_loss, as best.pt's own (training/recipe.ranking)
        "best_val_loss": best_record.get("val_loss"),
        "test": test[1],
        "test_metric": test[0],
        "epochs": s.get("epochs"),
        "time_s": (s.get("timings") or {}).get("total_s"),
        "error": one_line(s.get("error"), 300),
        "retries": _retries(run_dir),
        "data": run_data(run_dir),
        "test_rows": s.get("test_rows"),
        "run_dir": str(run_dir),
        "mode": mode or monitor_rule(s.get("task", "classification"), monitor)[1],
        "val_samples": (s.get("samples") or {}).get("val"),
        "test_interval": (s.get("intervals") or {}).get(test_key),
        "test_low": ((s.get("intervals") or {}).get(test_key) or {}).get("low"),
        "test_high": ((s.get("intervals") or {}).get(test_key) or {}).get("high"),
        "baselines": s.get("baselines"),
        "beats_trivial": s.get("beats_trivial"),
    }
    curve = []
    metrics = run_dir / "metrics.csv"
    if metrics.is_file():
        with metrics.open(newline="") as f:
            curve = [(int(float(r["epoch"])), float(r[monitor])) for r in csv.DictReader(f) if r.get(monitor)]
    return row, curve


def _descending(row: Row, key: str | None) -> bool:
    """Best first: the monitored figure in its mode; the test figure in its direction (runner/stats: larger for
    accuracy, F1, AUROC, R^2, smaller for losses and errors); smaller for times."""
    from runner.stats.metrics import direction

    if key in (None, "best"):
        return row["mode"] == "max"
    return key == "test" and bool(row.get("test_metric")) and direction(str(row["test_metric"])) == "max"


def _run_order(row: Row) -> tuple[str, int, str]:
    """The last tie-break: the earlier job of a sweep (by number: job 2 before job 10), then the run's path."""
    path = Path(str(row.get("run_dir")))
    return (str(path.parent), _job_number(path), str(path))


def sort_rows(rows: list[Row], key: str | None = None) -> list[Row]:
    """Grouped by data (runs are ranked only against runs scored on the same data and test split; the largest section
    first), then by monitored metric (likewise), then completed runs first, then by `key` (default: the monitored
    metric), best first: the one rule of best (report_sections' docstring)."""
    sizes: dict[tuple[str, str], int] = {}
    for row in rows:
        for part in ((row.get("data") or "", ""), (row.get("data") or "", row["monitor"])):
            sizes[part] = sizes.get(part, 0) + 1

    def order(row: Row) -> tuple[Any, ...]:
        value = row.get(key or "best")
        loss = row.get("best_val_loss", row.get("final_val_loss"))
        # a text column sorts as text; numbers in the monitor's own order (training/recipe.ranking): NaN, infinite or
        # missing last, never best; equal ones to the lower validation loss of the best epoch; then the run's order,
        # never the order found
        if isinstance(value, str) and value:
            return (0, value, ranking(None, loss, mode="min")[2], _run_order(row))
        return (*ranking(value, loss, mode="max" if _descending(row, key) else "min"), _run_order(row))

    def section(row: Row) -> tuple[Any, ...]:
        data = row.get("data") or ""
        return (-sizes[(data, "")], data, -sizes[(data, row["monitor"])], row["monitor"])

    ordered = sorted(rows, key=lambda r: (*section(r), r["status"] != "completed", *order(r)))
    # the one rule of best, whatever column the rows are sorted by
    marked = chosen(ordered if key is None else sort_rows(rows))
    for row in ordered:
        row["chosen"] = marked.get(id(row), "")
    return ordered


def build(run_dirs: Iterable[Path], sort: str | None = None) -> tuple[list[Row], list[Curve]]:
    rows, curves = [], []
    for d in run_dirs:
        row, curve = read_run(d)
        rows.append(row)
        curves.append(curve)
    split_by_test_rows(rows)
    order = sort_rows(rows, sort)
    return order, [curves[rows.index(r)] for r in order]


def write_outputs(
    rows: Sequence[Row],
    curves: Sequence[Curve],
    out_dir: str | Path,
    groups_: Sequence[dict[str, Any]] | None = None,
) -> None:
    """summary.csv and sweep.png in `out_dir`; with repeats over seeds, groups.csv too (mean, std and n per group)."""
    from runner.io.files import atomic_write

    out_dir = Path(out_dir)
    atomic_write(out_dir / "summary.csv", lambda f: f.write(to_csv(rows).encode()))
    if groups_:
        atomic_write(out_dir / "groups.csv", lambda f: f.write(groups_to_csv(groups_).encode()))
    plot(rows, curves, out_dir / "sweep.png", groups_)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="runner report", description="Compare training runs: a table sorted by the monitored metric."
    )
    parser.add_argument("paths", nargs="+", help="sweep directories, run directories, or globs of them")
    parser.add_argument(
        "--sort", default=None, help="column to sort by (default: each run's monitored metric, best first)"
    )
    parser.add_argument("--format", choices=("table", "csv", "markdown"), default="table", help="what to print")
    parser.add_argument(
        "--group-by",
        default=None,
        metavar="KEY[,KEY]",
        help="group runs by these override keys (default: runs that differ only in seed form a group)",
    )
    parser.add_argument("--no-group", action="store_true", help="list every run, without grouping repeats over seeds")
    parser.add_argument(
        "--best",
        action="store_true",
        help="print the best run's directory, one per data section (the monitored validation metric in its direction, "
        "ties to the lower val_loss, then the earlier job: the rule of the star, summary.csv and an Optuna search)",
    )
    parser.add_argument(
        "--quick-checks",
        action="store_true",
        help="also list trainer.fast_dev_run and trainer.overfit_batches runs (left out by default: not results)",
    )
    parser.add_argument(
        "--out",
        default=None,
        help="write summary.csv and sweep.png here (default: the sweep directory, when given one)",
    )
    parser.add_argument(
        "--to",
        choices=("mlflow",),
        default=None,
        help="also mirror every run into MLflow (as logger=mlflow does while training; again = brought up to date)",
    )
    parser.add_argument(
        "--tracking-uri",
        default="sqlite:///outputs/mlflow.db",
        help="with --to mlflow: the store (default: %(default)s)",
    )
    parser.add_argument(
        "--experiment", default="runner", help="with --to mlflow: the experiment (default: %(default)s)"
    )
    parser.add_argument(
        "--artifact-location",
        default="outputs/mlartifacts",
        help="with --to mlflow: where a new experiment keeps its files (default: %(default)s)",
    )
    args = parser.parse_args(argv)
    missing = [p for p in args.paths if not glob.glob(str(Path(p).expanduser()), recursive=True)]
    if missing:
        print(
            f"runner report: {missing[0]} does not exist. Give run directories, sweep directories or globs of them "
            f"(e.g. runner report outputs/multirun/2026-11-22/10-31-07).",
            file=sys.stderr,
        )
        return 2
    if args.out and Path(args.out).exists() and not Path(args.out).is_dir():
        print(
            f"runner report: --out {args.out} is an existing file, and --out names the directory that summary.csv and "
            f"sweep.png are written into. Give a directory (it is created if missing). Nothing was written.",
            file=sys.stderr,
        )
        return 2
    runs = find_runs(args.paths, quick_checks=True)
    checks = [r for r in runs if records.read_summary(r).get("quick_check")]
    if checks and not args.quick_checks:
        runs = [r for r in runs if r not in checks]
        print(
            f"runner report: left out {len(checks)} quick check{'s' * (len(checks) > 1)} (trainer.fast_dev_run or "
            f"trainer.overfit_batches): they test a setup, they are not results (--quick-checks lists them).",
            file=sys.stderr,
        )
    if not runs:
        print(
            f"runner report: no training runs (directories with a summary.json) under {' '.join(args.paths)}.",
            file=sys.stderr,
        )
        return 2
    rows, curves = build(runs, args.sort)
    if args.sort and args.sort not in rows[0]:
        print(f"runner report: cannot sort by '{args.sort}'; use one of: {', '.join(COLUMNS)}.", file=sys.stderr)
        return 2
    if args.to:
        from runner.io.errors import RunnerError

        try:
            uploaded = to_mlflow(runs, args.tracking_uri, args.experiment, args.artifact_location)
        except RunnerError as err:
            print(f"runner report: {err}", file=sys.stderr)
            return 1
    group_by = [k.strip() for k in args.group_by.split(",") if k.strip()] if args.group_by else None
    grouped = grouping(rows, group_by, args.no_group)
    if args.best:
        return print_best(rows)
    out = args.out
    if out is None and len(args.paths) == 1 and Path(args.paths[0], "multirun.yaml").is_file():
        out = args.paths[0]
    if out:
        write_outputs(rows, curves, out, grouped)
    if args.format == "csv":
        sys.stdout.write(groups_to_csv(grouped) if grouped else to_csv(rows))
    elif args.format == "markdown":
        sys.stdout.write(markdown_sections(rows, group_by, args.no_group))
    else:
        show(rows, group_by=group_by, no_group=args.no_group)
        if out:
            print(f"wrote {Path(out) / 'summary.csv'} and {Path(out) / 'sweep.png'}")
    if args.to:
        print(
            f"mirrored {uploaded} runs into MLflow: {args.tracking_uri}, experiment {args.experiment!r}",
            file=sys.stderr,
        )
    return 0


def to_mlflow(run_dirs: Sequence[Path], tracking_uri: str, experiment: str, artifact_location: str) -> int:
    """Mirror each run directory into MLflow, the way logger=mlflow does as it trains. Returns how many."""
    from runner.loggers import check_loggers
    from runner.loggers.mlflow import Store

    check_loggers({"mlflow": None}, asked_by="runner report --to mlflow")
    store = Store(tracking_uri, experiment, artifact_location)
    for run_dir in run_dirs:
        record = records.run_record(run_dir)
        store.finish(store.open(record), record)
    return len(run_dirs)
