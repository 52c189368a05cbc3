"""A table's feature columns as numbers: what data/table.py's training split teaches, kept as plain data.

    encoder, left_out = TableEncoder.fit(columns, train_rows, path)   # learned from the training split only
    x = encoder.encode(frame, path)                                    # any file of the same kind, alike

The rules (medians and flags, one-hot with `<other>`, the columns left out) are data/table.py's docstring's.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from runner.data.splits import label_text
from runner.data.tablefile import column_list, numeric_or_text, row_name, row_numbers
from runner.io.errors import RunnerError

if TYPE_CHECKING:
    import pandas as pd

OTHER = "<other>"  # the column of categories the training split did not have
# free text (a description, a name): a text column with more than FREE_TEXT_MIN distinct values that make up at least
# FREE_TEXT_SHARE of its training rows; one-hot, it would be a column per row that no other split shares
FREE_TEXT_MIN = 20
FREE_TEXT_SHARE = 0.5


@dataclass
class Column:
    """One feature column and what the training split taught about it."""

    name: str
    # numeric or categorical
    kind: str
    # numeric: the training split's median, for missing values
    fill: float | None = None
    # numeric: a 0/1 `<name>_missing` column follows
    indicator: bool = False
    # categorical: the training split's, sorted
    categories: list[str] = field(default_factory=list)

    def outputs(self) -> list[str]:
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name}_missing"] if self.indicator else [])
        return [f"{self.name}={c}" for c in self.categories] + [f"{self.name}={OTHER}"]


@dataclass
class TableEncoder:
    """Raw feature columns -> float32 features, as learned from a training split (see the module's docstring)."""

    columns: list[Column]
    # impute or refuse
    missing: str = "impute"

    @classmethod
    def fit(
        cls, columns: dict[str, pd.Series], rows: pd.Index, path: Path, missing: str = "impute"
    ) -> tuple[TableEncoder, list[str]]:
        """Learn from the training split's `rows` (index labels) of `columns` ({name: the whole file's column as
        numeric_or_text read it}, so a column has one kind and a row one number, whichever split it falls in);
        (encoder, notes): notes name the columns left out."""
        import pandas as pd

        kept, notes = [], []
        for name, whole in columns.items():
            if missing == "refuse" and whole.isna().any():
                label = whole.index[int(np.flatnonzero(whole.isna().to_numpy())[0])]
                raise RunnerError(
                    f"{path}: column {name!r} has a missing value at {row_name(path, label)}, and "
                    f"dataset.missing=refuse. Fill it, or set dataset.missing=impute (the training split's median or"
                    f" an own category, flagged)."
                )
            values = whole.loc[rows]
            present = values.dropna()
            distinct = present.nunique()
            if distinct <= 1:
                notes.append(f"{name!r} (the same value in every row)")
                continue
            text = not pd.api.types.is_numeric_dtype(whole)
            if not text and row_numbers(whole):
                notes.append(f"{name!r} (the row numbers, as pandas writes its index)")
                continue
            if text and distinct == len(values) and len(values) > 1:
                notes.append(f"{name!r} (a different text in every row, as an ID)")
                continue
            if text and distinct > FREE_TEXT_MIN and distinct >= FREE_TEXT_SHARE * len(present):
                notes.append(f"{name!r} (free text: {distinct} different values in {len(present)} training rows)")
                continue
            if text:
                kept.append(Column(name, "categorical", categories=sorted(present.unique().tolist())))
            else:
                median = float(present.median())
                kept.append(Column(name, "numeric", fill=median, indicator=bool(values.isna().any())))
        if not kept:
            raise RunnerError(
                f"{path}: no feature column is left to learn from ({'; '.join(notes) or 'none given'}). Give columns "
                f"that vary: dataset.features=[...]."
            )
        return cls(kept, missing), notes

    def names(self) -> list[str]:
        """The encoded features' names, in order (the model card's feature names)."""
        return [out for column in self.columns for out in column.outputs()]

    def encode(self, frame: pd.DataFrame, path: str | Path) -> np.ndarray:
        """The columns of `frame` (a DataFrame with at least this encoder's columns, in any order) as a float32 array
        (N, len(names())). Unseen categories and missing text go to `<column>=<other>`."""
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise RunnerError(
                f"{path} lacks the column{'s' if len(missing) > 1 else ''} {column_list(missing)}, which the model was "
                f"trained on. Give a table with every feature column: {column_list(c.name for c in self.columns)}."
            )
        import pandas as pd

        parts = []
        for column in self.columns:
            if column.kind == "numeric":
                values = numeric_or_text(frame, column.name, path)
                if not pd.api.types.is_numeric_dtype(values):
                    raise RunnerError(
                        f"{path}: column {column.name!r} holds text, and the model was trained on numbers in it."
                    )
                x = values.to_numpy(dtype=np.float64)
                gaps = np.isnan(x)
                if gaps.any() and self.missing == "refuse":
                    label = values.index[int(np.flatnonzero(gaps)[0])]
                    raise RunnerError(
                        f"{path}: column {column.name!r} has a missing value at {row_name(path, label)}, and this run "
                        f"refuses missing values (dataset.missing=refuse). Fill it."
                    )
                parts.append(np.where(gaps, cast(float, column.fill), x)[:, None])
                if column.indicator:
                    parts.append(gaps[:, None].astype(np.float64))
            else:  # as text, whatever pandas made of this file's cells (1.0 for 1 when a cell is empty)
                text = frame[column.name].map(lambda v: None if pd.isna(v) else label_text(v).strip()).to_numpy(object)
                known = {c: i for i, c in enumerate(column.categories)}
                index = np.array([known.get(v, len(known)) for v in text])
                parts.append(np.eye(len(known) + 1)[index])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {"columns": [asdict(c) for c in self.columns], "missing": self.missing, "other": OTHER}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TableEncoder:
        return cls([Column(**c) for c in data["columns"]], data.get("missing", "impute"))
