"""CIFAR-10, MNIST and Fashion-MNIST through torchvision, decoded once into uint8 tensors and cached.

    runner train model=cnn dataset=cifar10                      # data/ or $RUNNER_DATA
    runner train dataset=mnist dataset.download=false           # never touch the network

The official train/test splits are kept; validation is a seeded hold-out of train. MNIST's and
Fashion-MNIST's IDX files are read as they are distributed (.gz) or decompressed, as torchvision's
own download leaves them (both, side by side).
"""

from __future__ import annotations

import gzip
import math
import shutil
import struct
from pathlib import Path
from typing import Any, cast

import torch

from runner.data.cache import cached, expect, fingerprint, place, runner_cache
from runner.data.splits import Split, Splits, holdout
from runner.io.errors import RunnerError

# What each torchvision dataset needs on disk, and where to get it, for the message shown when it is missing.
_MNIST_FILES = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
]
EXPECTED = {
    "CIFAR10": (
        "cifar-10-batches-py",
        ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4", "data_batch_5", "test_batch", "batches.meta"],
        "Download cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and extract it into {root}",
    ),
    "MNIST": (
        "MNIST/raw",
        _MNIST_FILES,
        "Download the four MNIST .gz files (https://ossci-datasets.s3.amazonaws.com/mnist/) into {raw} (as they are, "
        "or decompressed)",
    ),
    "FashionMNIST": (
        "FashionMNIST/raw",
        _MNIST_FILES,
        "Download the four Fashion-MNIST .gz files (https://github.com/zalandoresearch/fashion-mnist) "
        "into {raw} (as they are, or decompressed)",
    ),
}


def _missing(name: str, root: Path, cls_name: str, reason: str | None) -> RunnerError:
    folder, files, how = EXPECTED[cls_name]
    root = root.resolve()
    why = f"they could not be downloaded ({reason})" if reason else "downloading is off (dataset.download=false)"
    return RunnerError(
        f"dataset {name}: its files are not in {root / folder} and {why}. {how.format(root=root, raw=root / folder)}, "
        f"so that {root / folder} holds {', '.join(files)}; or give dataset.root=DIR, a directory that already has "
        f"them (train, eval, predict and export all take it; for new runs, RUNNER_DATA=DIR in the environment)."
    )


def _download(cls: Any, root: Path, name: str) -> None:
    """torchvision's download, leaving `root` as it found it if the download fails."""
    before = set(root.rglob("*")) if root.exists() else None
    try:
        cls(root, train=True, download=True)
    except Exception as err:
        if before is None:
            shutil.rmtree(root, ignore_errors=True)
        else:
            for path in sorted(set(root.rglob("*")) - before, key=lambda p: len(p.parts), reverse=True):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
        raise _missing(
            name,
            root,
            cls.__name__,
            f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}",
        ) from None


def _raw_files(cls_name: str, raw_dir: Path) -> list[Path] | None:
    """The dataset's files in `raw_dir`, each as it is or (MNIST's IDX files) gzip'd as distributed; None if any is
    missing."""
    found = []
    for f in EXPECTED[cls_name][1]:
        plain, packed = raw_dir / f, raw_dir / f"{f}.gz"
        if plain.is_file():
            found.append(plain)
        elif cls_name != "CIFAR10" and packed.is_file():
            found.append(packed)
        else:
            return None
    return found


def read_idx(path: Path) -> torch.Tensor:
    """An IDX file of unsigned bytes (MNIST's format: magic 0, 0, 0x08, ndim; big-endian sizes; the bytes), plain
    or gzip'd, as a uint8 tensor. What torchvision's MNIST reads, without needing the files decompressed."""
    with (gzip.open if path.suffix == ".gz" else open)(path, "rb") as f:
        data = f.read()
    if len(data) < 4 or data[:3] != b"\0\0\x08":
        raise ValueError(f"{path.name} is not an IDX file of unsigned bytes")
    ndim = data[3]
    dims = struct.unpack(f">{ndim}I", data[4 : 4 + 4 * ndim])
    body = data[4 + 4 * ndim :]
    if len(body) != math.prod(dims):
        raise ValueError(f"{path.name} holds {len(body)} bytes where its header says {math.prod(dims)}")
    return torch.frombuffer(bytearray(body), dtype=torch.uint8).reshape(dims)


