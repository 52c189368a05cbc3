"""A run's best.pt as files a deployment loads without runner: safetensors, torch.export (.pt2), ONNX.

Each format is written, then loaded back the way a deployment would load it (safetensors into a
fresh model, torch.export.load, onnxruntime) and run on a batch of the run's test data; its
outputs must equal the runner model's within TOLERANCE or nothing is kept. The exported graphs
take the *normalised* float batch, as the model does; config.json beside them carries the
preprocessing (the training split's mean and std, the input shape, the class names).
"""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runner.io.errors import RunnerError
from runner.training.build import build_model

if TYPE_CHECKING:
    from omegaconf import DictConfig
    from torch import nn

    from runner.inference.card import ModelCard

TOLERANCE = 1e-4
FORMATS = ("safetensors", "pt2", "onnx")
FILES = {"safetensors": "model.safetensors", "pt2": "model.pt2", "onnx": "model.onnx"}
# what each format imports beyond torch, and the pip package that provides it
NEEDS = {
    "safetensors": [("safetensors", "safetensors")],
    "onnx": [("onnx", "onnx"), ("onnxscript", "onnxscript"), ("onnxruntime", "onnxruntime")],
}


@dataclass
class Exported:
    format: str
    file: str
    max_abs_diff: float
    details: dict[str, Any]


def check_formats(formats: str | Iterable[str]) -> list[str]:
    """The formats asked for, as a list, each known and with its libraries installed; else one message saying which."""
    formats = [formats] if isinstance(formats, str) else list(formats)
    unknown = [f for f in formats if f not in FORMATS]
    if unknown or not formats:
        raise RunnerError(
            f"export: format={','.join(map(str, unknown)) or '[]'} is not a format runner exports. Pick one or "
            f"more of {', '.join(FORMATS)}: format=onnx, or format=[safetensors,pt2,onnx]."
        )
    missing = sorted({pip for f in formats for module, pip in NEEDS.get(f, []) if not _imports(module)})
    if missing:
        raise RunnerError(
            f"export: format={','.join(formats)} needs {', '.join(missing)}, which "
            f"{'is' if len(missing) == 1 else 'are'} "
            f"not installed. Install runner's export extra: pip install 'runner[export]' (from a clone: "
            f"pip install -e '.[export]'; make installs it)."
        )
    return list(dict.fromkeys(formats))


def _imports(module: str) -> bool:
    import importlib

    try:
        # imported here anyway to export; a broken install counts as missing
        importlib.import_module(module)
        return True
    except ImportError:
        return False


def export(model: nn.Module, fmt: str, example: torch.Tensor, folder: Path, card: ModelCard) -> Exported:
    """Write `model` (eval mode, on CPU, contiguous) in format `fmt` into `folder`, verify it, return an Exported."""
    path = Path(folder) / FILES[fmt]
    return {"safetensors": _safetensors, "pt2": _pt2, "onnx": _onnx}[fmt](model, example, path, card)


def _compare(fmt: str, expected: torch.Tensor, got: torch.Tensor) -> float:
    diff = float((expected - got).abs().max()) if expected.numel() else 0.0
    # NaN fails too
    if not diff <= TOLERANCE:
        raise RunnerError(
            f"export: the {fmt} model's outputs differ from the runner model's by up to {diff:.3g} on the "
            f"verification batch (tolerance {TOLERANCE:g}), so it was not kept. This is a bug in the exporter "
            f"or an operator it translates differently; try another format, and report it."
        )
    return diff


def _verify(fmt: str, model: nn.Module, example: torch.Tensor, run: Callable[[torch.Tensor], Any]) -> float:
    """The largest difference between `run(batch)` and the model, on the example batch and on one sample of it."""
    with torch.inference_mode():
        return max(_compare(fmt, model(batch), torch.as_tensor(run(batch)).float()) for batch in (example, example[:1]))


def _safetensors(model: nn.Module, example: torch.Tensor, path: Path, card: ModelCard) -> Exported:
    from safetensors.torch import load_file, save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(path), metadata={"format": "pt"})
    # as a deployment would: config.json's architecture, then the weights
    fresh = build_model(_model_cfg(card), pretrained=False).eval()
    fresh.load_state_dict(load_file(str(path)))
    return Exported("safetensors", path.name, _verify("safetensors", model, example, fresh), {})


def _pt2(model: nn.Module, example: torch.Tensor, path: Path, card: ModelCard) -> Exported:
    batch = torch.export.Dim("batch", min=1)
    program = torch.export.export(model, (example,), dynamic_shapes=({0: batch},))
    torch.export.save(program, str(path))
    loaded = torch.export.load(str(path)).module()
    return Exported("pt2", path.name, _verify("pt2", model, example, loaded), {"dynamic_batch": True})


def _onnx(model: nn.Module, example: torch.Tensor, path: Path, card: ModelCard) -> Exported:
    import onnx
    import onnxruntime

    batch = torch.export.Dim("batch", min=1)
    # the exporter prints its progress
    with contextlib.redirect_stdout(io.StringIO()):
        torch.onnx.export(
            model,
            (example,),
            str(path),
            dynamo=True,
            input_names=["x"],
            output_names=["y"],
            dynamic_shapes=({0: batch},),
            external_data=False,
            verbose=False,
        )
    proto = onnx.load(str(path))
    onnx.checker.check_model(proto)
    opset = next(o.version for o in proto.opset_import if o.domain in ("", "ai.onnx"))
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name
    diff = _verify("onnx", model, example, lambda b: session.run(None, {name: b.numpy()})[0])
    return Exported("onnx", path.name, diff, {"opset": opset, "onnxruntime": onnxruntime.__version__})


def _model_cfg(card: ModelCard) -> DictConfig:
    from omegaconf import OmegaConf

    return OmegaConf.create(card.model)
