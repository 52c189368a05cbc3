"""A dataset as whole tensors: `Splits` of train, validation and test `Split`s, and seeded hold-outs.

A dataset function (configs/dataset/NAME.yaml names it) takes the keys of its YAML file and
returns `Splits`, decoded once, so that an epoch is a permutation and a batch an index-select
(runner/data/batches.py). Images are uint8 (N, C, H, W); normalisation happens per batch on the device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch

from runner.io.errors import RunnerError

if TYPE_CHECKING:
    import numpy as np


@dataclass
class Split:
    # (N, *input_shape): uint8 images or float features
    x: torch.Tensor
    # (N,) int64 class labels, or (N, outputs) float regression targets
    y: torch.Tensor
    # where each sample comes from, for predictions.csv: a CSV line, an array's row, an image file; None: unnamed
    ids: list[Any] | None = None
    # the column those ids go in: line, row, index or filename
    id_name: str = "index"

    def __len__(self) -> int:
        return len(self.y)

    def subset(self, index: Any) -> Split:
        ids = None if self.ids is None else [self.ids[i] for i in torch.as_tensor(index).tolist()]
        return Split(self.x[index], self.y[index], ids, self.id_name)

    def to(self, device: torch.device | str) -> Split:
        return Split(self.x.to(device), self.y.to(device), self.ids, self.id_name)


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    # empty for regression
    class_names: list[str] = field(default_factory=list)
    # tabular data: a name per feature (a CSV's header)
    feature_names: list[str] = field(default_factory=list)
    # lines a run prints at setup: what the data was found to be
    notes: list[str] = field(default_factory=list)
    # a table's encoding of raw columns (data/encoding.py), for the model card (data/kinds.py's card_block); None
    # otherwise
    table: dict[str, Any] | None = None
    # regression targets the dataset standardised: {"mean": [...], "std": [...]}, one per output, so that metrics
    # and predictions are given back in the targets' own units; None: the targets are used as they are
    target_scale: dict[str, list[float]] | None = None


def holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held_out): a seeded random `fraction` of `split` held out."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(fraction * len(split)))
    return split.subset(order[n_out:]), split.subset(order[:n_out])


def three_way(full: Split, test_fraction: float, val_fraction: float, split_seed: int) -> tuple[Split, Split, Split]:
    """(train, val, test): a seeded test hold-out, then a validation hold-out of the rest."""
    rest, test = holdout(full, test_fraction, split_seed)
    train, val = holdout(rest, val_fraction, split_seed + 1)
    return train, val, test


def label_text(value: Any) -> str:
    """A class label as text: whole floats as integers (a blank cell makes pandas read a column of 0/1/2 as 0.0,
    1.0, 2.0), anything else as str()."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _present(values: Any) -> list[Any]:
    """The labels of a 1-D sequence, array or Series that are not missing, as Python values."""
    import pandas as pd

    return [v for v in (values.tolist() if hasattr(values, "tolist") else list(values)) if not pd.isna(v)]


def class_order(values: Any) -> list[str]:
    """The class names of a target (a sequence, numpy array or pandas Series of labels; missing ones ignored): its
    distinct values sorted as values (numbers as numbers, so 2 before 10; text alphabetically), as label_text. A
    class's index is its place here."""
    distinct = {label_text(v): v for v in _present(values)}
    return [label_text(v) for v in sorted(distinct.values())]


def class_index(values: Any, classes: Sequence[str]) -> np.ndarray | None:
    """int64 array: each label's place in `classes` (class_order's), -1 for a missing label or one not among them;
    None when `classes` is empty (a regression target, which is not stratified)."""
    import numpy as np
    import pandas as pd

    if not classes:
        return None
    place = {c: i for i, c in enumerate(classes)}
    values = values.tolist() if hasattr(values, "tolist") else list(values)
    return np.array([-1 if pd.isna(v) else place.get(label_text(v), -1) for v in values], dtype=np.int64)


def unknown_classes(values: Any, classes: Sequence[str]) -> list[str]:
    """The labels among `values` (missing ones ignored) that are not in `classes`, as sorted text."""
    return sorted({label_text(v) for v in _present(values)} - set(classes))


def target_scale_of(y: Any) -> dict[str, list[float]]:
    """{"mean": [...], "std": [...]}: per output, the mean and std of regression targets `y` (N,) or (N, outputs)
    (numpy), by which a dataset standardises them (Splits.target_scale); a constant output keeps std 1."""
    import numpy as np

    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    std = y.std(axis=0)
    return {"mean": y.mean(axis=0).tolist(), "std": np.where(std > 0, std, 1.0).tolist()}


def holdout_rows(
    n: int,
    fraction: float,
    seed: int,
    stratify: np.ndarray | None = None,
    classes: Sequence[str] = (),
    what: str = "dataset.test_fraction",
    where: str = "the data",
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held_out): row indices of a seeded `fraction` of n rows held out by scikit-learn's train_test_split,
    stratified by the class indices `stratify` where given (None: plain random). RunnerError, naming the fix, when
    `fraction` (the key `what`) is not in (0, 1), when the hold-out is smaller than the number of classes, and when
    a class has a single row (stratifying needs one on each side)."""
    import math

    import numpy as np
    from sklearn.model_selection import train_test_split

    if not 0 < fraction < 1:
        raise RunnerError(f"{what}={fraction}: a hold-out is a fraction of the rows, above 0 and below 1 (e.g. 0.2).")
    if stratify is not None:
        counts = np.bincount(stratify[stratify >= 0], minlength=len(classes))
        held = math.ceil(fraction * n)
        if held < len(classes) or n - held < len(classes):
            need = min(0.5, math.ceil(len(classes) / n * 100) / 100)
            raise RunnerError(
                f"{where}: holding out {what}={fraction:g} of {n} rows keeps {held} aside and {n - held} in, fewer "
                f"than its {len(classes)} classes, so a split by class cannot put every class on both sides. Use "
                f"{what}={need:g} or more, or give more rows."
            )
        if counts.min() < 2:
            smallest = int(np.argmin(counts))
            raise RunnerError(
                f"{where}: the class {classes[smallest]!r} has {counts[smallest]} row here, and a split by class "
                f"needs at least 2 of each (one on each side of {what}). Give it more rows, or leave it out of the "
                f"file."
            )
    return train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=stratify)


def stratified_holdouts(
    stratify: np.ndarray | None,
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    classes: Sequence[str] = (),
    where: str = "the data",
) -> dict[str, np.ndarray]:
    """{"train", "val", "test"}: row indices of n rows, a test hold-out (random_state=seed) then a validation hold-out
    of the rest (seed + 1), each stratified by `stratify` (class indices) where it is not None."""
    rest, test = holdout_rows(n, test_fraction, seed, stratify, classes, "dataset.test_fraction", where)
    inner = None if stratify is None else stratify[rest]
    train, val = holdout_rows(len(rest), val_fraction, seed + 1, inner, classes, "dataset.val_fraction", where)
    return {"train": rest[train], "val": rest[val], "test": test}
