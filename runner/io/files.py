"""What a run directory is made of, written so that a crash never leaves half a file.

Every file that is replaced during a run (checkpoints, summary.json) is written to a
temporary file beside it, flushed, fsynced and moved into place with os.replace: a reader
sees the old file or the new one, never a mix.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import math
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO


def unique_dir(path: str | Path) -> str:
    """Create and return `path`, or `path-1`, `path-2`... when another run took it first.

    An OmegaConf resolver (registered in runner/cli.py) used by hydra.run.dir: mkdir is
    atomic, so two runs started in the same second still get a directory each.
    """
    from runner.io.errors import StorageError

    base, taken = Path(path), 0
    while True:
        candidate = base if taken == 0 else base.with_name(f"{base.name}-{taken}")
        taken += 1
        try:
            candidate.parent.mkdir(parents=True, exist_ok=True)
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            continue
        # a full disk, a read-only file system: told by name, not as Hydra's traceback
        except OSError as err:
            raise StorageError.of(candidate, err) from None


def remove_empty(path: str | Path, parents: int = 0) -> None:
    """Remove the folder `path` if it is empty, then up to `parents` folders above it while they are empty (the date
    folder outputs/2026-11-22/ of a run refused in it). Never the working directory or a folder holding it
    (`hydra.run.dir=run` has the working directory as parent). For a command that failed: what it made goes again."""
    cwd = Path.cwd().resolve()
    folder = Path(path)
    for _ in range(parents + 1):
        if folder.resolve() == cwd or folder.resolve() in cwd.parents:
            return
        try:
            # only succeeds when empty
            folder.rmdir()
        except OSError:
            return
        folder = folder.parent


def unwritable_dir(path: str | Path) -> str | None:
    """Why runner cannot create or write in the directory `path` (which may not exist yet); None when it can.

    The problem in a sentence naming the path, for the caller to follow with the fix its command accepts. Creates
    nothing: walks up to the nearest existing folder, checks each missing folder's name against that file system's
    NAME_MAX and the whole path against its PATH_MAX, that the folder is a folder, and that a file can be made in it
    (an unnamed temporary file, gone when closed)."""
    absolute = Path(os.path.abspath(path))
    existing, missing = absolute, []
    while True:
        try:
            os.stat(existing)
            break
        # a name too long, a file where a folder should be, or simply not there yet
        except OSError as err:
            if err.errno not in (errno.ENOENT, errno.ENOTDIR, errno.ENAMETOOLONG) or existing == existing.parent:
                return f"{_shown(path)} cannot be reached: {err.strerror or err}."
            missing.append(existing.name)
            existing = existing.parent
    if not existing.is_dir():
        if missing:
            return f"{_shown(path)} cannot be created: {_shown(existing)} is a file, not a folder."
        return f"{_shown(path)} is a file, not a folder."
    name_max = _limit(existing, "PC_NAME_MAX")
    too_long = [name for name in missing if name_max and len(os.fsencode(name)) > name_max]
    if too_long:
        # missing holds the deepest name first: report the outermost
        size = len(os.fsencode(too_long[-1]))
        return (
            f"{_shown(path)} cannot be created: the folder name {_shown(too_long[-1], 40)} is {size} bytes, and "
            f"this file system allows {name_max}."
        )
    path_max = _limit(existing, "PC_PATH_MAX")
    # PATH_MAX counts the terminating NUL
    if path_max and len(os.fsencode(absolute)) >= path_max:
        return (
            f"{_shown(path)} cannot be created: the whole path is {len(os.fsencode(absolute))} bytes, and this file "
            f"system allows {path_max - 1}."
        )
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as err:
        if missing:
            return f"{_shown(path)} cannot be created: no folder can be made in {_shown(existing)} ({err.strerror})."
        return f"{_shown(path)} cannot be written to ({err.strerror or err})."
    return None


def _limit(folder: Path, name: str) -> int | None:
    """os.pathconf(folder, name), or None where the system does not say."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return None


def _shown(path: str | Path, width: int = 160) -> str:
    """`path` for a message: a very long one shortened in its middle."""
    text = str(path)
    return text if len(text) <= width else f"{text[: width // 2]}...{text[-width // 4 :]}"


