"""A run directory's lock: one process at a time trains in it.

    runner train hydra.run.dir=run   # beside one already training there: "run is in use by process 4242 (...)"

An exclusive flock on DIR/.lock, which the process keeps until it ends: the OS drops it however the process dies
(kill -9 too), so a run that says `running` while nobody holds its lock has lost its process (records.is_locked).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path
from typing import Any

from runner.io.errors import RunnerError


def take_lock(path: Path, summary: dict[str, Any]) -> int:
    """The file descriptor of `path`/.lock, locked by this process; refused, naming who holds it (`summary`: the
    run's summary.json, for the pid it recorded), while another process does."""
    lock = path / ".lock"
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as err:
        raise RunnerError(f"cannot lock {path}: {err.strerror or err}. Make the directory writable.") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise RunnerError(
            f"{path} is in use by {holder(lock, summary)}: one process at a time trains in a run "
            f"directory. Wait for it to end, or stop it (Ctrl-C, or kill PID: it saves and marks the run "
            f"interrupted), then run this command again. Nothing was changed."
        ) from None
    return fd


def holder(lock: Path, summary: dict[str, Any]) -> str:
    """Who holds `lock`: from /proc/locks on Linux, else the pid the run recorded."""
    try:
        st = os.stat(lock)
        where = f"{os.major(st.st_dev):02x}:{os.minor(st.st_dev):02x}:{st.st_ino}"
        with open("/proc/locks") as f:
            for line in f:
                fields = line.split()
                if "FLOCK" in fields and "->" not in fields and fields[-3] == where:
                    pid = int(fields[-4])
                    command = (
                        Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
                    )
                    return f"process {pid} ({command[:200]})"
    except (OSError, ValueError, IndexError):
        pass
    if summary.get("pid"):
        return f"process {summary['pid']} on {summary.get('host', 'this machine')}"
    return "another process"
