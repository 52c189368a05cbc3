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

from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from runner.data.splits import Split, Splits, class_index, class_order, holdout_rows, stratified_holdouts
from runner.io.errors import RunnerError

OTHER = "<other>"  # the column of categories the training split did not have
NUMERIC_SHARE = 0.9  # a text column whose non-missing values are at least this share numbers is a numeric column
CLASSIFICATION_MAX_CLASSES = 20  # integer targets with at most this many distinct values are class labels


def read_table(path, what="dataset.path"):
    """A CSV (pandas.read_csv) or Parquet (pandas.read_parquet, which needs pyarrow) file as a DataFrame with at
    least one row; RunnerError naming the file for a missing, empty or header-only file, and for Parquet without
    pyarrow."""
    import pandas as pd

    path = Path(path).expanduser()
    if not path.is_file():
        raise RunnerError(f"{what}={path} names no file. Give the path of a .csv or .parquet file.")
    if path.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            raise RunnerError(
                f"{what}={path} is a Parquet file, and reading Parquet needs pyarrow, which is not installed: pip "
                f"install 'runner[parquet]' (or pip install pyarrow), or save the table as CSV."
            ) from None
        frame = pd.read_parquet(path)
    else:
        try:
            frame = pd.read_csv(path, skipinitialspace=True)
        except pd.errors.EmptyDataError:
            raise RunnerError(
                f"{what}={path} is empty: a table needs a header row of column names, then one row per sample."
            ) from None
        except (pd.errors.ParserError, UnicodeDecodeError) as err:
            raise RunnerError(
                f"{what}={path} cannot be read as CSV ({' '.join(str(err).split())[:160]}). Save it as comma-"
                f"separated UTF-8 text with a header row."
            ) from None
    if frame.empty:
        raise RunnerError(
            f"{what}={path} has a header ({', '.join(map(str, frame.columns[:8]))}) but no rows: nothing to learn from."
        )
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def numeric_or_text(frame, name, path):
    """The column `name` as numbers (float64 with NaN for missing) or as text (str, None for missing): text columns
    whose values are nearly all numbers are refused at the first value that is not, naming its line; columns that
    mix numbers and text more evenly are refused as mixed."""
    import pandas as pd

    column = frame[name]
    if pd.api.types.is_bool_dtype(column):
        return column.astype(float)
    if pd.api.types.is_numeric_dtype(column):
        return column.astype(float)
    present = column.dropna().astype(str).str.strip()
    numbers = pd.to_numeric(present, errors="coerce")
    bad = present[numbers.isna() & (present != "")]
    if bad.empty:
        return pd.to_numeric(column.astype(str).str.strip().replace("", None), errors="coerce").astype(float)
    share = 1 - len(bad) / max(1, len(present))
    if share >= NUMERIC_SHARE:
        row = bad.index[0]
        raise RunnerError(
            f"{path}: column {name} holds numbers, but line {row + 2} (row {row + 1}) has '{bad.iloc[0]}'. Fix or "
            f"empty that cell (an empty cell is a missing value)."
        )
    if share > 0:
        example = present[numbers.notna()].iloc[0]
        raise RunnerError(
            f"{path}: column {name} mixes numbers (e.g. '{example}') and text (e.g. '{bad.iloc[0]}'). Make it one "
            f"or the other; to read it as categories, write every value as text (e.g. 'n{example}')."
        )
    return column.map(lambda v: None if pd.isna(v) else str(v).strip())


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
    def fit(cls, frame, features, path, missing="impute"):
        """Learn from the training split `frame` (a DataFrame) for the columns `features`; (encoder, notes): notes
        name the columns left out."""
        import pandas as pd

        columns, notes = [], []
        for name in features:
            values = numeric_or_text(frame, name, path)
            present = values.dropna()
            if present.nunique() <= 1:
                notes.append(f"{name} (the same value in every row)")
                continue
            text = not pd.api.types.is_numeric_dtype(values)
            if text and present.nunique() == len(frame) and len(frame) > 1:
                notes.append(f"{name} (a different text in every row, as an ID)")
                continue
            if missing == "refuse" and values.isna().any():
                row = int(np.flatnonzero(values.isna().to_numpy())[0])
                raise RunnerError(
                    f"{path}: column {name} has a missing value in row {row + 1}, and dataset.missing=refuse. Fill it, "
                    f"or set dataset.missing=impute (the training split's median or an own category, flagged)."
                )
            if text:
                columns.append(Column(name, "categorical", categories=sorted(present.unique().tolist())))
            else:
                median = float(pd.Series(present).median())
                columns.append(Column(name, "numeric", fill=median, indicator=bool(values.isna().any())))
        if not columns:
            raise RunnerError(
                f"{path}: no feature column is left to learn from ({'; '.join(notes) or 'none given'}). Give columns "
                f"that vary: dataset.features=[...]."
            )
        return cls(columns, missing), notes

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
            values = numeric_or_text(frame, column.name, path)
            if column.kind == "numeric":
                if not pd.api.types.is_numeric_dtype(values):
                    raise RunnerError(
                        f"{path}: column {column.name} holds text, and the model was trained on numbers in it."
                    )
                x = values.to_numpy(dtype=np.float64)
                gaps = np.isnan(x)
                if gaps.any() and self.missing == "refuse":
                    raise RunnerError(
                        f"{path}: column {column.name} has a missing value in row {int(np.flatnonzero(gaps)[0]) + 1}, "
                        f"and this run refuses missing values (dataset.missing=refuse). Fill it."
                    )
                parts.append(np.where(gaps, column.fill, x)[:, None])
                if column.indicator:
                    parts.append(gaps[:, None].astype(np.float64))
            else:
                text = values.map(lambda v: None if v is None else str(v)).to_numpy(dtype=object)
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
class Plan:
    """A table read and split: the task, the target's classes (sorted; [] for regression), the encoder learned from
    the training split, and each split's rows (DataFrames)."""

    task: str
    classes: list
    encoder: TableEncoder
    parts: dict  # train, val, test -> DataFrame
    notes: tuple


