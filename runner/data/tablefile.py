"""Reading a table's file as people have it: a CSV (any of the usual separators, quoted headers) or Parquet file.

    runner train dataset=csv dataset.path=votes.txt dataset.target=vote               # separator found from the header
    runner train dataset=csv dataset.path=votes.txt dataset.target=vote dataset.sep=:   # or given, as pandas' sep

A column's cells become numbers or text here (numeric_or_text), one kind per column for the whole file; what is learned
from them is data/table.py's. Column names appear in messages as repr(), so that a space or a quote in one is seen.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from runner.io.errors import RunnerError, one_line

if TYPE_CHECKING:
    import pandas as pd

# a text column whose non-missing values are at least this share numbers is a numeric column
NUMERIC_SHARE = 0.9
# the separators a header line is searched for, in this order; none of them: runs of whitespace (pandas' r"\s+")
SEPARATORS = (",", ";", "\t", "|")
WHITESPACE = r"\s+"


def column_list(columns: Iterable[Any]) -> str:
    """Column names as a message shows them: each one's repr, so that 'vote' and vote, or a trailing space, differ."""
    return ", ".join(repr(str(c)) for c in columns)


def read_table(path: str | Path, what: str = "dataset.path", sep: str | None = None) -> pd.DataFrame:
    """A CSV (pandas.read_csv) or Parquet (pandas.read_parquet, which needs pyarrow) file as a DataFrame with at
    least one row, indexed 0..N-1 in file order; `sep` is pandas' separator, None: found from the header line
    (separator()). Column names are stripped of spaces and of the quotes around a quoted name ('vote' is vote).
    RunnerError naming the file for a missing, empty, header-only or unreadable file, and for Parquet without
    pyarrow."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise RunnerError(f"{what}={path} names no file. Give the path of a .csv or .parquet file.")
    if parquet(path):
        frame = _read_parquet(path, what)
    else:
        sep = separator(path) if sep is None else sep
        # a separator of several characters is a regular expression, which only pandas' python engine reads
        options = {"engine": "python"} if len(sep) > 1 and sep != WHITESPACE else {"skipinitialspace": True}
        try:
            frame = cast("pd.DataFrame", pd.read_csv(path, sep=sep, **options))
        except pd.errors.EmptyDataError:
            raise RunnerError(
                f"{what}={path} is empty: a table needs a header row of column names, then one row per sample."
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError, ValueError) as err:
            raise RunnerError(
                f"{what}={path} cannot be read as CSV with the separator {sep!r} ({one_line(err, 160)}). Save it as "
                f"UTF-8 text with a header row, or give its separator: {sep_override(None)} (pandas' sep, the "
                f"character between a row's cells)."
            ) from None
    frame.columns = [_unquoted(str(c)) for c in frame.columns]
    if frame.empty:
        raise RunnerError(
            f"{what}={path} has a header ({column_list(frame.columns[:8])}) but no rows: nothing to learn from."
        )
    return frame.reset_index(drop=True)  # a Parquet file's saved index is not a row number


def _read_parquet(path: Path, what: str) -> pd.DataFrame:
    import pandas as pd

    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise RunnerError(
            f"{what}={path} is a Parquet file, and reading Parquet needs pyarrow, which is not installed: pip "
            f"install 'runner[parquet]' (or pip install pyarrow), or save the table as CSV."
        ) from None
    try:
        return pd.read_parquet(path)
    except Exception as err:  # pyarrow's ArrowInvalid, OSError: not a Parquet file
        raise RunnerError(f"{what}={path} cannot be read as Parquet ({one_line(err, 160)}).") from None


def _unquoted(name: str) -> str:
    """A header cell as its name: spaces around it and one pair of quotes around that gone ('vote', "vote")."""
    name = name.strip()
    if len(name) >= 2 and name[0] == name[-1] and name[0] in "'\"":
        name = name[1:-1].strip()
    return name


def separator(path: Path) -> str:
    """The separator of a CSV file, from its first non-blank line: the first of SEPARATORS it holds (a comma; a
    semicolon, as Excel saves CSV in much of Europe; a tab; a bar), else runs of whitespace where the line has
    several words, else a comma (a table of one column)."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = next((line for line in f if line.strip()), "")
    found = next((s for s in SEPARATORS if s in header), None)
    if found:
        return found
    return WHITESPACE if len(header.split()) > 1 else ","


