"""Your own table: a CSV or Parquet file of feature columns and a target column, read by pandas.

What is learned from the data is learned from the training split only and kept as plain data (TableEncoder.to_dict),
so that `runner predict` on a raw file of the same kind applies exactly the same transformation:

- numeric columns: missing values filled with the training split's median, and a 0/1 `<column>_missing` column
  after it when the training split had any missing (scikit-learn's SimpleImputer(strategy="median",
  add_indicator=True)); `dataset.missing=refuse` refuses missing values instead, naming the column and row;
- text columns (categorical): one 0/1 column per category the training split has (sorted), and one more,
  `<column>=<other>`, for a category it did not have (and for a missing value);
- constant columns, ID-like text columns (every value distinct) and free text (a description: more than 20
  distinct values making up at least half the rows) carry nothing a one-hot encoding can learn from: left out, and
  the log names them.

Standardisation is not done here: the run's normaliser (data.batches.Normalizer) scales every encoded column by the
training split's mean and std, as it does for any features (a column constant there, as `<other>` usually is, by 1),
and the model card records them. Reading the file (separators, quoted headers) is data/tablefile.py's; the
encoding itself (TableEncoder) data/encoding.py's.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.data.encoding import TableEncoder
from runner.data.kinds import CSV
from runner.data.splits import (
    Split,
    Splits,
    check_folds,
    class_index,
    class_order,
    folded_holdouts,
    group_codes,
    target_scale_of,
    train_holdouts,
    unknown_classes,
)
from runner.data.tablefile import column_list, numeric_or_text, parquet, read_table, row_name, sep_override
from runner.io.errors import RunnerError
from runner.io.files import check_data_sha256, data_sha256

if TYPE_CHECKING:
    import pandas as pd

# integer targets with at most this many distinct values are class labels
CLASSIFICATION_MAX_CLASSES = 20


def infer_task(target: pd.Series) -> str:
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

    path: str | None = None
    train_path: str | None = None
    val_path: str | None = None
    test_path: str | None = None
    # the column to predict: of() refuses a config without one
    target: str = ""
    features: tuple[str, ...] = ()
    task: str | None = None
    missing: str = "impute"
    val_fraction: float = 0.1
    test_fraction: float = 0.2
    split_seed: int = 0
    sep: str | None = None
    missing_target: str = "refuse"
    # k-fold cross-validation: the number of folds and this job's held-out fold (None: one validation hold-out)
    folds: int | None = None
    fold: int | None = None
    # the column whose value keeps its rows together, in one fold and on one side of every hold-out
    group: str | None = None

    def first_file(self) -> str:
        """dataset.path, or dataset.train_path where the splits are the user's own (plan refuses both or neither)."""
        return self.path or self.train_path or ""

    @classmethod
    def of(cls, dataset: Any, task: str | None = None) -> TableKeys:
        """The keys of a dataset config node (the resolvers') or of the dataset function's keywords (a dict);
        RunnerError for a required key left unset."""
        from omegaconf import OmegaConf

        if (OmegaConf.is_config(dataset) and OmegaConf.is_missing(dataset, "target")) or not dataset.get("target"):
            raise RunnerError(
                "dataset.target must be set: the name of the column to predict, e.g. dataset.target=label."
            )
        get = dataset.get
        features = get("features") or ()
        # one column given bare: dataset.features=alcohol
        features = (features,) if isinstance(features, str) else tuple(features)
        return cls(
            path=get("path"),
            train_path=get("train_path"),
            val_path=get("val_path"),
            test_path=get("test_path"),
            target=get("target"),
            features=features,
            task=task,
            missing=get("missing", "impute"),
            val_fraction=get("val_fraction", 0.1),
            test_fraction=get("test_fraction", 0.2),
            split_seed=get("split_seed", 0),
            sep=get("sep"),
            missing_target=get("missing_target", "refuse"),
            folds=get("folds"),
            fold=get("fold"),
            group=get("group"),
        )


