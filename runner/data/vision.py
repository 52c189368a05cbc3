"""CIFAR-10, MNIST and Fashion-MNIST through torchvision, decoded once into uint8 tensors and cached.

    runner train model=cnn dataset=cifar10                      # data/ or $RUNNER_DATA
    runner train dataset=mnist dataset.download=false           # never touch the network

The official train/test splits are kept; validation is a seeded hold-out of train.
"""

import shutil
from pathlib import Path

import torch

from runner.data.cache import cached, expect, fingerprint
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
        "Download the four MNIST .gz files (https://ossci-datasets.s3.amazonaws.com/mnist/) and decompress them into "
        "{raw}",
    ),
    "FashionMNIST": (
        "FashionMNIST/raw",
        _MNIST_FILES,
        "Download the four Fashion-MNIST .gz files (https://github.com/zalandoresearch/fashion-mnist) "
        "and decompress them into {raw}",
    ),
}


def _missing(name, root, cls_name, reason):
    folder, files, how = EXPECTED[cls_name]
    root = root.resolve()
    why = f"they could not be downloaded ({reason})" if reason else "downloading is off (dataset.download=false)"
    return RunnerError(
        f"dataset {name}: its files are not in {root / folder} and {why}. {how.format(root=root, raw=root / folder)}, "
        f"so that {root / folder} holds {', '.join(files)}; or give dataset.root=DIR, a directory that already has "
        f"them (train, eval, predict and export all take it; for new runs, RUNNER_DATA=DIR in the environment)."
    )


def _download(cls, root, name):
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


def _torchvision(cls_name, *, name, root, download, val_fraction, split_seed):
    import torchvision.datasets

    cls = getattr(torchvision.datasets, cls_name)
    root = Path(root).expanduser()
    raw_dir = root / EXPECTED[cls_name][0]
    raw_files = [raw_dir / f for f in EXPECTED[cls_name][1]]
    if not all(f.is_file() for f in raw_files):
        if not download:
            raise _missing(name, root, cls_name, None)
        _download(cls, root, name)

    def decode():
        out = {}
        for part in ("train", "test"):
            try:
                ds = cls(root, train=part == "train", download=False)
            except Exception as err:  # torchvision's md5 check, or the reader itself failing on a damaged file
                raise RunnerError(
                    f"dataset {name}: the files in {raw_dir} are incomplete or corrupted "
                    f"({type(err).__name__}: {err}). "
                    f"Delete them and let runner download them again, or replace them."
                ) from None
            x = torch.as_tensor(ds.data)
            x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)  # CIFAR is NHWC, MNIST is NHW
            out[f"{part}_x"], out[f"{part}_y"] = x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)
        out["classes"] = list(ds.classes)
        return out

    spec = {
        f"{part}_x": ((f"n_{part}", "c", "h", "w"), torch.uint8) for part in ("train", "test")
    }  # input_shape: build_data
    spec.update({f"{part}_y": ((f"n_{part}",), torch.long) for part in ("train", "test")})
    data = cached(root / "runner-cache", name, fingerprint(raw_files), decode, expect(spec))
    train, val = holdout(Split(data["train_x"], data["train_y"]), val_fraction, split_seed)
    return Splits(train, val, Split(data["test_x"], data["test_y"]), class_names=data["classes"])


def cifar10(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """CIFAR-10: 50,000 training and 10,000 test 32x32 colour images in 10 classes."""
    return _torchvision(
        "CIFAR10", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed
    )


def mnist(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """MNIST: 60,000 training and 10,000 test 28x28 handwritten digits."""
    return _torchvision(
        "MNIST", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed
    )


def fashion_mnist(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """Fashion-MNIST: MNIST's shapes and sizes, with 10 kinds of clothing."""
    return _torchvision(
        "FashionMNIST", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed
    )
