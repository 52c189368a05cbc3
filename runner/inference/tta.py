"""Test-time augmentation for `runner eval` and `runner predict`: tta=flip averages the model's outputs on each image
and its mirror image (airbench's and timm's --tta flip).

    runner eval ckpt=outputs/2026-11-22/10-31-07 tta=flip        # metrics.json: test_accuracy_tta_flip
    runner predict ckpt=outputs/2026-11-22/10-31-07 input=photos/ tta=flip

A classification averages the two probability distributions (the model's output is then their log: a
log-probability that argmax, softmax and cross-entropy read as they read logits); a regression averages the outputs.
The metrics carry the augmentation in their names, so a TTA accuracy is never taken for a plain one. Only images
(C, H, W) are mirrored: a table's features or a signal have no mirror image that means the same thing.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from runner.io.errors import RunnerError

TTA = ("flip",)


class FlipTTA(nn.Module):
    """`model` on a batch and on its horizontal mirror (the last dimension reversed), outputs averaged."""

    def __init__(self, model: nn.Module, task: str) -> None:
        super().__init__()
        self.model, self.classification = model, task == "classification"

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        plain, mirrored = self.model(x), self.model(x.flip(-1))
        if not self.classification:
            return (plain + mirrored) / 2
        both = torch.stack([plain.float().log_softmax(1), mirrored.float().log_softmax(1)])
        # the log of the mean probability
        return torch.logsumexp(both, dim=0) - math.log(2)


def with_tta(model: nn.Module, tta: str | None, *, task: str, input_shape: Sequence[int]) -> nn.Module:
    """`model` wrapped for the test-time augmentation `tta` (None: the model itself); RunnerError for an unknown one or
    an input that is not an image."""
    if tta is None:
        return model
    if tta not in TTA:
        shown = str(tta).lower() if isinstance(tta, bool) else tta
        raise RunnerError(f"tta={shown} is not a test-time augmentation runner has. Use tta=flip, or leave tta out.")
    if len(input_shape) != 3:
        raise RunnerError(
            f"tta=flip mirrors images of shape (C, H, W); this run's inputs have shape {list(input_shape)}, which have "
            f"no mirror image that means the same thing. Leave tta out."
        )
    return FlipTTA(model, task)


def tta_suffix(tta: str | None) -> str:
    """What the metrics' names end with under `tta`: "_tta_flip", or "" without."""
    return f"_tta_{tta}" if tta else ""
