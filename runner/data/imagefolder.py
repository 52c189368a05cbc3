"""Your own images, one folder per class: `dataset=imagefolder dataset.root=$HOME/pets`.

    runner train dataset=imagefolder dataset.root=$HOME/digits                          # the shape the images have
    runner train dataset=imagefolder dataset.root=$HOME/pets dataset.input_shape=[3,64,64]  # every image resized

Without dataset.input_shape the shape is the images' own (`image_shape`: the most common size,
one channel when all are grayscale), and the run records it; the log says what was found and
what it is resized to. train/, val/ and test/ subfolders are used when present; whatever is missing is a seeded
hold-out of train. A folder that fits in memory is decoded once into a uint8 tensor and
cached in runner's cache directory, never in the folder (runner/data/cache.py); a larger one
streams through a DataLoader (runner/data/stream.py).
"""

from __future__ import annotations

import functools
import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import torch

from runner.data.cache import cached, expect, fingerprint, place, runner_cache
from runner.data.images import IMAGE_EXTENSIONS, INTERPOLATIONS, Resize, decode_images
from runner.data.splits import Split, Splits, check_folds, fold_rows, holdout
from runner.data.stream import FileSplit
from runner.io.errors import RunnerError


def class_folders(root: str | Path) -> list[str]:
    """The class names of an image folder: its subfolders (those of train/ when it has one).

    At least two, and none without images: a class the model could never see is refused by
    name rather than counted in num_classes.
    """
    root = Path(root).expanduser()
    base = root / "train" if (root / "train").is_dir() else root
    if not base.is_dir():
        raise RunnerError(
            f"dataset.root={root} is not a directory. Point it at a folder with one subfolder of images per class."
        )
    classes = sorted(p.name for p in base.iterdir() if p.is_dir() and not p.name.startswith("."))
    if base == root:  # runner-cache/: where runner versions before the cache directory cached a folder
        classes = [c for c in classes if c not in ("val", "test", "runner-cache")]
    if len(classes) < 2:
        found = f"only the class folder '{classes[0]}'" if classes else "no class folders"
        raise RunnerError(
            f"dataset.root={root} has {found}: classification needs at least two, one folder of images per "
            f"class ({root}/cat/001.jpg, {root}/dog/001.jpg, ...)."
        )
    empty = [c for c in classes if next(_walk_images(base / c), None) is None]
    if empty:
        raise RunnerError(
            f"{base} has class folders with no images in them: {', '.join(empty)}. A class with no images "
            f"cannot be learned: add images ({', '.join(IMAGE_EXTENSIONS)}) or remove the folders."
        )
    return classes


def image_files(folder: str | Path) -> list[str]:
    """The image files under `folder`, recursively, as strings in path order; hidden files and folders skipped
    (macOS's ._x.jpg resource forks, .DS_Store, .git are not images). os.walk, not pathlib: 50,000 files in 0.1 s."""
    return sorted(_walk_images(folder), key=lambda path: path.split(os.sep))  # the order of sorted(Path)s


def _walk_images(folder: str | Path) -> Iterator[str]:
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = [d for d in dirnames if not d.startswith(".")]
        for name in filenames:
            if not name.startswith(".") and os.path.splitext(name)[1].lower() in IMAGE_EXTENSIONS:
                yield os.path.join(dirpath, name)


def count_classes(root: str | Path) -> int:
    """OmegaConf resolver behind imagefolder's num_classes: the number of class folders."""
    return len(class_folders(root))


LOOKED_AT = 200  # image headers read to find a folder's shape, spread evenly over its sorted files
GRAY_MODES = ("1", "L", "LA", "I", "I;16", "I;16B", "I;16L", "I;16N", "F")  # to_8bit makes these one channel


def look(root: str | Path) -> tuple[int, Counter[tuple[int, int]], int, int]:
    """(channels, sizes, images looked at, images in all) of an image folder, from the headers of up to LOOKED_AT
    images spread evenly over its sorted files: one channel when every one is grayscale, three when any is colour;
    `sizes` counts each upright (EXIF-rotated) (height, width). An unreadable file is left to the decoding that
    follows, which names it."""
    root = Path(root).expanduser()
    class_folders(root)  # the folder's own problems first, in their own words
    files = image_files(root)
    picked = tuple(files[:: max(1, math.ceil(len(files) / LOOKED_AT))])
    channels, sizes = _headers(picked, root)
    return channels, sizes, len(picked), len(files)


