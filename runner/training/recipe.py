"""The trainer's knobs that shape each step and decide when training ends (configs/trainer/default.yaml).

`Recipe` holds every setting the loop reads; `Monitor` is the metric that picks best.pt.
"""

import numbers
from dataclasses import dataclass

from omegaconf import OmegaConf

from runner.io.errors import RunnerError


def _number(v):
    return isinstance(v, numbers.Real) and not isinstance(v, bool)


def duration_s(value, strict=True):
    """trainer.max_time in seconds: a number of seconds, or "DD:HH:MM:SS" (Lightning's form; "HH:MM:SS" and "MM:SS" too).

    None stays None; a value that is neither returns None when not `strict`, and raises otherwise."""
    if value is None:
        return None
    if _number(value) and value > 0:
        return float(value)
    parts = str(value).split(":") if isinstance(value, str) else []
    if 2 <= len(parts) <= 4 and all(p.strip().isdigit() for p in parts):
        seconds = sum(int(p) * unit for p, unit in zip(reversed(parts), (1, 60, 3600, 86400)))
        if seconds > 0:
            return float(seconds)
    if strict:
        raise RunnerError(f"trainer.max_time must be null, seconds, or DD:HH:MM:SS, got {value!r}. Type it as trainer.max_time=00:01:30:00.")
    return None


@dataclass(frozen=True)
class Monitor:
    """The metric that picks best.pt (a column of metrics.csv) and whether lower ('min') or higher ('max') is better."""

    name: str
    mode: str

    @classmethod
    def of(cls, trainer_cfg, task):
        name = trainer_cfg.monitor or f"val_{task.metric}"
        return cls(name, trainer_cfg.monitor_mode or ("min" if "loss" in name else task.mode))

    def improved(self, row, state):
        """Better than the best so far; ties on the metric (accuracy on a small split saturates) go to the lower val_loss."""
        sign = 1 if self.mode == "min" else -1
        key = (sign * row[self.name], row["val_loss"])
        return state.best_metric is None or key < (sign * state.best_metric, state.best_val_loss)


@dataclass(frozen=True)
class Recipe:
    """The trainer's knobs that shape each step and when training ends (configs/trainer/default.yaml)."""

    epochs: int
    accumulate: int = 1  # accumulate_grad_batches: batches whose gradients make one optimizer step
    label_smoothing: float = 0.0
    patience: int | None = None  # early_stopping.patience: validations without improvement before stopping
    min_delta: float = 0.0
    max_steps: int | None = None
    max_time: float | None = None  # seconds of training

    @classmethod
    def of(cls, trainer_cfg):
        get = lambda key, default=None: OmegaConf.select(trainer_cfg, key, default=default)  # noqa: E731 (older runs lack the keys)
        return cls(trainer_cfg.epochs, get("accumulate_grad_batches", 1), get("label_smoothing", 0.0) or 0.0,
                   get("early_stopping.patience"), get("early_stopping.min_delta", 0.0) or 0.0, get("max_steps"),
                   duration_s(get("max_time")))

    def limit_reached(self, state, train_s):
        """"max_steps" or "max_time" once the run has reached it, else None."""
        if self.max_steps is not None and state.step >= self.max_steps:
            return "max_steps"
        if self.max_time is not None and train_s >= self.max_time:
            return "max_time"
        return None

    def early_stop(self, value, state, mode):
        """Count a validation for trainer.early_stopping (Lightning's rule); True when patience has run out."""
        if self.patience is None:
            return False
        sign = 1 if mode == "max" else -1
        if state.early_best is None or sign * (value - state.early_best) > self.min_delta:
            state.early_best, state.stale_epochs = value, 0
            return False
        state.stale_epochs += 1
        return state.stale_epochs >= self.patience