@dataclass(frozen=True)
class Plan:
    """A table read and split: the task, the target's classes (sorted; [] for regression), the encoder learned from
    the training split, each split's rows (DataFrames indexed by their row in their file) and that file."""

    task: str
    classes: list[str]
    encoder: TableEncoder
    # train, val, test -> DataFrame
    parts: dict[str, pd.DataFrame]
    # train, val, test -> the file its rows are from
    files: dict[str, Path]
    notes: tuple[str, ...]


_PLANS: dict[TableKeys, Plan] = {}


def plan(keys: TableKeys) -> Plan:
    """The Plan of a table dataset's TableKeys, computed once per process (the config's resolvers and the dataset
    function share it); a task of None is read from the target (infer_task) first, so the resolvers' plan and the
    dataset function's are one. Hold-outs are drawn by scikit-learn's train_test_split, stratified by class for
    classification (data.splits.folded_holdouts, train_holdouts)."""
    if bool(keys.path) == bool(keys.train_path):
        raise RunnerError(
            "a table dataset needs dataset.path (one table, split here) or dataset.train_path (with val_path and "
            "test_path where you have them), and not both. E.g. dataset.path=wine.csv dataset.target=label."
        )
    if keys.missing not in ("impute", "refuse"):
        raise RunnerError(f"dataset.missing={keys.missing}: use impute (fill and flag) or refuse.")
    check_folds(keys.folds, keys.fold)
    if keys.missing_target not in ("refuse", "drop"):
        raise RunnerError(
            f"dataset.missing_target={keys.missing_target}: use refuse (name the first row whose target is empty) or "
            f"drop (leave those rows out, counted in the log)."
        )
    if keys.task is None:
        first = _first(keys)
        # a target of numbers with a typo in one cell is refused here, naming its line, not read as a class label
        numeric_or_text(first, keys.target, Path(keys.first_file()))
        keys = replace(keys, task=infer_task(first[keys.target]))
    if keys not in _PLANS:
        _PLANS[keys] = _plan(keys)
    return _PLANS[keys]


def _first(keys: TableKeys) -> pd.DataFrame:
    """The table of dataset.path (or train_path), its target and features checked."""
    where = "dataset.path" if keys.path else "dataset.train_path"
    first = read_table(keys.first_file(), where, keys.sep)
    if keys.target not in first.columns:
        # separator() finds , ; tab and | by itself: a file read as one column has another, which its name shows
        lone = f" (one column: is its separator another? {sep_override(first.columns[0])} gives it)"
        one = lone if len(first.columns) == 1 else ""
        raise RunnerError(
            f"{where}: no column named {keys.target!r} (dataset.target). Its columns are: "
            f"{column_list(first.columns)}{one}."
        )
    unknown = [f for f in keys.features if f not in first.columns]
    if unknown:
        raise RunnerError(
            f"{where}: dataset.features names columns it lacks: {column_list(unknown)}. Its columns are: "
            f"{column_list(first.columns)}."
        )
    if keys.group is not None and keys.group not in first.columns:
        raise RunnerError(
            f"{where}: no column named {keys.group!r} (dataset.group). Its columns are: {column_list(first.columns)}."
        )
    if keys.group is not None and keys.group == keys.target:
        raise RunnerError(
            f"dataset.group={keys.group} is the target column: rows are kept together by a column of what they share "
            f"(a patient, a site, a session), not by their class. Name another column, or leave dataset.group out."
        )
    if keys.target in keys.features:
        raise RunnerError(
            f"dataset.features lists the target column {keys.target!r}: a model given its own answer learns nothing. "
            f"Leave it out of dataset.features."
        )
    return first


