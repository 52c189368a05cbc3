"""The streaming path: image folders too large to hold in memory, read by a DataLoader.

Workers decode and resize; pinned memory and non_blocking copies overlap the transfer with
compute on a GPU; persistent workers are not restarted every epoch. Augmentation and
normalisation still run batched on the device, exactly as for in-memory data.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import cast

import torch

from runner.data.batches import BatchIndices
from runner.data.images import STRETCH, ImageFiles, Resize, decode_images, raise_unreadable
from runner.io.signals import ignore_in_worker


class FileSplit:
    """A split as a list of (path, label), decoded batch by batch."""

    def __init__(
        self, samples: Sequence[tuple[str, int]], shape: Sequence[int], workers: int, resize: Resize = STRETCH
    ) -> None:
        self.samples, self.shape, self.workers, self.resize = samples, tuple(shape), workers, resize

    def __len__(self) -> int:
        return len(self.samples)

    def subset(self, index: torch.Tensor) -> FileSplit:
        """The samples at `index` (a tensor of positions), so splits.holdout splits a FileSplit as it splits a Split."""
        return FileSplit([self.samples[i] for i in index.tolist()], self.shape, self.workers, self.resize)

    def sample_tensor(self, n: int, seed: int) -> torch.Tensor:
        """Up to `n` decoded images (for normalisation statistics)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        return decode_images([self.samples[i] for i in order], self.shape, self.workers, self.resize)


class LoaderBatches:
    """Like data.Batches, over a FileSplit: yields device tensors, transformed, one batch at a time."""

    def __init__(
        self,
        split: FileSplit,
        batch_size: int,
        transform: Callable[[torch.Tensor], torch.Tensor],
        device: torch.device,
        shuffle: bool = False,
        generator: torch.Generator | None = None,
        rank: int = 0,
        world: int = 1,
    ) -> None:
        self.split, self.transform, self.device = split, transform, device
        self.indices = BatchIndices(len(split), batch_size, shuffle, generator, rank, world)
        self.loader = torch.utils.data.DataLoader(
            ImageFiles(split.samples, split.shape, split.resize),
            # each batch a tensor of indices, which DataLoader takes as it takes a list of them
            batch_sampler=cast("Iterable[list[int]]", self.indices),
            num_workers=split.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=split.workers > 0,
            # a generator of its own: without one, every pass draws its workers' base seed from torch's
            # global RNG, which dropout also draws from, and a resumed epoch would draw it twice
            generator=torch.Generator().manual_seed(0),
            worker_init_fn=ignore_in_worker,  # the training process alone answers a stop signal
        )

    def __len__(self) -> int:
        return len(self.indices)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        for images, labels, errors in self.loader:
            raise_unreadable(errors)
            x = images.to(self.device, non_blocking=True)
            yield self.transform(x), labels.to(self.device, non_blocking=True)
