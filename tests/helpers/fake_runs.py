"""Run directories written by hand, as `runner train` leaves them (summary.json, .hydra/config.yaml and
overrides.yaml), for the tests of what reads them (runner report, runner diff, an Optuna search's results) in the
pytest process: no training, so every value, tie and NaN is chosen."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

DIGITS = {"name": "digits", "task": "classification", "num_classes": 10, "test_fraction": 0.2, "split_seed": 0}


def table(sha: str, target: str = "y", task: str = "regression") -> dict:
    """A dataset=csv block as .hydra/config.yaml records it: the file's SHA-256, the target, the task read from it."""
    return {
        "name": "csv",
        "path": f"/data/{sha}.csv",
        "target": target,
        "task": task,
        "sha256": [sha],
        "test_fraction": 0.2,
        "split_seed": 0,
        "val_fraction": 0.1,
    }


def run(
    root: Path,
    name: str,
    *,
    best: float | None = 0.9,
    val_loss: float | None = 0.3,
    final_val_loss: float | None = None,
    test: float | None = 0.9,
    overrides: tuple[str, ...] = (),
    dataset: dict | None = None,
    monitor: str = "val_accuracy",
    mode: str = "max",
    status: str = "completed",
    error: str | None = None,
    val_samples: int = 144,
    extra: dict | None = None,
    config: bool = True,
) -> Path:
    """A run directory `root/name` of a completed (or `status`) training run with these figures."""
    d = Path(root) / name
    (d / ".hydra").mkdir(parents=True)
    metric = monitor[4:]
    summary = {
        "kind": "train",
        "status": status,
        "error": error,
        "task": (dataset or DIGITS)["task"],
        "monitor": monitor if status != "failed" else None,
        "monitor_mode": mode,
        "samples": {"train": 1000, "val": val_samples, "test": 359},
        "epochs": 3,
    }
    if status != "failed":
        summary |= {
            "best": {"epoch": 2, "val_loss": val_loss, monitor: best},
            "final": {"epoch": 3, "val_loss": final_val_loss if final_val_loss is not None else val_loss},
            "test": {"test_loss": 0.3, f"test_{metric}": test},
            "timings": {"total_s": 1.0},
        }
    if status != "failed" and best is not None and val_loss is not None:
        # the curve sweep.png draws: the best epoch is 2
        rows = [(1, best - 0.1, val_loss + 0.1), (2, best, val_loss), (3, best - 0.01, summary["final"]["val_loss"])]
        lines = [f"epoch,val_loss,{monitor}", *(f"{e},{loss},{value}" for e, value, loss in rows)]
        (d / "metrics.csv").write_text("\n".join(lines) + "\n")
    summary |= extra or {}
    (d / "summary.json").write_text(json.dumps(summary))
    if config:
        cfg = {"seed": 0, "dataset": dataset or DIGITS, "trainer": {"monitor": None, "monitor_mode": None}}
        (d / ".hydra" / "config.yaml").write_text(yaml.safe_dump(cfg))
    (d / ".hydra" / "overrides.yaml").write_text(yaml.safe_dump(list(overrides)))
    return d
