"""Batches on the training device: an epoch is a seeded permutation, a batch one index-select.

No per-sample `__getitem__`, no collate: the tutorial's DataLoader spends most of a small
model's step in Python; here a split lives on the device as one uint8 tensor, and random
crops, flips and normalisation are batched tensor operations (as in airbench). Image folders
too large for memory come through runner/data/stream.py and get the same device-side transforms.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

import torch

if TYPE_CHECKING:
    from runner.data.splits import Split


class Normalizer:
    """x -> (x - mean) / std per channel (dim 1), statistics from the training split.

    With `channels_last`, 4-D batches leave in the channels-last memory format the model uses.
    """

    def __init__(self, mean: torch.Tensor, std: torch.Tensor, channels_last: bool = False) -> None:
        self.mean, self.std, self.channels_last = mean, std, channels_last

    @classmethod
    def fit(cls, x: torch.Tensor, chunk: int = 8192) -> Normalizer:
        """Per-channel mean and std, summed in float64 chunks (no float copy of a whole dataset)."""
        dims = [d for d in range(x.dim()) if d != 1]
        # float64 tensors once the first chunk is added
        total: Any = 0.0
        total_sq: Any = 0.0
        n = 0
        for part in x.split(chunk):
            part = part.double()
            total = total + part.sum(dim=dims)
            total_sq = total_sq + (part * part).sum(dim=dims)
            n += part.numel() // part.shape[1]
        mean = total / n
        std = (total_sq / n - mean * mean).clamp_min(0).sqrt()
        # a channel constant in the training split (a table's `<other>` column, all zeros there) is scaled by 1, as
        # scikit-learn's StandardScaler does: a floor of 1e-6 would turn a 1 met later into an input of 1,000,000
        std = torch.where(std < 1e-6, torch.ones_like(std), std)
        shape = [1, x.shape[1]] + [1] * (x.dim() - 2)
        return cls(mean.float().reshape(shape), std.float().reshape(shape))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        x = (x.float() - self.mean) / self.std
        if self.channels_last and x.dim() == 4:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


class Augment:
    """Random crop (zero padding, then a random window) and horizontal flip of a uint8 batch, on its device.

    The random draws come from `generator` (a CPU generator, saved in checkpoints), so a run's
    augmentations are the same every time it is repeated.
    """

    def __init__(
        self, crop_padding: int, flip: bool, generator: torch.Generator, rank: int = 0, world: int = 1
    ) -> None:
        self.pad, self.flip, self.generator = crop_padding, flip, generator
        # under torchrun: draw for the global batch, keep this rank's share
        self.rank, self.world = rank, world

    def __bool__(self) -> bool:
        return bool(self.pad or self.flip)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        if self.pad:
            p = self.pad
            dy, dx = torch.randint(0, 2 * p + 1, (2, n * self.world), generator=self.generator)[
                :, self.rank :: self.world
            ].to(x.device)
            padded = torch.nn.functional.pad(x, (p, p, p, p))
            rows = (dy[:, None] + torch.arange(h, device=x.device))[:, None, :, None]  # (n, 1, h, 1)
            cols = (dx[:, None] + torch.arange(w, device=x.device))[:, None, None, :]  # (n, 1, 1, w)
            batch = torch.arange(n, device=x.device)[:, None, None, None]
            chans = torch.arange(x.shape[1], device=x.device)[None, :, None, None]
            x = padded[batch, chans, rows, cols]
        if self.flip:
            flip = (torch.rand(n * self.world, generator=self.generator)[self.rank :: self.world] < 0.5).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(3), x)
        return x


def train_transform(
    augment_cfg: Any,
    normalize: Callable[[torch.Tensor], torch.Tensor],
    generator: torch.Generator,
    rank: int = 0,
    world: int = 1,
) -> Callable[[torch.Tensor], torch.Tensor]:
    """Augment (when the dataset asks for it), then normalise."""
    augment = (
        Augment(augment_cfg.get("crop_padding", 0), augment_cfg.get("flip", False), generator, rank, world)
        if augment_cfg
        else None
    )
    if not augment:
        return normalize
    return lambda x: normalize(augment(x))


def describe_augment(augment_cfg: Any) -> str:
    """The training augmentation in effect, in words, for the log: a flip or crop a user did not ask for is a surprise
    (a flipped digit is another symbol)."""
    crop = augment_cfg.get("crop_padding", 0) if augment_cfg else 0
    flip = augment_cfg.get("flip", False) if augment_cfg else False
    parts = [f"random crop after {crop}-pixel padding"] * bool(crop) + ["random horizontal flip"] * bool(flip)
    return f"augmentation: {', '.join(parts) or 'none'} (dataset.augment)"


class BatchIndices:
    """The sample indices of each batch: this process's share of one global batch at a time.

    With `shuffle`, each pass is a new permutation drawn from `generator` (seeded by the
    trainer, saved in checkpoints; the same on every rank) and the last incomplete batch is
    dropped, so every step sees a full batch (BatchNorm fails on a batch of one). Under
    torchrun, rank r of N takes every N-th index of each global batch. With `limit`, a pass
    ends after that many batches (trainer.limit_*_batches: the first of each permutation).
    """

    def __init__(
        self,
        n: int,
        batch_size: int,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.n, self.batch_size, self.shuffle, self.generator = n, batch_size, shuffle, generator
        self.rank, self.world = rank, world
        # batches a pass takes at most (set by the training setup); None: all
        self.limit: int | None = None
        # the generator's state before this pass's permutation (saved mid-epoch)
        self.epoch_state: torch.Tensor | None = None
        self._resume: tuple[torch.Tensor, int] | None = None
        # dataset.sampler=balanced: the samples in class order, each class's count and its first place (balance())
        self._classes: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None = None

    def balance(self, labels: torch.Tensor) -> None:
        """dataset.sampler=balanced: each shuffling pass draws len(labels) samples with replacement instead of a
        permutation, a sample of class c with weight 1 / n_c (torch's WeightedRandomSampler with those weights), from
        the same generator at the same point, so a resume mid-epoch and the ranks of torchrun draw the same indices.
        `labels`: (N,) class indices of the split's samples."""
        by_class = torch.argsort(labels.cpu(), stable=True)
        _, counts = torch.unique_consecutive(labels.cpu()[by_class], return_counts=True)
        # each class's samples, as a run of by_class: from starts[c], counts[c] long
        self._classes = (by_class, counts, torch.cumsum(counts, 0) - counts)

    def _draw(self, generator: torch.Generator) -> torch.Tensor:
        """One pass's sample indices: a permutation, or with balance() a class drawn uniformly, then a sample of it
        uniformly (1 / n_c each, without a weight per sample to hold)."""
        if self._classes is None:
            return torch.randperm(self.n, generator=generator)
        by_class, counts, starts = self._classes
        pick = torch.randint(len(counts), (self.n,), generator=generator)
        offset = (torch.rand(self.n, generator=generator, dtype=torch.float64) * counts[pick]).long()
        return by_class[starts[pick] + offset]

    def resume(self, epoch_state: torch.Tensor, batches_done: int) -> None:
        """Make the next pass the rest of an interrupted one: same permutation, from batch `batches_done`."""
        self._resume = (epoch_state, batches_done)

    def __len__(self) -> int:
        full = self.n // self.batch_size if self.shuffle else -(-self.n // self.batch_size)
        return full if self.limit is None else min(full, self.limit)

    def __iter__(self) -> Iterator[torch.Tensor]:
        resumed, self._resume = self._resume, None
        start = resumed[1] if resumed else 0
        if self.shuffle:
            # a shuffling pass draws from the trainer's generator
            assert self.generator is not None
            now = self.generator.get_state()
            if resumed:
                self.generator.set_state(resumed[0])
            self.epoch_state = self.generator.get_state()
            order = self._draw(self.generator)
            if resumed:
                # the draws the finished batches made are already in `now`
                self.generator.set_state(now)
        # the same order every pass (trainer.overfit_batches' fixed batches)
        else:
            order = torch.arange(self.n)
        for i in range(start, len(self)):
            yield order[i * self.batch_size : (i + 1) * self.batch_size][self.rank :: self.world]


class Batches:
    """Iterate (inputs, targets) over an in-memory `split`, one index-select per batch."""

    def __init__(
        self,
        split: Split,
        batch_size: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.split, self.transform = split, transform
        self.indices = BatchIndices(len(split), batch_size, shuffle, generator, rank, world)

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        device = self.split.y.device
        for index in self.indices:
            index = index.to(device)
            yield self.transform(self.split.x[index]), self.split.y[index]
