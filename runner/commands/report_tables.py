"""runner report's output: the rows as a terminal table, CSV or Markdown, a heading per data section, the repeat
groups with their verdicts, and the failed and refused runs apart (report.py reads and sorts the rows).

    runner report 'outputs/2026-12-07/*'                       # the terminal tables (show)
    runner report outputs/multirun/2026-12-07/10-31-07 --format markdown

Nothing here imports torch.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING, Any

from runner.commands.report_sections import (
    apart,
    baseline_line,
    best_row,
    folded,
    not_distinguishable,
    sections,
    test_cell,
    trivial_losers,
    verdicts,
)
from runner.io.tables import csv_table, markdown_table
from runner.sweeps.repeats import (
    aggregate,
    groups_to_markdown,
    groups_to_table,
    marks,
    repeat_groups,
    repeats_word,
)

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table

Row = dict[str, Any]

COLUMNS = [
    "job",
    "chosen",
    "overrides",
    "status",
    "monitor",
    "best",
    "best_epoch",
    "final_val_loss",
    "test",
    "test_low",
    "test_high",
    "epochs",
    "time_s",
    "error",
    "retries",
    "data",
    "run_dir",
]


def groups(rows: Iterable[Row]) -> list[tuple[str, list[Row]]]:
    """[(monitor, its rows)], in the order sort_rows put them."""
    out: dict[str, list[Row]] = {}
    for row in rows:
        out.setdefault(row["monitor"], []).append(row)
    return list(out.items())


def _fmt(value: object) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def to_csv(rows: Iterable[Row]) -> str:
    return csv_table(rows, COLUMNS)


def to_markdown(rows: Sequence[Row]) -> str:
    """One Markdown table of the rows, each section's best starred as summary.csv's `chosen` says (a section whose
    best is not distinguishable from others marks them ~)."""
    cols = [c for c in COLUMNS if c not in ("run_dir", "chosen", "data", "test_low", "test_high")]
    table = []
    for row in rows:
        cells = [_fmt(row.get(c)) for c in cols]
        cells[cols.index("test")] = test_cell(row)
        mark = row.get("chosen") or ""
        if mark.startswith("best"):
            cells[0] = f"**{cells[0]}** (best)" if mark == "best" else f"**{cells[0]}** (best ~)"
        elif mark:
            cells[0] = f"{cells[0]} (~)"
        table.append(cells)
    return markdown_table(cols, table)


def markdown_sections(rows: list[Row], group_by: list[str] | None = None, no_group: bool = False) -> str:
    """--format markdown: each data section's table (or its repeat groups, with their verdicts) under a heading where
    there are several; the failed and refused runs after them."""
    parts = sections(rows)
    out = []
    for label, part in parts:
        grouped = grouping(part, group_by, no_group)
        if len(parts) > 1:
            out.append(f"### {label}\n\n")
        out.append(groups_to_markdown(grouped) if grouped else to_markdown(part))
        if grouped:
            out += [f"\n{sentence}\n" for sentence in verdicts(grouped, repeats_word(grouped))]
    failed = apart(rows)
    if failed:
        out.append("\n### Failed or refused (not ranked)\n\n" + to_markdown(failed))
    return "\n".join(out)


def _differing(rows: Sequence[Row]) -> list[str]:
    """Each row's overrides, keeping only those that are not the same in every row."""
    sets = [set(r["overrides"].split()) for r in rows]
    common = set.intersection(*sets) if len(sets) > 1 else set()
    return [" ".join(o for o in r["overrides"].split() if o not in common) for r in rows]


def to_tables(rows: list[Row], title: str) -> list[Table]:
    """One table per monitored metric: a val_mae and a val_accuracy are not ranked in one column."""
    parts = groups(rows)
    if len(parts) == 1:
        return [to_table(rows, title)]
    return [
        to_table(
            group,
            f"{len(group)} of {len(rows)} runs, monitored on {monitor} and ranked only against each other, best first",
        )
        for monitor, group in parts
    ]


def to_table(rows: Sequence[Row], title: str) -> Table:
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=title, title_justify="left")
    test_name = rows[0]["test_metric"] or "test"
    for col in ("", "job", "overrides", "status", f"best {rows[0]['monitor']}", "epoch", test_name, "time (s)"):
        table.add_column(col, overflow="fold")
    for row, overrides in zip(rows, _differing(rows)):
        chosen_ = row.get("chosen") or ""
        mark = "*" if chosen_ == "best" else "~" if chosen_ else ""
        error = row["error"] if len(row["error"] or "") <= 80 else row["error"][:79] + "…"
        # [..] is not markup
        status = row["status"] if not row["error"] else escape(f"{row['status']}: {error}")
        table.add_row(
            mark,
            row["job"],
            overrides,
            status,
            _fmt(row["best"]),
            _fmt(row["best_epoch"]),
            test_cell(row),
            _fmt(row["time_s"] and round(row["time_s"], 1)),
        )
    return table