_PLANS = {}


def plan(path, train_path, val_path, test_path, target, features, task, missing, val_fraction, test_fraction, seed):
    """The Plan of a table dataset's keys, computed once per process for the same keys (the config's resolvers and
    the dataset function share it). Hold-outs are drawn by scikit-learn's train_test_split, stratified by class for
    classification."""
    key = (path, train_path, val_path, test_path, target, tuple(features or ()), task, missing, val_fraction,
           test_fraction, seed)  # fmt: skip
    if key not in _PLANS:
        _PLANS[key] = _plan(*key[:5], list(features) if features else None, *key[6:])
    return _PLANS[key]


def _plan(path, train_path, val_path, test_path, target, features, task, missing, val_fraction, test_fraction, seed):
    if bool(path) == bool(train_path):
        raise RunnerError(
            "a table dataset needs dataset.path (one table, split here) or dataset.train_path (with val_path and "
            "test_path where you have them), and not both. E.g. dataset.path=wine.csv dataset.target=label."
        )
    where = "dataset.path" if path else "dataset.train_path"
    first = read_table(path or train_path, where)
    if target not in first.columns:
        raise RunnerError(
            f"{where}: no column named {target!r} (dataset.target). Its columns are: {', '.join(first.columns)}."
        )
    features = features or [c for c in first.columns if c != target]
    unknown = [f for f in features if f not in first.columns]
    if unknown:
        raise RunnerError(f"{where}: dataset.features names columns it lacks: {', '.join(unknown)}.")
    labels = first[target]
    if labels.isna().any():
        row = int(np.flatnonzero(labels.isna().to_numpy())[0])
        raise RunnerError(f"{where}: the target column {target} is empty in row {row + 1}. Give every row a target.")
    task = task or infer_task(labels)
    if task == "classification" and labels.nunique() < 2:
        raise RunnerError(f"{where}: the target column {target} has one class only; classification needs two.")
    classes = class_order(labels) if task == "classification" else []
    parts = {}
    if path:
        stratify = class_index(labels, classes)
        rows = stratified_holdouts(stratify, len(first), val_fraction, test_fraction, seed, classes, where)
        parts = {name: first.iloc[index] for name, index in rows.items()}
    else:
        parts["train"] = first
        for name, given, fraction in (("val", val_path, val_fraction), ("test", test_path, test_fraction)):
            if given:
                parts[name] = read_table(given, f"dataset.{name}_path")
            else:
                train = parts["train"]
                stratify = class_index(train[target], classes)
                rest, held = holdout_rows(len(train), fraction, seed, stratify, classes, where)
                parts["train"], parts[name] = train.iloc[rest], train.iloc[held]
    encoder, dropped = TableEncoder.fit(parts["train"], features, where, missing)
    notes = (f"table: left out {'; '.join(dropped)}.",) if dropped else ()
    return Plan(task, classes, encoder, parts, notes)