def _read_mnist(files: list[Path], part: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(images (N, 1, 28, 28), labels (N,)) of one split from the four IDX files."""
    prefix = "train" if part == "train" else "t10k"
    images, labels = (read_idx(next(f for f in files if f.name.startswith(f"{prefix}-{kind}"))) for kind in "il")
    if images.dim() != 3 or labels.dim() != 1 or len(images) != len(labels):
        raise ValueError(f"the {prefix} files hold images {list(images.shape)} and labels {list(labels.shape)}")
    return images.unsqueeze(1), labels.long()


def _torchvision(
    cls_name: str,
    *,
    name: str,
    root: str | Path,
    download: bool,
    val_fraction: float,
    split_seed: int,
    cache_dir: str | None,
) -> Splits:
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    root = Path(root).expanduser()
    raw_dir = root / EXPECTED[cls_name][0]
    raw_files = _raw_files(cls_name, raw_dir)
    if raw_files is None:
        if not download:
            raise _missing(name, root, cls_name, None)
        _download(cls, root, name)
        raw_files = _raw_files(cls_name, raw_dir)

    def decode():
        out = {}
        for part in ("train", "test"):
            try:
                if cls_name == "CIFAR10":
                    ds = cls(root, train=part == "train", download=False)
                    x, y = torch.as_tensor(ds.data).permute(0, 3, 1, 2), torch.as_tensor(ds.targets)  # NHWC
                else:
                    x, y = _read_mnist(raw_files, part)
            except Exception as err:  # torchvision's md5 check, or the reader itself failing on a damaged file
                raise RunnerError(
                    f"dataset {name}: the files in {raw_dir} are incomplete or corrupted "
                    f"({type(err).__name__}: {err}). "
                    f"Delete them and let runner download them again, or replace them."
                ) from None
            out[f"{part}_x"], out[f"{part}_y"] = x.contiguous(), y.long()
        out["classes"] = list(ds.classes) if cls_name == "CIFAR10" else list(cls.classes)
        return out

    # the sizes checked against input_shape by build_data
    spec: dict[str, tuple[tuple[int | str, ...], torch.dtype]] = {
        f"{part}_x": ((f"n_{part}", "c", "h", "w"), torch.uint8) for part in ("train", "test")
    }
    spec.update({f"{part}_y": ((f"n_{part}",), torch.long) for part in ("train", "test")})
    files = cast("list[Path]", raw_files)
    data = cached(runner_cache(cache_dir), f"{name}-{place(root)}", fingerprint(files), decode, expect(spec))
    train, val = holdout(Split(data["train_x"], data["train_y"]), val_fraction, split_seed)
    return Splits(train, val, Split(data["test_x"], data["test_y"]), class_names=data["classes"])


def cifar10(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    root: str,
    download: bool,
    val_fraction: float,
    split_seed: int,
    cache_dir: str | None = None,
) -> Splits:
    """CIFAR-10: 50,000 training and 10,000 test 32x32 colour images in 10 classes."""
    return _torchvision(
        "CIFAR10",
        name=name,
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        cache_dir=cache_dir,
    )


def mnist(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    root: str,
    download: bool,
    val_fraction: float,
    split_seed: int,
    cache_dir: str | None = None,
) -> Splits:
    """MNIST: 60,000 training and 10,000 test 28x28 handwritten digits."""
    return _torchvision(
        "MNIST",
        name=name,
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        cache_dir=cache_dir,
    )


def fashion_mnist(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    root: str,
    download: bool,
    val_fraction: float,
    split_seed: int,
    cache_dir: str | None = None,
) -> Splits:
    """Fashion-MNIST: MNIST's shapes and sizes, with 10 kinds of clothing."""
    return _torchvision(
        "FashionMNIST",
        name=name,
        root=root,
        download=download,
        val_fraction=val_fraction,
        split_seed=split_seed,
        cache_dir=cache_dir,
    )
