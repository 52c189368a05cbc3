"""logger=mlflow: each run mirrored as an MLflow run, in a local store that works offline.

    runner train logger=mlflow                       # outputs/mlflow.db; browse: mlflow ui --backend-store-uri sqlite:///outputs/mlflow.db
    runner train -m seed=0,1,2 logger=mlflow hydra/launcher=parallel   # jobs in parallel processes, one store
    runner report outputs/multirun/2026-11-24/10-00-00 --to mlflow      # runs trained without the logger

The run directory stays the record of truth and the MLflow run is its mirror, found again by its
tag `runner.run_dir`: params = the run's resolved .hydra/config.yaml flattened (what it was
started with; a resume's changes are the tag runner.resumed_with), metrics = metrics.csv's rows
with MLflow's step = the epoch, then best_* and test_* at the end, artifacts = loss_curve.png,
summary.json, metrics.csv and best.pt, status FINISHED / KILLED (interrupted) / FAILED, and the
command, git commit and environment as tags. A resume continues the same MLflow run; where the
mirror disagrees with the directory (rows logged by a process that died after its last.pt) it
is made anew from the directory, so no epoch is ever shown twice.

The default store is SQLite (MLflow 3.13 and later refuse a bare ./mlruns file store unless
told). Parallel jobs writing to one SQLite file race (MLflow #4123: the tables' creation, and
"database is locked"), so every call to a SQLite store is serialised by an flock on <db>.lock.
Telemetry is off unless MLFLOW_DISABLE_TELEMETRY says otherwise.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import math
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from runner.io.errors import RunnerError, one_line
from runner.loggers.flatten import flatten

if TYPE_CHECKING:
    import torch

STATUS = {
    "completed": "FINISHED",
    "interrupted": "KILLED",
    "failed": "FAILED",
    "diverged": "FAILED",
    "running": "RUNNING",
}
ARTIFACTS = ("loss_curve.png", "summary.json", "metrics.csv")
# characters MLflow keeps of a param's value
MAX_PARAM = 6000
# params per log_batch call (MLflow's limit); metrics take up to 1000
BATCH = 100


def _mlflow() -> type:
    """MlflowClient, imported with telemetry off and the store's INFO lines quiet (check_loggers saw it is
    installed)."""
    os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
    # "Creating initial MLflow database tables..." on every new store
    for name in ("mlflow", "alembic"):
        logging.getLogger(name).setLevel(logging.WARNING)
    from mlflow import MlflowClient

    return MlflowClient


def _millis(iso: object) -> int | None:
    if not isinstance(iso, str):
        return None
    try:
        return int(datetime.fromisoformat(iso).timestamp() * 1000)
    except (TypeError, ValueError):
        return None


class Store:
    """An MLflow tracking store and one experiment in it; every call holds the store's lock."""

    def __init__(self, tracking_uri: str, experiment: str, artifact_location: str) -> None:
        client_class = _mlflow()
        self.uri = str(tracking_uri)
        self.lock_path: Path | None = None
        if self.uri.startswith("sqlite:///"):
            db = Path(self.uri[len("sqlite:///") :])
            try:
                # SQLite makes the file, not its folder
                db.parent.mkdir(parents=True, exist_ok=True)
            except OSError as err:
                raise RunnerError(
                    f"cannot open the MLflow store {self.uri}: cannot make {db.parent} ({err.strerror or err}). "
                    f"Point the tracking URI at a writable place (default sqlite:///outputs/mlflow.db)."
                ) from None
            self.lock_path = db.with_name(db.name + ".lock")
        # the client creates (or migrates) the store's tables: the race of parallel jobs
        with self.locked():
            try:
                self.client = client_class(tracking_uri=self.uri)
                found = self.client.get_experiment_by_name(experiment)
                if found is None:
                    location = (
                        Path(artifact_location).resolve().as_uri()
                        if "://" not in str(artifact_location)
                        else artifact_location
                    )
                    self.experiment_id = self.client.create_experiment(experiment, artifact_location=location)
                else:
                    if found.lifecycle_stage == "deleted":
                        self.client.restore_experiment(found.experiment_id)
                    self.experiment_id = found.experiment_id
            except Exception as err:
                raise RunnerError(
                    f"cannot open the MLflow store {self.uri} (experiment {experiment!r}): "
                    f"{type(err).__name__}: {one_line(err, 300)}. Check logger.mlflow.tracking_uri "
                    f"(default sqlite:///outputs/mlflow.db) and that its folder is writable."
                ) from None

    @contextlib.contextmanager
    def locked(self) -> Iterator[None]:
        # a tracking server serialises its own writes
        if self.lock_path is None:
            yield
            return
        with open(self.lock_path, "a") as f:
            fcntl.flock(f, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(f, fcntl.LOCK_UN)

    # ---- a run directory's mirror -----------------------------------------------------------

    def open(self, record: dict[str, Any]) -> str:
        """The MLflow run mirroring record["path"], brought up to date with the directory: its id."""
        from mlflow.entities import Param, ViewType

        with self.locked():
            path = record["path"]
            quoted = path.replace("\\", "\\\\").replace("'", "\\'")
            found = self.client.search_runs(
                [self.experiment_id],
                filter_string=f"tags.`runner.run_dir` = '{quoted}'",
                run_view_type=ViewType.ACTIVE_ONLY,
                max_results=1,
            )
            params = {k: str(v)[:MAX_PARAM] for k, v in flatten(record["config"]).items()}
            run = found[0] if found else None
            logged: int | None = 0
            if run is not None:
                logged = self._logged_rows(run.info.run_id, record["rows"])
                # it disagrees with the directory: made anew from it
                if run.data.params != params or logged is None:
                    self.client.delete_run(run.info.run_id)
                    run, logged = None, 0
            if run is None:
                summary = record["summary"]
                run = self.client.create_run(
                    self.experiment_id,
                    run_name=record["name"],
                    start_time=_millis(summary.get("started_at")),
                    tags={"runner.run_dir": path},
                )
                items = [Param(k, v) for k, v in params.items()]
                for i in range(0, len(items), BATCH):
                    self.client.log_batch(run.info.run_id, params=items[i : i + BATCH])
            run_id = run.info.run_id
            self._log_rows(run_id, record["rows"][logged:], record["summary"])
            self._tag(run_id, record)
            if run.info.status != "RUNNING" and record["summary"].get("status") == "running":
                self.client.update_run(run_id, status="RUNNING")
        return run_id

    def log_row(self, run_id: str, row: Mapping[str, Any]) -> None:
        with self.locked():
            self._log_rows(run_id, [row], None)

    def finish(self, run_id: str, record: dict[str, Any], log_model: bool = True) -> None:
        """The run's results, files and status, once its process has ended it (any way)."""
        from mlflow.entities import Metric

        summary, run_dir = record["summary"], Path(record["path"])
        now = int(time.time() * 1000)
        results = {**{f"best_{k}": v for k, v in (summary.get("best") or {}).items()}, **(summary.get("test") or {})}
        step = int(summary.get("epochs") or len(record["rows"]))
        metrics = [
            Metric(k, float(v), now, step)
            for k, v in results.items()
            if isinstance(v, (int, float)) and math.isfinite(v)
        ]
        files = [run_dir / name for name in ARTIFACTS] + ([run_dir / "checkpoints" / "best.pt"] if log_model else [])
        with self.locked():
            self._tag(run_id, record)
            if metrics:
                self.client.log_batch(run_id, metrics=metrics)
            for file in files:
                if file.is_file():
                    self.client.log_artifact(
                        run_id, str(file), "checkpoints" if file.parent.name == "checkpoints" else None
                    )
            status = STATUS.get(summary.get("status"), "FAILED")
            if status != "RUNNING":
                self.client.set_terminated(run_id, status, end_time=_millis(summary.get("finished_at")))

    def _logged_rows(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> int | None:
        """How many of `rows` the mirror holds (train_loss by epoch); None when it holds others."""
        history = sorted((m.step, m.value) for m in self.client.get_metric_history(run_id, "train_loss"))
        if len(history) > len(rows):
            return None
        for (step, value), row in zip(history, rows):
            if step != int(row["epoch"]) or not math.isclose(value, row["train_loss"], rel_tol=1e-9):
                return None
        return len(history)

    def _log_rows(self, run_id: str, rows: Sequence[Mapping[str, Any]], summary: Mapping[str, Any] | None) -> None:
        """metrics.csv's rows, step = the epoch; timestamps now, or for an upload the run's start plus its epochs'
        time."""
        from mlflow.entities import Metric

        start = _millis(summary.get("started_at")) if summary and summary.get("status") != "running" else None
        metrics, elapsed = [], 0.0
        for row in rows:
            elapsed += row.get("epoch_time_s", 0.0) or 0.0
            stamp = start + int(elapsed * 1000) if start else int(time.time() * 1000)
            metrics += [
                Metric(k, float(v), stamp, int(row["epoch"]))
                for k, v in row.items()
                if k != "epoch" and isinstance(v, (int, float)) and math.isfinite(v)
            ]
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run_id, metrics=metrics[i : i + 1000])

    def _tag(self, run_id: str, record: dict[str, Any]) -> None:
        from mlflow.entities import RunTag

        summary = record["summary"]
        env = summary.get("environment") or {}
        tags = {
            "runner.status": summary.get("status"),
            "mlflow.source.name": summary.get("command"),
            "mlflow.source.type": "LOCAL",
            "mlflow.source.git.commit": (env.get("git") or {}).get("commit"),
            "runner.resumed_with": summary.get("resumed_with"),
            "runner.sweep": record.get("sweep"),
            **{f"env.{k}": v for k, v in flatten(env).items()},
        }
        self.client.log_batch(
            run_id, tags=[RunTag(k, str(v)[:MAX_PARAM]) for k, v in tags.items() if v not in (None, "None")]
        )


# (tracking_uri, experiment, artifact_location) -> Store, opened by check() before the run starts
_STORES: dict[tuple[str, str, str], Store] = {}


def _store(options: Mapping[str, Any]) -> Store:
    key = (
        options.get("tracking_uri", "sqlite:///outputs/mlflow.db"),
        options.get("experiment", "runner"),
        options.get("artifact_location", "outputs/mlartifacts"),
    )
    if key not in _STORES:
        _STORES[key] = Store(*key)
    return _STORES[key]


class MLflow:
    """The live logger: opens the mirror when the run starts, adds each epoch's row, finishes it when the process
    ends."""

    @staticmethod
    def check(options: Mapping[str, Any]) -> None:
        """Open the store (and the experiment) before the run directory is written: a bad tracking_uri changes no
        run."""
        _store(options)

    def __init__(
        self, run_dir: Path, options: Mapping[str, Any], record: dict[str, Any], purge_step: int | None = None
    ) -> None:
        self.options = options
        self.store = _store(options)
        self.run_id = self.store.open(record)

    def log_step(self, step: int, loss: float) -> None:
        # MLflow keeps metrics.csv's rows; the step-level loss is TensorBoard's
        pass

    def log_epoch(self, row: Mapping[str, Any], step: int) -> None:
        self.store.log_row(self.run_id, row)

    def log_end(
        self,
        step: int,
        record: dict[str, Any],
        results: Mapping[str, Any],
        confusion: torch.Tensor | None = None,
        class_names: Sequence[str] | None = None,
    ) -> None:
        # the results are in summary.json, which close() reads once the run has recorded how it ended
        pass

    def close(self, record: dict[str, Any]) -> None:
        self.store.finish(self.run_id, record, self.options.get("log_model", True))
