"""A training run's directory and its one owner, `RunDir`: what may happen to a run on disk, in which state.

    outputs/2026-11-22/10-31-07/
        .hydra/  train.log  metrics.csv  loss_curve.png  checkpoints/{last,best}.pt  checkpoints/model.json
        summary.json  .lock

RunDir is the only code that writes in a training run's directory. A run's state is
summary.json's `status`:

    running      a process holds the directory's lock and trains
    completed    every epoch trained and best.pt tested
    interrupted  stopped by a signal; last.pt holds the last step (or the run stopped before its first)
    diverged     the loss became NaN or infinite; last.pt holds the last good epoch
    failed       any other error, with its message

    claim ──start──> running ──┬──> completed ───(resume= with more epochs)──────────────────┐
      (checks; writes nothing) ├──> interrupted ─(resume=, or the same command again)───────┤
                               ├──> diverged ────(resume=, e.g. with a lower optimizer.lr)──┤
                               └──> failed ──────(resume=, once the cause is fixed)─────────┴──> running

`claim` takes an exclusive lock (flock) on DIR/.lock that the process keeps until it ends; the
OS drops it when the process dies however it dies (kill -9 too), so a run that says `running`
while nobody holds its lock has lost its process and counts as `interrupted`. A second process
is refused while the lock is held. Nothing in the directory is written before `start()`: a
command refused by `claim`, or failing or stopped in its setup, leaves an existing run as it
was, byte for byte. A fresh run never starts where a run with a checkpoint already is: an
`interrupted` one is resumed (a requeued SLURM job, the same command again), any other is refused: run/resume
decides (`decide`), RunDir asks it under the lock.
"""

from __future__ import annotations

import csv
import io
import os
import shlex
import socket
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Literal

from omegaconf import OmegaConf
from rich.markup import escape

from runner.config.command_line import command_arg
from runner.io.errors import Diverged, Interrupted, RunnerError, StorageError, one_line, storage_error
from runner.io.files import append_durably, atomic_write, write_json
from runner.run.lock import take_lock
from runner.run.provenance import found_data
from runner.run.records import read_summary, run_record, whole_rows
from runner.run.resume.decide import decide

