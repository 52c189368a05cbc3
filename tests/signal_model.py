"""runner's CNN, sending its own process a real signal at an exact moment, so that a test stops a run where it means to.

    RUNNER_TEST_SIGNAL=SIGTERM        which signal (default SIGINT)
    RUNNER_TEST_SIGNAL_AT=build       while the model is built: in the job's setup
    RUNNER_TEST_SIGNAL_AT=step:27     at the 27th training forward pass of this process
    RUNNER_TEST_SIGNAL_AT=test:359    at a forward pass in eval mode of a batch of 359: the final test of digits
    RUNNER_TEST_SIGNAL_ONCE=FILE      only when FILE does not exist yet, and create it (for requeued jobs)
    RUNNER_TEST_SIGNAL_JOBS=1=RAISE,2=SIGKILL   in a sweep: only these jobs (Hydra's job.num), each its own signal;
                                      RAISE raises an error instead (a job that fails for a reason that can be fixed)

The signal goes through the kernel and runner's real handlers, exactly as a `kill` from outside;
only the moment is chosen. tests/configs/model/signal_cnn.yaml names this factory.
"""

import os
import signal
from pathlib import Path

from runner.models import CNN


def cnn(in_channels, num_classes, channels, dropout):
    model = CNN(in_channels=in_channels, num_classes=num_classes, channels=channels, dropout=dropout)
    when, once = os.environ.get("RUNNER_TEST_SIGNAL_AT"), os.environ.get("RUNNER_TEST_SIGNAL_ONCE")
    if not when or (once and Path(once).exists()):
        return model
    sig = os.environ.get("RUNNER_TEST_SIGNAL", "SIGINT")
    if os.environ.get("RUNNER_TEST_SIGNAL_JOBS"):
        from hydra.core.hydra_config import HydraConfig

        jobs = dict(item.split("=") for item in os.environ["RUNNER_TEST_SIGNAL_JOBS"].split(","))
        sig = jobs.get(str(HydraConfig.get().job.num))
        if sig is None:
            return model

    def fire():
        if once:
            Path(once).touch()
        if sig == "RAISE":
            raise RuntimeError("injected failure (tests/signal_model.py)")
        os.kill(os.getpid(), getattr(signal, sig))

    if when == "build":
        fire()
        return model
    kind, _, n = when.partition(":")
    calls = [0]

    def hook(module, args):
        if kind == "step" and module.training:
            calls[0] += 1
            if calls[0] == int(n):
                fire()
        elif kind == "test" and not module.training and len(args[0]) == int(n):
            fire()

    model.register_forward_pre_hook(hook)
    return model