def atomic_write(path: str | Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(binary_file)` on a temporary file, then move it to `path` in one step. A write the storage refuses
    (a full disk, a size limit, an I/O error, a read-only file system), at any point of it, is a StorageError naming
    `path`: the previous file stays as it was, and no temporary file is left."""
    from runner.io.errors import StorageError, storage_error

    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        raise StorageError.of(path, err) from None
    try:
        # mkstemp makes it private; the run's files are ordinary files
        os.chmod(tmp, 0o666 & ~umask())
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except Exception as err:
        Path(tmp).unlink(missing_ok=True)
        # torch.save wraps the OSError in RuntimeErrors; anything else (a bug in `write`) is raised as it is
        told = storage_error(err, path) if isinstance(err, (OSError, RuntimeError)) else None
        if told is None:
            raise
        raise told from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:
        # make the rename itself durable: the new file is in place, but a power cut could still take its name away
        fsync_dir(path.parent)
    except OSError as err:
        raise StorageError.of(path.parent, err) from None


def append_durably(path: Path, text: str, header: str = "") -> None:
    """Append `text` to the file `path` and fsync it before returning, with `header` first where the file is new or
    empty: a row that a later checkpoint counts on (metrics.csv's, before last.pt records its epoch) is on the disk
    before that checkpoint is, so a power cut never leaves a checkpoint ahead of its rows. A new file's directory
    entry is fsynced too: without it the file itself may be gone after the cut."""
    from runner.io.errors import StorageError

    path = Path(path)
    made = not path.exists()
    try:
        # unbuffered: a write the disk refuses half-way is undone here, and no buffer writes the rest at close
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            size = os.fstat(fd).st_size
            # an empty file (its first write lost in a crash before any checkpoint counted on it) gets its header
            data = memoryview(((header if size == 0 else "") + text).encode())
            try:
                while data:
                    data = data[os.write(fd, data) :]
                os.fsync(fd)
            except OSError:
                # no part of a row is left behind: the file is as it was
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, size)
                raise
        finally:
            os.close(fd)
        if made:
            fsync_dir(path.parent)
    except OSError as err:
        raise StorageError.of(path, err) from None


def fsync_dir(folder: Path) -> None:
    """fsync the folder `folder`: makes the names created, replaced or removed in it durable."""
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def write_text(path: Path, text: str) -> None:
    """`text` as the file `path`, atomically and durably (atomic_write): for a record a later command reads back,
    such as a sweep's multirun.yaml, which a crash mid-write must not leave empty or torn."""
    atomic_write(path, lambda f: f.write(text.encode()))


def umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def strict_json(value: object) -> object:
    """`value` with every NaN or infinite float as None: JSON has no NaN (Python writes a bare NaN that strict
    readers, jq and JavaScript's JSON.parse among them, refuse), and a missing value is what it means."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: strict_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [strict_json(v) for v in value]
    return value


def write_json(path: Path, data: object) -> None:
    """`data` as indented JSON, atomically; NaN and infinities as null (strict_json), and allow_nan=False so that one
    it missed fails here, loudly, not in the reader."""
    text = json.dumps(strict_json(data), indent=2, allow_nan=False)
    atomic_write(path, lambda f: f.write((text + "\n").encode()))


def run_dir_of(path: str | Path) -> Path:
    """The run directory a `ckpt=` path names: the directory itself, the run above checkpoints/ for a file in it
    (checkpoints/best.pt), or else the folder a loose checkpoint file lies in."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def data_sha256(*paths: str | Path | None) -> str | None:
    """The SHA-256 of a dataset's files (those of `paths` that are given), comma-separated in that order: what a run
    records (dataset.sha256) so that its eval and resume notice a file that changed under it. None when a file is
    missing (the dataset's own reader names it)."""
    given = [Path(p).expanduser() for p in paths if p]
    if not all(p.is_file() for p in given):
        return None
    return ",".join(sha256(p) for p in given)


def check_data_sha256(recorded: str | None, *paths: str | Path | None) -> None:
    """RunnerError when the files `paths` are not the ones a run recorded (`recorded`: data_sha256's, or None for a
    run that recorded none)."""
    from runner.io.errors import RunnerError

    now = data_sha256(*paths)
    if recorded and now and now != recorded:
        shown = ", ".join(str(p) for p in paths if p)
        raise RunnerError(
            f"the data files ({shown}) have changed since this run read them (SHA-256 {recorded[:12]}... then, "
            f"{now[:12]}... now), so its splits would hold other rows: an eval would test on rows it trained on, a "
            f"resume would train on others. Put back the files it trained on, or train a new run on these."
        )


def sha256(path: str | Path) -> str:
    """The SHA-256 of a file's bytes, as hex, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
