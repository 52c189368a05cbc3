"""Builders: each takes the piece of config it needs and returns one part of a training job.

build_model(cfg.model)                          the nn.Module its `_target_` names
with_weights_preprocessing(cfg)                 the dataset read as the model's pretrained weights want it
build_optimizer(cfg.optimizer, model)           (the scheduler: runner/training/schedules.py)
build_data(cfg.dataset, device)                 the dataset's splits and its normaliser
make_batches(split, batch_size, transform=, device=)  what a loop iterates over
"""

from __future__ import annotations

import contextlib
import copy
import inspect
import warnings
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from hydra.errors import InstantiationException
from hydra.utils import instantiate as hydra_instantiate
from omegaconf import OmegaConf, open_dict

from runner.data.batches import Batches, Normalizer
from runner.data.duplicates import check as check_duplicates
from runner.data.kinds import pipeline_keys
from runner.data.splits import Split
from runner.data.stream import LoaderBatches
from runner.io.errors import RunnerError, RunnerWarning

if TYPE_CHECKING:
    from omegaconf import DictConfig, ListConfig
    from torch import nn

    from runner.data.splits import Splits
    from runner.data.stream import FileSplit

# dataset keys read by the batches or the run, not passed to the dataset function: every dataset's, and those its
# kind declares (data/kinds.py: baselines)
PIPELINE_KEYS = ("augment", "normalize", "sampler", "duplicates", *pipeline_keys())


def instantiate(cfg: Any, **kwargs: Any) -> Any:
    """hydra.utils.instantiate, letting a RunnerError raised by the target reach the user as itself."""
    try:
        return hydra_instantiate(cfg, **kwargs)
    except InstantiationException as err:
        if isinstance(err.__cause__, RunnerError):
            raise err.__cause__ from None
        raise


def build_model(model_cfg: DictConfig, pretrained: bool = True) -> nn.Module:
    """The nn.Module `model_cfg._target_` names; `pretrained` False skips its pretrained weights (models/pretrained.py),
    for a caller that loads a checkpoint of its own into it."""
    from runner.models.pretrained import architecture_only

    with contextlib.nullcontext() if pretrained else architecture_only():
        return instantiate(model_cfg, _convert_="all")


def with_weights_preprocessing(cfg: DictConfig) -> tuple[DictConfig, str | None]:
    """(cfg, the line that says so) where the model's pretrained weights say what input they were trained with (the
    factory's `preprocessing`, models/pretrained.py), else (cfg, None). The dataset's keys become theirs in a copy of
    cfg: `normalize` (their mean and std, in place of the training split's statistics), and for an image folder
    `input_shape` [3, H, W] (grayscale images are read as RGB), `resize` and `interpolation` (resized, then centre-
    cropped). Datasets held as tensors (cifar10, mnist, ...) keep their own image size, and must have 3 channels.
    The model's keys the weights resolve are pinned (weights DEFAULT -> IMAGENET1K_V1). A fresh run records the
    result as its config (rundir.RunDir.record_config), so eval, predict and export read it from there; applied
    again to its own result, it changes nothing."""
    from hydra.utils import get_method

    try:
        describe = getattr(get_method(cfg.model._target_), "preprocessing", None)
    # building the model names what cannot be imported, in its own words
    except Exception:
        return cfg, None
    if describe is None:
        return cfg, None
    args = {k: v for k, v in plain(cfg.model).items() if not k.startswith("_")}
    pre = describe(**args)
    if pre is None:
        return cfg, None
    cfg = copy.deepcopy(cfg)
    dataset = cfg.dataset
    height, width = pre.input_size
    # an image folder: read from files, so any size and filter
    files = {"resize", "interpolation"} <= set(dataset)
    shape = list(dataset.input_shape)
    if not files and (len(shape) != 3 or shape[0] != 3):
        raise RunnerError(
            f"the weights of {pre.source} take RGB images [3, H, W], and dataset {dataset.name} has samples of shape "
            f"{shape}. Use an image folder (dataset=imagefolder: grayscale images are read as RGB), or train this "
            f"model from random weights."
        )
    with open_dict(cfg.model):
        # DEFAULT -> IMAGENET1K_V1: what the run's config means stays
        for key, value in pre.pinned.items():
            cfg.model[key] = value
    with open_dict(dataset):
        dataset.normalize = {"mean": list(pre.mean), "std": list(pre.std)}
        if files:
            dataset.input_shape = [3, height, width]
            dataset.resize = pre.resize
            dataset.interpolation = pre.interpolation
    size = (
        f"input {height}x{width}: {pre.describe()}"
        if files
        else f"mean {list(pre.mean)}, std {list(pre.std)}; the images keep {dataset.name}'s own size "
        f"{shape[1]}x{shape[2]} (the weights saw {height}x{width})"
    )
    return cfg, f"preprocessing: the weights' own ({pre.source}), not the dataset's statistics: {size}."


