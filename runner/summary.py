"""summary.json: what state a run is in and what it reached, rewritten atomically as the run goes."""

import json
import sys
import time
from datetime import datetime, timezone

from runner.errors import Diverged, Interrupted, RunnerError
from runner.files import write_json


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    """summary.json. status: running, completed, interrupted, diverged or failed (with the error)."""

    def __init__(self, path, kind, resume=False):
        self.path, self._start = path, time.perf_counter()
        fresh = {"kind": kind, "status": "starting", "error": None, "command": " ".join(sys.argv), "started_at": _now()}
        if resume and path and path.is_file():  # a resumed run keeps its record and counts the resumption
            self.data = json.loads(path.read_text())
            self.data.update(status="starting", error=None, resumed=self.data.get("resumed", 0) + 1,
                             resumed_with=" ".join(sys.argv))
        else:
            self.data = fresh
        self._write()

    def _write(self):
        if self.path:  # None on the processes of a torchrun job that do not write
            write_json(self.path, self.data)

    def elapsed(self):
        return time.perf_counter() - self._start

    def update(self, **fields):
        self.data.update(fields)
        if fields.get("status") in ("completed", "failed", "interrupted", "diverged"):
            self.data["finished_at"] = _now()
        self._write()
        return dict(self.data)

    def failed(self, err):
        if isinstance(err, (Interrupted, KeyboardInterrupt)):
            status = "interrupted"
        else:
            status = "diverged" if isinstance(err, Diverged) else "failed"
        message = str(err) if isinstance(err, RunnerError) else f"{type(err).__name__}: {err}"
        try:
            self.update(status=status, error=message or type(err).__name__)
        except RunnerError:
            pass  # the disk refused even this; the error itself still reaches the user
