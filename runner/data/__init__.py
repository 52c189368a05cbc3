"""Data: datasets as whole tensors, and the batches a training loop draws from them.

    splits.py       Split, Splits, holdout: what every dataset function returns
    toy.py          digits, sum_pairs, fake, mnist1d (no files to fetch)
    vision.py       CIFAR-10, MNIST, Fashion-MNIST through torchvision
    imagefolder.py  your own images, one folder per class
    images.py       image files to uint8 tensors; cache.py the decoded-tensor cache
    batches.py      the tensor-resident pipeline: permutations, index-select batches, crops, flips, normalisation
    stream.py       the DataLoader path for image folders too large for memory
    arrays.py       your own arrays (.npz, .pt, two .npy files)
    table.py        your own table (CSV, Parquet) as a dataset: its plan and splits
    tablefile.py    a table's file read as people have it (separators, quoted headers)
    encoding.py     a table's columns to numbers, fitted on the training split (TableEncoder)
    baselines.py    the trivial baseline (majority class; mean, median) and scikit-learn's models beside the network
    duplicates.py   samples two splits share (leaked duplicates): counted, kept, dropped or refused
    kinds.py        the dataset kinds that read your files, each declared once (their file keys, resolvers, reader)
    inputs.py       what `runner predict` reads: images, folders, globs, .npy/.pt arrays, CSV rows

A dataset of your own is one function returning `Splits` (docs/extending.md):

    from runner.data import Split, Splits, holdout
"""

from __future__ import annotations

from typing import Any

__all__ = ["Split", "Splits", "holdout"]


def __getattr__(name: str) -> Any:
    # imported when first asked for: runner --help reads data/kinds.py (torch-free) and must not import torch
    if name in __all__:
        from runner.data import splits

        return getattr(splits, name)
    raise AttributeError(f"module 'runner.data' has no attribute {name!r}")
