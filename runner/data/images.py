"""Image files to uint8 tensors of one size, whatever mode Pillow reads them in.

Every image ends as 8-bit RGB (or L for one channel): the EXIF orientation is applied (as a
photo viewer and torchvision's `decode_image(..., apply_exif_orientation=True)` do), 16-bit
images keep their high byte, transparent pixels are composited onto black, palette, CMYK and
YCbCr images are converted by Pillow, then the image is resized with Pillow's bilinear filter (or another,
and the resize-then-centre-crop of torchvision's Resize + CenterCrop, which pretrained weights ask for: `Resize`).
32-bit integer (I) and float (F) images have no standard range, so they are refused by name
rather than guessed at. `contract` writes these rules down as the plain data the model card
carries (docs/predict-export.md), so that a deployment can follow them without runner.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from runner.io.errors import RunnerError
from runner.io.signals import ignore_in_worker

if TYPE_CHECKING:
    from PIL import Image

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
NAMED = 10  # unreadable files named in one message
RESAMPLE = "BILINEAR"  # the resize filter, by the name PIL.Image.Resampling gives it (recorded in the contract)
# torchvision's and timm's interpolation names (InterpolationMode values) -> Pillow's, which resizes for both of them
INTERPOLATIONS = {"nearest": "NEAREST", "bilinear": "BILINEAR", "bicubic": "BICUBIC", "lanczos": "LANCZOS"}


@dataclass(frozen=True)
class Resize:
    """How an image reaches its (H, W): `shorter_side` None stretches it to (H, W) with Pillow's `resample` filter
    (runner's own way); an int resizes it, keeping its aspect ratio, until its shorter side is that many pixels, then
    crops the centre (H, W): torchvision's Resize(shorter_side) + CenterCrop((H, W)) on a PIL image, the evaluation
    transform of pretrained weights (torchvision's ImageClassification, timm's transforms_imagenet_eval)."""

    shorter_side: int | None = None
    resample: str = RESAMPLE

    @classmethod
    def of(cls, resize: int | None, interpolation: str) -> Resize:
        """From a dataset's `resize` and `interpolation` keys (torchvision's names: bilinear, bicubic, ...)."""
        return cls(resize, INTERPOLATIONS[interpolation])

    @classmethod
    def of_contract(cls, image: dict[str, Any] | None) -> Resize:
        """From the `image` block of a model card's preprocessing (contract() below): None, for a model that takes no
        images, stretches."""
        image = image or {}
        return cls(image.get("shorter_side"), image.get("resample", RESAMPLE))

    def apply(self, img: Image.Image, height: int, width: int) -> Image.Image:
        """The PIL image `img` at (height, width)."""
        from PIL import Image

        resample = getattr(Image.Resampling, self.resample)
        if self.shorter_side is None:
            return img.resize((width, height), resample)
        # torchvision.transforms.functional._compute_resized_output_size (max_size None), then center_crop
        w, h = img.size
        short, long = (w, h) if w <= h else (h, w)
        new_long = int(self.shorter_side * long / short)
        img = img.resize((self.shorter_side, new_long) if w <= h else (new_long, self.shorter_side), resample)
        top, left = round((img.height - height) / 2.0), round((img.width - width) / 2.0)  # half to even, as torchvision
        return img.crop((left, top, left + width, top + height))


STRETCH = Resize()


class UnsupportedImage(ValueError):
    pass


def to_8bit(img: Image.Image, channels: int) -> Image.Image:
    """A PIL image as 8-bit RGB (channels=3) or L (channels=1), upright."""
    import numpy as np
    from PIL import Image, ImageOps

    png = img.format == "PNG"
    img = ImageOps.exif_transpose(img)
    mode = img.mode
    # 16-bit grayscale (PNG, TIFF): keep the high byte, as torchvision's to_dtype does. Pillow before 13 opened
    # 16-bit PNGs as mode I; a PNG holds at most 16 bits, so an I-mode PNG is one of them
    if mode.startswith("I;16") or (mode == "I" and png):
        img = Image.fromarray((np.asarray(img).astype(np.uint16) >> 8).astype(np.uint8), "L")
    elif mode in ("I", "F"):
        kind = "32-bit integer" if mode == "I" else "floating-point"
        raise UnsupportedImage(
            f"it holds {kind} pixels (mode {mode}), which have no standard range to map to 0..255; "
            f"save it as an 8- or 16-bit image"
        )
    has_alpha = "A" in img.mode or "a" in img.mode or "transparency" in img.info
    if has_alpha:  # composite onto black, so hidden colour under transparent pixels never reaches the model
        rgba = np.asarray(img.convert("RGBA"), dtype=np.uint16)
        rgb = (rgba[..., :3] * rgba[..., 3:] + 127) // 255
        img = Image.fromarray(rgb.astype(np.uint8), "RGB")
    return img.convert("RGB" if channels == 3 else "L")


class ImageFiles(torch.utils.data.Dataset):
    """(path, label) pairs read as uint8 (C, H, W) tensors of one size; a bad file becomes a message."""

    def __init__(self, samples: Sequence[tuple[str, int]], shape: Sequence[int], resize: Resize = STRETCH) -> None:
        self.samples, self.shape, self.resize = samples, tuple(shape), resize

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, int, str]:
        path, label = self.samples[i]
        try:
            return read_image(path, self.shape, resize=self.resize), label, ""
        except Exception as err:  # reported by the main process, naming the file
            return torch.zeros(self.shape, dtype=torch.uint8), label, f"{path} ({type(err).__name__}: {err})"


def contract(shape: Sequence[int], resize: Resize = STRETCH) -> dict[str, Any]:
    """How read_image turns any image file into a uint8 (C, H, W) tensor of `shape` = (C, H, W), as plain data:
    the `image` part of the model card's preprocessing block. Each field is defined in docs/predict-export.md;
    a deployment that decodes with Pillow and follows them gets read_image's pixels exactly."""
    return {
        "exif_transpose": True,  # ImageOps.exif_transpose first
        "sixteen_bit": "high_byte",  # 16-bit grayscale (I;16*, or I from a PNG): v -> v >> 8, as mode L
        "alpha": "over_black",  # any alpha (or palette transparency): c -> round(c * a / 255), as mode RGB
        "mode": "RGB" if shape[0] == 3 else "L",  # then Image.convert(mode)
        "size": [shape[2], shape[1]],  # (width, height), as Pillow takes it: the image's final size
        "resample": resize.resample,  # Pillow's filter for the resize
        # null: Image.resize(size, resample); an int: resized (aspect kept) until the shorter side is this, then the
        # centre `size` cropped, as torchvision's Resize + CenterCrop
        "shorter_side": resize.shorter_side,
    }