def build_optimizer(optimizer_cfg: DictConfig, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer over `model`'s parameters. optimizer.param_groups, when given, splits them as PyTorch's
    parameter groups do: each entry selects parameters by `params` (globs over parameter or module names, as
    trainer.freeze) and sets its own options (lr, weight_decay, ...); the rest form the first group, with the
    optimizer's own options. So `optimizer.param_groups=[{params: [head], lr: 0.01}]` trains the head at 10x
    Adam's default lr; a schedule scales every group by the same factor (each keeps its own base lr)."""
    from runner.training.freezing import selected

    groups = optimizer_cfg.get("param_groups") or []
    cfg = OmegaConf.masked_copy(optimizer_cfg, [str(k) for k in optimizer_cfg if k != "param_groups"])
    make = instantiate(cfg, _convert_="all")
    if not groups:
        return make(model.parameters())
    params = dict(model.named_parameters())
    taken, specs = set(), []
    for i, group in enumerate(plain(optimizer_cfg.param_groups)):
        patterns = group.get("params") if isinstance(group, dict) else None
        if not isinstance(patterns, list) or not patterns or not all(isinstance(p, str) for p in patterns):
            raise RunnerError(
                f"optimizer.param_groups[{i}] = {group!r} has no `params` list of name patterns. Give each group its "
                f"parameters and options, e.g. optimizer.param_groups='[{{params: [head], lr: 0.01}}]'."
            )
        chosen = selected(model, patterns, f"optimizer.param_groups[{i}]")
        names, both = [n for n in chosen if n not in taken], [n for n in chosen if n in taken]
        if both:
            raise RunnerError(
                f"optimizer.param_groups[{i}] selects {both[0]}, which an earlier group already has: a parameter "
                f"belongs to one group. Narrow the patterns."
            )
        # the optimizer: what a group may set
        options = inspect.signature(getattr(make, "func", make)).parameters
        unknown = [k for k in group if k != "params" and (k not in options or k == "params")]
        if unknown:
            raise RunnerError(
                f"optimizer.param_groups[{i}] sets {unknown[0]}, which is not an option of {cfg._target_} (it "
                f"takes: {', '.join(k for k in options if k != 'params')}). Use one of those."
            )
        taken.update(names)
        specs.append({**{k: v for k, v in group.items() if k != "params"}, "params": [params[n] for n in names]})
    rest = [p for n, p in params.items() if n not in taken]
    try:
        return make([{"params": rest}, *specs])
    except (TypeError, ValueError) as err:
        raise RunnerError(
            f"optimizer.param_groups: {' '.join(str(err).split())}. A group takes the options of "
            f"{cfg._target_} (lr, weight_decay, ...) beside `params`."
        ) from None


def build_data(dataset_cfg: DictConfig, device: str | torch.device) -> tuple[Splits, Normalizer]:
    """The dataset's splits (in-memory ones moved to `device`) and its normaliser.

    Reading data leaves torch's global RNG as it found it (dropout draws from it later): decoding
    that runs only when the cache is cold, or a DataLoader drawing its workers' seed, must not
    make the run that fills a cache differ from the runs that read it.
    """
    with torch.random.fork_rng(devices=[]):
        return _build_data(dataset_cfg, device)


def _build_data(dataset_cfg: DictConfig, device: str | torch.device) -> tuple[Splits, Normalizer]:
    args = OmegaConf.masked_copy(dataset_cfg, [str(k) for k in dataset_cfg if k not in PIPELINE_KEYS])
    splits = instantiate(args, _convert_="all")
    expected = tuple(dataset_cfg.input_shape)
    for name in ("train", "val", "test"):
        split = getattr(splits, name)
        if not isinstance(split, Split):
            # streamed from files (runner/data/stream.py), already of the configured shape
            continue
        if tuple(split.x.shape[1:]) != expected:
            raise RunnerError(
                f"dataset {dataset_cfg.name}: its {name} split has samples of shape {list(split.x.shape[1:])}, "
                f"but its config says input_shape: {list(expected)}. Set dataset.input_shape to match the data."
            )
        split = check_targets(split, name, dataset_cfg)
        setattr(splits, name, split.to(device))
    # the samples two splits share: counted, and kept, dropped from val/test or refused (dataset.duplicates), here
    # where every kind's splits pass, so that eval and predict score the splits the run was tested on
    splits = check_duplicates(splits, dataset_cfg.get("duplicates", "warn"), dataset_cfg.name)
    sample = splits.train.x if isinstance(splits.train, Split) else splits.train.sample_tensor(1024, 0).to(device)
    fixed = dataset_cfg.get("normalize")
    # given statistics (e.g. the tutorials' 0.5, 0.5: to [-1, 1]) instead of the training split's own
    if fixed:
        return splits, fixed_normalizer(fixed, sample, dataset_cfg.name)
    return splits, Normalizer.fit(sample)


def target_scale_std(splits: Splits, device: str | torch.device) -> torch.Tensor | None:
    """The std a dataset standardised its regression targets by (Splits.target_scale: tables, arrays), as a tensor
    on `device`, or None (targets used as they are); metrics are reported in the targets' own units either way."""
    scale = splits.target_scale
    return torch.tensor(scale["std"], dtype=torch.float32, device=device) if scale else None


def check_targets(split: Split, name: str, dataset_cfg: DictConfig) -> Split:
    """The split with targets the loss can take, checked before the first step; raises RunnerError otherwise.

    Classification: `y` of shape (N,), integer, each in [0, num_classes). Regression: `y` of shape
    (N, num_classes) float, where (N,) is taken as (N, 1) for one output (as Keras does): MSE of (B,) against
    the model's (B, 1) would broadcast to a B x B matrix and train silently wrong; integer targets are
    taken as float32. Each conversion is said as a RunnerWarning (in the run's log)."""
    y, outputs, dataset = split.y, dataset_cfg.num_classes, f"dataset {dataset_cfg.name}"
    if dataset_cfg.task == "classification":
        if y.dim() != 1 or y.dtype.is_floating_point or y.dtype == torch.bool:
            raise RunnerError(
                f"{dataset}: its {name} split has targets of shape {list(y.shape)} and dtype {y.dtype}, but a "
                f"classification dataset needs class indices: shape [N], an integer dtype (return y.long(), "
                f"y.squeeze(1) for [N, 1]). For real-valued targets set dataset.task=regression."
            )
        if len(split) and not 0 <= int(y.min()) <= int(y.max()) < outputs:
            raise RunnerError(
                f"{dataset}: its {name} split has class labels from {int(y.min())} to {int(y.max())}, "
                f"but dataset.num_classes={outputs} allows 0 to {outputs - 1}. Set "
                f"dataset.num_classes to the number of classes in the data (at least {int(y.max()) + 1})."
            )
        return split
    if y.dim() == 1 and outputs == 1:
        # said once, for every split
        if name == "train":
            warnings.warn(f"{dataset}: targets of shape [N] taken as [N, 1] (one output)", RunnerWarning, 2)
        y = y.unsqueeze(1)
    if y.dim() != 2 or y.shape[1] != outputs:
        raise RunnerError(
            f"{dataset}: its {name} split has regression targets of shape {list(y.shape)}, but the model has "
            f"dataset.num_classes={outputs} outputs, so targets must be [N, {outputs}]. Set "
            f"dataset.num_classes to the number of target columns"
            f"{f' (dataset.num_classes={y.shape[1]})' if y.dim() == 2 else ''}, or return y of shape [N, {outputs}]."
        )
    if not y.dtype.is_floating_point:
        if name == "train":
            warnings.warn(f"{dataset}: integer targets taken as float32", RunnerWarning, 2)
        y = y.float()
    return Split(split.x, y, split.ids, split.id_name)


def target_scale(y: torch.Tensor, name: str) -> None:
    """Say when regression targets are far from unit scale: runner trains on them as they are (MSE in their units
    squared, MAE in their units), and the learning rate has to suit that scale."""
    mean = y.float().mean(0)
    std = y.float().std(0) if len(y) > 1 else torch.ones(y.shape[1:])
    if bool(((std > 10) | (std < 0.1) | (mean.abs() > 10)).any()):
        warnings.warn(
            f"dataset {name}: the regression targets of the training split have mean "
            f"{', '.join(f'{v:.4g}' for v in mean.tolist())} and std {', '.join(f'{v:.4g}' for v in std.tolist())}: "
            f"far from unit scale, and used as they are (not standardised), so the loss starts near "
            f"{float((mean**2 + std**2).mean()):.3g} and MAE is in the targets' own units. Scale them in the "
            f"dataset (e.g. to mean 0, std 1) if training is unstable, or lower optimizer.lr.",
            RunnerWarning,
            2,
        )


def fixed_normalizer(fixed: DictConfig, sample: torch.Tensor, name: str) -> Normalizer:
    """dataset.normalize's per-channel mean and std, given on the [0, 1] scale of torchvision's ToTensor for uint8
    pixels."""
    channels = sample.shape[1]
    if len(fixed.mean) != channels or len(fixed.std) != channels or min(fixed.std) <= 0:
        raise RunnerError(
            f"dataset.normalize needs a mean and a positive std for each of the {channels} channels of {name}, "
            f"got mean={list(fixed.mean)} std={list(fixed.std)}. E.g. "
            f"dataset.normalize.mean=[{','.join(['0.5'] * channels)}]."
        )
    scale = 255.0 if sample.dtype == torch.uint8 else 1.0
    shape = [1, channels] + [1] * (sample.dim() - 2)
    as_tensor = lambda v: torch.tensor([float(x) * scale for x in v], device=sample.device).reshape(shape)  # noqa: E731
    return Normalizer(as_tensor(fixed.mean), as_tensor(fixed.std))


def make_batches(
    split: Split | FileSplit,
    batch_size: int,
    *,
    transform: Callable[[torch.Tensor], torch.Tensor],
    device: torch.device,
    shuffle: bool = False,
    generator: torch.Generator | None = None,
    rank: int = 0,
    world: int = 1,
) -> Batches | LoaderBatches:
    """Batches over an in-memory split, LoaderBatches over a streamed one; this rank's share of each."""
    if isinstance(split, Split):
        return Batches(split, batch_size, transform, shuffle, generator, rank, world)
    return LoaderBatches(split, batch_size, transform, device, shuffle, generator, rank, world)


def summarize(
    model: nn.Module, input_shape: Sequence[int], *, num_outputs: int, device: str | torch.device
) -> list[tuple[str, str, tuple[int, ...] | str, int]]:
    """Run one batch of zeros through the model and return its layer table.

    Each row is (name, type, output shape, parameters) for a leaf module, as torchsummary
    printed it. This is also the check that the model can take the dataset's input at all,
    before any data is loaded or any run time is spent.
    """
    rows: list[tuple[str, str, tuple[int, ...] | str, int]] = []
    hooks = []

    def row_of(name: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, _inputs: Any, output: Any) -> None:
            shape = tuple(output.shape[1:]) if isinstance(output, torch.Tensor) else "-"
            rows.append((name, type(module).__name__, shape, sum(p.numel() for p in module.parameters(recurse=False))))

        return hook

    for name, module in model.named_modules():
        if not list(module.children()):
            hooks.append(module.register_forward_hook(row_of(name)))
    was_training = model.training
    # BatchNorm in training mode rejects a batch whose spatial size has shrunk to 1x1
    model.eval()
    try:
        with torch.no_grad():
            out = model(torch.zeros(2, *input_shape, device=device))
    except (RuntimeError, ValueError, TypeError) as err:
        reason = str(err).strip().splitlines()[0]
        # a model that knows what fixes it says so (LeNet: the padding); else the models that fit
        input_hint = getattr(model, "input_hint", None)
        hint = input_hint(list(input_shape)) if input_hint else None
        fix = hint or (
            "Pick a model that fits the data (model=mlp takes any shape; model=cnn images (C, H, W) of any size and "
            "signals (C, L); model=lenet needs 32x32 images)"
        )
        raise RunnerError(
            f"model {type(model).__name__} cannot take this dataset's input of shape {list(input_shape)}: {reason}. "
            f"{fix}."
        ) from None
    finally:
        for h in hooks:
            h.remove()
        model.train(was_training)
    if tuple(out.shape) != (2, num_outputs):
        raise RunnerError(
            f"model {type(model).__name__} returns outputs of shape {list(out.shape[1:])} per sample, but the dataset "
            f"needs "
            f"[{num_outputs}] (dataset.num_classes). Give the model num_classes: ${{dataset.num_classes}} in its YAML."
        )
    return rows


def plain(cfg: DictConfig | ListConfig) -> Any:
    """The resolved config as plain dicts and lists (what last.pt and summary.json hold)."""
    return OmegaConf.to_container(cfg, resolve=True)
