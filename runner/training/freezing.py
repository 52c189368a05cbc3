"""trainer.freeze and trainer.unfreeze_at_epoch: parameters that do not train, for fine-tuning a backbone.

    runner train init_from=RUN 'trainer.freeze=[features]'                          # only the head trains
    runner train init_from=RUN 'trainer.freeze=[features]' trainer.unfreeze_at_epoch=3   # all of it from epoch 3

A pattern is a glob over parameter names (`features.0.0.weight`) or the modules holding them (`features`, `head.3`,
`features.*`), as `model.named_parameters()` names them. Frozen parameters get no gradient (requires_grad=False),
so the optimizer, which holds every parameter, leaves them as they are, weight decay included (torch's optimizers
skip a parameter without a gradient); a BatchNorm layer whose parameters are all frozen stays in eval mode while
training, so its running statistics stay as they were too (as Lightning's BackboneFinetuning does). From
unfreeze_at_epoch on (epochs count from 1), everything trains: the idea of Lightning's BackboneFinetuning, without
its learning-rate ramp. Which parameters are frozen follows from the patterns and the epoch alone, so a resumed
run freezes exactly what the uninterrupted run froze.
"""

from __future__ import annotations

from collections.abc import Sequence
from fnmatch import fnmatchcase
from typing import Any

from torch import nn

from runner.io.errors import RunnerError


def _matches(name: str, pattern: str) -> bool:
    return fnmatchcase(name, pattern) or fnmatchcase(name, f"{pattern}.*")


def selected(model: nn.Module, patterns: Sequence[str], key: str) -> list[str]:
    """The names of `model`'s parameters that `patterns` (globs over parameter or module names) select, in the
    model's order; RunnerError naming the model's modules for a pattern that selects none (`key`: the setting)."""
    names = [name for name, _ in model.named_parameters()]
    for pattern in patterns:
        if not any(_matches(name, pattern) for name in names):
            top = sorted({name.split(".")[0] for name in names})
            raise RunnerError(
                f"{key} pattern '{pattern}' matches no parameter of this model. Its modules are: {', '.join(top)} "
                f"(a pattern is a glob over names such as {names[0]}, or the module holding them, e.g. {top[0]})."
            )
    return [name for name in names if any(_matches(name, p) for p in patterns)]


class Freezer:
    """The parameters `patterns` freeze in `model` until epoch `unfreeze_at` (None: for the whole run)."""

    def __init__(self, model: nn.Module, patterns: Sequence[str], unfreeze_at: int | None) -> None:
        self.model, self.unfreeze_at = model, unfreeze_at
        self.names = set(selected(model, patterns, "trainer.freeze"))
        self.count = sum(p.numel() for name, p in model.named_parameters() if name in self.names)
        # what the model trains of its own accord (FastNet's BatchNorm scales do not): unfreezing gives back no more
        self.trainable = {name for name, p in model.named_parameters() if p.requires_grad}
        if not self.trainable - self.names:
            raise RunnerError(
                f"trainer.freeze={list(patterns)} freezes every parameter that trains: nothing would learn, and the "
                f"first backward pass would have no gradient to compute. Leave some out, e.g. the output layer."
            )

    def frozen(self, epoch: int) -> bool:
        return self.unfreeze_at is None or epoch < self.unfreeze_at

    def at(self, epoch: int) -> bool:
        """Set requires_grad for `epoch` (from 1), and put the frozen BatchNorm layers in eval mode; call after
        model.train(). Returns True at the epoch the parameters are unfrozen."""
        frozen = self.frozen(epoch)
        for name, param in self.model.named_parameters():
            param.requires_grad_(name in self.trainable and not (frozen and name in self.names))
        if frozen:
            for prefix, module in self.model.named_modules():
                own = [f"{prefix}.{n}" if prefix else n for n, _ in module.named_parameters(recurse=False)]
                if isinstance(module, nn.modules.batchnorm._BatchNorm) and own and set(own) <= self.names:
                    module.eval()
        return epoch == self.unfreeze_at

    def line(self) -> str:
        """What the log says about it."""
        until = f"until epoch {self.unfreeze_at}" if self.unfreeze_at else "for the whole run"
        total = sum(p.numel() for p in self.model.parameters())
        return f"frozen: {self.count:,} of {total:,} parameters ({len(self.names)} tensors, trainer.freeze) {until}"

    def summary(self) -> dict[str, Any]:
        """summary.json's `frozen`."""
        return {"parameters": self.count, "tensors": len(self.names), "unfreeze_at_epoch": self.unfreeze_at}
