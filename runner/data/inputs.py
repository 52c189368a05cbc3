"""What `runner predict input=...` reads: raw samples from files, checked against what the model takes.

    input=photo.jpg            one image          input=pets/          a folder of images, recursively
    input='shots/*.png'        a glob             input=x.npy|.pt|.npz  an array of samples (N, *input_shape)
    input=rows.csv             feature rows       input=test           the run's own test split (predict.py)

Images go through the very reader training used (images.read_image: mode conversion, EXIF
orientation, bilinear resize to the run's input shape), so a photo of any size works. Everything
is read and checked before anything is written: a bad file, a wrong shape or a CSV with other
columns is refused with its name.
"""

from __future__ import annotations

import csv
import glob
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from runner.data.imagefolder import image_files
from runner.data.images import IMAGE_EXTENSIONS, STRETCH, Resize, raise_unreadable, read_image
from runner.data.kinds import predict_reader
from runner.data.tablefile import column_list
from runner.io.errors import RunnerError


@dataclass
class Inputs:
    # (N, *input_shape), raw: uint8 images or float features
    x: torch.Tensor
    # a name per sample (an image's file, a table's line), or None: rows are numbered from 0
    names: list[Any] | None
    # from a table's own target column, when it has one: class indices, or values (regression)
    labels: list[Any] | None = None
    # predictions.csv's column of the names: filename, line, row or index
    name_column: str = "filename"


@dataclass(frozen=True)
class Wanted:
    """What a run's model takes, as a dataset kind's reader of raw files (data/kinds.py's predict_reader) needs it."""

    input_shape: Sequence[int]
    input_dtype: str
    # a table's columns, in order (the model card's feature_names), or None
    feature_names: Sequence[str] | None
    # the model card's block of the run's dataset kind (a table's encoding: `table`), or None
    table: dict[str, Any] | None


def takes_images(input_shape: Sequence[int], input_dtype: str) -> bool:
    return len(input_shape) == 3 and input_shape[0] in (1, 3) and input_dtype == "uint8"


def read_inputs(
    spec: str | Path,
    input_shape: Sequence[int],
    input_dtype: str,
    feature_names: Sequence[str] | None = None,
    max_value: float = 255,
    resize: Resize = STRETCH,
    table: dict[str, Any] | None = None,
) -> Inputs:
    """The samples `spec` names, as one tensor of the model's input shape, with their names. Images are read by
    images.read_image, resized as `resize` says, their pixels on the scale 0..max_value the model was trained on;
    other files by the reader a dataset kind declares for their suffix (data/kinds.py)."""
    text = str(spec)
    path = Path(text).expanduser()
    if any(c in text for c in "*?["):
        files = sorted(Path(p) for p in glob.glob(str(path), recursive=True) if Path(p).is_file())
        images = [p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS]
        if not images:
            found = f" ({len(files)} files, none of them an image)" if files else ""
            raise RunnerError(
                f"input={spec} matches no image files{found}. Check the pattern; it is expanded by runner "
                f"(quote it so the shell does not), and `**` matches folders recursively."
            )
        return _images(images, None, input_shape, input_dtype, spec, max_value, resize)
    if not path.exists():
        raise RunnerError(
            f"input={spec} names nothing: no such file or folder. Pass an image, a folder of images, a glob, "
            f"a .npy/.pt/.npz array, a .csv of feature rows, or input=test for the run's own test split."
        )
    if path.is_dir():
        in_folder = image_files(path)
        if not in_folder:
            raise RunnerError(
                f"input={spec} is a folder with no images in it (searched recursively for "
                f"{', '.join(IMAGE_EXTENSIONS)}). Point input= at the folder that holds them."
            )
        return _images(in_folder, path, input_shape, input_dtype, spec, max_value, resize)
    suffix = path.suffix.lower()
    if suffix in IMAGE_EXTENSIONS:
        return _images([path], path.parent, input_shape, input_dtype, spec, max_value, resize)
    reader = predict_reader(suffix)
    inputs = reader(path, Wanted(input_shape, input_dtype, feature_names, table)) if reader else None
    if inputs is not None:
        return inputs
    raise RunnerError(
        f"input={spec}: runner cannot read {suffix or 'extension-less'} files. Pass an image "
        f"({', '.join(IMAGE_EXTENSIONS)}), a folder or glob of them, a .npy, .pt or .npz array, or a .csv of feature "
        f"rows."
    )