# the characters Hydra's override grammar reads bare as a value (dataset.sep=:); any other is given quoted
HYDRA_BARE = set(":|-./@$%*?+\\")


def sep_override(name: str | None) -> str:
    """The dataset.sep override, as a shell passes it to Hydra, for the separator a column name read whole shows: its
    first character that is neither a letter, digit, underscore nor space ('age:party:vote' -> dataset.sep=:).
    dataset.sep=CHAR where it shows none (or no name is given)."""
    import shlex

    found = next((c for c in name or "" if not (c.isalnum() or c in "_ ")), None)
    if found is None:
        return "dataset.sep=CHAR"
    # Hydra reads a quoted value whole: "#" (a double quote itself in single ones)
    quoted = f'"{found}"' if found != '"' else f"'{found}'"
    return shlex.quote(f"dataset.sep={found if found in HYDRA_BARE else quoted}")


def parquet(path: str | Path) -> bool:
    return Path(path).suffix.lower() in (".parquet", ".pq")


def row_name(path: str | Path, label: int) -> str:
    """Where row `label` (0-based, in file order) of a table is: its line in a CSV (the header is line 1)."""
    return f"row {label + 1}" if parquet(path) else f"line {label + 2} (row {label + 1})"


def numeric_or_text(frame: pd.DataFrame, name: str, path: str | Path) -> pd.Series:
    """The column `name` as numbers (float64 with NaN for missing) or as text (str, None for missing). Booleans are
    numbers (0/1). A column whose values are nearly all numbers is refused at the first value that is not, and at
    an infinity, naming its line; one that mixes numbers and text more evenly is refused as mixed."""
    import pandas as pd

    column = frame[name]
    present = column.dropna()
    if pd.api.types.is_bool_dtype(column) or (len(present) and present.map(lambda v: type(v) is bool).all()):
        return column.map(lambda v: float(v) if isinstance(v, bool) else np.nan).astype(float)
    if pd.api.types.is_numeric_dtype(column):
        return _finite(column.astype(float), name, path)
    present = present.astype(str).str.strip()
    numbers = pd.to_numeric(present, errors="coerce")
    bad = present[numbers.isna() & (present != "")]
    if bad.empty:
        values = pd.to_numeric(column.astype(str).str.strip().replace("", None), errors="coerce").astype(float)
        return _finite(values.where(column.notna()), name, path)
    share = 1 - len(bad) / max(1, len(present))
    if share >= NUMERIC_SHARE:
        raise RunnerError(
            f"{path}: column {name!r} holds numbers, but {row_name(path, bad.index[0])} has '{bad.iloc[0]}'. Fix or "
            f"empty that cell (an empty cell is a missing value)."
        )
    if share > 0:
        example = present[numbers.notna()].iloc[0]
        raise RunnerError(
            f"{path}: column {name!r} mixes numbers (e.g. '{example}') and text (e.g. '{bad.iloc[0]}'). Make it one "
            f"or the other; to read it as categories, write every value as text (e.g. 'n{example}')."
        )
    return column.map(lambda v: None if pd.isna(v) else str(v).strip())


def row_numbers(values: Any) -> bool:
    """Whether a numeric column is 0, 1, 2, ... (or 1, 2, 3, ...) in file order: an index saved with the table.
    Compared with the rows' own labels (read_table's 0..N-1 in file order), not with 0..len-1, so that rows left out
    before (dataset.missing_target=drop) leave the same gaps in both."""
    x, rows = values.to_numpy(), values.index.to_numpy()
    if len(x) <= 2 or np.isnan(x).any():
        return False
    return np.array_equal(x, rows) or np.array_equal(x, rows + 1)


def _finite(values: pd.Series, name: str, path: str | Path) -> pd.Series:
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        label = values.index[int(np.flatnonzero(infinite)[0])]
        raise RunnerError(
            f"{path}: column {name!r} has an infinite value at {row_name(path, label)}. Give a number there, or "
            f"empty the cell (a missing value, filled from the training split)."
        )
    return values
