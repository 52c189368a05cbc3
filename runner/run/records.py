"""Reading a run directory, for report, diff, sweep and the loggers: summary, status, config, metrics rows.

Nothing here writes, takes the lock or imports torch (runner report and diff answer without it);
run/rundir.py is the one writer.
"""

from __future__ import annotations

import csv
import fcntl
import io
import json
import os
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

# In a sweep directory, written by its sweeper (sweeps/grid.py): {job: [{"error": ..., "from": ...}, ...]},
# one entry per failed attempt of a job that was then retried.
ATTEMPTS = "attempts.json"


def read_summary(run_dir: str | Path) -> dict[str, Any]:
    """summary.json as a dict; {} when there is none or it cannot be read."""
    try:
        return json.loads((Path(run_dir) / "summary.json").read_text())
    except (OSError, ValueError):
        return {}


def is_locked(run_dir: str | Path) -> bool:
    """True while a process holds the run directory's lock (without taking it, and without writing)."""
    try:
        fd = os.open(Path(run_dir) / ".lock", os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        # closing drops the shared lock, if it was taken
        os.close(fd)


def status_of(run_dir: str | Path, summary: dict[str, Any] | None = None) -> str | None:
    """summary.json's status (or `summary`'s), except that a `running` run whose process is gone is `interrupted`."""
    status = (read_summary(run_dir) if summary is None else summary).get("status")
    return "interrupted" if status == "running" and not is_locked(run_dir) else status


def resolved_config(run_dir: str | Path) -> Any:
    """The run's .hydra/config.yaml with its interpolations resolved (as written, where one cannot be)."""
    from runner.config.resolvers import register_resolvers

    path = Path(run_dir) / ".hydra" / "config.yaml"
    if not path.is_file():
        return {}
    register_resolvers()
    try:
        return OmegaConf.to_container(OmegaConf.load(path), resolve=True)
    # a resolver of a newer runner, or a run moved away from its data: the text as written
    except Exception:
        import yaml

        try:
            return yaml.safe_load(path.read_text())
        # ValueError: UnicodeDecodeError, a byte that is no text
        except (yaml.YAMLError, ValueError) as err:
            from runner.io.errors import RunnerError, one_line

            detail = one_line(err, 200)
            raise RunnerError(
                f"{path} is damaged ({type(err).__name__}: {detail}): it holds the run's config, and runner does not "
                f"guess it. Put back a good copy of the file (the run writes it once, when it starts)."
            ) from None


def overrides(run_dir: str | Path) -> list[str]:
    """The command-line overrides a run was started with (.hydra/overrides.yaml); [] when there are none."""
    import yaml

    try:
        return list(yaml.safe_load((Path(run_dir) / ".hydra" / "overrides.yaml").read_text()) or [])
    except (OSError, yaml.YAMLError):
        return []


# The dataset keys that say what a run is scored on: the data (its name and files), what is predicted, and the test
# split. Runs that differ in any of them are not ranked against each other (runner report groups by them); the rest of
# dataset (val_fraction, normalize, augment, folds, fold, features...) are settings of an experiment.
DATA_KEYS = (
    "name",
    "task",
    "target",
    "target_path",
    "classes",
    "num_classes",
    "sha256",
    "test_path",
    "test_fraction",
    "test_size",
    "split_seed",
    "size",
    "num_samples",
    "noise",
)


def data_fingerprint(run_dir: str | Path) -> dict[str, Any] | None:
    """{key: value} of the run's dataset keys in DATA_KEYS, as .hydra/config.yaml recorded them (the files' SHA-256,
    the task read from a table's target: run/provenance.found_data), with the folder (`root`) or file (`path`) of a
    dataset whose files have no recorded SHA-256. None when the run recorded no config."""
    import yaml

    try:
        dataset = (yaml.safe_load((Path(run_dir) / ".hydra" / "config.yaml").read_text()) or {}).get("dataset")
    except (OSError, ValueError, yaml.YAMLError, AttributeError):
        return None
    if not isinstance(dataset, dict):
        return None
    keys = DATA_KEYS if dataset.get("sha256") else (*DATA_KEYS, "root", "path", "train_path")
    return {k: dataset[k] for k in keys if dataset.get(k) is not None}


def run_record(
    run_dir: str | Path, rows: list[dict[str, float]] | None = None, summary: dict[str, Any] | None = None
) -> dict[str, Any]:
    """A run as trackers mirror it: {path, name, sweep, config, rows, summary}. The name is the overrides that set the
    run apart (`optimizer.lr=0.01,seed=1`), or else its directory's last two parts (`2026-11-24/10-31-07`)."""
    run_dir = Path(run_dir)
    if rows is None:
        rows = read_metrics(run_dir / "metrics.csv") if (run_dir / "metrics.csv").is_file() else []
    summary = dict(summary if summary is not None else read_summary(run_dir))
    summary["status"] = status_of(run_dir, summary)
    own = [
        o
        for o in overrides(run_dir)
        if not o.split("=", 1)[0].lstrip("+~").startswith(("hydra.", "hydra/", "resume", "logger"))
    ]
    sweep = run_dir.parent if (run_dir.parent / "multirun.yaml").is_file() else None
    return {
        "path": str(run_dir.resolve()),
        "name": ",".join(own) or "/".join(run_dir.resolve().parts[-2:]),
        "sweep": str(sweep.resolve()) if sweep else None,
        "config": resolved_config(run_dir),
        "rows": rows,
        "summary": summary,
    }


def read_metrics(path: str | Path) -> list[dict[str, float]]:
    """metrics.csv as a list of dicts of floats."""
    with Path(path).open(newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]


def read_metrics_text(text: str) -> list[dict[str, float]]:
    """read_metrics of metrics.csv's text."""
    return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(io.StringIO(text, newline=""))]


