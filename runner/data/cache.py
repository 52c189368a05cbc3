"""The decoded-tensor cache: a dataset decoded once and saved in runner's own cache directory.

    <cache dir>/datasets/<stem>-<fingerprint>.pt

The cache directory is runner's, as torch hub's and Hugging Face's are theirs (`cache_dir`):
never the data's own folder, where a runner-cache/ would be one more "class" to torchvision's
ImageFolder and a write into a folder that may be shared or read-only. `stem` says what the
cache is of (the dataset's name, for an image folder the size its images are resized to, and a
hash of the data folder's absolute path, so two folders never share a cache); `fingerprint`
hashes the raw files' names, sizes and modification times, so a changed file makes a new cache
and the stale one of the same stem is deleted.

A cache is never trusted blindly. It is read with weights_only=True, and used only when it
holds what the dataset says it must (keys, shapes, dtypes, sample counts), under its own
name, with a SHA-256 of its tensors that matches the one written with it. Otherwise it is
rebuilt, with a warning that says why. A cache directory that cannot be written to (read-only,
full) costs only the cache: the run trains on the decoded tensors and warns.
"""

from __future__ import annotations

import hashlib
import os
import warnings
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import torch

from runner.io.errors import RunnerError, RunnerWarning
from runner.io.serialization import safe_load, save

# bumped when what a cache holds changes, so older caches are rebuilt
FORMAT = 1

# what cached() builds and reads: tensors and plain data by key
Data = dict[str, Any]


def runner_cache(configured: str | None = None) -> Path:
    """Where runner caches decoded datasets: `configured` (a dataset's cache_dir) when given, else $RUNNER_CACHE,
    else $XDG_CACHE_HOME/runner, else ~/.cache/runner (torch hub's rule, with runner's names). Read when used, so a
    test or a job can point it elsewhere through the environment."""
    if configured:
        return Path(configured).expanduser() / "datasets"
    if os.environ.get("RUNNER_CACHE"):
        return Path(os.environ["RUNNER_CACHE"]).expanduser() / "datasets"
    base = Path(os.environ["XDG_CACHE_HOME"]) if os.environ.get("XDG_CACHE_HOME") else Path.home() / ".cache"
    return base.expanduser() / "runner" / "datasets"


def place(folder: str | Path) -> str:
    """A short hash of a data folder's absolute path, for a cache's stem: two folders never share a cache."""
    return hashlib.sha1(str(Path(folder).expanduser().resolve()).encode()).hexdigest()[:8]


def fingerprint(files: Iterable[str | Path], *extra: Any) -> str:
    """A short hash of the files' names, sizes and modification times (and `extra`)."""
    h = hashlib.sha1(repr(extra).encode())
    for f in sorted(map(str, files)):
        st = os.stat(f)
        h.update(f"{f}:{st.st_size}:{st.st_mtime_ns}".encode())
    return h.hexdigest()[:16]


def checksum(data: Data) -> str:
    """SHA-256 of every tensor in `data`, in key order (about 0.15 s for CIFAR-10's 184 MB)."""
    h = hashlib.sha256()
    for key in sorted(data):
        value = data[key]
        if isinstance(value, torch.Tensor):
            h.update(f"{key}:{value.dtype}:{list(value.shape)}".encode())
            h.update(value.contiguous().view(torch.uint8).numpy().data if value.numel() else b"")
        else:
            h.update(f"{key}:{value!r}".encode())
    return h.hexdigest()


def cached(folder: Path, stem: str, key: str, build: Callable[[], Data], check: Callable[[Data], str | None]) -> Data:
    """`build()` (a dict of tensors and plain data), saved as folder/<stem>-<key>.pt and read from there next time.

    `check(data)` returns what is wrong with a dict for this dataset (or None); a cache that
    fails it, or fails its own envelope, is rebuilt.
    """
    path = folder / f"{stem}-{key}.pt"
    if path.is_file():
        data, problem = _read(path, stem, key, check)
        if data is not None and problem is None:
            return data
        warnings.warn(
            f"the dataset cache {path} is not valid ({problem}); decoding the raw files again and rebuilding it.",
            RunnerWarning,
            stacklevel=2,
        )
    data = build()
    try:
        save({"format": FORMAT, "stem": stem, "key": key, "checksum": checksum(data), "data": data}, path)
    except (RunnerError, OSError) as err:
        warnings.warn(
            f"the dataset cache was not saved ({_reason(err)}); training without it, so the next "
            f"run decodes the raw files again.",
            RunnerWarning,
            stacklevel=2,
        )
        return data
    for other in folder.glob(f"{stem}-*.pt"):
        # only this stem's stale caches
        if other != path and other.stem.rsplit("-", 1)[0] == stem:
            other.unlink(missing_ok=True)
    return data


def _read(path: Path, stem: str, key: str, check: Callable[[Data], str | None]) -> tuple[Data | None, str | None]:
    """(the cached data, None), or (None, what is wrong with the file)."""
    try:
        cache = safe_load(path)
    except RunnerError:
        return None, "it cannot be read"
    if not isinstance(cache, dict) or cache.get("format") != FORMAT or not isinstance(cache.get("data"), dict):
        return None, "it is not a runner cache of this version"
    if (cache.get("stem"), cache.get("key")) != (stem, key):
        return None, f"it was written for {cache.get('stem')}-{cache.get('key')}"
    problem = check(cache["data"])
    if problem:
        return None, problem
    if cache.get("checksum") != checksum(cache["data"]):
        return None, "its tensors do not match the checksum written with them"
    return cache["data"], None


def _reason(err: BaseException) -> str:
    """The first sentence of atomic_write's message, or the OS's reason."""
    return str(err).split(". ")[0] if isinstance(err, RunnerError) else (getattr(err, "strerror", None) or str(err))


def expect(spec: Mapping[str, tuple[tuple[int | str, ...], Any]], **plain: Any) -> Callable[[Data], str | None]:
    """A `check` for cached(). `spec` maps each tensor's key to (shape, dtype); a dimension is a number,
    or a name that must be the same size wherever it appears ("n_train" for x and y). `plain` maps
    keys of plain data to the value they must have. Returns the first mismatch, or None."""

    def check(data: Data) -> str | None:
        missing = [k for k in [*spec, *plain] if k not in data]
        if missing:
            return f"it lacks {', '.join(missing)}"
        sizes: dict[int | str, int] = {}
        for k, (shape, dtype) in spec.items():
            value = data[k]
            if not isinstance(value, torch.Tensor) or value.dtype != dtype:
                return f"{k} is not a {dtype} tensor"
            if value.dim() != len(shape):
                return f"{k} has {value.dim()} dimensions, not {len(shape)}"
            for want, got in zip(shape, value.shape):
                want = sizes.setdefault(want, got) if isinstance(want, str) else want
                if want != got:
                    return f"{k} has shape {list(value.shape)}, which does not fit {[sizes.get(d, d) for d in shape]}"
        for k, want in plain.items():
            if data[k] != want:
                return f"{k} is {data[k]!r}, not {want!r}"
        return None

    return check
