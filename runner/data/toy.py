"""The datasets that need no files: scikit-learn's 8x8 digits, the tutorials' sum of pairs, random tensors.

runner train                                   # digits, the default
runner train model=mlp dataset=sum_pairs       # regression
"""

from __future__ import annotations

import gzip
import importlib.util
from pathlib import Path

import numpy as np
import torch

from runner.data.splits import Split, Splits, holdout, three_way
from runner.io.errors import RunnerError


def digits_file() -> Path:
    """The 8x8 digits file scikit-learn ships, found without importing scikit-learn (2.7 s on a 2-core machine)."""
    # locates the package without running it
    spec = importlib.util.find_spec("sklearn")
    path = Path(spec.origin).parent / "datasets" / "data" / "digits.csv.gz" if spec and spec.origin else None
    if path is None or not path.is_file():
        raise RunnerError(
            "dataset=digits reads the 8x8 digits that scikit-learn ships (sklearn/datasets/data/digits.csv.gz), "
            "and they are not installed here. Install scikit-learn (pip install scikit-learn), or pick another dataset."
        )
    return path


def digits(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    test_fraction: float,
    val_fraction: float,
    split_seed: int,
    max_value: int,
    classes: list[int] | None = None,
) -> Splits:
    """scikit-learn's 1797 8x8 digits as uint8 (N, 1, 8, 8) images with pixel values 0..max_value, split by seed
    (no official split exists).

    Each of scikit-learn's pixels counts the inked pixels (0..16) of a 4x4 block of a 32x32 bitmap; it is
    stored as round(count * max_value / 16), halves to even. max_value=255 puts the digits on the scale of
    every other image dataset and of an ordinary PNG; 16 keeps scikit-learn's counts as they are. Read as
    sklearn.datasets.load_digits reads it (the same samples in the same order; test_toy.py compares).

    `classes` (e.g. [5, 6, 7, 8, 9]) keeps only those digits, labelled 0..len-1 in that order and named by their
    digit, as a task of its own (dataset.num_classes must be its length): to pretrain on some digits and fine-tune
    on others (init_from=).
    """
    if not isinstance(max_value, int) or not 1 <= max_value <= 255:
        raise RunnerError(
            f"dataset.max_value={max_value} must be a whole number from 1 to 255 (the stored value of a fully "
            f"inked pixel): 255 for the scale of an ordinary 8-bit image, 16 for scikit-learn's own counts."
        )
    with gzip.open(digits_file(), "rt") as f:
        table = np.loadtxt(f, delimiter=",")  # 64 pixels, then the label, per row
    pixels = np.rint(table[:, :-1] * max_value / 16)  # exact in float64: count * max_value is a whole number
    x = torch.from_numpy(pixels.reshape(-1, 1, 8, 8)).to(torch.uint8)  # (1797, 1, 8, 8)
    y = torch.from_numpy(table[:, -1].astype(np.int64))
    names = list(range(10))
    if classes is not None:
        names = list(classes)
        if not names or len(set(names)) != len(names) or not all(isinstance(c, int) and 0 <= c <= 9 for c in names):
            raise RunnerError(
                f"dataset.classes={names} must list distinct digits 0..9, e.g. dataset.classes=[5,6,7,8,9] (or null "
                f"for all ten)."
            )
        if num_classes != len(names):
            raise RunnerError(
                f"dataset.classes={names} keeps {len(names)} digits, and dataset.num_classes={num_classes}: give "
                f"dataset.num_classes={len(names)}."
            )
        keep = torch.isin(y, torch.tensor(names))
        x, y = x[keep], torch.tensor([names.index(int(v)) for v in y[keep]])
    train, val, test = three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test, class_names=[str(c) for c in names])


def sum_pairs(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    size: int,
    noise: float,
    test_fraction: float,
    val_fraction: float,
    split_seed: int,
) -> Splits:
    """Pairs (x1, x2) uniform in [-1, 1] and their sum as the target, as in the tutorials' regression."""
    gen = torch.Generator().manual_seed(split_seed)
    x = torch.rand(size, 2, generator=gen) * 2 - 1
    y = x.sum(dim=1, keepdim=True) + noise * torch.randn(size, 1, generator=gen)
    train, val, test = three_way(Split(x, y), test_fraction, val_fraction, split_seed)
    return Splits(train, val, test, feature_names=["x1", "x2"])


def fake(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    size: int,
    test_size: int,
    val_fraction: float,
    split_seed: int,
) -> Splits:
    """Random uint8 images (or float features for 1-D shapes) with random labels."""
    gen = torch.Generator().manual_seed(split_seed)

    def make(n: int) -> Split:
        shape = (n, *input_shape)
        if len(input_shape) == 3:
            x = torch.randint(0, 256, shape, generator=gen, dtype=torch.uint8)
        else:
            x = torch.randn(shape, generator=gen)
        return Split(x, torch.randint(0, num_classes, (n,), generator=gen))

    train, val = holdout(make(size), val_fraction, split_seed)
    return Splits(train, val, make(test_size), class_names=[str(c) for c in range(num_classes)])


def mnist1d(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    root: str,
    num_samples: int,
    val_fraction: float,
    split_seed: int,
) -> Splits:
    """MNIST-1D (Greydanus 2020): the ten digits as 1-D signals of length 40: padded, scaled, sheared, shifted, noised.

    Generated offline by the `mnist1d` package with its published arguments (seed 42: 4,000 training
    and 1,000 test sequences for num_samples=5000), once, then read from <root>/runner-cache/.
    The validation split is a seeded hold-out of the official training split.
    """
    import importlib.metadata

    from runner.data.cache import cached, expect

    try:
        version = importlib.metadata.version("mnist1d")
    except importlib.metadata.PackageNotFoundError:
        raise RunnerError(
            "dataset=mnist1d is generated by the mnist1d package, which is not installed here. "
            "Install it with pip install mnist1d (runner's own install includes it)."
        ) from None

    def generate():
        import random

        from mnist1d.data import get_dataset_args, make_dataset

        args = get_dataset_args()
        args.num_samples = num_samples
        numpy_state, python_state = np.random.get_state(), random.getstate()
        try:  # make_dataset seeds numpy's and python's global RNGs; the run's own draws must not see that
            data = make_dataset(args)
        finally:
            np.random.set_state(numpy_state)
            random.setstate(python_state)
        as_x = lambda a: torch.from_numpy(a).float().unsqueeze(1)  # noqa: E731 (N, 1, 40): one channel
        return {
            "train_x": as_x(data["x"]),
            "train_y": torch.from_numpy(data["y"]).long(),
            "test_x": as_x(data["x_test"]),
            "test_y": torch.from_numpy(data["y_test"]).long(),
        }

    spec: dict[str, tuple[tuple[int | str, ...], torch.dtype]] = {
        f"{part}_x": ((f"n_{part}", 1, 40), torch.float32) for part in ("train", "test")
    }
    spec.update({f"{part}_y": ((f"n_{part}",), torch.long) for part in ("train", "test")})
    folder = Path(root).expanduser() / "runner-cache"
    folder.mkdir(parents=True, exist_ok=True)
    data = cached(folder, name, f"{version}-{num_samples}".replace(".", "_"), generate, expect(spec))
    train, val = holdout(Split(data["train_x"], data["train_y"]), val_fraction, split_seed)
    return Splits(train, val, Split(data["test_x"], data["test_y"]), class_names=[str(c) for c in range(10)])
