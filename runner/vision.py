"""Image datasets from files: CIFAR-10, MNIST, Fashion-MNIST (torchvision) and image folders.

    runner train model=cnn dataset=cifar10                      # data/ or $RUNNER_DATA
    runner train dataset=imagefolder dataset.root=~/pets dataset.input_shape=[3,64,64]

Each is decoded once into uint8 (N, C, H, W) tensors and cached beside the raw files
(runner-cache/), keyed by the raw files' names, sizes and modification times, so the next
run skips decoding and a changed file rebuilds the cache. An image folder too large for
memory is streamed through a DataLoader instead (runner/loader.py).
"""

import hashlib
import os
import shutil
from pathlib import Path

import torch

from runner.checkpoint import safe_load, save
from runner.datasets import Split, Splits, holdout
from runner.errors import RunnerError

# What each torchvision dataset needs on disk, and where to get it, for the message shown when it is missing.
_MNIST_FILES = ["train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"]
EXPECTED = {
    "CIFAR10": ("cifar-10-batches-py", ["data_batch_1", "data_batch_2", "data_batch_3", "data_batch_4",
                                         "data_batch_5", "test_batch", "batches.meta"],
                "Download cifar-10-python.tar.gz (https://www.cs.toronto.edu/~kriz/cifar.html) and extract it into {root}"),
    "MNIST": ("MNIST/raw", _MNIST_FILES,
              "Download the four MNIST .gz files (https://ossci-datasets.s3.amazonaws.com/mnist/) and decompress them into {raw}"),
    "FashionMNIST": ("FashionMNIST/raw", _MNIST_FILES,
                     "Download the four Fashion-MNIST .gz files (https://github.com/zalandoresearch/fashion-mnist) "
                     "and decompress them into {raw}"),
}


def fingerprint(files, *extra):
    """A short hash of the files' names, sizes and modification times (and `extra`)."""
    h = hashlib.sha1(repr(extra).encode())
    for f in sorted(files):
        st = f.stat()
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def cached(cache_file, build):
    """`build()` (a dict of tensors and plain data), saved to `cache_file` and loaded from it next time."""
    if cache_file.is_file():
        try:
            return safe_load(cache_file)
        except RunnerError:
            pass  # a damaged cache is rebuilt, never trusted
    data = build()
    try:
        save(data, cache_file)
        for stale in cache_file.parent.glob(cache_file.name.rsplit("-", 1)[0] + "-*.pt"):
            if stale != cache_file:
                stale.unlink(missing_ok=True)
    except OSError:
        pass  # a read-only data root still works, only slower next time
    return data


