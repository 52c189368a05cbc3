"""A dataset as whole tensors: `Splits` of train, validation and test `Split`s, and seeded hold-outs.

A dataset function (configs/dataset/NAME.yaml names it) takes the keys of its YAML file and
returns `Splits`, decoded once, so that an epoch is a permutation and a batch an index-select
(runner/data/batches.py). Images are uint8 (N, C, H, W); normalisation happens per batch on the device.
"""

from dataclasses import dataclass, field

import torch


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
