"""runner: a config-driven command-line experiment runner for PyTorch.

    runner train model=cnn dataset=digits
    runner eval ckpt=outputs/2026-11-22/10-31-07

Importing this package does not import torch (so `runner --help` is instant);
`load_model` and `load_predictor` import it when called.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch
    from torch import nn

    from runner.inference.predictor import Predictor

__version__ = "0.1.0"


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a run directory or checkpoint file, weights loaded, in eval mode.

    >>> model = runner.load_model("outputs/2026-11-22/10-31-07")   # uses checkpoints/best.pt
    """
    from runner.inference.loading import load_model as _load_model

    return _load_model(path, device=device)


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The model of a run with the run's own preprocessing in front of it (runner/inference/predictor.py).

    >>> predictor = runner.load_predictor("outputs/2026-11-22/10-31-07")
    >>> predictor.predict(x).labels       # x: raw samples as the dataset gives them, e.g. uint8 images
    """
    from runner.inference.predictor import load_predictor as _load_predictor

    return _load_predictor(path, device=device)


__all__ = ["__version__", "load_model", "load_predictor"]
