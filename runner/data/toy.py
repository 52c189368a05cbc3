"""The datasets that need no files: scikit-learn's 8x8 digits, the tutorials' sum of pairs, random tensors.

    runner train                                   # digits, the default
    runner train model=mlp dataset=sum_pairs       # regression
"""

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from runner.data.splits import Split, Splits, holdout, three_way
from runner.errors import RunnerError


def digits_file():
    """The 8x8 digits file scikit-learn ships, found without importing scikit-learn (2.7 s on a 2-core machine)."""
    spec = importlib.util.find_spec("sklearn")  # locates the package without running it
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise RunnerError("dataset=digits reads the 8x8 digits that scikit-learn ships (sklearn/datasets/data/digits.csv.gz), "
                          "and they are not installed here. Install scikit-learn (pip install scikit-learn), or pick another dataset.")
    return path


def digits(*, name, task, input_shape, num_classes, test_fraction, val_fraction, split_seed):
    """scikit-learn's 1797 8x8 digits (pixel values 0..16), split by seed: no official split exists.

    Read as sklearn.datasets.load_digits reads it (the same samples in the same order; test_data.py compares).
    """
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")  # 64 pixels, then the label, per row
    x = torch.from_numpy(table[:, :-1].reshape(-1, 1, 8, 8)).to(torch.uint8)  # (1797, 1, 8, 8)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    train, val, test = three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test, class_names=[str(c) for c in range(10)])


def sum_pairs(*, name, task, input_shape, num_classes, size, noise, test_fraction, val_fraction, split_seed):
    """Pairs (x1, x2) uniform in [-1, 1] and their sum as the target, as in the tutorials' regression."""
    gen = torch.Generator().manual_seed(split_seed)
    x = torch.rand(size, 2, generator=gen) * 2 - 1
    y = x.sum(dim=1, keepdim=True) + noise * torch.randn(size, 1, generator=gen)
    train, val, test = three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test, feature_names=["x1", "x2"])


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
