"""Finding and loading a trained run's model: the weights file and config of a run directory or checkpoint.

    runner.load_model("outputs/2026-11-22/10-31-07")    # checkpoints/best.pt, built from the run's own config

Every load goes through io.serialization.safe_load (weights_only=True): tensors and plain data, never code.
"""

from __future__ import annotations

import typing
from dataclasses import fields
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import DictConfig, OmegaConf

from runner.config.resolvers import register_resolvers
from runner.io.errors import RunnerError, one_line
from runner.io.files import run_dir_of
from runner.io.serialization import safe_load
from runner.training.build import build_data, build_model
from runner.training.state import load_weights

if TYPE_CHECKING:
    from torch import nn

    from runner.data.splits import Split

# Runs saved by earlier commits of this package, read as today's: the one place that knows them (run_config for
# their configs, run_card for their model cards).
# Dataset functions that moved into runner/data/ (a run saved before the move names the old path).
MOVED_TARGETS = {
    "runner.datasets.": "runner.data.toy.",
    "runner.vision.imagefolder": "runner.data.imagefolder.imagefolder",
    "runner.vision.": "runner.data.vision.",
}


def run_config(saved: dict[str, Any] | DictConfig) -> DictConfig:
    """A run's saved config (a dict from last.pt, or a loaded .hydra/config.yaml) as an OmegaConf that today's runner
    reads: moved dataset targets renamed, and trainer keys added since the run was saved set to their defaults
    (configs/trainer/default.yaml), which is what the run trained with (trainer.ema.warmup: false for an EMA run)."""
    cfg = OmegaConf.create(saved) if isinstance(saved, dict) else saved
    target = OmegaConf.select(cfg, "dataset._target_")
    for old, new in MOVED_TARGETS.items():
        if isinstance(target, str) and target.startswith(old):
            OmegaConf.update(cfg, "dataset._target_", new + target[len(old) :])
            break
    if "trainer" in cfg:
        defaults = OmegaConf.create(files("runner.configs").joinpath("trainer", "default.yaml").read_text())
        # trainer.ema.warmup came after EMA itself: a run saved without it averaged with a constant decay
        if OmegaConf.select(cfg, "trainer.ema.decay") is not None and "warmup" not in cfg.trainer.ema:
            defaults.ema.warmup = False
        cfg.trainer = OmegaConf.merge(defaults, cfg.trainer)
    # digits were stored as scikit-learn's 0..16 counts until dataset.max_value (255 now) said otherwise
    if OmegaConf.select(cfg, "dataset._target_") == "runner.data.toy.digits" and "max_value" not in cfg.dataset:
        OmegaConf.update(cfg, "dataset.max_value", 16, force_add=True)
    return cfg


def run_card(saved: dict[str, Any], cfg: DictConfig) -> dict[str, Any]:
    """A run's saved model card (the dict of checkpoints/model.json) as today's fields, given the run's config as
    run_config reads it: a card of format 1 had `normalize` where the `preprocessing` block is now, and meant what
    runner did then: images read as today (data.images.contract), on the dataset's own scale (dataset.max_value:
    16 for digits saved before they moved to 0..255). Cards before format 3 stretched every image to its size
    (image.shorter_side null)."""
    from runner.inference.card import FORMAT, preprocessing

    card = dict(saved)
    if card.get("format") == 1 and "normalize" in card:
        stats = card.pop("normalize")
        max_value = OmegaConf.select(cfg, "dataset.max_value", default=255)
        card["preprocessing"] = preprocessing(
            card["input_shape"], card["input_dtype"], max_value, mean=stats["mean"], std=stats["std"]
        )
    elif card.get("format") == 2 and (card.get("preprocessing") or {}).get("image"):
        card["preprocessing"] = {
            **card["preprocessing"],
            "image": {**card["preprocessing"]["image"], "shorter_side": None},
        }
    card["format"] = FORMAT
    # cards before trainer.threshold decided a 2-class label by the argmax
    card.setdefault("threshold", 0.5)
    return card


def damaged(path: Path, detail: object, what: str) -> RunnerError:
    """The refusal of a run's file that cannot be what runner wrote: `path`, why (`detail`), what it held (`what`)."""
    return RunnerError(
        f"{path} is damaged ({one_line(detail, 200)}): it holds {what}, and runner does not guess it. Put back a good "
        f"copy of the file (the run writes it once, when it starts), or retrain the run."
    )


def read_config(path: Path) -> DictConfig:
    """A run's .hydra/config.yaml, checked before it is trusted: YAML that OmegaConf reads into a mapping with the
    run's model and dataset (each a `_target_`). A file cut short, a flipped byte, or any other text is refused by
    name (damaged), not raised as a YAML traceback."""
    try:
        cfg = OmegaConf.load(path)
    # yaml's ScannerError, UnicodeDecodeError, OmegaConf's own: each is a damaged file
    except Exception as err:
        raise damaged(path, f"{type(err).__name__}: {err}", "the run's config") from None
    missing = [
        key
        for key in ("model", "dataset")
        if not isinstance(cfg, DictConfig) or not OmegaConf.is_dict(cfg.get(key)) or "_target_" not in cfg[key]
    ]
    if missing or not isinstance(cfg, DictConfig):
        raise damaged(path, f"no {' and no '.join(missing)} with a _target_ in it", "the run's config")
    return cfg


