"""Builders: each takes the piece of config it needs and returns one part of a training job."""

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import OmegaConf

from runner.errors import RunnerError


def instantiate(cfg, **kwargs):
    """hydra.utils.instantiate, letting a RunnerError raised by the target reach the user as itself."""
    try:
        return hydra_instantiate(cfg, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, RunnerError):
            raise err.__cause__ from None
        raise


def resolve_device(name, local_rank=0):
    """`auto` means cuda, then mps, then cpu; an explicit device must exist. Under torchrun, cuda is cuda:LOCAL_RANK."""
    mps = getattr(torch.backends, "mps", None)
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available())}
    if name == "auto":
        name = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(name.split(":")[0], False):
        present = ", ".join(d for d, ok in available.items() if ok)
        raise RunnerError(f"device={name} is not available on this machine (available: {present}). Use device=auto or device=cpu.")
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def build_model(model_cfg):
    return instantiate(model_cfg, _convert_="all")


def build_optimizer(optimizer_cfg, params):
    return instantiate(optimizer_cfg, _convert_="all")(params)


def build_scheduler(scheduler_cfg, optimizer):
    """An LRScheduler stepped once per epoch, or None for scheduler=none."""
    if scheduler_cfg.get("_target_") is None:
        return None
    return instantiate(scheduler_cfg, _convert_="all")(optimizer)


def summarize(model, input_shape, num_outputs, device):
    """Run one batch of zeros through the model and return its layer table.

    Each row is (name, type, output shape, parameters) for a leaf module, as torchsummary
    printed it. This is also the check that the model can take the dataset's input at all,
    before any data is loaded or any run time is spent.
    """
    rows, hooks = [], []

    def record(name):
        def hook(module, _inputs, output):
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else "-"
            rows.append((name, type(module).__name__, shape, sum(p.numel() for p in module.parameters(recurse=False))))

        return hook

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(record(name)))
    was_training = model.training
    model.eval()  # BatchNorm in training mode rejects a batch whose spatial size has shrunk to 1x1
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    except (RuntimeError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0]
        raise RunnerError(
            f"model {type(model).__name__} cannot take this dataset's input of shape {list(input_shape)}: {reason}. "
            f"Pick a model that fits the data (model=mlp takes any shape; model=cnn any image size; "
            f"model=lenet needs 32x32 images)."
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if tuple(out.shape) != (2, num_outputs):
        raise RunnerError(
            f"model {type(model).__name__} returns outputs of shape {list(out.shape[1:])} per sample, but the dataset needs "
            f"[{num_outputs}] (dataset.num_classes). Give the model num_classes: ${{dataset.num_classes}} in its YAML."
        )
    return rows


def plain(cfg):
    """The resolved config as plain dicts and lists (what last.pt and summary.json hold)."""
    return OmegaConf.to_container(cfg, resolve=True)
