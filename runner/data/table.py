"""Your own table: a CSV or Parquet file of feature columns and a target column, read by pandas.

What is learned from the data is learned from the training split only and kept as plain data (TableEncoder.to_dict),
so that `runner predict` on a raw file of the same kind applies exactly the same transformation:

- numeric columns: missing values filled with the training split's median, and a 0/1 `<column>_missing` column
  after it when the training split had any missing (scikit-learn's SimpleImputer(strategy="median",
  add_indicator=True)); `dataset.missing=refuse` refuses missing values instead, naming the column and row;
- text columns (categorical): one 0/1 column per category the training split has (sorted), and one more,
  `<column>=<other>`, for a category it did not have (and for a missing value);
- constant columns and ID-like text columns (every value distinct) carry nothing a model can learn from: left out, and
  the log says so.

Standardisation is not done here: the run's normaliser (data.batches.Normalizer) scales every encoded column by the
training split's mean and std, as it does for any features, and the model card records them.
"""

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from runner.data.splits import (
    Split,
    Splits,
    class_index,
    class_order,
    holdout_rows,
    label_text,
    stratified_holdouts,
    target_scale_of,
    unknown_classes,
)
from runner.io.errors import RunnerError
from runner.io.files import check_data_sha256, data_sha256

OTHER = "<other>"  # the column of categories the training split did not have
NUMERIC_SHARE = 0.9  # a text column whose non-missing values are at least this share numbers is a numeric column
CLASSIFICATION_MAX_CLASSES = 20  # integer targets with at most this many distinct values are class labels


