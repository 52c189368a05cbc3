"""Pretrained networks by name, offline first: torchvision's classification models and timm's (`model=torchvision`,
`model=timm`).

    runner train model=torchvision model.weights=IMAGENET1K_V1 dataset=imagefolder dataset.root=~/pets
    runner train model=timm model.name=resnet18.a1_in1k model.pretrained=true dataset=imagefolder dataset.root=~/pets

Weights are read from where their library keeps its downloads: torch hub's cache for torchvision
($TORCH_HOME/hub/checkpoints/, the file named as the weights' URL names it), the Hugging Face cache for timm
($HF_HUB_CACHE), or a file given by path (timm's `pretrained_path`). Nothing is downloaded unless `model.download=true`
says so: a missing file is one message naming the file, the folder it belongs in and the URL to fetch it from. The
network is built for `num_classes` outputs and every saved tensor is loaded into it, but for the output layer when its
size differs (ImageNet's 1000 classes): that keeps its fresh, seeded initialisation (models/weights.py; timm's own
loader does the same for its models).

Each factory also says, as its `preprocessing` attribute, what input its weights were trained with (a
Preprocessing, from torchvision's `weights.transforms()` or timm's pretrained config): training/build.py makes that
the run's preprocessing, so the model card, `runner predict` and `runner export` feed the network what it learned on.
A model factory of your own may declare one the same way. Building a run's model to load its own checkpoint
(eval, predict, export, resume, init_from) skips the pretrained weights (`architecture_only`), so those never need the
file. It is a switch the factory reads rather than a config key set to "no weights" because the weights' name still
decides the architecture (GoogLeNet's transform_input, ViT's image size): the network must be built as the weights'.
"""

from __future__ import annotations

import contextlib
import contextvars
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from runner.io.errors import RunnerError, one_line
from runner.io.files import sha256
from runner.models.weights import load_fitting

if TYPE_CHECKING:
    from torch import nn

_ARCHITECTURE_ONLY = contextvars.ContextVar("architecture_only", default=False)


@contextlib.contextmanager
def architecture_only() -> Iterator[None]:
    """Models built inside skip their pretrained weights: the caller loads a checkpoint of its own into them."""
    token = _ARCHITECTURE_ONLY.set(True)
    try:
        yield
    finally:
        _ARCHITECTURE_ONLY.reset(token)


def weights_wanted() -> bool:
    """Whether a model factory should load its pretrained weights: False inside architecture_only()."""
    return not _ARCHITECTURE_ONLY.get()


@dataclass(frozen=True)
class Preprocessing:
    """The input pretrained weights were evaluated with: an image's shorter side resized to `resize` pixels with the
    `interpolation` filter (torchvision's names), its centre `input_size` (H, W) cropped, scaled to [0, 1] and
    normalised with the per-channel `mean` and `std` (on that [0, 1] scale). `pinned`: model keys the run records
    as resolved (DEFAULT -> IMAGENET1K_V1), so that a later library with another default cannot change what the
    run's config means."""

    # whose: "torchvision resnet18 IMAGENET1K_V1"
    source: str
    input_size: tuple[int, int]
    resize: int
    interpolation: str
    mean: tuple[float, ...]
    std: tuple[float, ...]
    pinned: dict[str, Any]

    def describe(self) -> str:
        h, w = self.input_size
        return (
            f"shorter side resized to {self.resize} ({self.interpolation}), centre {h}x{w} cropped, mean "
            f"{[round(m, 4) for m in self.mean]}, std {[round(s, 4) for s in self.std]}"
        )


def hub_file(url: str) -> Path:
    """Where torch.hub.load_state_dict_from_url keeps `url`'s file: $TORCH_HOME/hub/checkpoints/<its name>."""
    import os
    from urllib.parse import urlparse

    import torch

    return Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(urlparse(url).path)


def _unknown(key: str, name: str, known: Sequence[str], library: str, listing: str) -> RunnerError:
    """The refusal of a name `library` does not know, with the closest of `known`."""
    import difflib

    close = difflib.get_close_matches(name, known, n=3) or known[:3]
    return RunnerError(
        f"model.{key}={name} is not one of {library}. Use one of them, e.g. {', '.join(close)} ({listing} lists them)."
    )


def _provenance(weights: str, path: Path | None, kept: int, reinitialised: Sequence[str]) -> dict[str, Any]:
    """summary.json's `pretrained`: which weights, from which file (its SHA-256), the tensors loaded and those of
    the output layer re-initialised."""
    return {
        "weights": weights,
        "file": str(path) if path else None,
        "sha256": sha256(path) if path else None,
        "kept": kept,
        "reinitialised": reinitialised,
    }


