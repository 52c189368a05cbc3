"""Data: datasets as whole tensors, and the batches a training loop draws from them.

    splits.py       Split, Splits, holdout: what every dataset function returns
    toy.py          digits, sum_pairs, fake, mnist1d (no files to fetch)
    vision.py       CIFAR-10, MNIST, Fashion-MNIST through torchvision
    imagefolder.py  your own images, one folder per class
    images.py       image files to uint8 tensors; cache.py the decoded-tensor cache
    batches.py      the tensor-resident pipeline: permutations, index-select batches, crops, flips, normalisation
    stream.py       the DataLoader path for image folders too large for memory
    inputs.py       what `runner predict` reads: images, folders, globs, .npy/.pt arrays, CSV rows

A dataset of your own is one function returning `Splits` (docs/extending.md):

    from runner.data import Split, Splits, holdout
"""

from runner.data.splits import Split, Splits, holdout

__all__ = ["Split", "Splits", "holdout"]