def whole_rows(text: str, epoch: int) -> tuple[str, list[dict[str, float]]]:
    """What a resume keeps of metrics.csv's `text` when last.pt counts `epoch` epochs: its header and its whole rows
    of epochs up to `epoch`, as text ("" where none) and as read_metrics' dicts. What a process that then died left
    after its last.pt goes: rows of later epochs, a line a crash cut short, a torn header."""
    lines = text.splitlines(keepends=True)
    header = lines[0] if lines and lines[0].startswith("epoch,") and lines[0].endswith("\n") else None
    kept = [line for line in lines[1:] if header and _whole_row(header, line, epoch)]
    return (header + "".join(kept), read_metrics_text(header + "".join(kept))) if kept and header else ("", [])


def _whole_row(header: str, line: str, epoch: int) -> bool:
    """Whether `line` is a whole row of metrics.csv (the columns of `header`, numbers, ended by a newline) of an
    epoch up to `epoch`."""
    if not line.endswith("\n"):
        return False
    try:
        # a field short or over (csv gives None, or a list) is a TypeError of float(), an empty or cut one a ValueError
        row = read_metrics_text(header + line)
    except (ValueError, TypeError):
        return False
    return len(row) == 1 and row[0]["epoch"] <= epoch


def sweep_overrides(sweep_dir: str | Path) -> tuple[list[str], list[str]] | None:
    """The overrides a sweep was started with, from its multirun.yaml, verbatim: as typed, with their quotes, escapes
    and interpolations unresolved (OmegaConf would resolve `hydra.sweep.subdir=job${hydra.job.num}` on reading).
    (task, hydra) lists of strings, or None when the folder holds no sweep Hydra wrote."""
    import yaml

    try:
        overrides = yaml.safe_load((Path(sweep_dir) / "multirun.yaml").read_text())["hydra"]["overrides"]
        task, hydra = overrides["task"], overrides["hydra"]
    # ValueError: read_text's UnicodeDecodeError, a file whose bytes are no UTF-8 (a flipped bit)
    except (OSError, ValueError, yaml.YAMLError, TypeError, KeyError):
        return None
    if not all(isinstance(o, list) and all(isinstance(x, str) for x in o) for o in (task, hydra)):
        return None
    return task, hydra
