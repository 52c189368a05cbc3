"""runner's CNN, sending its own process a real signal at an exact moment, so that a test stops a run where it means to.

    RUNNER_TEST_SIGNAL=SIGTERM        which signal (default SIGINT)
    RUNNER_TEST_SIGNAL_AT=build       while the model is built: in the job's setup
    RUNNER_TEST_SIGNAL_AT=step:27     at the 27th training forward pass of this process
    RUNNER_TEST_SIGNAL_AT=test:359    at a forward pass in eval mode of a batch of 359: the final test of digits
    RUNNER_TEST_SIGNAL_AT=eval:2      at the 2nd forward pass in eval mode: the 1st is the model check's dummy batch,
                                      the 2nd epoch 1's validation
    RUNNER_TEST_SIGNAL_AT=load:1      inside the 1st load_state_dict of this process (a fresh run's: the final test's
                                      best.pt, where torch wraps any exception raised into its own RuntimeError)
    RUNNER_TEST_SIGNAL_AT=read:best.pt   inside torch.load of a file of this name (in runner's checkpoint reader)
    RUNNER_TEST_SIGNAL=SIGINT,SIGINT  two signals, one after the other (the second stops at once)
    RUNNER_TEST_SIGNAL_ONCE=FILE      only when FILE does not exist yet, and create it (for requeued jobs)
    RUNNER_TEST_SIGNAL_JOBS=1=RAISE,2=SIGKILL   in a sweep: only these jobs (Hydra's job.num), each its own signal;
                                      RAISE raises an error instead (a job that fails for a reason that can be fixed);
                                      `{job}` in RUNNER_TEST_SIGNAL_ONCE is the job's number (once per job)

The signal goes through the kernel and runner's real handlers, exactly as a `kill` from outside;
only the moment is chosen. tests/configs/model/signal_cnn.yaml names this factory.
"""

import os
import signal
from pathlib import Path

from runner.models import CNN

_LOADS = [0]


def cnn(in_channels, num_classes, channels, dropout):
    model = CNN(in_channels=in_channels, num_classes=num_classes, channels=channels, dropout=dropout)
    when, once = os.environ.get("RUNNER_TEST_SIGNAL_AT"), os.environ.get("RUNNER_TEST_SIGNAL_ONCE")
    sig = os.environ.get("RUNNER_TEST_SIGNAL", "SIGINT")
    if os.environ.get("RUNNER_TEST_SIGNAL_JOBS"):
        from hydra.core.hydra_config import HydraConfig

        jobs = dict(item.split("=") for item in os.environ["RUNNER_TEST_SIGNAL_JOBS"].split(","))
        num = str(HydraConfig.get().job.num)
        sig, once = jobs.get(num), once and once.replace("{job}", num)
        if sig is None:
            return model
    if not when or (once and Path(once).exists()):
        return model

    def fire():
        if once:
            Path(once).touch()
        if sig == "RAISE":
            raise RuntimeError("injected failure (tests/signal_model.py)")
        for name in sig.split(","):
            os.kill(os.getpid(), getattr(signal, name))

    if when == "build":
        fire()
        return model
    kind, _, n = when.partition(":")
    calls = [0]
    if kind == "load":

        def on_load(*args):
            _LOADS[0] += 1  # over the models this process builds
            if _LOADS[0] == int(n):
                fire()

        model.register_load_state_dict_pre_hook(on_load)
    if kind == "read":
        _fire_on_read(n, fire)

    def hook(module, args):
        if args[0].device.type == "meta":  # the copy training/flops.py counts FLOPs on: no pass of the run's own
            return
        if kind == "step" and module.training:
            calls[0] += 1
            if calls[0] == int(n):
                fire()
        elif kind == "test" and not module.training and len(args[0]) == int(n):
            fire()
        elif kind == "eval" and not module.training:
            calls[0] += 1
            if calls[0] == int(n):
                fire()

    model.register_forward_pre_hook(hook)
    return model


def _fire_on_read(name, fire):
    """torch.load, made to signal inside itself when it reads a file called `name` (once)."""
    import torch

    load = torch.load
    if getattr(load, "fires_on", None):
        return

    def signalling_load(f, *args, **kwargs):
        if Path(str(f)).name == name and not signalling_load.fired:
            signalling_load.fired = True
            fire()
        return load(f, *args, **kwargs)

    signalling_load.fires_on, signalling_load.fired = name, False
    torch.load = signalling_load
