"""`runner train resume=RUN_DIR`: continue a run in its own directory from checkpoints/last.pt.

    runner train resume=outputs/2026-11-22/10-31-07                     # where it stopped
    runner train resume=outputs/2026-11-22/10-31-07 trainer.epochs=20   # and further

The run's own config comes from last.pt; overrides given here apply on top when they are
harmless (more epochs, another device, where the data lives) and are refused when they
would change the model's shape or the data it trains on. Everything is checked before
anything in the run directory is touched.
"""

import json
from pathlib import Path

from omegaconf import OmegaConf

from runner.build import build_model
from runner.checkpoint import mismatches, safe_load
from runner.config import apply_overrides
from runner.errors import RunnerError
from runner.files import read_metrics

# Dataset keys that say where and how the data is read, not what it is.
LOCATION_KEYS = ("root", "download", "workers", "in_memory", "memory_limit_gb")


def resumable(run_dir):
    """True when `run_dir` holds a run that stopped before completing (a requeued SLURM job finds its own)."""
    try:
        status = json.loads((Path(run_dir) / "summary.json").read_text()).get("status")
    except (OSError, ValueError):
        return False
    return status in ("running", "interrupted") and (Path(run_dir) / "checkpoints" / "last.pt").is_file()


def load_resume(run_dir, cfg, overrides):
    """(the run's config with `overrides` applied, the contents of its last.pt, its earlier metrics rows)."""
    run_dir = Path(run_dir)
    last = run_dir / "checkpoints" / "last.pt"
    if not last.is_file():
        raise RunnerError(f"resume={run_dir} has no checkpoints/last.pt, so there is nothing to resume. "
                          f"Pass the directory of a runner training run (outputs/<date>/<time>).")
    ckpt = safe_load(last)
    if not isinstance(ckpt, dict) or not {"config", "optimizer", "epoch", "rng"} <= set(ckpt):
        raise RunnerError(f"{last} is not a runner training checkpoint (no optimizer, counters or config). It cannot be resumed.")
    for override in overrides:
        key = override.lstrip("+~").split("=", 1)[0]
        if key == "dataset" or (key.startswith("dataset.") and key.split(".")[1] not in LOCATION_KEYS):
            raise RunnerError(f"resume: '{override}' would change the data the run trains on, so it would no longer be "
                              f"the same run. Start a new run for it; on resume only {', '.join('dataset.' + k for k in LOCATION_KEYS)} may change.")
    run_cfg = apply_overrides(OmegaConf.create(ckpt["config"]), cfg, overrides)
    OmegaConf.update(run_cfg, "resume", str(run_dir), force_add=True)
    problems = mismatches(build_model(run_cfg.model), ckpt["model"])
    if problems:
        raise RunnerError(f"resume: the overrides change the model's shape ({'; '.join(problems[:4])}), and a resumed run "
                          f"keeps its model. Drop the model overrides, or start a new run.")
    status = json.loads((run_dir / "summary.json").read_text()).get("status") if (run_dir / "summary.json").is_file() else None
    if status == "completed" and run_cfg.trainer.epochs <= ckpt["epoch"]:
        raise RunnerError(f"resume: {run_dir} already completed its {ckpt['epoch']} epochs. To train it further, "
                          f"add trainer.epochs={ckpt['epoch'] + 10} (or any number above {ckpt['epoch']}).")
    metrics = run_dir / "metrics.csv"
    rows = [r for r in read_metrics(metrics) if r["epoch"] <= ckpt["epoch"]] if metrics.is_file() else []
    return run_cfg, ckpt, rows