def read_card(path: Path, cfg: DictConfig) -> dict[str, Any]:
    """A run's checkpoints/model.json, checked before it is trusted: a JSON object that run_card reads as today's
    fields, with today's keys (inference/card.ModelCard), as a dict."""
    import json

    from runner.inference.card import ModelCard

    what = "the preprocessing between a raw input and the model"
    try:
        saved = json.loads(path.read_text())
    # JSONDecodeError is a ValueError
    except (ValueError, UnicodeDecodeError) as err:
        raise damaged(path, f"{type(err).__name__}: {err}", what) from None
    if not isinstance(saved, dict):
        raise damaged(path, f"a JSON {type(saved).__name__}, not an object", what)
    try:
        card = run_card(saved, cfg)
        ModelCard(**card)
    # a key lost or renamed, a field of a wrong kind
    except (TypeError, KeyError, AttributeError, ValueError) as err:
        raise damaged(path, f"{type(err).__name__}: {err}", what) from None
    # each field of the kind it is declared (null stands for "none"): the class of its annotation, read as a type
    # (get_type_hints: with `from __future__ import annotations` a field's type is its text), list[int] as list
    hints = typing.get_type_hints(ModelCard)
    for field in fields(ModelCard):
        value, kind = card[field.name], typing.get_origin(hints[field.name]) or hints[field.name]
        if isinstance(kind, type) and value is not None and not isinstance(value, kind):
            raise damaged(path, f"{field.name} is {value!r}, not a {kind.__name__}", what)
    return card


def find_checkpoint(ckpt: str | Path) -> tuple[Path, DictConfig]:
    """(weights file, the run's own config) for a run directory or a checkpoint file.

    A run directory means its checkpoints/best.pt; a best.pt finds its config in the run's
    .hydra/config.yaml; a last.pt carries its own.
    """
    path = Path(str(ckpt)).expanduser()
    if not path.exists():
        raise RunnerError(
            f"ckpt={ckpt} names nothing: no such file or directory. Pass a run directory "
            f"(e.g. ckpt=outputs/2026-11-22/10-31-07) or a checkpoint file inside one."
        )
    if path.is_dir():
        weights = path / "checkpoints" / "best.pt"
        if not weights.is_file():
            raise RunnerError(
                f"ckpt={ckpt} is a directory without checkpoints/best.pt, so it is not a finished runner run. "
                f"Pass a run directory under outputs/ whose training got past its first epoch."
            )
        run_dir = path
    else:
        weights, run_dir = path, run_dir_of(path)
    config_file = run_dir / ".hydra" / "config.yaml"
    if config_file.is_file():
        return weights, run_config(read_config(config_file))
    state = safe_load(weights)
    if isinstance(state, dict) and isinstance(state.get("config"), dict):
        return weights, run_config(state["config"])
    raise RunnerError(
        f"cannot find the config of the run that wrote {weights}: no {config_file} and no config inside the file. "
        f"Pass the run directory itself, or a last.pt (it carries its config)."
    )


def model_weights(state: Any) -> dict[str, Any]:
    """The model state_dict inside a loaded checkpoint: last.pt nests it, best.pt is it."""
    if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
        return state["model"]
    return state


def restore_model(
    model_cfg: DictConfig, weights: Path, *, device: str | torch.device, channels_last: bool = False
) -> nn.Module:
    """A fresh model from `model_cfg` with the weights of the file `weights`, on `device`, in eval mode."""
    model = build_model(model_cfg, pretrained=False)
    load_weights(model, model_weights(safe_load(weights)), weights)
    model.to(device)
    return model.to(memory_format=torch.channels_last if channels_last else torch.preserve_format).eval()


def load_model(path: str | Path, device: str | torch.device = "cpu") -> nn.Module:
    """The model of a run directory or a checkpoint file, weights loaded, in eval mode."""
    # a run's saved config may use runner's resolvers
    register_resolvers()
    weights, cfg = find_checkpoint(path)
    return restore_model(cfg.model, weights, device=device)


def load_test_split(ckpt: str | Path, root: str | Path | None = None) -> Split | None:
    """The test split of the run that `ckpt` names, drawn exactly as the run drew it (a data.splits.Split of raw
    samples, on the CPU), or None when the run streams it from files; read from `root` when given (the run's data,
    moved). RunnerError when the run's data is missing."""
    from runner.data.splits import Split

    _, run_cfg = find_checkpoint(ckpt)
    if root is not None:
        if "root" not in run_cfg.dataset:
            raise RunnerError(
                f"dataset.root={root}: the run's dataset {run_cfg.dataset.name} reads no files (it is generated), "
                f"so there is no location to give. Leave dataset.root out."
            )
        run_cfg.dataset.root = str(Path(root).expanduser().absolute())
    splits, _ = build_data(run_cfg.dataset, "cpu")
    return splits.test if isinstance(splits.test, Split) else None
