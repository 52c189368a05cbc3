"""k-fold cross-validation as a sweep: `dataset.folds=K` runs K jobs, one per held-out fold, and the sweep's end
gathers their out-of-fold predictions.

    runner train dataset=csv dataset.path=wine.csv dataset.target=label dataset.folds=5     # 5 jobs, a sweep
    runner train -m dataset=csv ... dataset.folds=5 optimizer.lr=0.01,0.001                  # 2 x 5 jobs

Each job of the grid (sweeps/grid.py) whose config has dataset.folds=K becomes K jobs, the same overrides with
dataset.fold=0..K-1 added: their run directories, their resume and runner report see settings that differ only in
the fold. The dataset draws its test split first, the same for every fold, then holds out fold `dataset.fold` of
the rest as the validation split (data/splits.folded_holdouts). Each job writes best.pt's predictions on its fold
(val_predictions.csv, training/finish.fold_predictions); the sweep's end concatenates them into
oof_predictions.csv, one row per sample of the training pool and setting.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from runner.config.arguments import MODES, PRINTS, Refusal, given

FOLD, FOLDS = "dataset.fold", "dataset.folds"
# a fold job's predictions on its held-out fold, and the sweep's of every fold
VAL_PREDICTIONS, OOF = "val_predictions.csv", "oof_predictions.csv"


def folds_argument(args: list[str], env: Mapping[str, str]) -> list[str] | Refusal:
    """`runner train dataset.folds=K` without -m: its K jobs run as the sweep -m runs, in hydra.run.dir where one is
    given (as hydra.sweep.dir: Hydra's sweep reads no run.dir); a command line that names dataset.fold, another of
    Hydra's modes or a printing flag is left as it is."""
    folds = given(args, FOLDS)
    if folds in (None, "null") or given(args, FOLD) is not None or set(args) & {*MODES, *PRINTS}:
        return args
    own_dir = given(args, "hydra.sweep.dir") is None
    return [
        "-m",
        *(f"hydra.sweep.dir={a.split('=', 1)[1]}" if own_dir and a.startswith("hydra.run.dir=") else a for a in args),
    ]


def fold_jobs(jobs: Sequence[Sequence[str]], compose: Callable[[list[str]], Any]) -> list[list[str]]:
    """The grid's `jobs` (each its overrides), each whose config (`compose(overrides)`) has dataset.folds=K and no
    dataset.fold of its own as K jobs with dataset.fold=0..K-1 added, in order. RunnerError for a K that is not a
    number of folds."""
    from runner.data.splits import check_folds

    expanded: list[list[str]] = []
    for job in jobs:
        folds = None if _named(job, FOLD) else _folds_of(list(job), compose)
        if folds is None:
            expanded.append(list(job))
            continue
        check_folds(folds, 0)
        expanded += [[*job, f"{FOLD}={i}"] for i in range(folds)]
    return expanded


def _named(job: Sequence[str], key: str) -> bool:
    return any(o.split("=", 1)[0].lstrip("+~") == key for o in job)


def _folds_of(job: list[str], compose: Callable[[list[str]], Any]) -> Any:
    """dataset.folds of the job's config; None when it has none (a built-in dataset: runner's check of the command
    line refuses dataset.folds there as a key it does not read), or when it does not compose (the grid's check of
    each job's directory says why)."""
    try:
        return (compose(job).get("dataset") or {}).get("folds")
    except Exception:
        return None


def write_oof(sweep_dir: Path) -> tuple[Path | None, list[str]]:
    """oof_predictions.csv in `sweep_dir`: every completed fold job's val_predictions.csv, one row per sample of the
    training pool, with its fold, and with a `setting` column (the job's overrides but dataset.fold) where the sweep
    has other axes; sorted by setting, then sample. Returns (its path, or None without fold jobs; lines saying which
    folds are missing)."""
    from runner.io.files import write_text
    from runner.io.tables import csv_table
    from runner.run.records import overrides, status_of

    # setting -> (folds, {fold: rows})
    settings: dict[str, tuple[int, dict[int, list[dict[str, str]]]]] = {}
    columns: dict[str, None] = {}
    for path in sorted(sweep_dir.rglob(VAL_PREDICTIONS), key=_job_order(sweep_dir)):
        job = path.parent
        if status_of(job) != "completed":
            continue
        fold, folds = _fold_keys(job)
        setting = " ".join(o for o in overrides(job) if not o.startswith(f"{FOLD}="))
        with path.open(newline="") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            columns.update(dict.fromkeys(reader.fieldnames or ()))
        settings.setdefault(setting, (folds, {}))[1][fold] = rows
    if not settings:
        return None, []
    several = len(settings) > 1
    name, *rest = columns
    header = [*(["setting"] if several else []), name, "fold", *rest]
    out: list[dict[str, Any]] = []
    missing = []
    for setting, (folds, by_fold) in settings.items():
        rows = [{"setting": setting, "fold": fold, **row} for fold, part in by_fold.items() for row in part]
        out += sorted(rows, key=lambda row: _sample_order(row[name]))
        lacking = [str(i) for i in range(folds) if i not in by_fold]
        if lacking:
            missing.append(f"{setting or 'the sweep'}: fold {', '.join(lacking)} of {folds} did not complete")
    target = sweep_dir / OOF
    write_text(target, csv_table(out, header))
    return target, missing


def _fold_keys(job: Path) -> tuple[int, int]:
    """(dataset.fold, dataset.folds) of a fold job, as its .hydra/config.yaml records them (plain numbers, read
    without resolving the rest)."""
    import yaml

    dataset = yaml.safe_load((job / ".hydra" / "config.yaml").read_text())["dataset"]
    return int(dataset["fold"]), int(dataset["folds"])


def _job_order(sweep_dir: Path) -> Callable[[Path], tuple[Any, ...]]:
    """Sort key of a job's file: its job number (the directory's name under the sweep), numbers as numbers."""
    return lambda path: tuple(_sample_order(part) for part in path.parent.relative_to(sweep_dir).parts)


def _sample_order(name: str) -> tuple[int, float, str]:
    """Sort key of a sample's name: lines, rows and indices as numbers, file names as text."""
    try:
        return (0, float(name), "")
    except ValueError:
        return (1, 0.0, name)
