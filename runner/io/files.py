"""What a run directory is made of, written so that a crash never leaves half a file.

Every file that is replaced during a run (checkpoints, summary.json) is written to a
temporary file beside it, flushed, fsynced and moved into place with os.replace: a reader
sees the old file or the new one, never a mix.
"""

import itertools
import json
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


def write_json(path, data):
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


def run_dir_of(path):
    """The run directory a `ckpt=` path names: the directory itself, the run above checkpoints/ for a file in it
    (checkpoints/best.pt), or else the folder a loose checkpoint file lies in."""
    path = Path(path).expanduser()
    if path.is_dir():
        return path
    return path.parent.parent if path.parent.name == "checkpoints" else path.parent