if TYPE_CHECKING:
    from collections.abc import Callable
    from types import TracebackType

    import torch
    from omegaconf import DictConfig

    from runner.inference.card import ModelCard
    from runner.io.console import RunConsole
    from runner.training.state import TrainState


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class RunDir:
    """The owner of one training run's directory, from `claim` to the end of its `with` block.

    On the other processes of a torchrun job (`write=False`) it takes no lock and writes nothing.
    """

    def __init__(
        self,
        path: str | Path,
        console: RunConsole,
        write: bool = True,
        provenance: dict[str, str] | None = None,
        continue_with: str | None = None,
    ) -> None:
        self.path, self.console, self.write = Path(path), console, write
        # .hydra/ file name -> text, written when a fresh run first writes
        self.provenance = provenance or {}
        # in a sweep, the command that continues the sweep (and so this run) when it is interrupted
        self.continue_with = continue_with
        self.last = self.path / "checkpoints" / "last.pt"
        self.summary = read_summary(self.path)
        # decided by claim()
        self.fresh = True
        # metrics.csv as this run knows it: the rows kept from before a resume, then its own
        self.rows: list[dict[str, Any]] = []
        self.written = False
        # logger=tensorboard ...: trackers beside metrics.csv (runner/loggers/)
        self.loggers: list[Any] = []
        self._lock_fd: int | None = None
        self._made_lock = False
        self._start = time.perf_counter()

    @classmethod
    def claim(
        cls,
        path: str | Path,
        console: RunConsole,
        resume: bool = False,
        write: bool = True,
        provenance: dict[str, str] | None = None,
        continue_with: str | None = None,
        alone: bool = False,
    ) -> RunDir:
        """Lock the directory and decide: a fresh run, or the continuation of the run in it. Writes nothing.

        Under torchrun or SLURM, rank 0 (`write`) alone locks and decides, and every rank is told its decision (or its
        refusal): a rank reading the directory itself could find it already `running` by rank 0 and decide otherwise.
        `alone`: rank 0 claims without the other ranks (to record a job that failed before they could meet there).
        """
        from runner.training import distributed

        run = cls(path, console, write, provenance, continue_with)

        def decided() -> bool:
            if write:
                run._lock()
            return run._decide(resume)

        try:
            # a refusal reaches every rank
            run.fresh = decided() if alone else distributed.decided_by_rank_0(decided)
        except BaseException:
            run._release()
            raise
        return run

    def _decide(self, resume: bool) -> bool:
        """Whether the run is fresh, as run/resume decides from what the directory holds and `resume`; its note said.
        On the other processes of a torchrun job rank 0 holds the lock and decides the same."""
        decision = decide(self.path, self.summary.get("status"), self.last.is_file(), resume)
        if decision.note:
            self.console.print(decision.note)
        return decision.fresh

    # ---- the lock -------------------------------------------------------------------------

    def _lock(self) -> None:
        self._made_lock = not (self.path / ".lock").exists()
        self._lock_fd = take_lock(self.path, self.summary)

    def _release(self) -> None:
        if self._lock_fd is None:
            return
        if self._made_lock and not self.written:
            # made by a command that wrote nothing else: leave no trace
            (self.path / ".lock").unlink(missing_ok=True)
        # drops the lock
        os.close(self._lock_fd)
        self._lock_fd = None

    # ---- the lifecycle --------------------------------------------------------------------

    def start(self, epoch: int = 0, **record: Any) -> None:
        """The run begins (or continues) training: its first write, `running`. `epoch` is where it continues from."""
        if self.fresh:
            self._first_write()
            self.summary["status"] = "running"
        else:
            self.rows = self._kept_metrics(epoch)
            self.written = True
            if self.write:
                self.console.attach(self.path / "train.log")
            self.summary.update(
                status="running",
                error=None,
                resumed=self.summary.get("resumed", 0) + 1,
                resumed_with=" ".join(sys.argv),
            )
            self.summary.pop("finished_at", None)
        self.update(pid=os.getpid(), host=socket.gethostname(), **record)

    def _first_write(self) -> None:
        """A fresh run's provenance (.hydra/) and log, written when it first writes anything.

        What an earlier attempt that never reached a checkpoint left behind (a metrics row, a
        best.pt) goes: the run starts afresh. Its train.log is kept, and appended to.
        """
        self.written = True
        self.summary = {
            "kind": "train",
            "status": None,
            "error": None,
            # pasteable into a shell
            "command": " ".join([sys.argv[0], *map(shlex.quote, sys.argv[1:])]),
            "started_at": _now(),
        }
        if not self.write:
            return
        for leftover in (self.path / "metrics.csv", self.path / "checkpoints" / "best.pt"):
            leftover.unlink(missing_ok=True)
        for name, text in self.provenance.items():
            atomic_write(self.path / ".hydra" / name, _writer(text.encode()))
        self.console.attach(self.path / "train.log")

    def update(self, **fields: Any) -> dict[str, Any]:
        self.summary.update(fields)
        if self.write:
            write_json(self.path / "summary.json", self.summary)
        return dict(self.summary)

    def elapsed(self) -> float:
        return time.perf_counter() - self._start

    def complete(self, **fields: Any) -> dict[str, Any]:
        return self.update(status="completed", finished_at=_now(), **fields)

    def _end(self, err: BaseException) -> str | None:
        """Record how the run ended, and say what continues it."""
        # a write the storage refused stops the run as a signal does: nothing it wrote is torn, last.pt is whole
        stopped = (Interrupted, KeyboardInterrupt, StorageError)
        status = "diverged" if isinstance(err, Diverged) else "interrupted" if isinstance(err, stopped) else "failed"
        message = str(err) if isinstance(err, RunnerError) else _describe(err)
        if not self.written and not self.fresh:
            return f"Nothing in {self.path} was changed." + (
                f" Continue it with: {self._continuation()}" if status == "interrupted" else ""
            )
        try:
            if not self.written:
                self._first_write()
            self.update(status=status, error=message or type(err).__name__, finished_at=_now())
        except RunnerError as unrecorded:
            self._unrecorded(status, unrecorded)
        self.console.failed(err)
        if status != "interrupted":
            return None
        if not self.last.is_file() and not self.continue_with:
            return "It stopped before its first checkpoint: run the same command again to start it afresh."
        return f"Continue it with: {self._continuation()}"

    def _unrecorded(self, status: str, err: RunnerError) -> None:
        """Say on the terminal that how the run ended could not be recorded (the disk refused even that), and what
        its summary.json says instead: the error that stopped the run is told after this, as it is."""
        left = read_summary(self.path).get("status") if self.write else None
        meaning = (
            "every reader (resume, eval, report, a sweep) takes a `running` run whose lock is free as interrupted"
            if left == "running"
            else f"it says {left}"
            if left
            else "it has none yet"
        )
        self.console.tell(
            f"[yellow]warning:[/] the run ended {status}, and that could not be recorded in "
            f"{self.path / 'summary.json'} ({escape(str(err))}); {meaning}."
        )

    def _continuation(self) -> str:
        return self.continue_with or f"runner train {command_arg('resume', self.path)}"

    def __enter__(self) -> RunDir:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> Literal[False]:
        try:
            if err is not None:
                # an OSError of a write outside runner's own (a tracker's, a library's) is told as runner's are
                told = storage_error(err)
                next_step = self._end(told or err)
                if told is not None and (next_step or told is not err):
                    # a storage error's "run the same command again" is this run's own next step
                    said = getattr(told, "problem", None) if next_step else None
                    said = said or str(told).rstrip(".")
                    raise type(told)(f"{said}. {next_step}" if next_step else str(told)) from None
                # told as any stop is, without a traceback
                if isinstance(err, KeyboardInterrupt):
                    raise Interrupted(f"stopped at once by a second signal. {next_step}") from None
        finally:
            self._close_loggers()
            self.console.close()
            self._release()
        return False

    # ---- what the training loop writes --------------------------------------------------

    def open_loggers(self, logger_cfg: DictConfig | None, step: int) -> None:
        """The chosen trackers, continuing after optimizer step `step` (0 for a fresh run): what a dead process
        logged after its last.pt is dropped (purge_step)."""
        if self.write and logger_cfg:
            from runner.loggers import open_loggers

            self.loggers = open_loggers(logger_cfg, self.path, self.record(), purge_step=step + 1 if step else None)

    def record(self) -> dict[str, Any]:
        """What a tracker mirrors of this run: run_record's, from what this process holds."""
        return run_record(self.path, self.rows, self.summary)

    def _close_loggers(self) -> None:
        """Each tracker records how the run ended; one that fails says so and leaves the run as it ended."""
        record = self.record() if self.loggers else None
        for logger in self.loggers:
            try:
                logger.close(record)
            except Exception as err:
                self.console.tell(
                    f"[yellow]warning:[/] {type(logger).__name__} could not record the end of the run: "
                    f"{type(err).__name__}: {one_line(err, 300)}. The run directory is complete; "
                    f"upload it again with: runner report {self.path} --to mlflow"
                )
        self.loggers = []

    @property
    def logs_steps(self) -> bool:
        """Whether a tracker wants the training loss every log_every_n_steps (it costs a host sync)."""
        return bool(self.loggers)

    def log_step(self, step: int, loss: float) -> None:
        for logger in self.loggers:
            logger.log_step(step, loss)

    def log_end(
        self,
        step: int,
        results: dict[str, Any],
        confusion: Any = None,
        class_names: list[str] | None = None,
    ) -> None:
        record = self.record() if self.loggers else None
        for logger in self.loggers:
            logger.log_end(step, record, results, confusion, class_names)

    def append_row(self, row: dict[str, Any], step: int | None = None) -> None:
        self.rows.append(row)
        for logger in self.loggers:
            logger.log_epoch(row, step)
        if not self.write:
            return
        header, line = io.StringIO(), io.StringIO()
        csv.DictWriter(header, fieldnames=list(row)).writeheader()
        csv.DictWriter(line, fieldnames=list(row)).writerow(row)
        # fsynced before last.pt records this epoch (end_epoch saves it next): after a power cut, every epoch that
        # last.pt counts has its row, and a resume drops the rows after it (start)
        append_durably(self.path / "metrics.csv", line.getvalue(), header=header.getvalue())

    def save_best(self, model: torch.nn.Module) -> None:
        self.save_weights(model, "best.pt")

    def save_weights(self, model: torch.nn.Module | dict[str, torch.Tensor], name: str) -> None:
        """checkpoints/NAME: `model`'s state_dict (a model), or the state_dict itself (a dict), as best.pt is."""
        if self.write:
            # torch: imported by a run, not by `runner report`
            from runner.io.serialization import save

            state = model if isinstance(model, dict) else model.state_dict()
            # contiguous: a channels-last model's tensors would not convert to safetensors and friends
            save({k: v.contiguous() for k, v in state.items()}, self.path / "checkpoints" / name)

    def remove_checkpoint(self, name: str) -> None:
        """Delete checkpoints/NAME, a kept checkpoint that another replaced (training/checkpoints.py); gone already
        is no error."""
        if self.write:
            (self.path / "checkpoints" / name).unlink(missing_ok=True)

    def record_config(self, cfg: DictConfig) -> None:
        """Record `cfg` as the run's .hydra/config.yaml in place of the composed one: the config the run trains with
        where setup derived keys from elsewhere (a pretrained model's preprocessing). Written with the rest of the
        provenance, when the run first writes."""
        if "config.yaml" in self.provenance:
            self.provenance["config.yaml"] = OmegaConf.to_yaml(found_data(cfg))

    def save_model_card(self, card: ModelCard) -> None:
        """checkpoints/model.json: the preprocessing between a raw input and best.pt (inference/card.py)."""
        if self.write:
            from runner.inference.card import CARD

            write_json(self.path / "checkpoints" / CARD, card.to_dict())

    def save_last(self, state: TrainState) -> None:
        """last.pt, written by rank 0; called by every rank, which hands it its own part (`ranks`: each rank's RNG
        states, for dropout and any other draw, and its share of the epoch's loss so far; TrainState.share), so that a
        resume under torchrun continues every rank exactly."""
        from runner.training import distributed

        ranks = distributed.gather(state.share()) if distributed.current().world > 1 else None
        if self.write:
            from runner.io.serialization import save

            save({**state.state_dict(), **({"ranks": ranks} if ranks else {})}, self.last)

    def plot(self, metric: str) -> None:
        """loss_curve.png from the rows of metrics.csv."""
        if self.write:
            from runner.io.plots import loss_curve

            loss_curve(self.rows, metric, self.path / "loss_curve.png")

    def _kept_metrics(self, epoch: int) -> list[dict[str, Any]]:
        """metrics.csv's rows of epochs 1..`epoch` (those last.pt counts), as floats; the file is rewritten to hold
        just them (records.whole_rows). Rows that last.pt counts yet the file lacks (it was damaged or deleted) are
        said, not invented."""
        path = self.path / "metrics.csv"
        text = path.read_text(errors="replace") if path.is_file() else ""
        kept, rows = whole_rows(text, epoch)
        if self.write and text != kept:
            if kept:
                atomic_write(path, lambda f: f.write(kept.encode()))
            else:
                # no row to keep: the next row writes the header afresh (a torn header would otherwise stay)
                path.unlink()
        missing = sorted(set(range(1, epoch + 1)) - {int(r["epoch"]) for r in rows})
        if missing and self.write:
            self.console.print(
                f"[yellow]warning:[/] {path} lacks the rows of epochs {', '.join(map(str, missing))}, which "
                f"checkpoints/last.pt has trained (the file was damaged or removed): the run continues, and its "
                f"table and loss curve will miss them."
            )
        return rows


def _writer(data: bytes) -> Callable[[BinaryIO], object]:
    """What atomic_write calls to write `data`."""
    return lambda f: f.write(data)


def _describe(err: BaseException) -> str:
    """An unexpected error as one line that starts with its cause: Hydra's InstantiationException says only
    "Error in call to target 'X':" on its first line, and the reason follows in the exception it wraps."""
    text = f"{type(err).__name__}: {' '.join(str(err).split())}"
    cause = err.__cause__
    if cause is None:
        return text
    cause_text = " ".join(str(cause).split())
    return f"{type(cause).__name__}: {cause_text} (from {text.split(':', 2)[0]}: {str(err).splitlines()[0]})"
