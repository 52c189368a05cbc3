"""A dataset as whole tensors: `Splits` of train, validation and test `Split`s, and seeded hold-outs.

A dataset function (configs/dataset/NAME.yaml names it) takes the keys of its YAML file and
returns `Splits`, decoded once, so that an epoch is a permutation and a batch an index-select
(runner/data/batches.py). Images are uint8 (N, C, H, W); normalisation happens per batch on the device.
"""

from dataclasses import dataclass, field

import torch

from runner.io.errors import RunnerError


@dataclass
class Split:
    x: torch.Tensor  # (N, *input_shape): uint8 images or float features
    y: torch.Tensor  # (N,) int64 class labels, or (N, outputs) float regression targets

    def __len__(self):
        return len(self.y)

    def subset(self, index):
        return Split(self.x[index], self.y[index])

    def to(self, device):
        return Split(self.x.to(device), self.y.to(device))


@dataclass
class Splits:
    train: Split
    val: Split
    test: Split
    class_names: list = field(default_factory=list)  # empty for regression
    feature_names: list = field(default_factory=list)  # tabular data: a name per feature (a CSV's header)
    notes: list = field(default_factory=list)  # lines a run prints at setup: what the data was found to be
    table: dict = None  # a table's encoding of raw columns (data/table.py), for the model card; None otherwise
    # regression targets the dataset standardised: {"mean": [...], "std": [...]}, one per output, so that metrics
    # and predictions are given back in the targets' own units; None: the targets are used as they are
    target_scale: dict = None


def holdout(split, fraction, seed):
    """(rest, held_out): a seeded random `fraction` of `split` held out."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(fraction * len(split)))
    return split.subset(order[n_out:]), split.subset(order[:n_out])


def three_way(full, test_fraction, val_fraction, split_seed):
    """(train, val, test): a seeded test hold-out, then a validation hold-out of the rest."""
    rest, test = holdout(full, test_fraction, split_seed)
    train, val = holdout(rest, val_fraction, split_seed + 1)
    return train, val, test


def class_order(values):
    """The class names of a target (a sequence or pandas Series of labels): its distinct values sorted as values
    (numbers as numbers, so 2 before 10; text alphabetically), as text. A class's index is its place here."""
    import numpy as np

    return [str(v) for v in sorted(np.unique(np.asarray(values)).tolist())]


def class_index(values, classes):
    """int64 array: each label's place in `classes` (class_order's), -1 for a label not among them; None when
    `classes` is empty (a regression target, which is not stratified)."""
    import numpy as np

    if not classes:
        return None
    place = {c: i for i, c in enumerate(classes)}
    return np.array([place.get(str(v), -1) for v in np.asarray(values).tolist()], dtype=np.int64)


def holdout_rows(n, fraction, seed, stratify=None, classes=(), where="the data"):
    """(rest, held_out): row indices of a seeded `fraction` of n rows held out by scikit-learn's train_test_split,
    stratified by the class indices `stratify` where given (None: plain random). RunnerError naming the smallest of
    `classes` when a class is too small to be in both parts."""
    import numpy as np
    from sklearn.model_selection import train_test_split

    try:
        return train_test_split(np.arange(n), test_size=fraction, random_state=seed, stratify=stratify)
    except ValueError as err:  # scikit-learn: a class with fewer rows than the parts need
        counts = np.bincount(stratify[stratify >= 0], minlength=len(classes)) if stratify is not None else []
        smallest = int(np.argmin(counts)) if len(counts) else None
        name = (
            f"the smallest class, {classes[smallest]!r}, has {counts[smallest]} row(s)" if smallest is not None else ""
        )
        raise RunnerError(
            f"{where}: cannot hold out {fraction:g} of it by class ({' '.join(str(err).split())}); {name}. Give every "
            f"class a few rows, or fewer hold-outs (dataset.val_fraction, dataset.test_fraction)."
        ) from None


def stratified_holdouts(stratify, n, val_fraction, test_fraction, seed, classes=(), where="the data"):
    """{"train", "val", "test"}: row indices of n rows, a test hold-out (random_state=seed) then a validation hold-out
    of the rest (seed + 1), each stratified by `stratify` (class indices) where it is not None."""
    rest, test = holdout_rows(n, test_fraction, seed, stratify, classes, where)
    inner = None if stratify is None else stratify[rest]
    train, val = holdout_rows(len(rest), val_fraction, seed + 1, inner, classes, where)
    return {"train": rest[train], "val": rest[val], "test": test}
