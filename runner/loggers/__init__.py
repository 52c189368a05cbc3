"""Trackers beside metrics.csv, which stays the record of truth: the `logger` group, several at once.

    runner train logger=tensorboard                  # runner/loggers/tensorboard.py
    runner train logger=mlflow                       # runner/loggers/mlflow.py
    runner train 'logger=[tensorboard,mlflow]'

Each is an extra, imported only when chosen; flatten.py turns a nested config into the flat keys they take.
A logger is given the run's record (rundir.RunDir.record:
its path, name, resolved config, rows and summary) when it opens and when it closes, and each
epoch's row, against the optimizer step, in between.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runner.io.errors import RunnerError

# name -> (module, class, the keys of configs/logger/<name>.yaml, the packages it needs: runner's extra of the name)
KINDS = {
    "tensorboard": ("runner.loggers.tensorboard", "TensorBoard", ("dir", "flush_secs"), ("tensorboard",)),
    "mlflow": (
        "runner.loggers.mlflow",
        "MLflow",
        ("tracking_uri", "experiment", "artifact_location", "log_model"),
        ("mlflow", "sqlalchemy", "alembic"),
    ),
}


def check_loggers(logger_cfg: Mapping[str, Any] | None, asked_by: str | None = None) -> None:
    """Refuse a logger that is not installed or an option runner does not read, before the run directory is written."""
    for name, options in (logger_cfg or {}).items():
        if name not in KINDS:
            raise RunnerError(
                f"logger.{name} is not a logger runner has. Choose from: {', '.join(KINDS)} "
                f"(logger=[tensorboard,mlflow])."
            )
        for key in options or {}:
            if key not in KINDS[name][2]:
                raise RunnerError(
                    f"logger.{name}.{key} is not an option of logger={name}, so it would change nothing. "
                    f"Its options are: {', '.join(KINDS[name][2])}."
                )
        missing = [package for package in KINDS[name][3] if not _importable(package)]
        if missing:
            what = asked_by or f"logger={name}"
            raise RunnerError(
                f"{what} needs {', '.join(missing)}, which {'is' if len(missing) == 1 else 'are'} not installed here. "
                f"Install runner's extra with pip install '.[{name}]' (make installs it), or drop {what}. "
                f"Nothing was written."
            )
        check = getattr(_kind(name), "check", None)
        if check and not asked_by:
            check(
                dict(options or {})
                # e.g. MLflow opens its store now: a bad tracking_uri stops the run before it starts
            )


def _importable(package: str) -> bool:
    import importlib

    try:
        importlib.import_module(package)
        return True
    except ImportError:
        return False


def _kind(name: str) -> Any:
    import importlib

    module, cls, *_ = KINDS[name]
    return getattr(importlib.import_module(module), cls)


def open_loggers(
    logger_cfg: Mapping[str, Any] | None, run_dir: Path, record: dict[str, Any], purge_step: int | None = None
) -> list[Any]:
    """The loggers `logger_cfg` (the composed `logger` node: {name: options}) turns on; [] for none."""
    return [
        _kind(name)(run_dir, dict(options or {}), record, purge_step) for name, options in (logger_cfg or {}).items()
    ]