# ---------------------------------------------------------------------------------------------------------- torchvision


def _torchvision_weights(name: str, weights: str | None) -> tuple[Any, Any]:
    """(torchvision.models, the weights enum member or None) for model `name`, refusing unknown names."""
    from torchvision import models

    # the classification models only
    known = models.list_models(module=models)
    if name not in known:
        listing = "torchvision.models.list_models(module=torchvision.models)"
        raise _unknown("name", name, known, f"torchvision's {len(known)} classification models", listing)
    if weights is None:
        return models, None
    enum = models.get_model_weights(name)
    try:
        return models, (models.get_weight(weights) if "." in str(weights) else enum[str(weights)])
    except (KeyError, ValueError):
        names = ["DEFAULT", *(w.name for w in enum)]
        raise RunnerError(
            f"model.weights={weights} is not a weights name of torchvision's {name}. Use one of {', '.join(names)}, or "
            f"model.weights=null for random initial weights."
        ) from None


def _implied(name: str, weights: Any) -> dict[str, Any]:
    """The builder arguments torchvision's own builder sets when it is given `weights` (torchvision/models/
    googlenet.py, inception.py, vision_transformer.py, maxvit.py), so the network is the one the weights were
    trained as. The auxiliary classifiers of GoogLeNet and Inception v3 are left out (aux_logits False): they serve
    an auxiliary loss runner does not train with, and their saved tensors are not loaded."""
    if weights is None:
        return {}
    if name in AUX:
        return {"transform_input": True, "aux_logits": False, "init_weights": False}
    if name.startswith("vit_"):
        return {"image_size": weights.meta["min_size"][0]}
    if name == "maxvit_t":
        return {"input_size": weights.meta["min_size"]}
    return {}


# their auxiliary classifiers' tensors
AUX = {"googlenet": ("aux1.", "aux2."), "inception_v3": ("AuxLogits.",)}


def torchvision_model(
    name: str, num_classes: int, weights: str | None = None, download: bool = False, **kwargs: Any
) -> nn.Module:
    """torchvision's classification model `name` (torchvision.models.get_model) for `num_classes` outputs, with the
    pretrained `weights` (a name of its weights enum: DEFAULT, IMAGENET1K_V1, ...; None for random weights) read from
    torch hub's cache; `download` fetches a missing file there first (checking the hash in its name, as torchvision
    does). Other keyword arguments go to the builder. Raises RunnerError for an unknown name or weights, a missing
    file (naming it, the cache folder and the URL) and weights that do not fit."""
    models, w = _torchvision_weights(name, weights)
    model = models.get_model(name, weights=None, num_classes=num_classes, **{**_implied(name, w), **kwargs})
    if w is None or not weights_wanted():
        return model
    import torch

    path = hub_file(w.url)
    if not path.is_file():
        if not download:
            raise RunnerError(
                f"model.weights={weights} ({name}'s {w.name}) needs the file {path.name}, which is not in torch hub's "
                f"cache {path.parent}, and runner does not download unless asked. Add model.download=true to fetch it "
                f"from {w.url}, or copy that file into {path.parent} (TORCH_HOME moves the cache); model.weights=null "
                f"trains from random weights."
            )
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            prefix = torch.hub.HASH_REGEX.search(path.name)
            torch.hub.download_url_to_file(w.url, str(path), prefix.group(1) if prefix else None)
        except Exception as err:
            raise RunnerError(
                f"model.download=true could not fetch {w.url} into {path.parent} ({type(err).__name__}: "
                f"{one_line(err, 240)}). Fetch it on a machine with network and copy it there."
            ) from None
    from runner.io.serialization import safe_load

    saved = safe_load(path)
    if not isinstance(saved, dict) or not all(isinstance(v, torch.Tensor) for v in saved.values()):
        raise RunnerError(f"{path} holds no state_dict: delete it, and fetch it again from {w.url}.")
    saved = {k: v for k, v in saved.items() if not k.startswith(AUX.get(name, ()))}

    def refuse(problems: str) -> NoReturn:
        raise RunnerError(
            f"{path} does not fit torchvision's {name} ({problems}). It is not the file of {w.name}: delete it and "
            f"fetch {w.url} again."
        )

    fitted = load_fitting(model, saved, num_classes, refuse)
    model.pretrained_from = _provenance(f"torchvision {name} {w.name}", path, len(fitted.kept), fitted.reinitialised)
    return model


