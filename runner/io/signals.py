"""Stopping cleanly: SIGINT (Ctrl-C), SIGTERM (what schedulers send before a kill) and SIGUSR2.

From the first line of a job to its last, the first of these signals stops it:

- inside the training loop (`with stop.deferred():`) the loop finishes its step, saves
  last.pt and raises Interrupted itself, so no step is lost;
- anywhere else (setup, the final test) Interrupted is raised at once: there is nothing
  to save, and waiting for a dataset to download would ignore the user.

A second signal stops at once (KeyboardInterrupt). Under submitit (hydra/launcher=slurm or
local), SIGUSR2 comes before the time limit: when the job has recorded itself `interrupted`
and left the `with` block, submitit's own handler runs, requeues the job and exits; the
requeued job finds its run directory and resumes (runner/run/rundir.py).
"""

import contextlib
import signal
from contextlib import contextmanager

from runner.io.errors import Interrupted


class StopSignals:
    """A context manager; `requested` is the name of the first signal received, or None."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR2")

    def __init__(self):
        self.requested, self._previous, self._deferred = None, {}, False

    def __enter__(self):
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                # not the main thread (e.g. a joblib worker thread): no signals to catch
                with contextlib.suppress(ValueError):
                    self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt  # the second signal: stop now
        self.requested = signal.Signals(signum).name
        if not self._deferred:
            raise Interrupted(f"stopped by {self.requested}")

    @contextmanager
    def deferred(self):
        """Within this block a signal only sets `requested`; the training loop checks it after each step."""
        self._deferred = True
        try:
            yield self
        finally:
            self._deferred = False

    def __exit__(self, exc_type, exc, tb):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        usr2 = getattr(signal, "SIGUSR2", None)
        previous = self._previous.get(usr2)
        if self.requested == "SIGUSR2" and callable(previous) and isinstance(exc, (Interrupted, KeyboardInterrupt)):
            previous(usr2, None)  # submitit: requeue this job and exit, now that the run says `interrupted`
        return False
