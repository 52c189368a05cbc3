"""A trained model on raw inputs: the run's own preprocessing, carried beside best.pt as plain data.

    predictor = runner.load_predictor("outputs/2026-11-22/10-31-07")
    result = predictor.predict(x)        # x as the dataset gives it: uint8 (N, C, H, W) images, raw features,
                                         # or a PIL image, an image file, a folder of them, a .npy/.pt/.csv file
    result.labels, result.probs          # class names and probabilities (regression: result.values)

A training run writes checkpoints/model.json when it starts: the task, the input shape and
dtype, the class names, the preprocessing contract (how an image file is decoded, converted and
resized, the pixel range, the normalisation statistics of its training split) and the model's
`_target_` with its arguments. With it, best.pt (a plain state_dict) turns raw inputs into
predictions exactly as `runner eval` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runner.data.batches import Normalizer
from runner.data.images import Resize
from runner.inference.card import CARD, ModelCard
from runner.inference.loading import find_checkpoint, read_card, restore_model
from runner.io.errors import RunnerError
from runner.io.files import run_dir_of

if TYPE_CHECKING:
    from torch import nn

    from runner.data.inputs import Inputs


@dataclass
class Prediction:
    # (N,) predicted class index
    indices: torch.Tensor | None = None
    # (N, classes) softmax probabilities
    probs: torch.Tensor | None = None
    # (N,) predicted class names
    labels: list[str] | None = None
    # (N, outputs), for regression
    values: torch.Tensor | None = None


class Predictor:
    """The run's model in eval mode, with the run's normalisation in front of it."""

    def __init__(self, model: nn.Module, card: ModelCard, device: torch.device, weights: Path | None = None) -> None:
        self.model, self.card, self.device, self.weights = model, card, device, weights
        self.input_shape = tuple(card.input_shape)
        stats = card.preprocessing
        # the very normaliser training and eval apply (runner/data/batches.py), with the run's statistics
        self.normalize = Normalizer(
            torch.tensor(stats["mean"], device=device), torch.tensor(stats["std"], device=device), card.channels_last
        )
        # the raw value of a white pixel: 255, or the scale an old run's dataset stored (runner/data/images.py)
        self.max_value = stats["range"][1] if stats["range"] else 255
        # how an image reaches input_shape
        self.resize = Resize.of_contract(stats["image"])

    def as_batch(self, x: Any) -> torch.Tensor:
        """Raw samples as one (N, *input_shape) tensor: a tensor or array (one sample or a batch), a PIL image,
        a path (an image, a folder or glob of images, a .npy/.pt/.npz array, a .csv of rows), or a list of images or
        paths."""
        import numpy as np
        from PIL import Image

        from runner.data.images import read_image

        card = self.card
        if isinstance(x, (str, Path)):
            x = self.read(x).x
        elif isinstance(x, Image.Image):
            x = read_image(x, self.input_shape, self.max_value, self.resize)
        elif isinstance(x, (list, tuple)) and x and all(isinstance(i, (str, Path, Image.Image)) for i in x):
            x = torch.cat([self.as_batch(i) for i in x])
        x = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x)
        if tuple(x.shape) == self.input_shape:
            x = x.unsqueeze(0)
        if tuple(x.shape[1:]) != self.input_shape:
            raise RunnerError(
                f"predict: inputs of shape {list(x.shape)} do not fit this model, which takes samples of "
                f"shape {list(self.input_shape)} (a batch of them: [N, {', '.join(map(str, self.input_shape))}])."
            )
        if card.input_dtype == "uint8" and x.dtype != torch.uint8 and len(x) and not _whole_bytes(x):
            raise RunnerError(
                f"predict: this model was trained on uint8 images (pixel values 0..255, as the dataset gives "
                f"them), but got {str(x.dtype).removeprefix('torch.')} values from {float(x.min()):g} to "
                f"{float(x.max()):g}. Pass the raw pixels (e.g. a uint8 array, a PIL image or the file), not "
                f"pixels already scaled or normalised: the run's own normalisation is applied here."
            )
        return x

    def read(self, spec: str | Path) -> Inputs:
        """The samples a path, folder or glob names (data.inputs.read_inputs), read as this run's inputs: images
        decoded, resized and scaled as its preprocessing says."""
        from runner.data.inputs import read_inputs

        card = self.card
        table = card.preprocessing.get("table")
        shape, names = self.input_shape, card.feature_names
        return read_inputs(spec, shape, card.input_dtype, names, self.max_value, self.resize, table)

    @torch.inference_mode()
    def predict(self, x: Any, batch_size: int = 512, progress: Callable[[int], object] | None = None) -> Prediction:
        """Predictions for raw samples (anything as_batch takes), `batch_size` at a time; `progress(n)` after each
        batch."""
        x = self.as_batch(x)
        outputs = []
        for batch in x.split(batch_size):
            outputs.append(self.model(self.normalize(batch.to(self.device))).float().cpu())
            if progress:
                progress(len(batch))
        out = torch.cat(outputs) if outputs else torch.empty(0, self.card.num_outputs)
        if self.card.task != "classification":
            scale = self.card.preprocessing.get("target_scale")
            # trained on standardised targets: back in the targets' own units
            if scale:
                out = out * torch.tensor(scale["std"]) + torch.tensor(scale["mean"])
            return Prediction(values=out)
        probs = out.softmax(dim=1)
        # a 2-class run's threshold (trainer.threshold) decides the label; the probabilities are the model's
        indices = self.card.decide(probs)
        names = self.card.labels()
        return Prediction(indices=indices, probs=probs, labels=[names[i] for i in indices.tolist()])


def _whole_bytes(x: torch.Tensor) -> bool:
    """Whether every value is a whole number in 0..255: raw pixels, in whatever dtype they came."""
    return (
        bool(((x >= 0) & (x <= 255) & (x == x.round())).all())
        if x.dtype.is_floating_point
        else bool(((x >= 0) & (x <= 255)).all())
    )


def load_predictor(path: str | Path, device: str | torch.device = "cpu") -> Predictor:
    """The Predictor of a run directory (or a checkpoint file in one)."""
    from runner.config.resolvers import register_resolvers

    register_resolvers()
    weights, cfg = find_checkpoint(path)
    run_dir = run_dir_of(weights)
    card_file = run_dir / "checkpoints" / CARD
    if not card_file.is_file():
        raise RunnerError(
            f"{run_dir} has no checkpoints/{CARD}: it was trained before runs recorded their preprocessing "
            f"(normalisation statistics, input shape, class names), so raw inputs cannot be prepared exactly "
            f"as in training. runner eval still evaluates it; to predict, retrain it with this version."
        )
    card = ModelCard(**read_card(card_file, cfg))
    device = torch.device(device)
    model = restore_model(cfg.model, weights, device=device, channels_last=card.channels_last)
    return Predictor(model, card, device, weights)
