"""`runner diff RUN_A RUN_B`: what differs between two runs, in their configs, their results and their environments.

    runner diff outputs/multirun/2026-11-22/10-31-07/0 outputs/multirun/2026-11-22/10-31-07/1
    runner diff outputs/2026-11-22/10-31-07 outputs/2026-11-23/09-12-44 --format markdown
    runner diff RUN_A RUN_B --format json | jq .config

Configs are compared resolved (${dataset.num_classes} as its value), key by dotted key; metrics are
the best validation epoch's, the last epoch's and the test's (best.pt), with B - A; environments are
summary.json's `environment` (versions, device, host, threads, git commit). Nothing here imports torch.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from runner.io.files import strict_json
from runner.io.tables import markdown_table
from runner.loggers.flatten import flatten
from runner.run.records import read_summary, resolved_config, status_of

# a key one run has and the other does not
MISSING = "-"


def differences(a: object, b: object) -> list[tuple[str, Any, Any]]:
    """[(key, value in a, value in b)] for every dotted key whose values differ, sorted by key."""
    fa, fb = flatten(a), flatten(b)
    return [
        (k, fa.get(k, MISSING), fb.get(k, MISSING))
        for k in sorted(fa.keys() | fb.keys())
        if fa.get(k, MISSING) != fb.get(k, MISSING)
    ]


def metrics(summary: dict[str, Any]) -> dict[str, Any]:
    """{name: value} of a run's results: its best validation epoch, its last epoch, its test, and how it ended."""
    out = {
        "status": summary.get("status"),
        "stopped_by": summary.get("stopped_by"),
        "epochs": summary.get("epochs"),
        "steps": summary.get("steps"),
    }
    out.update({f"best {k}": v for k, v in (summary.get("best") or {}).items()})
    out.update(
        {
            f"final {k}": v
            for k, v in (summary.get("final") or {}).items()
            if k not in ("epoch_time_s", "train_samples_per_s")
        }
    )
    out.update(summary.get("test") or {})
    out["params"] = summary.get("params")
    # the weights it started from
    out["init_from sha256"] = (summary.get("init_from") or {}).get("sha256")
    out["time_s"] = (summary.get("timings") or {}).get("total_s")
    return {k: v for k, v in out.items() if v is not None}


def compare(run_a: str | Path, run_b: str | Path) -> dict[str, Any]:
    """The three comparisons, as plain data."""
    sa, sb = read_summary(run_a), read_summary(run_b)
    # a `running` run whose process is gone (its end could not be recorded) is shown as every reader shows it
    sa["status"], sb["status"] = status_of(run_a, sa), status_of(run_b, sb)
    ma, mb = metrics(sa), metrics(sb)
    rows: list[tuple[str, Any, Any, Any]] = []
    for key in [*ma, *(k for k in mb if k not in ma)]:
        va, vb = ma.get(key, MISSING), mb.get(key, MISSING)
        numeric = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (va, vb))
        rows.append((key, va, vb, vb - va if numeric else None))
    return {
        "a": str(run_a),
        "b": str(run_b),
        "config": [
            {"key": k, "a": va, "b": vb} for k, va, vb in differences(resolved_config(run_a), resolved_config(run_b))
        ],
        "metrics": [{"metric": k, "a": va, "b": vb, "b_minus_a": d} for k, va, vb, d in rows],
        "environment": [
            {"key": k, "a": va, "b": vb}
            for k, va, vb in differences(sa.get("environment") or {}, sb.get("environment") or {})
        ],
    }


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    if value is None:
        return ""
    return value if isinstance(value, str) else json.dumps(value)


def to_markdown(result: dict[str, Any]) -> str:
    parts = [f"A: `{result['a']}`  \nB: `{result['b']}`\n"]
    for title, rows, cols in (
        ("Config", result["config"], ("key", "a", "b")),
        ("Metrics", result["metrics"], ("metric", "a", "b", "b_minus_a")),
        ("Environment", result["environment"], ("key", "a", "b")),
    ):
        parts.append(f"### {title}\n")
        if not rows:
            parts.append("(the same)\n")
            continue
        header = ["B - A" if c == "b_minus_a" else c.upper() if c in ("a", "b") else c for c in cols]
        parts.append(markdown_table(header, [[_fmt(r[c]) for c in cols] for r in rows]))
    return "\n".join(parts)


def print_tables(result: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    term = Console(highlight=False)
    if not term.is_terminal:
        term.width = 160
    term.print(f"A: {result['a']}\nB: {result['b']}")
    for title, rows, cols in (
        ("config", result["config"], ("key", "a", "b")),
        ("metrics", result["metrics"], ("metric", "a", "b", "b_minus_a")),
        ("environment", result["environment"], ("key", "a", "b")),
    ):
        if not rows:
            term.print(f"{title}: the same")
            continue
        table = Table(title=title, title_justify="left")
        for c in cols:
            table.add_column("B - A" if c == "b_minus_a" else c.upper() if c in ("a", "b") else c, overflow="fold")
        for r in rows:
            table.add_row(*(str(_fmt(r[c])) for c in cols))
        term.print(table)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="runner diff", description="What differs between two runs: config, metrics, environment."
    )
    parser.add_argument("run_a", help="a run directory (a job of a sweep, or a single run)")
    parser.add_argument("run_b", help="the run directory to compare it with")
    parser.add_argument("--format", choices=("table", "json", "markdown"), default="table", help="what to print")
    args = parser.parse_args(argv)
    for path in (args.run_a, args.run_b):
        if read_summary(Path(path).expanduser()).get("kind") != "train":
            print(
                f"runner diff: {path} is not a training run directory (no summary.json of a `runner train` in it). "
                f"Give two "
                f"run directories, e.g. runner diff outputs/multirun/2026-11-22/10-31-07/0 "
                f"outputs/multirun/2026-11-22/10-31-07/1.",
                file=sys.stderr,
            )
            return 2
    result = compare(Path(args.run_a).expanduser(), Path(args.run_b).expanduser())
    if args.format == "json":
        # a NaN read from metrics.csv is null, as in every JSON runner writes (strict readers refuse a bare NaN)
        print(json.dumps(strict_json(result), indent=2, default=str, allow_nan=False))
    elif args.format == "markdown":
        sys.stdout.write(to_markdown(result))
    else:
        print_tables(result)
    return 0