# the config's three dimensions and the run's note read one set of headers
@functools.lru_cache(maxsize=8)
def _headers(picked: tuple[str, ...], root: Path) -> tuple[int, Counter[tuple[int, int]]]:
    from PIL import Image

    sizes: Counter[tuple[int, int]] = Counter()
    colour = False
    for path in picked:
        try:
            with Image.open(path) as img:
                width, height = img.size
                if img.getexif().get(0x0112) in (5, 6, 7, 8):  # EXIF orientations that turn the image on its side
                    width, height = height, width
                colour = colour or img.mode not in GRAY_MODES
        except Exception:
            continue
        sizes[(height, width)] += 1
    if not sizes:
        raise RunnerError(
            f"none of the {len(picked)} images looked at under {root} can be read, so their shape is unknown. "
            f"Replace them, or give the shape to resize them to: dataset.input_shape=[3,64,64]."
        )
    return 3 if colour else 1, sizes


def image_shape(root: str | Path) -> list[int]:
    """OmegaConf resolver behind imagefolder's default input_shape: [channels, height, width] of the images as they
    are, the most common size where sizes differ."""
    channels, sizes, _, _ = look(root)
    return [channels, *sizes.most_common(1)[0][0]]


def image_shape_at(root: str, dim: int) -> int:
    """One dimension of image_shape(root): imagefolder's YAML gives input_shape as a list of three resolvers, not one
    resolver returning a list, as model configs index it (${dataset.input_shape[0]}) and OmegaConf cannot index
    into a resolver's result."""
    return image_shape(root)[dim]


def found(root: str | Path, shape: Sequence[int], resize: int | None = None) -> str:
    """The line a run prints about an image folder: what its images are, and what they become."""
    channels, sizes, looked_at, n_files = look(root)
    kind = "grayscale" if channels == 1 else "colour"
    common = [f"{h}x{w}" + (f" ({n} of {looked_at})" if len(sizes) > 1 else "") for (h, w), n in sizes.most_common(3)]
    seen = f"{n_files:,} images" + (f" ({looked_at} looked at)" if looked_at < n_files else "")
    what = f"{', '.join(common)}{', ...' if len(sizes) > 3 else ''} {kind}"
    mode = "RGB" if shape[0] == 3 else "grayscale"
    if resize:
        return (
            f"image folder: found {seen}, {what}: converted to {mode}, resized to a shorter side of {resize} pixels "
            f"and centre-cropped to {list(shape)} (dataset.resize, dataset.input_shape)."
        )
    if list(shape) == image_shape(root):
        return (
            f"image folder: found {seen}, {what}: input_shape {list(shape)}, as found"
            f"{' (others resized to it)' if len(sizes) > 1 else ''}. dataset.input_shape=[C,H,W] resizes them all."
        )
    return (
        f"image folder: found {seen}, {what}: converted to {mode} and resized to {list(shape)} (dataset.input_shape)."
    )


def _samples(folder: Path, classes: Sequence[str]) -> list[tuple[str, int]]:
    samples = []
    for label, cls in enumerate(classes):
        d = folder / cls
        if d.is_dir():
            samples += [(path, label) for path in image_files(d)]
    return samples


