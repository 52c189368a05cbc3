"""A user's own dataset, as docs/extending.md shows it: scikit-learn's bundled diabetes table (442 x 10, a
disease-progression target from 25 to 346; no download), its targets in the shape a user would naturally
give them. tests/configs/dataset/diabetes.yaml names it."""

import torch
from sklearn.datasets import load_diabetes

from runner.data.splits import Split, Splits, three_way


def diabetes(*, name, task, input_shape, num_classes, targets, split_seed=0, test_fraction=0.2, val_fraction=0.1):
    """targets: "flat" gives y of shape [N] (numpy's and pandas' shape for one column), "column" [N, 1]."""
    features, target = load_diabetes(return_X_y=True)
    x = torch.tensor(features, dtype=torch.float32)
    y = torch.tensor(target, dtype=torch.float32)
    full = Split(x, y if targets == "flat" else y[:, None])
    train, val, test = three_way(full, test_fraction, val_fraction, split_seed)
    return Splits(train, val, test)