def read_image(
    source: str | Path | Image.Image, shape: Sequence[int], max_value: float = 255, resize: Resize = STRETCH
) -> torch.Tensor:
    """One image (a path or an open PIL image) as a uint8 (C, H, W) tensor of `shape`: converted by to_8bit,
    resized as `resize` (a Resize) says (the rules `contract` records). Training, eval and `runner predict`
    all read images through this one function. A model trained on pixels stored as 0..max_value (runs of
    digits before it moved to 0..255) gets round(pixel * max_value / 255), halves to even."""
    from PIL import Image
    from torchvision.transforms.functional import pil_to_tensor

    if not isinstance(source, Image.Image):
        with Image.open(source) as img:
            return read_image(img, shape, max_value, resize)
    resized = resize.apply(to_8bit(source, shape[0]), shape[1], shape[2])
    x = pil_to_tensor(resized)
    if max_value != 255:  # in float64, as numpy.rint(pixel * max_value / 255) in a deployment
        x = (x.double() * max_value / 255).round().to(torch.uint8)
    return x


def raise_unreadable(errors: Sequence[str]) -> None:
    """ImageFiles reports each file it cannot read as a message; the main process names them."""
    bad = [e for e in errors if e]
    if bad:
        more = f"; and {len(bad) - NAMED} more" if len(bad) > NAMED else ""
        raise RunnerError(
            f"cannot read {len(bad)} image{'s' if len(bad) > 1 else ''}: {'; '.join(bad[:NAMED])}{more}. "
            f"Remove or replace {'them' if len(bad) > 1 else 'it'}."
        )


def decode_images(
    samples: Sequence[tuple[str, int]], shape: Sequence[int], workers: int, resize: Resize = STRETCH
) -> torch.Tensor:
    """All `samples` decoded into one uint8 tensor, in parallel worker processes; every unreadable file named."""
    x = torch.empty((len(samples), *shape), dtype=torch.uint8)
    # a generator of its own: a DataLoader otherwise draws its workers' seed from torch's global RNG
    loader = torch.utils.data.DataLoader(
        ImageFiles(samples, shape, resize),
        batch_size=256,
        num_workers=workers,
        generator=torch.Generator().manual_seed(0),
        worker_init_fn=ignore_in_worker,  # the training process alone answers a stop signal
    )
    i, errors = 0, []
    for images, _, batch_errors in loader:
        errors += [e for e in batch_errors if e]
        x[i : i + len(images)] = images
        i += len(images)
    raise_unreadable(errors)
    return x
