"""Stopping cleanly: SIGINT (Ctrl-C), SIGTERM (what schedulers send before a kill) and SIGUSR2.

The handler only records the first signal; the command stops at the next safe point it names,
by calling `stop.check(where)`, which raises Interrupted:

- before the command starts (cli.py), between the phases of a job's setup (training/setup.py);
- after each optimizer step and each epoch of training, with last.pt saved first, so no step is
  lost (training/loop.py); between the batches of validation (last.pt then holds the epoch's
  training, and a resume validates it) and of the final test, eval and predict;
- before each job of a sweep (runner/task.py), which then stops as a whole.

So a signal never lands inside library code that would turn it into another error (an import
left half done, `load_state_dict` wrapping it, a checkpoint read reported as corrupt): whatever
moment it comes, a run ends `interrupted`, or `completed` when it came after the last safe point.
A second signal stops at once (KeyboardInterrupt), still leaving the run `interrupted`.

The handlers are installed once per process, as the first thing `runner` does (cli.main), so a
signal during `import torch` is kept; a process that runs jobs without cli.main (a submitit
worker) installs them when its first job starts. Under submitit (hydra/launcher=slurm or local),
SIGUSR2 comes before the time limit: when the job has recorded itself `interrupted`, submitit's
own handler runs, requeues the job and exits; the requeued job finds its run directory and
resumes (runner/run/rundir.py).
"""

from __future__ import annotations

import contextlib
import signal
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from types import FrameType
from typing import Any

from runner.io.errors import Interrupted

SIGNALS = ("SIGINT", "SIGTERM", "SIGUSR2")


class StopSignals:
    """The process's stop request: `requested` is the name of the first signal received, or None."""

    def __init__(self) -> None:
        self.requested: str | None = None
        self.previous: dict[
            int, Callable[..., Any] | int | None
            # signal number -> the handler before ours (submitit's for SIGUSR2)
        ] = {}
        self.by_peer: str | None = (
            # a signal another process of the job was sent, agreed on (training.distributed)
            None
        )

    def install(self) -> StopSignals:
        for name in SIGNALS:
            sig = getattr(signal, name, None)
            if sig is not None:
                # not the main thread (e.g. a joblib worker thread): no signals to catch
                with contextlib.suppress(ValueError):
                    self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.requested:
            # the second signal: stop now
            raise KeyboardInterrupt
        self.requested = signal.Signals(signum).name

    def check(self, where: str) -> None:
        """A safe point: raise Interrupted("stopped by SIGINT {where}") if a stop was asked for."""
        if self.requested:
            raise Interrupted(f"stopped by {self.requested} {where}")


# this process's StopSignals, once installed
_process: StopSignals | None = None


def install() -> StopSignals:
    """Record stop signals from now on in this process (idempotent); returns its StopSignals."""
    global _process
    if _process is None or not _process.previous:
        _process = StopSignals().install()
    return _process


def ignore() -> None:
    """Ignore the stop signals from now on (cli.main's last exit handler). The interpreter then shuts down, and gives
    every signal with a Python handler back to its default first (CPython's _PySignal_Fini, which leaves SIG_IGN as
    it is), so a late signal would kill a process whose work is done (exit -15 after a completed run)."""
    for name in SIGNALS:
        sig = getattr(signal, name, None)
        if sig is not None:
            with contextlib.suppress(ValueError):
                signal.signal(sig, signal.SIG_IGN)


def ignore_in_worker(worker_id: int) -> None:
    """A DataLoader's worker_init_fn: its worker processes ignore the stop signals. A scheduler signals every process
    of a job (SLURM's scancel, a terminal's Ctrl-C to the process group); the training process stops at its next
    safe point and ends its workers itself, while a worker that died of the signal would fail the next batch."""
    ignore()


@contextmanager
def job_stop() -> Iterator[StopSignals]:
    """The process's StopSignals for one job; when the job ends `interrupted` by SIGUSR2 under submitit,
    submitit's own handler then runs (it requeues the job and exits)."""
    stop = install()
    stop.by_peer = None
    try:
        yield stop
    except (Interrupted, KeyboardInterrupt):
        usr2 = getattr(signal, "SIGUSR2", None)
        previous = stop.previous.get(usr2) if usr2 is not None else None
        # on rank 0 of a job of several tasks, also a SIGUSR2 sent to another task only: submitit requeues from rank 0
        if "SIGUSR2" in (stop.requested, stop.by_peer) and callable(previous):
            # submitit: requeue this job and exit, now that the run says `interrupted`
            previous(usr2, None)
        raise