def _with_targets(frame: pd.DataFrame, keys: TableKeys, path: Path) -> tuple[pd.DataFrame, str | None]:
    """(frame, note): the rows of one file whose target cell is not empty. An empty one is refused, naming its line,
    unless dataset.missing_target=drop, which leaves those rows out and says how many (None: none left out)."""
    empty = frame[keys.target].isna().to_numpy()
    if not empty.any():
        return frame, None
    where = ", ".join(row_name(path, label).split(" (")[0] for label in frame.index[empty][:3])
    more = f", ... ({int(empty.sum())} rows)" if empty.sum() > 3 else ""
    if keys.missing_target != "drop":
        raise RunnerError(
            f"{path}: the target column {keys.target!r} is empty at {where}{more}. Give every row a target, or leave "
            f"those rows out with dataset.missing_target=drop."
        )
    count = f"{int(empty.sum())} of {len(frame)} rows of {path.name}"
    return frame[
        ~empty
    ], f"table: left out {count} whose {keys.target!r} is empty ({where}{more}; dataset.missing_target=drop)."


def _targets(frame: pd.DataFrame, keys: TableKeys, path: Path) -> pd.Series:
    """The target column of one file (its empty cells dropped or refused first), checked: numbers for regression."""
    import pandas as pd

    target = frame[keys.target]
    if keys.task == "regression":
        numbers = pd.to_numeric(target, errors="coerce")
        if numbers.isna().any():
            label = target.index[int(np.flatnonzero(numbers.isna().to_numpy())[0])]
            raise RunnerError(
                f"{path}: dataset.task=regression needs numbers in the target column {keys.target!r}, and "
                f"{row_name(path, label)} has '{target.loc[label]}'. Use dataset.task=classification for labels."
            )
    return target


def _plan(keys: TableKeys) -> Plan:
    if keys.task not in ("classification", "regression"):
        raise RunnerError(f"dataset.task={keys.task}: use classification or regression.")
    where = "dataset.path" if keys.path else "dataset.train_path"
    path = Path(keys.first_file()).expanduser()
    first, dropped = _with_targets(_first(keys), keys, path)
    labels, left_out = _targets(first, keys, path), [dropped] if dropped else []
    classes = class_order(labels) if keys.task == "classification" else []
    if keys.task == "classification" and len(classes) < 2:
        raise RunnerError(f"{where}: the target column {keys.target!r} has one class only; classification needs two.")
    # the group column keeps rows together; it is no feature unless named as one
    features = list(keys.features) or [c for c in first.columns if c not in (keys.target, keys.group)]
    files = dict.fromkeys(("train", "val", "test"), path)
    index, groups = class_index(labels, classes), _groups(first, keys, where)
    fractions = (keys.val_fraction, keys.test_fraction, keys.split_seed)
    folding: dict[str, Any] = dict(folds=keys.folds, fold=keys.fold, groups=groups, classes=classes, where=where)
    if keys.path:
        rows = folded_holdouts(index, len(first), *fractions, **folding)
        parts = {name: first.iloc[index] for name, index in rows.items()}
    else:
        parts = {}
        for name, given in (("val", keys.val_path), ("test", keys.test_path)):
            if given:
                files[name] = Path(given).expanduser()
                given_frame = read_table(given, f"dataset.{name}_path", keys.sep)
                parts[name], dropped = _with_targets(given_frame, keys, files[name])
                left_out += [dropped] if dropped else []
                _targets(parts[name], keys, files[name])
                unknown = unknown_classes(parts[name][keys.target], classes) if classes else []
                if unknown:
                    raise RunnerError(
                        f"dataset.{name}_path={given} has classes the training file lacks: {', '.join(unknown[:5])}. "
                        f"The training file's are {', '.join(classes)}."
                    )
        rows = train_holdouts(index, len(first), *fractions, given=list(parts), **folding)
        parts |= {name: first.iloc[index] for name, index in rows.items()}
    # each column's kind from the whole file
    columns = {name: numeric_or_text(first, name, path) for name in features}
    encoder, unused = TableEncoder.fit(columns, parts["train"].index, path, keys.missing)
    notes = [_describe(keys, classes, encoder), *left_out]
    if unused:
        notes.insert(1, f"table: left out {'; '.join(unused)}.")
    return Plan(keys.task, classes, encoder, parts, files, tuple(notes))


