"""Batches from in-memory splits: an epoch is a seeded permutation, a batch one index-select.

No per-sample `__getitem__`, no collate: the tutorial's DataLoader spends most of a small
model's step in Python; here the split lives on the training device as one tensor.
"""

import torch
from hydra.utils import instantiate

from runner.errors import RunnerError


def build_data(dataset_cfg, device):
    """Splits of the dataset that `dataset_cfg` names, on `device`, and its per-batch normaliser."""
    splits = instantiate(dataset_cfg, _convert_="all")
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        expected = tuple(dataset_cfg.input_shape)
        if tuple(split.x.shape[1:]) != expected:
            raise RunnerError(
                f"dataset {dataset_cfg.name}: its {name} split has samples of shape {tuple(split.x.shape[1:])}, "
                f"but its config says input_shape: {list(expected)}. Set dataset.input_shape to match the data."
            )
        setattr(splits, name, split.to(device))
    return splits, Normalizer.fit(splits.train.x)


class Normalizer:
    """x -> (x - mean) / std per channel (dim 1), with statistics of the training split."""

    def __init__(self, mean, std):
        self.mean, self.std = mean, std

    @classmethod
    def fit(cls, x):
        x = x.float()
        dims = [d for d in range(x.dim()) if d != 1]
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        mean = x.mean(dim=dims).reshape(shape)
        std = x.std(dim=dims).clamp_min(1e-6).reshape(shape)
        return cls(mean, std)

    def __call__(self, x):
        return (x.float() - self.mean) / self.std


class Batches:
    """Iterate (inputs, targets) over `split` in batches of `batch_size`.

    With `shuffle`, each pass is a new permutation drawn from `generator` (seeded by the
    trainer, saved in checkpoints) and the last incomplete batch is dropped, so every step
    sees a full batch (BatchNorm fails on a batch of one).
    """

    def __init__(self, split, batch_size, transform, shuffle=False, generator=None):
        self.split, self.batch_size, self.transform = split, batch_size, transform
        self.shuffle, self.generator = shuffle, generator

    def __len__(self):
        n, b = len(self.split), self.batch_size
        return n // b if self.shuffle else -(-n // b)

    def __iter__(self):
        n, device = len(self.split), self.split.y.device
        if self.shuffle:
            order = torch.randperm(n, generator=self.generator).to(device)
        else:
            order = torch.arange(n, device=device)
        for i in range(len(self)):
            index = order[i * self.batch_size : (i + 1) * self.batch_size]
            yield self.transform(self.split.x[index]), self.split.y[index]
