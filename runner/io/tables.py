"""Tables as text: Markdown, for `runner report`, `runner diff` and TensorBoard's text tab; CSV, for `runner report`."""

import csv
import io


def markdown_table(header, rows):
    """A GitHub-flavoured Markdown table of `header` (N cells) and `rows` (each N cells, any values, written with
    str()); a `|` inside a cell is escaped. Ends with a newline."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"


def csv_table(rows, columns):
    """CSV text of `rows` (dicts) under the header `columns`, in that order; keys not in `columns` are left out, a
    missing one is an empty cell (csv.DictWriter)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=columns, extrasaction="ignore")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()