def _torchvision_preprocessing(name: str, weights: str | None = None, **_: Any) -> Preprocessing | None:
    _, w = _torchvision_weights(name, weights)
    if w is None:
        return None
    # torchvision.transforms._presets.ImageClassification
    t = w.transforms()
    crop = t.crop_size[0]
    return Preprocessing(
        source=f"torchvision {name} {w.name}",
        input_size=(crop, crop),
        resize=t.resize_size[0],
        interpolation=t.interpolation.value,
        mean=tuple(t.mean),
        std=tuple(t.std),
        pinned={"weights": w.name},
    )


torchvision_model.preprocessing = _torchvision_preprocessing  # type: ignore[attr-defined]


# ----------------------------------------------------------------------------------------------------------------- timm


def _timm() -> Any:
    try:
        import timm
    except ImportError:
        raise RunnerError(
            "model=timm needs the timm package, which is not installed: pip install 'runner[timm]' (or pip install "
            "timm)."
        ) from None
    return timm


def _timm_config(timm: Any, name: str) -> Any:
    """The pretrained config (timm's PretrainedCfg, None for an architecture without weights) of timm model `name`
    (an architecture, or architecture.tag for particular weights), refusing unknown names."""
    if not timm.is_model(name):
        listing = "timm.list_models(); timm.list_pretrained() those with weights, as architecture.tag"
        raise _unknown("name", name.split(".")[0], timm.list_models(), "timm's models", listing)
    try:
        return timm.models.get_pretrained_cfg(name)
    # a known architecture with an unknown tag
    except RuntimeError as err:
        raise RunnerError(
            f"model.name={name}: {err} timm.list_pretrained('{name.split('.')[0]}*') lists its weights."
        ) from None


def _timm_file(cfg: Any) -> Path | None:
    """The local file of timm weights `cfg` (a PretrainedCfg), or None: the Hugging Face cache's copy of its hub
    repository (model.safetensors, else pytorch_model.bin, as timm tries them), else torch hub's of its URL."""
    if cfg.hf_hub_id:
        from huggingface_hub import try_to_load_from_cache

        repo, _, revision = cfg.hf_hub_id.partition("@")
        for filename in [cfg.hf_hub_filename] if cfg.hf_hub_filename else ["model.safetensors", "pytorch_model.bin"]:
            found = try_to_load_from_cache(repo, filename, revision=revision or None)
            if isinstance(found, str):
                return Path(found)
    if cfg.url and hub_file(cfg.url).is_file():
        return hub_file(cfg.url)
    return None


def _create(timm: Any, name: str, **kwargs: Any) -> nn.Module:
    """timm.create_model; an argument the model does not take is told as such (model=timm passes its extra keys)."""
    try:
        return timm.create_model(name, **kwargs)
    except TypeError as err:
        raise RunnerError(
            f"timm's {name} does not take one of the model's keys ({one_line(err, 240)}): model=timm passes every "
            f"key it does not know to timm.create_model. Drop it; a key set by a preset for another model "
            f"(model.weights is model=torchvision's) is dropped with '~model.weights'."
        ) from None


def _missing_timm_weights(name: str, cfg: Any) -> RunnerError:
    from huggingface_hub.constants import HF_HUB_CACHE

    if cfg.hf_hub_id:
        where = f"the Hugging Face cache {HF_HUB_CACHE} has no copy of {cfg.hf_hub_id}"
        fetch = f"`hf download {cfg.hf_hub_id}`"
    else:
        where = f"torch hub's cache has no {hub_file(cfg.url)}"
        fetch = f"fetch {cfg.url} into {hub_file(cfg.url).parent}"
    return RunnerError(
        f"model.pretrained=true needs the weights of timm's {name}, and {where}; runner does not download unless "
        f"asked. Add model.download=true, or {fetch} on a machine with network (HF_HUB_CACHE or TORCH_HOME move "
        f"the caches), or give the file: model.pretrained_path=PATH."
    )


