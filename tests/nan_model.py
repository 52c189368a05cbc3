"""runner's CNN whose outputs in eval mode are NaN until it has trained a chosen number of batches: a validation
metric that is NaN in epoch 1 and finite after (Lightning #2636), while training itself stays finite.

    model._target_=nan_model.cnn    with PYTHONPATH=tests and RUNNER_TEST_NAN_UNTIL=5 (training batches)

The batches trained are a buffer, so best.pt carries them: the final test of a later epoch's weights is finite.
"""

import os

import torch

from runner.models import CNN


class NanUntilTrained(CNN):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.register_buffer("trained", torch.zeros((), dtype=torch.long))
        self.until = int(os.environ.get("RUNNER_TEST_NAN_UNTIL", "0"))

    def forward(self, x):
        out = super().forward(x)
        if x.device.type == "meta":  # training/flops.py's copy counts FLOPs: no pass of the run's own
            return out
        if self.training:
            self.trained += 1
            return out
        # the model check's dummy batch (nothing trained yet) stays finite
        nan = bool(0 < self.trained <= self.until)
        return torch.full_like(out, float("nan")) if nan else out


def cnn(**kwargs):
    return NanUntilTrained(**kwargs)
