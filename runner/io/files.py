"""What a run directory is made of, written so that a crash never leaves half a file.

Every file that is replaced during a run (checkpoints, summary.json) is written to a
temporary file beside it, flushed, fsynced and moved into place with os.replace: a reader
sees the old file or the new one, never a mix.
"""

import errno
import hashlib
import itertools
import json
import math
import os
import tempfile
from pathlib import Path


def unique_dir(path):
    """Create and return `path`, or `path-1`, `path-2`... when another run took it first.

    An OmegaConf resolver (registered in runner/cli.py) used by hydra.run.dir: mkdir is
    atomic, so two runs started in the same second still get a directory each.
    """
    base = Path(path)
    base.parent.mkdir(parents=True, exist_ok=True)
    for i in itertools.count():
        candidate = base if i == 0 else base.with_name(f"{base.name}-{i}")
        try:
            candidate.mkdir()
            return str(candidate)
        except FileExistsError:
            continue


def remove_empty(path, parents=0):
    """Remove the folder `path` if it is empty, then up to `parents` folders above it while they are empty (the date
    folder outputs/2026-11-22/ of a run refused in it). Never the working directory or a folder holding it
    (`hydra.run.dir=run` has the working directory as parent). For a command that failed: what it made goes again."""
    cwd = Path.cwd().resolve()
    folder = Path(path)
    for _ in range(parents + 1):
        if folder.resolve() == cwd or folder.resolve() in cwd.parents:
            return
        try:
            folder.rmdir()  # only succeeds when empty
        except OSError:
            return
        folder = folder.parent


def unwritable_dir(path):
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
        except OSError as err:  # a name too long, a file where a folder should be, or simply not there yet
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
        size = len(os.fsencode(too_long[-1]))  # missing holds the deepest name first: report the outermost
        return (
            f"{_shown(path)} cannot be created: the folder name {_shown(too_long[-1], 40)} is {size} bytes, and "
            f"this file system allows {name_max}."
        )
    path_max = _limit(existing, "PC_PATH_MAX")
    if path_max and len(os.fsencode(absolute)) >= path_max:  # PATH_MAX counts the terminating NUL
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


def _limit(folder, name):
    """os.pathconf(folder, name), or None where the system does not say."""
    try:
        return os.pathconf(folder, name)
    except (OSError, ValueError):
        return None


def _shown(path, width=160):
    """`path` for a message: a very long one shortened in its middle."""
    text = str(path)
    return text if len(text) <= width else f"{text[: width // 2]}...{text[-width // 4 :]}"


def atomic_write(path, write):
    """Call `write(binary_file)` on a temporary file, then move it to `path` in one step."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as err:
        from runner.io.errors import RunnerError

        raise RunnerError(
            f"cannot write in {path.parent}: {err.strerror or err}. Make it writable, or run from a "
            f"directory you can write to (runs go to ./outputs)."
        ) from None
    try:
        os.chmod(tmp, 0o666 & ~umask())  # mkstemp makes it private; the run's files are ordinary files
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except (OSError, RuntimeError) as err:  # a full disk, a file-size limit: the old file stays as it was
        Path(tmp).unlink(missing_ok=True)
        cause = err
        while cause is not None and not isinstance(cause, OSError):  # torch.save wraps the OSError in RuntimeErrors
            cause = cause.__cause__ or cause.__context__
        if cause is None:
            raise
        from runner.io.errors import RunnerError

        reason = cause.strerror or str(cause)
        raise RunnerError(
            f"cannot write {path} ({reason}): the disk may be full or a file-size limit reached. "
            f"The previous {path.name} is unchanged. Free some space and resume the run."
        ) from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def umask():
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


def run_dir_of(path):
    """The run directory a `ckpt=` path names: the directory itself, the run above checkpoints/ for a file in it
    (checkpoints/best.pt), or else the folder a loose checkpoint file lies in."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent


def data_sha256(*paths):
    """The SHA-256 of a dataset's files (those of `paths` that are given), comma-separated in that order: what a run
    records (dataset.sha256) so that its eval and resume notice a file that changed under it. None when a file is
    missing (the dataset's own reader names it)."""
    given = [Path(p).expanduser() for p in paths if p]
    if not all(p.is_file() for p in given):
        return None
    return ",".join(sha256(p) for p in given)


def check_data_sha256(recorded, *paths):
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


def sha256(path):
    """The SHA-256 of a file's bytes, as hex, read a MiB at a time."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
