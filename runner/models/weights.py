"""Weights saved from one model, fitted to another of the same architecture whose output layer may have resized.

The rule `init_from=` and the pretrained models (pretrained.py) share: every tensor must match by name and shape,
except the output layer's when the number of outputs changed (ImageNet's 1000 classes into your 4): those keep the
model's fresh, seeded initialisation. An output-layer tensor is one whose first dimension is the model's number of
outputs and whose other dimensions are the saved tensor's (a Linear's weight [classes, features] and bias
[classes], a 1x1 convolution head's [classes, C, 1, 1]).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, NoReturn

if TYPE_CHECKING:
    import torch
    from torch import nn

# keys named per kind of mismatch
SHOWN = 6


@dataclass
class Fit:
    """How a state_dict fits a model: the keys loaded, re-initialised, and the ones that do not fit."""

    # model keys taken from the saved weights
    kept: list[str] = field(default_factory=list)
    # the output layer's, when its size changed
    reinitialised: list[str] = field(default_factory=list)
    # "key (saved shape) -> (model shape)"
    wrong: list[str] = field(default_factory=list)
    # model keys the weights lack
    missing: list[str] = field(default_factory=list)
    # saved keys the model lacks
    unexpected: list[str] = field(default_factory=list)

    def problems(self) -> str:
        """The mismatches in words ("" when the weights fit): what a refusal names."""
        parts = [
            f"shapes differ: {', '.join(self.wrong[:SHOWN])}" if self.wrong else "",
            f"the model has keys the weights lack: {', '.join(self.missing[:SHOWN])}" if self.missing else "",
            f"the weights have keys the model lacks: {', '.join(self.unexpected[:SHOWN])}" if self.unexpected else "",
            "none of its tensors fits the model" if not self.kept else "",
        ]
        return "; ".join(p for p in parts if p)


def fit(own: Mapping[str, torch.Tensor], saved: Mapping[str, torch.Tensor], num_outputs: int) -> Fit:
    """How the state_dict `saved` ({name: tensor}) fits a model whose state_dict is `own` and whose output layer has
    `num_outputs` rows."""
    result = Fit()
    for key, tensor in own.items():
        theirs = saved.get(key)
        if theirs is None:
            result.missing.append(key)
        elif tuple(theirs.shape) == tuple(tensor.shape):
            result.kept.append(key)
        elif tensor.dim() >= 1 and tensor.shape[0] == num_outputs and theirs.shape[1:] == tensor.shape[1:]:
            # the output layer: one row per output
            result.reinitialised.append(key)
        else:
            result.wrong.append(f"{key} {tuple(theirs.shape)} -> {tuple(tensor.shape)}")
    result.unexpected = [k for k in saved if k not in own]
    return result


def load_fitting(
    model: nn.Module, saved: Mapping[str, torch.Tensor], num_outputs: int, refuse: Callable[[str], NoReturn]
) -> Fit:
    """Load `saved` into `model` by fit()'s rule and return the Fit; where it does not fit, call `refuse(problems)`
    (which raises, naming the source) and change nothing."""
    fitted = fit(model.state_dict(), saved, num_outputs)
    problems = fitted.problems()
    if problems:
        refuse(problems)
    own = model.state_dict()
    model.load_state_dict({k: saved[k] if k in fitted.kept else own[k] for k in own})
    return fitted
