"""Stopping cleanly: SIGINT (Ctrl-C) and SIGTERM (what schedulers send before a kill).

The first signal asks the training loop to stop after the current step, save last.pt and
exit; a second one stops at once. Under submitit (hydra/launcher=slurm), SIGUSR2 comes
before the time limit: runner saves, then hands the signal to submitit's own handler,
which requeues the job; the requeued job finds its run directory and resumes.
"""

import signal


class StopSignals:
    """A context manager; `requested` is the name of the first signal received, or None."""

    SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR2")

    def __init__(self):
        self.requested, self._previous = None, {}

    def __enter__(self):
        for name in self.SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                try:
                    self._previous[sig] = signal.signal(sig, self._handle)
                except ValueError:  # not the main thread (e.g. a joblib worker thread): no signals to catch
                    pass
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt  # the second signal: stop now
        self.requested = signal.Signals(signum).name

    def hand_on(self):
        """After saving: let a previous handler that is not Python's default act (submitit's requeue)."""
        sig = getattr(signal, self.requested or "", None)
        previous = self._previous.get(sig)
        if sig == getattr(signal, "SIGUSR2", None) and callable(previous):
            previous(sig, None)

    def __exit__(self, *exc):
        for sig, previous in self._previous.items():
            signal.signal(sig, previous)
        return False