def timm_model(
    name: str,
    num_classes: int,
    pretrained: bool = False,
    pretrained_path: str | None = None,
    in_chans: int = 3,
    download: bool = False,
    **kwargs: Any,
) -> nn.Module:
    """timm's model `name` (timm.create_model) for `num_classes` outputs and `in_chans` input channels; with
    `pretrained`, its weights: from `pretrained_path` (a .safetensors, .pth or .bin file; implies `pretrained`), else
    the Hugging Face cache (or torch hub's, for weights timm still fetches by URL); `download` lets timm fetch what is
    missing. timm loads them (its filters, its head rule: the classifier re-initialised for another num_classes);
    runner checks that every other tensor was loaded. Other keyword arguments go to create_model (drop_rate,
    drop_path_rate, ...). Raises RunnerError for a missing package (naming the extra), an unknown name, missing
    weights (naming the repository, the cache and the fix) and a file whose tensors the model does not take."""
    import torch

    timm = _timm()
    cfg = _timm_config(timm, name)
    args = dict(num_classes=num_classes, in_chans=in_chans, **kwargs)
    if not (pretrained or pretrained_path) or not weights_wanted():
        return _create(timm, name, pretrained=False, **args)
    path: Path | None
    if pretrained_path:
        path = Path(pretrained_path).expanduser()
        if not path.is_file():
            raise RunnerError(f"model.pretrained_path={pretrained_path} names no file. Give the weights file's path.")
    elif cfg is None:
        raise RunnerError(
            f"model.name={name} has no pretrained weights in timm. Give a file of them (model.pretrained_path=...), "
            f"or model.pretrained=false."
        )
    else:
        path = _timm_file(cfg)
        if path is None and not download:
            raise _missing_timm_weights(name, cfg)
    # the same initial weights as the model below, for the check after
    with torch.random.fork_rng(devices=[]):
        fresh = _create(timm, name, pretrained=False, **args).state_dict()
    overlay = {"pretrained_cfg_overlay": {"file": str(path)}} if path else {}
    try:
        model = timm.create_model(name, pretrained=True, **overlay, **args)
    except Exception as err:
        raise RunnerError(
            f"timm could not load the weights of {name}{f' from {path}' if path else ''} ({type(err).__name__}: "
            f"{one_line(err, 240)}). Give a weights file saved from {name} (model.pretrained_path)."
        ) from None
    # timm loads non-strictly when the classifier changes size: a tensor still at its random initial value was not
    # in the file (constant initial values, zeros and ones, cannot tell and are not looked at)
    heads = cfg.classifier if cfg and cfg.classifier else "fc"
    heads = (heads,) if isinstance(heads, str) else tuple(heads)
    state = model.state_dict()
    head_keys = [k for k in state if k.startswith(tuple(f"{h}." for h in heads))]
    untouched = [
        k
        for k, v in state.items()
        if k not in head_keys and v.is_floating_point() and v.numel() > 1 and fresh[k].std() > 0
        if torch.equal(v, fresh[k])
    ]
    if untouched:
        raise RunnerError(
            f"{path or name}: timm loaded none of these tensors of {name}, which keep their random initial values: "
            f"{', '.join(untouched[:6])}{' ...' if len(untouched) > 6 else ''}. The file was saved from another "
            f"model, or with other key names (a prefix such as 'model.'); give a state_dict of {name}."
        )
    # downloaded by timm: now in its cache
    path = path or (_timm_file(cfg) if cfg else None)
    fresh_head = head_keys if num_classes != (cfg.num_classes if cfg else num_classes) else []
    model.pretrained_from = _provenance(f"timm {name}", path, len(state) - len(fresh_head), fresh_head)
    return model


def _timm_preprocessing(
    name: str, pretrained: bool = False, pretrained_path: str | None = None, **_: Any
) -> Preprocessing | None:
    if not (pretrained or pretrained_path):
        return None
    cfg = _timm_config(_timm(), name)
    # weights from a file, for an architecture timm has none for: the data's own statistics
    if cfg is None:
        return None
    _, height, width = cfg.input_size
    if height != width or cfg.crop_mode != "center":
        raise RunnerError(
            f"timm's {name} was evaluated with crop_mode {cfg.crop_mode} at {height}x{width}; runner reproduces "
            f"timm's centre crop of square inputs only. Pick other weights of it (timm.list_pretrained)."
        )
    # timm.data.resolve_data_config's default, DEFAULT_CROP_PCT
    crop_pct = cfg.crop_pct or 0.875
    tagged = name if "." in name or not cfg.tag else f"{name}.{cfg.tag}"
    return Preprocessing(
        source=f"timm {tagged}",
        input_size=(height, width),
        # timm.data.transforms_imagenet_eval's scale_size
        resize=math.floor(height / crop_pct),
        interpolation=cfg.interpolation or "bilinear",
        mean=tuple(cfg.mean),
        std=tuple(cfg.std),
        pinned={"name": tagged},
    )


timm_model.preprocessing = _timm_preprocessing  # type: ignore[attr-defined]
