"""What a run directory is made of, written so that a crash never leaves half a file.

Every file that is replaced during a run (checkpoints, summary.json) is written to a
temporary file beside it, flushed, fsynced and moved into place with os.replace: a reader
sees the old file or the new one, never a mix.
"""

import csv
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
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes it private; the run's files are ordinary files
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # make the rename itself durable
    finally:
        os.close(dir_fd)


def _umask():
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_json(path, data):
    atomic_write(path, lambda f: f.write((json.dumps(data, indent=2) + "\n").encode()))


class MetricsCSV:
    """metrics.csv: one row per epoch, the header taken from the first row's keys."""

    def __init__(self, path):
        self.path = Path(path)
        self.fields = None

    def append(self, row):
        new = not self.path.exists()
        if self.fields is None:
            self.fields = list(row)
        with self.path.open("a", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=self.fields)
            if new:
                writer.writeheader()
            writer.writerow(row)


def read_metrics(path):
    """metrics.csv as a list of dicts of floats."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
