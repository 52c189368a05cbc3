"""runner: a config-driven command-line experiment runner for PyTorch.

    runner train model=cnn dataset=digits
    runner eval ckpt=outputs/2026-11-22/10-31-07

Importing this package does not import torch (so `runner --help` is instant);
`load_model` imports it when called.
"""

__version__ = "0.1.0"


def load_model(path, device="cpu"):
    """The model of a run directory or checkpoint file, weights loaded, in eval mode.

    >>> model = runner.load_model("outputs/2026-11-22/10-31-07")   # uses checkpoints/best.pt
    """
    from runner.checkpoint import load_model as _load_model

    return _load_model(path, device=device)


__all__ = ["load_model", "__version__"]