def _images(
    paths: Sequence[str | Path],
    root: Path | None,
    input_shape: Sequence[int],
    input_dtype: str,
    spec: str | Path,
    max_value: float,
    resize: Resize,
) -> Inputs:
    if not takes_images(input_shape, input_dtype):
        raise RunnerError(
            f"input={spec} is images, but this run's model takes samples of shape {list(input_shape)} "
            f"({input_dtype}), not images. Pass a .npy/.pt/.npz array of shape [N, {', '.join(map(str, input_shape))}]"
            f"{' or a .csv of feature rows' if len(input_shape) == 1 else ''}."
        )
    x, errors = torch.empty((len(paths), *input_shape), dtype=torch.uint8), []
    for i, p in enumerate(paths):
        try:
            x[i] = read_image(p, input_shape, max_value, resize)
        except Exception as err:
            errors.append(f"{p} ({type(err).__name__}: {err})")
    raise_unreadable(errors)
    return Inputs(x, [str(Path(p).relative_to(root)) if root else str(p) for p in paths])


def array_rows(path: Path, wanted: Wanted) -> Inputs:
    """dataset=arrays' reader of raw samples: a .npy, .pt or .npz array of shape (N, *input_shape), for any run whose
    samples it fits."""
    return Inputs(_array(path, path.suffix.lower(), wanted.input_shape), None)


def table_rows(path: Path, wanted: Wanted) -> Inputs | None:
    """dataset=csv's and parquet's reader: a table run's raw rows (its card's `table` block: _table_rows), else a CSV
    of numbers, one sample a row (_csv_rows); None for a Parquet file given to a run that is no table."""
    if wanted.table is not None:
        return _table_rows(path, wanted.table)
    if path.suffix.lower() == ".csv":
        return Inputs(_csv_rows(path, wanted.input_shape, wanted.feature_names), None)
    return None


def _array(path: Path, suffix: str, input_shape: Sequence[int]) -> torch.Tensor:
    if suffix == ".npy":
        import numpy as np

        try:
            x = torch.from_numpy(np.load(path, allow_pickle=False))
        except (ValueError, OSError) as err:
            raise RunnerError(
                f"input={path} is not a readable .npy array of numbers ({err}). Save it with numpy.save."
            ) from None
    # dataset=arrays' file: its x, or its x_test
    elif suffix == ".npz":
        import numpy as np

        try:
            with np.load(path, allow_pickle=False) as archive:
                name = next((n for n in ("x", "x_test") if n in archive.files), None)
                if name is None:
                    raise RunnerError(
                        f"input={path} has no array named x or x_test (it has: {', '.join(archive.files)}). Save the "
                        f"samples as numpy.savez(path, x=...)."
                    )
                x = torch.from_numpy(archive[name])
        except (ValueError, OSError) as err:
            raise RunnerError(f"input={path} is not a readable .npz of number arrays ({err}).") from None
    else:
        from runner.io.serialization import safe_load

        x = safe_load(path)
        if not isinstance(x, torch.Tensor):
            raise RunnerError(
                f"input={path} holds a {type(x).__name__}, not a tensor. Save the samples as one tensor: "
                f"torch.save(x, '{path.name}') with x of shape [N, {', '.join(map(str, input_shape))}]."
            )
    if tuple(x.shape) == tuple(input_shape):
        x = x.unsqueeze(0)
    if tuple(x.shape[1:]) != tuple(input_shape) or not (
        x.dtype.is_floating_point or x.dtype in (torch.uint8, torch.int64, torch.int32)
    ):
        raise RunnerError(
            f"input={path} holds an array of shape {list(x.shape)} ({str(x.dtype).removeprefix('torch.')}); "
            f"this run's model takes samples of shape {list(input_shape)}, so the array must be "
            f"[N, {', '.join(map(str, input_shape))}] of numbers."
        )
    return x


