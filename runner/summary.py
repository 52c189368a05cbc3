"""summary.json: what state a run is in and what it reached, rewritten atomically as the run goes."""

import sys
import time
from datetime import datetime, timezone

from runner.errors import RunnerError
from runner.files import write_json


def _now():
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class RunRecord:
    def __init__(self, path, kind):
        self.path, self._start = path, time.perf_counter()
        self.data = {"kind": kind, "status": "starting", "error": None, "command": " ".join(sys.argv), "started_at": _now()}
        self._write()

    def _write(self):
        if self.path:  # None on the processes of a torchrun job that do not write
            write_json(self.path, self.data)

    def elapsed(self):
        return time.perf_counter() - self._start

    def update(self, **fields):
        self.data.update(fields)
        if fields.get("status") in ("completed", "failed"):
            self.data["finished_at"] = _now()
        self._write()
        return dict(self.data)

    def failed(self, err):
        message = str(err) if isinstance(err, RunnerError) else f"{type(err).__name__}: {err}"
        status = "interrupted" if isinstance(err, KeyboardInterrupt) else "failed"
        self.update(status=status, error=message or type(err).__name__)