def _missing(name, root, cls_name, reason):
    folder, files, how = EXPECTED[cls_name]
    root = root.resolve()
    why = f"they could not be downloaded ({reason})" if reason else "downloading is off (dataset.download=false)"
    return RunnerError(
        f"dataset {name}: its files are not in {root / folder} and {why}. {how.format(root=root, raw=root / folder)}, "
        f"so that {root / folder} holds {', '.join(files)}; or point dataset.root (or the RUNNER_DATA environment "
        f"variable) at a directory that already has them."
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
        raise _missing(name, root, cls.__name__, f"{type(err).__name__}: {str(err).strip().splitlines()[0] if str(err).strip() else ''}") from None


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
                raise RunnerError(f"dataset {name}: the files in {raw_dir} are incomplete or corrupted "
                                  f"({type(err).__name__}: {err}). "
                                  f"Delete them and let runner download them again, or replace them.") from None
            x = torch.as_tensor(ds.data)
            x = x.permute(0, 3, 1, 2) if x.dim() == 4 else x.unsqueeze(1)  # CIFAR is NHWC, MNIST is NHW
            out[f"{part}_x"], out[f"{part}_y"] = x.contiguous(), torch.as_tensor(ds.targets, dtype=torch.long)
        out["classes"] = list(ds.classes)
        return out

    data = cached(root / "runner-cache" / f"{name}-{fingerprint(raw_files)}.pt", decode)
    train, val = holdout(Split(data["train_x"], data["train_y"]), val_fraction, split_seed)
    return Splits(train, val, Split(data["test_x"], data["test_y"]), class_names=data["classes"])


def cifar10(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """CIFAR-10: 50,000 training and 10,000 test 32x32 colour images in 10 classes."""
    return _torchvision("CIFAR10", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed)


def mnist(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """MNIST: 60,000 training and 10,000 test 28x28 handwritten digits."""
    return _torchvision("MNIST", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed)


def fashion_mnist(*, name, task, input_shape, num_classes, root, download, val_fraction, split_seed):
    """Fashion-MNIST: MNIST's shapes and sizes, with 10 kinds of clothing."""
    return _torchvision("FashionMNIST", name=name, root=root, download=download, val_fraction=val_fraction, split_seed=split_seed)


# ---- image folders -------------------------------------------------------------------------

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def class_folders(root):
    """The class names of an image folder: its subfolders (those of train/ when it has one); at least two."""
    root = Path(root).expanduser()
    base = root / "train" if (root / "train").is_dir() else root
    if not base.is_dir():
        raise RunnerError(f"dataset.root={root} is not a directory. Point it at a folder with one subfolder of images per class.")
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if base == root:
        classes = [c for c in classes if c not in ("val", "test", "runner-cache")]
    if len(classes) < 2:
        found = f"only the class folder '{classes[0]}'" if classes else "no class folders"
        raise RunnerError(f"dataset.root={root} has {found}: classification needs at least two, one folder of images per "
                          f"class ({root}/cat/001.jpg, {root}/dog/001.jpg, ...).")
    return classes


def count_classes(root):
    """OmegaConf resolver behind imagefolder's num_classes: the number of class folders."""
    return len(class_folders(root))


class ImageFiles(torch.utils.data.Dataset):
    """(path, label) pairs read as uint8 (C, H, W) tensors of one size; a bad file becomes a message."""

    def __init__(self, samples, shape):
        self.samples, self.shape = samples, tuple(shape)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB" if self.shape[0] == 3 else "L").resize(self.shape[:0:-1], Image.BILINEAR)
                return pil_to_tensor(img), label, ""
        except Exception as err:  # reported by the main process, naming the file
            return torch.zeros(self.shape, dtype=torch.uint8), label, f"{path}: {type(err).__name__}: {err}"


def _samples(folder, classes):
    samples = []
    for label, cls in enumerate(classes):
        d = folder / cls
        if d.is_dir():
            samples += [(str(p), label) for p in sorted(d.rglob("*")) if p.suffix.lower() in IMAGE_EXTENSIONS]
    return samples


def raise_unreadable(errors):
    """ImageFiles reports a file it cannot read as a message; the main process raises it, naming the file."""
    bad = [e for e in errors if e]
    if bad:
        raise RunnerError(f"cannot read image {bad[0]}. Remove or replace the file (and any other unreadable ones).")


def decode_images(samples, shape, workers):
    """All `samples` decoded into one uint8 tensor, in parallel worker processes."""
    x = torch.empty((len(samples), *shape), dtype=torch.uint8)
    loader = torch.utils.data.DataLoader(ImageFiles(samples, shape), batch_size=256, num_workers=workers)
    i = 0
    for images, _, errors in loader:
        raise_unreadable(errors)
        x[i : i + len(images)] = images
        i += len(images)
    return x


def imagefolder(*, name, task, input_shape, num_classes, root, val_fraction, test_fraction, split_seed,
                in_memory, memory_limit_gb, workers):
    """One folder per class; train/, val/ and test/ subfolders are used when present, else seeded splits."""
    root = Path(root).expanduser()
    classes = class_folders(root)
    base = root / "train" if (root / "train").is_dir() else root
    parts = {"train": _samples(base, classes)}
    if not parts["train"]:
        raise RunnerError(f"dataset.root={root} has class folders but no images in them ({', '.join(IMAGE_EXTENSIONS)}). Add images.")
    for part in ("val", "test"):
        if (root / part).is_dir():
            extra = sorted(p.name for p in (root / part).iterdir() if p.is_dir() and p.name not in classes)
            if extra:
                raise RunnerError(f"{root / part} has class folders that {base} lacks: {', '.join(extra)}. Give every split the same classes.")
            parts[part] = _samples(root / part, classes)
    shape = tuple(input_shape)
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    n_images = sum(len(s) for s in parts.values())
    if in_memory == "auto":
        in_memory = n_images * torch.Size(shape).numel() <= memory_limit_gb * 2**30
    if in_memory:
        all_files = [Path(p) for s in parts.values() for p, _ in s]

        def decode():
            out = {"classes": classes}
            for part, samples in parts.items():
                out[f"{part}_x"] = decode_images(samples, shape, workers)
                out[f"{part}_y"] = torch.tensor([label for _, label in samples], dtype=torch.long)
            return out

        data = cached(root / "runner-cache" / f"{name}-{fingerprint(all_files, shape)}.pt", decode)
        splits = {part: Split(data[f"{part}_x"], data[f"{part}_y"]) for part in parts}
    else:
        from runner.loader import FileSplit

        splits = {part: FileSplit(samples, shape, workers) for part, samples in parts.items()}
    train = splits["train"]
    test = splits.get("test")
    if test is None:
        train, test = holdout(train, test_fraction, split_seed)
    val = splits.get("val")
    if val is None:
        train, val = holdout(train, val_fraction, split_seed + 1)
    return Splits(train, val, test, class_names=classes)

