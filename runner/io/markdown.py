"""Markdown tables, for `runner report`, `runner diff` and TensorBoard's text tab."""


def markdown_table(header, rows):
    """A GitHub-flavoured Markdown table of `header` (N cells) and `rows` (each N cells, any values, written with
    str()); a `|` inside a cell is escaped. Ends with a newline."""

    def line(cells):
        return "| " + " | ".join(str(c).replace("|", "\\|") for c in cells) + " |"

    return "\n".join([line(header), "|" + "---|" * len(header), *map(line, rows)]) + "\n"