def read_table(path, what="dataset.path"):
    """A CSV (pandas.read_csv) or Parquet (pandas.read_parquet, which needs pyarrow) file as a DataFrame with at
    least one row, indexed 0..N-1 in file order; RunnerError naming the file for a missing, empty, header-only or
    unreadable file, and for Parquet without pyarrow."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise RunnerError(f"{what}={path} names no file. Give the path of a .csv or .parquet file.")
    if _parquet(path):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RunnerError(
                f"{what}={path} is a Parquet file, and reading Parquet needs pyarrow, which is not installed: pip "
                f"install 'runner[parquet]' (or pip install pyarrow), or save the table as CSV."
            ) from None
        try:
            frame = pd.read_parquet(path)
        except Exception as err:  # pyarrow's ArrowInvalid, OSError: not a Parquet file
            raise RunnerError(f"{what}={path} cannot be read as Parquet ({_one_line(err)}).") from None
    else:
        try:
            frame = pd.read_csv(path, skipinitialspace=True, sep=_separator(path))
        except pd.errors.EmptyDataError:
            raise RunnerError(
                f"{what}={path} is empty: a table needs a header row of column names, then one row per sample."
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise RunnerError(
                f"{what}={path} cannot be read as CSV ({_one_line(err)}). Save it as comma-separated UTF-8 text with "
                f"a header row."
            ) from None
    if frame.empty:
        raise RunnerError(
            f"{what}={path} has a header ({', '.join(map(str, frame.columns[:8]))}) but no rows: nothing to learn from."
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.reset_index(drop=True)  # a Parquet file's saved index is not a row number


def _separator(path):
    """',' unless the header line has none and has semicolons (a CSV saved by Excel in much of Europe) or tabs."""
    with open(path, encoding="utf-8", errors="replace") as f:
        header = f.readline()
    if "," in header:
        return ","
    return ";" if ";" in header else "\t" if "\t" in header else ","


def _parquet(path):
    return Path(path).suffix.lower() in (".parquet", ".pq")


def _one_line(err):
    return " ".join(str(err).split())[:160]


def row_name(path, label):
    """Where row `label` (0-based, in file order) of a table is: its line in a CSV (the header is line 1)."""
    return f"row {label + 1}" if _parquet(path) else f"line {label + 2} (row {label + 1})"


def numeric_or_text(frame, name, path):
    """The column `name` as numbers (float64 with NaN for missing) or as text (str, None for missing). Booleans are
    numbers (0/1). A column whose values are nearly all numbers is refused at the first value that is not, and at
    an infinity, naming its line; one that mixes numbers and text more evenly is refused as mixed."""
    import pandas as pd

    column = frame[name]
    present = column.dropna()
    if pd.api.types.is_bool_dtype(column) or (len(present) and present.map(type).eq(bool).all()):
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
            f"{path}: column {name} holds numbers, but {row_name(path, bad.index[0])} has '{bad.iloc[0]}'. Fix or "
            f"empty that cell (an empty cell is a missing value)."
        )
    if share > 0:
        example = present[numbers.notna()].iloc[0]
        raise RunnerError(
            f"{path}: column {name} mixes numbers (e.g. '{example}') and text (e.g. '{bad.iloc[0]}'). Make it one "
            f"or the other; to read it as categories, write every value as text (e.g. 'n{example}')."
        )
    return column.map(lambda v: None if pd.isna(v) else str(v).strip())


def _row_numbers(values):
    """Whether a numeric column is 0, 1, 2, ... (or 1, 2, 3, ...) in file order: an index saved with the table."""
    x = values.to_numpy()
    return len(x) > 2 and not np.isnan(x).any() and (np.array_equal(x, np.arange(len(x))) or
                                                     np.array_equal(x, np.arange(1, len(x) + 1)))  # fmt: skip


def _finite(values, name, path):
    infinite = np.isinf(values.to_numpy())
    if infinite.any():
        label = values.index[int(np.flatnonzero(infinite)[0])]
        raise RunnerError(
            f"{path}: column {name} has an infinite value at {row_name(path, label)}. Give a number there, or empty "
            f"the cell (a missing value, filled from the training split)."
        )
    return values


@dataclass
class Column:
    """One feature column and what the training split taught about it."""

    name: str
    kind: str  # numeric or categorical
    fill: object = None  # numeric: the training split's median, for missing values
    indicator: bool = False  # numeric: a 0/1 `<name>_missing` column follows
    categories: list = field(default_factory=list)  # categorical: the training split's, sorted

    def outputs(self):
        if self.kind == "numeric":
            return [self.name] + ([f"{self.name}_missing"] if self.indicator else [])
        return [f"{self.name}={c}" for c in self.categories] + [f"{self.name}={OTHER}"]


@dataclass
class TableEncoder:
    """Raw feature columns -> float32 features, as learned from a training split (see the module's docstring)."""

    columns: list  # of Column
    missing: str = "impute"  # or refuse

    @classmethod
    def fit(cls, columns, rows, path, missing="impute"):
        """Learn from the training split's `rows` (index labels) of `columns` ({name: the whole file's column as
        numeric_or_text read it}, so a column has one kind and a row one number, whichever split it falls in);
        (encoder, notes): notes name the columns left out."""
        import pandas as pd

        kept, notes = [], []
        for name, whole in columns.items():
            if missing == "refuse" and whole.isna().any():
                label = whole.index[int(np.flatnonzero(whole.isna().to_numpy())[0])]
                raise RunnerError(
                    f"{path}: column {name} has a missing value at {row_name(path, label)}, and "
                    f"dataset.missing=refuse. Fill it, or set dataset.missing=impute (the training split's median or"
                    f" an own category, flagged)."
                )
            values = whole.loc[rows]
            present = values.dropna()
            if present.nunique() <= 1:
                notes.append(f"{name} (the same value in every row)")
                continue
            text = not pd.api.types.is_numeric_dtype(whole)
            if not text and _row_numbers(whole):
                notes.append(f"{name} (the row numbers, as pandas writes its index)")
                continue
            if text and present.nunique() == len(values) and len(values) > 1:
                notes.append(f"{name} (a different text in every row, as an ID)")
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

    def names(self):
        """The encoded features' names, in order (the model card's feature names)."""
        return [out for column in self.columns for out in column.outputs()]

    def encode(self, frame, path):
        """The columns of `frame` (a DataFrame with at least this encoder's columns, in any order) as a float32 array
        (N, len(names())). Unseen categories and missing text go to `<column>=<other>`."""
        missing = [c.name for c in self.columns if c.name not in frame.columns]
        if missing:
            raise RunnerError(
                f"{path} lacks the column{'s' if len(missing) > 1 else ''} {', '.join(missing)}, which the model was "
                f"trained on. Give a table with every feature column: {', '.join(c.name for c in self.columns)}."
            )
        import pandas as pd

        parts = []
        for column in self.columns:
            if column.kind == "numeric":
                values = numeric_or_text(frame, column.name, path)
                if not pd.api.types.is_numeric_dtype(values):
                    raise RunnerError(
                        f"{path}: column {column.name} holds text, and the model was trained on numbers in it."
                    )
                x = values.to_numpy(dtype=np.float64)
                gaps = np.isnan(x)
                if gaps.any() and self.missing == "refuse":
                    label = values.index[int(np.flatnonzero(gaps)[0])]
                    raise RunnerError(
                        f"{path}: column {column.name} has a missing value at {row_name(path, label)}, and this run "
                        f"refuses missing values (dataset.missing=refuse). Fill it."
                    )
                parts.append(np.where(gaps, column.fill, x)[:, None])
                if column.indicator:
                    parts.append(gaps[:, None].astype(np.float64))
            else:  # as text, whatever pandas made of this file's cells (1.0 for 1 when a cell is empty)
                text = frame[column.name].map(lambda v: None if pd.isna(v) else label_text(v).strip()).to_numpy(object)
                known = {c: i for i, c in enumerate(column.categories)}
                index = np.array([known.get(v, len(known)) for v in text])
                parts.append(np.eye(len(known) + 1)[index])
        return np.concatenate(parts, axis=1).astype(np.float32)

    def to_dict(self):
        return {"columns": [asdict(c) for c in self.columns], "missing": self.missing, "other": OTHER}

    @classmethod
    def from_dict(cls, data):
        return cls([Column(**c) for c in data["columns"]], data.get("missing", "impute"))


def infer_task(target):
    """classification or regression, from a target column (numbers or text): text, booleans, and integers with at
    most CLASSIFICATION_MAX_CLASSES distinct values are class labels; other numbers a regression target."""
    import pandas as pd

    present = target.dropna()
    if not pd.api.types.is_numeric_dtype(present) or pd.api.types.is_bool_dtype(present):
        return "classification"
    whole = bool((present == present.round()).all())
    return "classification" if whole and present.nunique() <= CLASSIFICATION_MAX_CLASSES else "regression"


@dataclass(frozen=True)
class TableKeys:
    """What a table dataset's plan depends on: its config keys, with the task given (None: read from the target)."""

    path: str = None
    train_path: str = None
    val_path: str = None
    test_path: str = None
    target: str = None
    features: tuple = ()
    task: str = None
    missing: str = "impute"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0

    @classmethod
    def of(cls, dataset, task=None):
        """The keys of a dataset config node (the resolvers') or of the dataset function's keywords (a dict);
        RunnerError for a required key left unset."""
        from omegaconf import OmegaConf

        if (OmegaConf.is_config(dataset) and OmegaConf.is_missing(dataset, "target")) or not dataset.get("target"):
            raise RunnerError(
                "dataset.target must be set: the name of the column to predict, e.g. dataset.target=label."
            )
        get = dataset.get
        features = get("features") or ()
        features = (features,) if isinstance(features, str) else tuple(features)  # dataset.features=alcohol
        return cls(get("path"), get("train_path"), get("val_path"), get("test_path"), get("target"), features, task,
                   get("missing", "impute"), get("val_fraction", 0.1), get("test_fraction", 0.2),
                   get("split_seed", 0))  # fmt: skip


@dataclass(frozen=True)
class Plan:
    """A table read and split: the task, the target's classes (sorted; [] for regression), the encoder learned from
    the training split, each split's rows (DataFrames indexed by their row in their file) and that file."""

    task: str
    classes: list
    encoder: TableEncoder
    parts: dict  # train, val, test -> DataFrame
    files: dict  # train, val, test -> the file its rows are from
    notes: tuple


_PLANS = {}


def plan(keys):
    """The Plan of a table dataset's TableKeys, computed once per process (the config's resolvers and the dataset
    function share it); a task of None is read from the target (infer_task) first, so the resolvers' plan and the
    dataset function's are one. Hold-outs are drawn by scikit-learn's train_test_split, stratified by class for
    classification (data.splits.stratified_holdouts)."""
    if bool(keys.path) == bool(keys.train_path):
        raise RunnerError(
            "a table dataset needs dataset.path (one table, split here) or dataset.train_path (with val_path and "
            "test_path where you have them), and not both. E.g. dataset.path=wine.csv dataset.target=label."
        )
    if keys.missing not in ("impute", "refuse"):
        raise RunnerError(f"dataset.missing={keys.missing}: use impute (fill and flag) or refuse.")
    if keys.task is None:
        first = _first(keys)
        # a target of numbers with a typo in one cell is refused here, naming its line, not read as a class label
        numeric_or_text(first, keys.target, Path(keys.path or keys.train_path))
        keys = replace(keys, task=infer_task(first[keys.target]))
    if keys not in _PLANS:
        _PLANS[keys] = _plan(keys)
    return _PLANS[keys]


def _first(keys):
    """The table of dataset.path (or train_path), its target and features checked."""
    where = "dataset.path" if keys.path else "dataset.train_path"
    first = read_table(keys.path or keys.train_path, where)
    if keys.target not in first.columns:
        raise RunnerError(
            f"{where}: no column named {keys.target!r} (dataset.target). Its columns are: {', '.join(first.columns)}."
        )
    unknown = [f for f in keys.features if f not in first.columns]
    if unknown:
        raise RunnerError(f"{where}: dataset.features names columns it lacks: {', '.join(unknown)}.")
    if keys.target in keys.features:
        raise RunnerError(
            f"dataset.features lists the target column {keys.target}: a model given its own answer learns nothing. "
            f"Leave it out of dataset.features."
        )
    return first


def _targets(frame, keys, path):
    """The target column of one file, checked: no empty cell; numbers for regression."""
    import pandas as pd

    target = frame[keys.target]
    if target.isna().any():
        label = target.index[int(np.flatnonzero(target.isna().to_numpy())[0])]
        raise RunnerError(
            f"{path}: the target column {keys.target} is empty at {row_name(path, label)}. Give every row a target."
        )
    if keys.task == "regression":
        numbers = pd.to_numeric(target, errors="coerce")
        if numbers.isna().any():
            label = target.index[int(np.flatnonzero(numbers.isna().to_numpy())[0])]
            raise RunnerError(
                f"{path}: dataset.task=regression needs numbers in the target column {keys.target}, and "
                f"{row_name(path, label)} has '{target.loc[label]}'. Use dataset.task=classification for labels."
            )
    return target


def _plan(keys):
    if keys.task not in ("classification", "regression"):
        raise RunnerError(f"dataset.task={keys.task}: use classification or regression.")
    where = "dataset.path" if keys.path else "dataset.train_path"
    first, path = _first(keys), Path(keys.path or keys.train_path).expanduser()
    labels = _targets(first, keys, path)
    classes = class_order(labels) if keys.task == "classification" else []
    if keys.task == "classification" and len(classes) < 2:
        raise RunnerError(f"{where}: the target column {keys.target} has one class only; classification needs two.")
    features = list(keys.features) or [c for c in first.columns if c != keys.target]
    files = dict.fromkeys(("train", "val", "test"), path)
    if keys.path:
        rows = stratified_holdouts(class_index(labels, classes), len(first), keys.val_fraction, keys.test_fraction,
                                   keys.split_seed, classes, where)  # fmt: skip
        parts = {name: first.iloc[index] for name, index in rows.items()}
    else:
        parts = {"train": first}
        for name, given, fraction in (("val", keys.val_path, keys.val_fraction),
                                      ("test", keys.test_path, keys.test_fraction)):  # fmt: skip
            if given:
                parts[name], files[name] = read_table(given, f"dataset.{name}_path"), Path(given).expanduser()
                _targets(parts[name], keys, files[name])
                unknown = unknown_classes(parts[name][keys.target], classes) if classes else []
                if unknown:
                    raise RunnerError(
                        f"dataset.{name}_path={given} has classes the training file lacks: {', '.join(unknown[:5])}. "
                        f"The training file's are {', '.join(classes)}."
                    )
            else:
                train = parts["train"]
                rest, held = holdout_rows(len(train), fraction, keys.split_seed, class_index(train[keys.target],
                                          classes), classes, f"dataset.{name}_fraction", where)  # fmt: skip
                parts["train"], parts[name] = train.iloc[rest], train.iloc[held]
    columns = {name: numeric_or_text(first, name, path) for name in features}  # kinds from the whole file
    encoder, dropped = TableEncoder.fit(columns, parts["train"].index, path, keys.missing)
    notes = (_describe(keys, classes, encoder), *((f"table: left out {'; '.join(dropped)}.",) if dropped else ()))
    return Plan(keys.task, classes, encoder, parts, files, notes)


def _describe(keys, classes, encoder):
    """The log's line on what a table was found to be: the task, and each kind of column."""
    shown = ", ".join(classes[:6]) + (", ..." if len(classes) > 6 else "")
    task = f"{len(classes)} classes of {keys.target} ({shown})" if classes else f"regression of {keys.target}"
    numeric = [c for c in encoder.columns if c.kind == "numeric"]
    text = [c for c in encoder.columns if c.kind == "categorical"]
    filled = [c.name for c in numeric if c.indicator]
    parts = [f"{len(numeric)} numeric column{'s' * (len(numeric) != 1)}"] if numeric else []
    if filled:
        parts.append(f"missing values filled and flagged in {', '.join(filled[:4])}{', ...' * (len(filled) > 4)}")
    if text:
        shown = ", ".join(f"{c.name} ({len(c.categories)})" for c in text[:4]) + (", ..." if len(text) > 4 else "")
        parts.append(f"{len(text)} categorical, one-hot with <other>: {shown}")
    return f"table: {task}; {'; '.join(parts)} -> {len(encoder.names())} features"


def table_info(what, dataset):
    """OmegaConf resolver behind a table dataset's task (`${table:task}`: read from the target), feature count
    (`${table:width}`) and num_classes (`${table:num_classes}`, 1 for regression), read from the file by plan() with
    the task the config ends up with (dataset.task, which the user may set)."""
    if what == "task":
        return plan(TableKeys.of(dataset)).task
    if what == "sha256":
        keys = TableKeys.of(dataset)
        return data_sha256(keys.path, keys.train_path, keys.val_path, keys.test_path)
    found = plan(TableKeys.of(dataset, dataset.task))
    if what == "width":
        return len(found.encoder.names())
    if what == "num_classes":
        return len(found.classes) if found.task == "classification" else 1
    raise ValueError(f"table resolver: unknown field {what}")


def table(*, name, task, input_shape, num_classes, target, path=None, train_path=None, val_path=None, test_path=None,
          features=None, missing="impute", val_fraction=0.1, test_fraction=0.2, split_seed=0, sha256=None):  # fmt: skip
    """A table (dataset=csv or dataset=parquet) as Splits of float32 features, encoded as the training split taught
    (TableEncoder), and int64 class indices (in the sorted order of class_names) or float32 targets (N, 1),
    standardised by the training split's mean and std (Splits.target_scale). `sha256`: the files' as the run
    recorded them (dataset.sha256), refused when they differ now."""
    import torch

    check_data_sha256(sha256, path, train_path, val_path, test_path)
    keys = dict(path=path, train_path=train_path, val_path=val_path, test_path=test_path, target=target,
                features=features, missing=missing, val_fraction=val_fraction, test_fraction=test_fraction,
                split_seed=split_seed)  # fmt: skip
    found = plan(TableKeys.of(keys, task))  # the resolvers' plan, read once
    scale = None
    if task == "regression":
        scale = target_scale_of(found.parts["train"][target].to_numpy(dtype=np.float64))
    splits = {}
    for part, frame in found.parts.items():
        x = torch.from_numpy(found.encoder.encode(frame, found.files[part]))
        if task == "classification":
            y = torch.from_numpy(class_index(frame[target], found.classes))
        else:
            values = (frame[target].to_numpy(dtype=np.float64) - scale["mean"][0]) / scale["std"][0]
            y = torch.tensor(values, dtype=torch.float32).unsqueeze(1)
        splits[part] = Split(x, y)
    return Splits(
        splits["train"],
        splits["val"],
        splits["test"],
        class_names=found.classes,
        feature_names=found.encoder.names(),
        notes=list(found.notes),
        table={**found.encoder.to_dict(), "target": target, "classes": found.classes},
        target_scale=scale,
    )