def _groups(frame: pd.DataFrame, keys: TableKeys, where: str) -> np.ndarray | None:
    """The group code of each row of `frame` (dataset.group's column), or None without dataset.group."""
    if keys.group is None:
        return None
    return group_codes(frame[keys.group].to_numpy(), where, f"the group column {keys.group!r}")


def _describe(keys: TableKeys, classes: list[str], encoder: TableEncoder) -> str:
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


def table_info(what: str, dataset: Any) -> Any:
    """OmegaConf resolver behind a table dataset's task (`${table:task}`: read from the target), feature count
    (`${table:width}`), num_classes (`${table:num_classes}`, 1 for regression) and its files' SHA-256
    (`${table:sha256}`, of the files its declaration names: data/kinds.py), read from the file by plan() with the
    task the config ends up with (dataset.task, which the user may set)."""
    if what == "task":
        return plan(TableKeys.of(dataset)).task
    if what == "sha256":
        # a dataset.target left unset is refused here too, whichever key is resolved first
        TableKeys.of(dataset)
        return data_sha256(*CSV.files(dataset))
    found = plan(TableKeys.of(dataset, dataset.task))
    if what == "width":
        return len(found.encoder.names())
    if what == "num_classes":
        return len(found.classes) if found.task == "classification" else 1
    raise ValueError(f"table resolver: unknown field {what}")


def table(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    target: str,
    path: str | None = None,
    train_path: str | None = None,
    val_path: str | None = None,
    test_path: str | None = None,
    features: list[str] | str | None = None,
    missing: str = "impute",
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    sha256: str | None = None,
    sep: str | None = None,
    missing_target: str = "refuse",
    folds: int | None = None,
    fold: int | None = None,
    group: str | None = None,
) -> Splits:
    """A table (dataset=csv or dataset=parquet) as Splits of float32 features, encoded as the training split taught
    (TableEncoder), and int64 class indices (in the sorted order of class_names) or float32 targets (N, 1),
    standardised by the training split's mean and std (Splits.target_scale). `sha256`: the files' as the run
    recorded them (dataset.sha256), refused when they differ now."""
    import torch

    keys = {
        "path": path,
        "train_path": train_path,
        "val_path": val_path,
        "test_path": test_path,
        "target": target,
        "features": features,
        "missing": missing,
        "val_fraction": val_fraction,
        "test_fraction": test_fraction,
        "split_seed": split_seed,
        "sep": sep,
        "missing_target": missing_target,
        "folds": folds,
        "fold": fold,
        "group": group,
    }
    check_data_sha256(sha256, *CSV.files(keys))
    # the resolvers' plan, read once
    found = plan(TableKeys.of(keys, task))
    scale = None
    if task == "regression":
        scale = target_scale_of(found.parts["train"][target].to_numpy(dtype=np.float64))
    splits = {}
    for part, frame in found.parts.items():
        x = torch.from_numpy(found.encoder.encode(frame, found.files[part]))
        if task == "classification":
            y = torch.from_numpy(class_index(frame[target], found.classes))
        else:
            assert scale is not None
            values = (frame[target].to_numpy(dtype=np.float64) - scale["mean"][0]) / scale["std"][0]
            y = torch.tensor(values, dtype=torch.float32).unsqueeze(1)
        # named in predictions.csv by their line in a CSV file, by their row (counted from 1) in a Parquet one
        csv = not parquet(found.files[part])
        ids = [label + 2 if csv else label + 1 for label in frame.index.tolist()]
        splits[part] = Split(x, y, ids, "line" if csv else "row")
    return Splits(
        splits["train"],
        splits["val"],
        splits["test"],
        class_names=found.classes,
        feature_names=found.encoder.names(),
        notes=list(found.notes),
        table={**found.encoder.to_dict(), "target": target, "classes": found.classes, "sep": sep},
        target_scale=scale,
    )
