"""`runner diff RUN_A RUN_B`: what differs between two runs, in their configs, their results and their environments;
`runner diff GROUP_A GROUP_B`: whether two settings' repeats really differ.

    runner diff outputs/multirun/2026-11-22/10-31-07/0 outputs/multirun/2026-11-22/10-31-07/1
    runner diff outputs/2026-11-22/10-31-07 outputs/2026-11-23/09-12-44 --format markdown
    runner diff RUN_A RUN_B --format json | jq .config
    runner diff 'sweep/[0-4]' 'sweep/[5-9]'         # two groups of runs (globs, or directories holding runs)

Two groups are paired by seed and fold (sweeps/repeats.repeat_key): the verdict on their best monitored metric is
stats/compare.paired's (the paired differences, their bootstrap interval, an exact permutation p-value).

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

from runner.io.errors import RunnerError
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
    single = [read_summary(Path(p).expanduser()).get("kind") == "train" for p in (args.run_a, args.run_b)]
    if not all(single) and all(_runs_in(p) for p in (args.run_a, args.run_b)):
        return _group_main(args.run_a, args.run_b, args.format)
    for path in (args.run_a, args.run_b):
        if read_summary(Path(path).expanduser()).get("kind") != "train":
            print(
                f"runner diff: {path} is not a training run directory (no summary.json of a `runner train` in it), "
                f"nor a glob or directory of them. Give two run directories, e.g. runner diff "
                f"outputs/multirun/2026-11-22/10-31-07/0 outputs/multirun/2026-11-22/10-31-07/1, or two groups of "
                f"runs to compare their seeds or folds, e.g. runner diff 'SWEEP/[0-4]' 'SWEEP/[5-9]'.",
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


def _runs_in(path: str) -> list[Path]:
    from runner.commands.report import find_runs

    return find_runs([path])


def compare_groups(group_a: str, group_b: str) -> dict[str, Any]:
    """Two groups of runs as plain data: each group's spread, the pairs by seed or fold, and the verdict. RunnerError
    where they cannot be compared (other data or monitors, fewer than two pairs)."""
    from runner.commands.report import build
    from runner.stats.compare import paired, spread, worded
    from runner.sweeps.repeats import repeat_key, settings

    rows = {}
    for name, path in (("A", group_a), ("B", group_b)):
        rows[name] = [r for r in build(_runs_in(path))[0] if r["status"] == "completed"]
    a, b = rows["A"], rows["B"]
    for what in ("data", "monitor"):
        seen = {r.get(what) for r in a + b}
        if len(seen) > 1:
            raise RunnerError(
                f"the two groups' runs differ in {what} ({', '.join(sorted(map(str, seen)))}): a verdict compares "
                f"runs scored on the same data and test split with the same monitored metric. Give two groups of one "
                f"dataset and one trainer.monitor."
            )
    for name, side in (("A", a), ("B", b)):
        kinds = {" ".join(f"{k}={v}" for k, v in sorted(settings(r).items())) or "(defaults)" for r in side}
        keys = [repeat_key(r) for r in side]
        if len(kinds) > 1 or len(set(keys)) < len(keys):
            raise RunnerError(
                f"group {name} ({group_a if name == 'A' else group_b}) holds "
                + (
                    f"runs of {len(kinds)} settings ({'; '.join(sorted(kinds))})"
                    if len(kinds) > 1
                    else "two runs of one seed"
                )
                + ": a verdict compares one setting's repeats with another's. Give each group one setting's runs, one "
                "per seed or fold (a glob of its job directories, or a directory holding only them)."
            )
    by_a, by_b = ({repeat_key(r): r["best"] for r in side} for side in (a, b))
    verdict = paired(by_a, by_b)
    if verdict is None:
        raise RunnerError(
            f"the two groups share fewer than 2 seeds or folds with a completed run (A: {' | '.join(by_a) or 'none'}; "
            f"B: {' | '.join(by_b) or 'none'}), and a paired verdict needs at least 2. Run both settings over the same "
            f"seeds, e.g. runner train -m seed=0,1,2,3,4 optimizer.lr=0.01,0.001."
        )
    repeats = "folds" if any("fold" in k for k in verdict.keys) else "seeds"
    setting_a, setting_b = settings(a[0]), settings(b[0])
    return {
        "a": group_a,
        "b": group_b,
        "monitor": a[0]["monitor"],
        "config": [
            {"key": k, "a": setting_a.get(k, MISSING), "b": setting_b.get(k, MISSING)}
            for k in sorted(setting_a.keys() | setting_b.keys())
            if setting_a.get(k) != setting_b.get(k)
        ],
        "spread": {name: vars(spread([r["best"] for r in side]) or {}) for name, side in (("A", a), ("B", b))},
        "pairs": [
            {"repeat": k, "a": by_a[k], "b": by_b[k], "b_minus_a": d} for k, d in zip(verdict.keys, verdict.differences)
        ],
        "verdict": {**vars(verdict), "sentence": worded(verdict, mode=a[0]["mode"], repeats=repeats)},
    }


def _group_main(group_a: str, group_b: str, fmt: str) -> int:
    try:
        result = compare_groups(group_a, group_b)
    except RunnerError as err:
        print(f"runner diff: {err}", file=sys.stderr)
        return 2
    if fmt == "json":
        print(json.dumps(strict_json(result), indent=2, default=str, allow_nan=False))
        return 0
    lines = [f"A: {group_a}", f"B: {group_b}"]
    lines += [f"{c['key']}: A {c['a']}, B {c['b']}" for c in result["config"]] or ["settings: the same overrides"]
    for name, s in result["spread"].items():
        interval = f" [{s['low']:.4g}, {s['high']:.4g}] (95 % t-interval)" if s.get("low") is not None else ""
        std = f" ± {s['std']:.2g}" if s.get("std") is not None else ""
        lines.append(f"{name}: best {result['monitor']} {s['mean']:.4g}{std}{interval}, n={s['n']}")
    header = ["repeat", "A", "B", "B - A"]
    table = [[p["repeat"], _fmt(p["a"]), _fmt(p["b"]), _fmt(p["b_minus_a"])] for p in result["pairs"]]
    sentence = result["verdict"]["sentence"]
    if fmt == "markdown":
        sys.stdout.write("  \n".join(lines) + "\n\n" + markdown_table(header, table) + "\n" + sentence + "\n")
    else:
        print("\n".join(lines))
        print("\n".join("  ".join(f"{c:>10}" for c in row) for row in [header, *table]))
        print(sentence)
    return 0
