"""Tables as text: Markdown, for `runner report`, `runner diff` and TensorBoard's text tab; CSV, for `runner report`."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping, Sequence


def markdown_table(header: Sequence[object], rows: Iterable[Sequence[object]]) -> str:
    """A GitHub-flavoured Markdown table of `header` (N cells) and `rows` (each N cells, any values, written with
    str()); a `|` inside a cell is escaped. Ends with a newline."""

    def line(cells: Iterable[object]) -> str:
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


def csv_table(rows: Iterable[Mapping[str, object]], columns: Sequence[str]) -> str:
    """CSV text of `rows` (dicts) under the header `columns`, in that order; keys not in `columns` are left out, a
    missing one is an empty cell (csv.DictWriter)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
