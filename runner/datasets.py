"""The datasets that `dataset=NAME` picks (configs/dataset/NAME.yaml names the function).

A dataset function takes the keys of its YAML file and returns `Splits`: whole tensors,
decoded once, so that an epoch is a permutation and a batch an index-select (runner/data.py).
Images are uint8 (N, C, H, W); normalisation happens per batch on the device.
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


def holdout(split, fraction, seed):
    """(rest, held_out): a seeded random `fraction` of `split` held out."""
    order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
    n_out = max(1, round(fraction * len(split)))
    return split.subset(order[n_out:]), split.subset(order[:n_out])


def _three_way(full, test_fraction, val_fraction, split_seed):
    rest, test = holdout(full, test_fraction, split_seed)
    train, val = holdout(rest, val_fraction, split_seed + 1)
    return train, val, test


def digits(*, name, task, input_shape, num_classes, test_fraction, val_fraction, split_seed):
    """scikit-learn's 1797 8x8 digits (pixel values 0..16), split by seed: no official split exists."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.from_numpy(bunch.images).to(torch.uint8).unsqueeze(1)  # (1797, 1, 8, 8)
    y = torch.from_numpy(bunch.target).long()
    train, val, test = _three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test, class_names=[str(c) for c in range(10)])


def sum_pairs(*, name, task, input_shape, num_classes, size, noise, test_fraction, val_fraction, split_seed):
    """Pairs (x1, x2) uniform in [-1, 1] and their sum as the target, as in the tutorials' regression."""
    gen = torch.Generator().manual_seed(split_seed)
    x = torch.rand(size, 2, generator=gen) * 2 - 1
    y = x.sum(dim=1, keepdim=True) + noise * torch.randn(size, 1, generator=gen)
    train, val, test = _three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test)


def fake(*, name, task, input_shape, num_classes, size, test_size, val_fraction, split_seed):
    """Random uint8 images (or float features for 1-D shapes) with random labels."""
    gen = torch.Generator().manual_seed(split_seed)

    def make(n):
        shape = (n, *input_shape)
        if len(input_shape) == 3:
            x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
        else:
            x = torch.randn(shape, generator=gen)
        return Split(x, torch.randint(0, num_classes, (n,), generator=gen))

    train, val = holdout(make(size), val_fraction, split_seed)
    return Splits(train, val, make(test_size), class_names=[str(c) for c in range(num_classes)])