def _keys(dataset):
    """plan()'s arguments from a dataset config node (the resolvers') or the dataset function's keywords."""
    get = dataset.get
    return (
        get("path"),
        get("train_path"),
        get("val_path"),
        get("test_path"),
        get("target"),
        tuple(get("features") or ()),
        None,  # the task: inferred, then overridable
        get("missing", "impute"),
        get("val_fraction", 0.1),
        get("test_fraction", 0.2),
        get("split_seed", 0),
    )


def table_info(what, dataset):
    """OmegaConf resolver behind a table dataset's task (`${table:task}`), feature count (`${table:width}`) and
    num_classes (`${table:num_classes}`, 1 for regression), read from the file by plan()."""
    found = plan(*_keys(dataset))
    if what == "task":
        return found.task
    if what == "width":
        return len(found.encoder.names())
    if what == "num_classes":
        task = dataset.task
        return len(found.classes) if task == "classification" else 1
    raise ValueError(f"table resolver: unknown field {what}")


def table(*, name, task, input_shape, num_classes, target, path=None, train_path=None, val_path=None, test_path=None,
          features=None, missing="impute", val_fraction=0.1, test_fraction=0.2, split_seed=0):  # fmt: skip
    """A table (dataset=csv or dataset=parquet) as Splits of float32 features, encoded as the training split taught
    (TableEncoder), and int64 class indices (in the sorted order of class_names) or float32 targets (N, 1)."""
    import torch

    if missing not in ("impute", "refuse"):
        raise RunnerError(f"dataset.missing={missing}: use impute (fill and flag) or refuse.")
    keys = dict(path=path, train_path=train_path, val_path=val_path, test_path=test_path, target=target,
                features=features, missing=missing, val_fraction=val_fraction, test_fraction=test_fraction,
                split_seed=split_seed)  # fmt: skip
    found = plan(*_keys(keys))  # the resolvers' plan, read once
    if task not in ("classification", "regression"):
        raise RunnerError(f"dataset.task={task}: use classification or regression.")
    index = {c: i for i, c in enumerate(found.classes)}
    scale = None
    if task == "regression":  # standardised by the training split's mean and std, reported back in its own units
        train_y = found.parts["train"][target].to_numpy(dtype=np.float64)
        std = float(train_y.std()) or 1.0
        scale = {"mean": [float(train_y.mean())], "std": [std]}
    splits = {}
    for part, frame in found.parts.items():
        x = torch.from_numpy(found.encoder.encode(frame, f"the {part} split"))
        if task == "classification":
            values = frame[target].astype(str)
            unknown = sorted(set(values) - set(index))
            if unknown:
                raise RunnerError(f"the {part} split has classes the training data lacks: {', '.join(unknown[:5])}.")
            y = torch.tensor([index[v] for v in values], dtype=torch.long)
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


def baselines(splits, task, seed=0):
    """scikit-learn's models on the same encoded, standardised training split, scored on the same test split: a
    linear model (LogisticRegression / Ridge) and HistGradientBoosting, so a network's test figure has a context.
    {name: test accuracy (classification) or MAE (regression)}."""
    from sklearn.ensemble import HistGradientBoostingClassifier, HistGradientBoostingRegressor
    from sklearn.linear_model import LogisticRegression, Ridge
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x_train, x_test = splits.train.x.cpu().numpy(), splits.test.x.cpu().numpy()
    y_train, y_test = splits.train.y.cpu().numpy(), splits.test.y.cpu().numpy()
    if task == "classification":
        models = {
            "logistic regression": make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)),
            "HistGradientBoosting": HistGradientBoostingClassifier(random_state=seed),
        }
        score = lambda model: float((model.predict(x_test) == y_test).mean())  # noqa: E731
    else:
        y_train, y_test = y_train.reshape(len(y_train), -1), y_test.reshape(len(y_test), -1)
        models = {"ridge": make_pipeline(StandardScaler(), Ridge())}
        if y_train.shape[1] == 1:  # HistGradientBoosting predicts one target
            models["HistGradientBoosting"] = HistGradientBoostingRegressor(random_state=seed)
        std = np.asarray((splits.target_scale or {"std": [1.0]})["std"])  # MAE in the targets' units

        def score(model):
            return float((np.abs(model.predict(x_test).reshape(y_test.shape) - y_test) * std).mean())

    out = {}
    for name, model in models.items():
        model.fit(x_train, y_train if task == "classification" or y_train.shape[1] > 1 else y_train.ravel())
        out[name] = score(model)
    return out