def _csv_rows(path: Path, input_shape: Sequence[int], feature_names: Sequence[str] | None) -> torch.Tensor:
    """Rows of numbers, one sample each; a header row, when there is one, must name the run's features."""
    width = math.prod(input_shape)
    with open(path, newline="", encoding="utf-8") as f:
        rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    if not rows:
        raise RunnerError(f"input={path} is an empty CSV file. It needs one row of {width} numbers per sample.")
    header = None if all(_number(c) for c in rows[0]) else [c.strip() for c in rows.pop(0)]
    if header is not None and feature_names:
        missing = [n for n in feature_names if n not in header]
        extra = [n for n in header if n not in feature_names]
        if missing or extra:
            parts = [
                f"missing {column_list(missing)}" if missing else "",
                f"extra {column_list(extra)}" if extra else "",
            ]
            raise RunnerError(
                f"input={path} has other columns than this run's features: {'; '.join(p for p in parts if p)}. "
                f"The columns must be {column_list(feature_names)} (any order), or no header row at all."
            )
        order = [header.index(n) for n in feature_names]
        rows = [[r[i] for i in order] if len(r) == len(header) else r for r in rows]
    if header is not None and not feature_names and len(header) != width:
        raise RunnerError(
            f"input={path} has {len(header)} columns ({column_list(header)}); this run's model takes "
            f"{width} features per sample. Keep exactly those columns."
        )
    for line, row in enumerate(rows, start=2 if header else 1):
        if len(row) != width:
            raise RunnerError(
                f"input={path}, line {line}: {len(row)} values where this run's model takes {width} "
                f"features per sample. Give every row {width} numbers."
            )
        bad = [c for c in row if not _number(c)]
        if bad:
            raise RunnerError(f"input={path}, line {line}: '{bad[0]}' is not a number. Every value must be one.")
    return torch.tensor([[float(c) for c in r] for r in rows], dtype=torch.float32).reshape(-1, *input_shape)


def _number(text: str) -> bool:
    try:
        float(text)
        return True
    except ValueError:
        return False


def _table_rows(path: Path, table: dict[str, Any]) -> Inputs:
    """A table run's input: its raw columns (any order, the target's too) encoded as the run's training split taught
    (data/table.py); the target column, when present, gives the truth: class indices, or values (regression); None
    (classification) or NaN (regression) where its cell is empty."""
    from runner.data.encoding import TableEncoder
    from runner.data.splits import class_index, unknown_classes
    from runner.data.tablefile import parquet, read_table

    frame = read_table(path, "input", table.get("sep"))
    x = torch.from_numpy(TableEncoder.from_dict(table).encode(frame, path))
    labels, target = None, table["target"]
    if target in frame.columns and table["classes"]:
        unknown = unknown_classes(frame[target], table["classes"])
        if unknown:
            raise RunnerError(
                f"input={path}: its {target} column has classes this run does not know: {', '.join(unknown[:5])}. "
                f"Its classes are {', '.join(table['classes'])}."
            )
        index = class_index(frame[target], table["classes"])
        labels = [] if index is None else [None if i < 0 else int(i) for i in index]
    # a regression target: the true values, in the target's units
    elif target in frame.columns:
        import pandas as pd

        values = pd.to_numeric(frame[target], errors="coerce")
        if values.isna().all():
            raise RunnerError(
                f"input={path}: its {target} column holds no numbers, so it cannot be the truth for this "
                f"regression run. Drop the column, or give the target's values."
            )
        labels = values.astype(float).tolist()
    # each row named by its line in a CSV file, by its row (from 1) in a Parquet one, as the training split's are
    if parquet(path):
        return Inputs(x, [label + 1 for label in frame.index.tolist()], labels, "row")
    return Inputs(x, [label + 2 for label in frame.index.tolist()], labels, "line")