def grouping(rows: list[Row], group_by: list[str] | None, no_group: bool) -> list[dict[str, Any]] | None:
    """The repeat groups the report shows: none with --no-group, by the chosen keys with --group-by, else the runs
    that differ only in seed or fold (None where none do)."""
    return None if no_group else aggregate(rows, group_by) if group_by else repeat_groups(rows)


def show(rows: list[Row], *, group_by: list[str] | None = None, no_group: bool = False, jobs: str = "") -> None:
    """The report on the terminal: a heading per data section with its baselines, its runs best first (or its
    repeat groups, with a verdict per pair of settings that differ in one key), what is not distinguishable from the
    best; then the failed and refused runs, apart. `jobs`: a sweep's title, which lists its jobs and groups both."""
    from rich.markup import escape

    term = console()
    parts = sections(rows)
    for label, part in parts:
        if len(parts) > 1 or label:
            term.print(
                f"\n[bold]{escape(label or 'data not recorded')}[/]: {len(part)} run{'s' * (len(part) != 1)}, "
                "ranked among themselves"
            )
        line = baseline_line(part)
        if line:
            term.print(line)
        losers = trivial_losers(part)
        if losers:
            jobs_ = ", ".join(r["job"] for r in losers)
            term.print(f"[red]does not beat the trivial baseline[/] on its test figure: {escape(jobs_)}")
        grouped = grouping(part, group_by, no_group)
        if jobs or not grouped:
            for table in to_tables(part, jobs or f"{len(part)} runs, best first"):
                term.print(table)
            for sentence in _ties(part):
                term.print(sentence)
        if grouped:
            word = repeats_word(grouped)
            term.print(
                groups_to_table(
                    grouped,
                    f"{len(part)} runs in {len(grouped)} settings x {word}: mean ± sample std [95 % t-interval] over "
                    f"the completed runs, best first{'' if jobs else ' (--no-group lists the runs)'}",
                )
            )
            for sentence in verdicts(grouped, word):
                term.print(escape(sentence))
            tied = [g["group"] for g, mark in zip(grouped, marks(grouped)) if mark == "~"]
            if tied:
                term.print(f"not distinguishable (their 95 % intervals overlap; no star): {escape(', '.join(tied))}")
    failed = apart(rows)
    if failed:
        term.print(f"\n[red]{len(failed)} failed or refused[/] (not ranked):")
        for row in failed:
            term.print(escape(f"  {row['run_dir']}: {row['status']}: {row['error'] or '(no error recorded)'}"))


def _ties(rows: list[Row]) -> list[str]:
    """A sentence per monitor of a section whose best run is not distinguishable from others."""
    out = []
    for monitor, part in groups(rows):
        tied = [] if folded(part) else not_distinguishable(part)
        if tied:
            names = ", ".join(f"job {r['job']}" for r in tied)
            out.append(
                f"not distinguishable on {monitor} (Wilson 95 % intervals over {tied[0]['val_samples']} validation "
                f"samples overlap): {names}; the star follows the rule (ties to the lower val_loss), not a difference"
            )
    return out


def print_best(rows: list[Row]) -> int:
    """`--best`: the best run's directory per data section and monitor, one a line; for the jobs of a k-fold
    cross-validation, the directories of the best setting's folds (the repeat group with the best mean)."""
    best: list[Row] = []
    for _, section in sections(rows):
        for _, part in groups(section):
            if folded(part):
                ranked_groups = [g for g in aggregate(part) if g["n"]]
                best += [r for r in ranked_groups[0]["members"] if r["status"] == "completed"] if ranked_groups else []
            elif (row := best_row(part)) is not None:
                best.append(row)
    if not best:
        print("runner report: no run completed with a finite monitored value: there is no best run.", file=sys.stderr)
        return 1
    for row in best:
        print(row["run_dir"])
    return 0


def console() -> Console:
    from rich.console import Console

    term = Console(highlight=False)
    if not term.is_terminal:
        # a report in a log or a pipe is read later, not squeezed into 80 columns
        term.width = 160
    return term
