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
    # the samples two splits share, counted (and dropped) by data/duplicates.check as the splits are built:
    # summary.json's `duplicates`; None before
    duplicates: dict[str, Any] | None = None


def holdout(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """(rest, held_out): a seeded random `fraction` of `split` held out; none for a fraction of 0
    (dataset.val_fraction=0: no validation split)."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(fraction * len(split))) if fraction else 0
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
    a class has a single row (stratifying needs one on each side). dataset.val_fraction=0 holds out no row: the run
    has no validation split."""
    import math

    import numpy as np
    from sklearn.model_selection import train_test_split

    if fraction == 0 and what == "dataset.val_fraction":
        return np.arange(n), np.arange(0)
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


def group_codes(values: Any, where: str, what: str, n: int | None = None) -> np.ndarray:
    """int64 array: each sample's group (the values of dataset.group's column or array, one per sample of `n`) as a
    code 0..G-1; RunnerError for values that are not one per sample, and naming the first sample whose group is
    missing."""
    import numpy as np
    import pandas as pd

    values = np.asarray(values)
    if values.ndim != 1 or len(values) != (n or len(values)):
        raise RunnerError(
            f"{where}: {what} must hold one group per sample, shape ({n or 'N'},), not {list(values.shape)}."
        )
    codes, _ = pd.factorize(pd.Series(values))
    missing = codes < 0
    if missing.any():
        raise RunnerError(
            f"{where}: {what} is empty for {int(missing.sum())} of {len(values)} samples (the first at position "
            f"{int(np.flatnonzero(missing)[0])}), and every sample needs a group to be kept with. Fill them in, or "
            f"leave dataset.group out."
        )
    return np.asarray(codes, dtype=np.int64)


def group_holdout_rows(
    n: int, fraction: float, seed: int, groups: np.ndarray, what: str, where: str
) -> tuple[np.ndarray, np.ndarray]:
    """(rest, held_out): row indices of n rows, a seeded `fraction` of their groups (scikit-learn's
    GroupShuffleSplit) held out, so that no group has rows on both sides."""
    import numpy as np
    from sklearn.model_selection import GroupShuffleSplit

    if fraction == 0 and what == "dataset.val_fraction":
        return np.arange(n), np.arange(0)
    if not 0 < fraction < 1:
        raise RunnerError(f"{what}={fraction}: a hold-out is a fraction of the rows, above 0 and below 1 (e.g. 0.2).")
    if len(np.unique(groups)) < 2:
        raise RunnerError(
            f"{where}: dataset.group has one group only here, so {what} cannot hold out a group without taking every "
            f"row. Give rows of at least two groups, or leave dataset.group out."
        )
    rest, held = next(
        GroupShuffleSplit(n_splits=1, test_size=fraction, random_state=seed).split(np.arange(n), None, groups)
    )
    return rest, held


def fold_rows(
    n: int,
    folds: int,
    fold: int | None,
    seed: int,
    stratify: np.ndarray | None = None,
    classes: Sequence[str] = (),
    groups: np.ndarray | None = None,
    where: str = "the data",
) -> tuple[np.ndarray, np.ndarray]:
    """(train, val): row indices of n rows, fold `fold` of `folds` held out. scikit-learn draws the folds, shuffled
    with random_state=seed: StratifiedKFold by the class indices `stratify` (StratifiedGroupKFold with `groups`),
    KFold for regression (GroupKFold with `groups`). RunnerError, naming the fix, for folds below 2, a fold out of
    range, more folds than the smallest class has rows (stratified) or than there are groups or rows."""
    import numpy as np
    from sklearn.model_selection import GroupKFold, KFold, StratifiedGroupKFold, StratifiedKFold

    check_folds(folds, fold)
    if groups is not None and len(np.unique(groups)) < folds:
        raise RunnerError(
            f"{where}: dataset.folds={folds} needs at least {folds} groups to hold out one or more in each fold, and "
            f"dataset.group has {len(np.unique(groups))} here. Use dataset.folds={max(2, len(np.unique(groups)))} or "
            f"fewer, or give more groups."
        )
    if n < folds:
        raise RunnerError(f"{where}: dataset.folds={folds} is more folds than the {n} rows left for training.")
    if stratify is not None:
        counts = np.bincount(stratify[stratify >= 0], minlength=len(classes))
        smallest = int(np.argmin(counts))
        if counts[smallest] < folds:
            raise RunnerError(
                f"{where}: the class {classes[smallest]!r} has {counts[smallest]} rows left for training, fewer than "
                f"dataset.folds={folds}, so a fold stratified by class cannot hold out one of them in every fold. Use "
                f"dataset.folds={max(2, int(counts[smallest]))} or fewer, or give that class more rows."
            )
    rows = np.arange(n)
    if stratify is not None and groups is not None:
        splitter: Any = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    elif stratify is not None:
        splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    elif groups is not None:
        splitter = GroupKFold(n_splits=folds, shuffle=True, random_state=seed)
    else:
        splitter = KFold(n_splits=folds, shuffle=True, random_state=seed)
    assert fold is not None
    train, val = list(splitter.split(rows, stratify, groups))[fold]
    return train, val


def check_folds(folds: Any, fold: Any) -> None:
    """RunnerError unless dataset.folds is a whole number >= 2 and dataset.fold one of 0..folds-1 (a job of the sweep
    that dataset.folds makes: run alone, a config with folds and no fold says how to run them); with folds null,
    unless fold is null too."""
    if folds is None:
        if fold is not None:
            raise RunnerError(
                f"dataset.fold={fold} names a held-out fold, and dataset.folds is null (one validation hold-out). Give "
                f"the number of folds too, e.g. dataset.folds=5 dataset.fold={fold}, or leave dataset.fold out."
            )
        return
    whole = isinstance(folds, int) and not isinstance(folds, bool)
    if not whole or folds < 2:
        raise RunnerError(
            f"dataset.folds={folds}: k-fold cross-validation holds out one of K folds per job, so K is a whole number "
            f"of 2 or more (e.g. dataset.folds=5), or null for one validation hold-out."
        )
    if fold is None:
        raise RunnerError(
            f"dataset.folds={folds} runs {folds} jobs, one per held-out fold, as a sweep: runner train -m "
            f"dataset.folds={folds} (runner train dataset.folds={folds} on the command line does the same). This job "
            f"has no dataset.fold: set in a config file, folds need -m; an Optuna search does not run folds. To train "
            f"one fold alone, add dataset.fold=0 (0 to {folds - 1})."
        )
    if isinstance(fold, bool) or not isinstance(fold, int) or not 0 <= fold < folds:
        raise RunnerError(f"dataset.fold={fold}: a held-out fold of dataset.folds={folds} is 0 to {folds - 1}.")


def folded_holdouts(
    stratify: np.ndarray | None,
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    folds: int | None,
    fold: int | None,
    groups: np.ndarray | None = None,
    classes: Sequence[str] = (),
    where: str = "the data",
) -> dict[str, np.ndarray]:
    """stratified_holdouts with dataset.folds and dataset.group: {"train", "val", "test"} row indices of n rows. The
    test hold-out is drawn first (random_state=seed), the same for every fold and, without a group, the same rows
    as without folds; the validation split is then fold `fold` of `folds` of the rest (seed + 1), or with folds null
    a hold-out of val_fraction. With `groups` (codes), no group has rows on two sides of any of them."""
    if groups is None:
        rest, test = holdout_rows(n, test_fraction, seed, stratify, classes, "dataset.test_fraction", where)
    else:
        rest, test = group_holdout_rows(n, test_fraction, seed, groups, "dataset.test_fraction", where)
    inner = None if stratify is None else stratify[rest]
    pool_groups = None if groups is None else groups[rest]
    if folds is not None:
        train, val = fold_rows(len(rest), folds, fold, seed + 1, inner, classes, pool_groups, where)
    elif pool_groups is not None:
        train, val = group_holdout_rows(len(rest), val_fraction, seed + 1, pool_groups, "dataset.val_fraction", where)
    else:
        train, val = holdout_rows(len(rest), val_fraction, seed + 1, inner, classes, "dataset.val_fraction", where)
    return {"train": rest[train], "val": rest[val], "test": test}


def train_holdouts(
    stratify: np.ndarray | None,
    n: int,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    *,
    given: Sequence[str] = (),
    folds: int | None = None,
    fold: int | None = None,
    groups: np.ndarray | None = None,
    classes: Sequence[str] = (),
    where: str = "the data",
) -> dict[str, np.ndarray]:
    """A training part of n rows whose validation or test part the user did not give (`given`: "val", "test" that
    were): {"train", and "val" and "test" where not given} row indices, each hold-out drawn from what is left of the
    training part with random_state=seed (the validation one first); with `folds`, the test one first and the
    validation split fold `fold` of the rest (seed + 1), refused where the validation part was given; with `groups`,
    group hold-outs (group_holdout_rows)."""
    import numpy as np

    if folds is not None and "val" in given:
        raise RunnerError(
            f"{where}: dataset.folds={folds} holds out each fold of the training part in turn as the validation "
            f"split, and a validation part of its own is given. Join it to the training part, or leave out "
            f"dataset.folds."
        )
    rows, held_out = np.arange(n), {}
    order = [("val", val_fraction), ("test", test_fraction)]
    for name, fraction in order[::-1] if folds is not None else order:
        if name in given:
            continue
        inner = None if stratify is None else stratify[rows]
        part_groups = None if groups is None else groups[rows]
        what = f"dataset.{name}_fraction"
        if name == "val" and folds is not None:
            rest, held = fold_rows(len(rows), folds, fold, seed + 1, inner, classes, part_groups, where)
        elif part_groups is not None:
            rest, held = group_holdout_rows(len(rows), fraction, seed, part_groups, what, where)
        else:
            rest, held = holdout_rows(len(rows), fraction, seed, inner, classes, what, where)
        held_out[name], rows = rows[held], rows[rest]
    return {"train": rows, **held_out}