def imagefolder(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    root: str | Path,
    val_fraction: float,
    test_fraction: float,
    split_seed: int,
    in_memory: bool | str,
    memory_limit_gb: float,
    workers: int | None,
    cache_dir: str | None = None,
    resize: int | None = None,
    interpolation: str = "bilinear",
    folds: int | None = None,
    fold: int | None = None,
) -> Splits:
    """One folder per class; train/, val/ and test/ subfolders are used when present, else seeded splits.

    `resize` None stretches every image to input_shape; an int resizes it (aspect kept) to that shorter side, then
    crops the centre input_shape (torchvision's Resize + CenterCrop), as pretrained weights are evaluated.
    `interpolation` is the resize filter, by torchvision's name (bilinear, bicubic, nearest, lanczos). `folds`: the
    validation split is fold `fold` of the training images (after the test hold-out), stratified by class."""
    root = Path(root).expanduser()
    shape = tuple(input_shape)
    if interpolation not in INTERPOLATIONS:
        raise RunnerError(
            f"dataset.interpolation={interpolation} is not a resize filter runner knows. Use one of "
            f"{', '.join(INTERPOLATIONS)} (torchvision's names; Pillow does the resize)."
        )
    if resize is not None and (not isinstance(resize, int) or isinstance(resize, bool) or resize < max(shape[1:])):
        raise RunnerError(
            f"dataset.resize={resize} cannot be centre-cropped to input_shape {list(shape)}: the shorter side must "
            f"be at least the crop, {max(shape[1:])} pixels. Use dataset.resize={max(shape[1:])} or more, or "
            f"dataset.resize=null to stretch each image to input_shape."
        )
    sizing = Resize.of(resize, interpolation)
    classes = class_folders(root)
    base = root / "train" if (root / "train").is_dir() else root
    parts = {"train": _samples(base, classes)}
    for part in ("val", "test"):
        if (root / part).is_dir():
            extra = sorted(p.name for p in (root / part).iterdir() if p.is_dir() and p.name not in classes)
            if extra:
                raise RunnerError(
                    f"{root / part} has class folders that {base} lacks: {', '.join(extra)}. Give every split the same "
                    f"classes."
                )
            parts[part] = _samples(root / part, classes)
    check_folds(folds, fold)
    if folds is not None and "val" in parts:
        raise RunnerError(
            f"dataset.folds={folds} holds out each fold of the training images in turn as the validation split, and "
            f"{root / 'val'} is a validation split of its own. Move its class folders into {base} (or rename val/), "
            f"or leave out dataset.folds."
        )
    workers = min(8, os.cpu_count() or 1) if workers is None else workers
    n_images = sum(len(s) for s in parts.values())
    if in_memory == "auto":
        in_memory = n_images * torch.Size(shape).numel() <= memory_limit_gb * 2**30
    if in_memory:
        all_files = [p for s in parts.values() for p, _ in s]

        def decode():
            out = {"classes": classes}
            for part, samples in parts.items():
                out[f"{part}_x"] = decode_images(samples, shape, workers, sizing)
                out[f"{part}_y"] = torch.tensor([label for _, label in samples], dtype=torch.long)
            return out

        spec = {}
        for part, samples in parts.items():
            spec[f"{part}_x"], spec[f"{part}_y"] = ((len(samples), *shape), torch.uint8), ((len(samples),), torch.long)
        # two sizes of one folder, or two ways to reach one: two caches
        how = "" if sizing == Resize() else f"-{sizing.shorter_side or 'stretch'}-{sizing.resample.lower()}"
        stem = f"{name}-{'x'.join(map(str, shape))}{how}-{place(root)}"
        check = expect(spec, classes=classes)
        data = cached(runner_cache(cache_dir), stem, fingerprint(all_files), decode, check)
        # each image named by its file, under root, for predictions.csv
        files = {part: [str(Path(p).relative_to(root)) for p, _ in samples] for part, samples in parts.items()}
        # in memory: Split; streamed from the files: FileSplit
        splits: dict[str, Any] = {
            part: Split(data[f"{part}_x"], data[f"{part}_y"], files[part], "filename") for part in parts
        }
    else:
        splits = {part: FileSplit(samples, shape, workers, sizing) for part, samples in parts.items()}
    train = splits["train"]
    test = splits.get("test")
    if test is None:
        train, test = holdout(train, test_fraction, split_seed)
    val = splits.get("val")
    if folds is not None:
        labels = train.y.numpy() if isinstance(train, Split) else [label for _, label in train.samples]
        stratify = torch.as_tensor(labels).numpy()
        rest, held = fold_rows(len(train), folds, fold, split_seed + 1, stratify, classes, where=str(root))
        train, val = train.subset(torch.as_tensor(rest)), train.subset(torch.as_tensor(held))
    elif val is None:
        train, val = holdout(train, val_fraction, split_seed + 1)
    return Splits(train, val, test, class_names=classes, notes=[found(root, shape, resize)])
