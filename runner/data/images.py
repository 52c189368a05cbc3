"""Image files to uint8 tensors: one size, RGB or grayscale, a bad file reported by name."""

import torch

from runner.errors import RunnerError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")



class ImageFiles(torch.utils.data.Dataset):
    """(path, label) pairs read as uint8 (C, H, W) tensors of one size; a bad file becomes a message."""

    def __init__(self, samples, shape):
        self.samples, self.shape = samples, tuple(shape)

    def __len__(self):
        return len(self.samples)

    def __getitem__(self, i):
        from PIL import Image
        from torchvision.transforms.functional import pil_to_tensor

        path, label = self.samples[i]
        try:
            with Image.open(path) as img:
                img = img.convert("RGB" if self.shape[0] == 3 else "L").resize(self.shape[:0:-1], Image.BILINEAR)
                return pil_to_tensor(img), label, ""
        except Exception as err:  # reported by the main process, naming the file
            return torch.zeros(self.shape, dtype=torch.uint8), label, f"{path}: {type(err).__name__}: {err}"


def raise_unreadable(errors):
    """ImageFiles reports a file it cannot read as a message; the main process raises it, naming the file."""
    bad = [e for e in errors if e]
    if bad:
        raise RunnerError(f"cannot read image {bad[0]}. Remove or replace the file (and any other unreadable ones).")


def decode_images(samples, shape, workers):
    """All `samples` decoded into one uint8 tensor, in parallel worker processes."""
    x = torch.empty((len(samples), *shape), dtype=torch.uint8)
    loader = torch.utils.data.DataLoader(ImageFiles(samples, shape), batch_size=256, num_workers=workers)
    i = 0
    for images, _, errors in loader:
        raise_unreadable(errors)
        x[i : i + len(images)] = images
        i += len(images)
    return x
