"""The streaming path: image folders too large to hold in memory, read by a DataLoader.

Workers decode and resize; pinned memory and non_blocking copies overlap the transfer with
compute on a GPU; persistent workers are not restarted every epoch. Augmentation and
normalisation still run batched on the device, exactly as for in-memory data.
"""

import torch

from runner.data.batches import BatchIndices
from runner.data.images import STRETCH, ImageFiles, decode_images, raise_unreadable
from runner.io.signals import ignore_in_worker


class FileSplit:
    """A split as a list of (path, label), decoded batch by batch."""

    def __init__(self, samples, shape, workers, resize=STRETCH):
        self.samples, self.shape, self.workers, self.resize = samples, tuple(shape), workers, resize

    def __len__(self):
        return len(self.samples)

    def subset(self, index):
        """The samples at `index` (a tensor of positions), so splits.holdout splits a FileSplit as it splits a Split."""
        return FileSplit([self.samples[i] for i in index.tolist()], self.shape, self.workers, self.resize)

    def sample_tensor(self, n, seed):
        """Up to `n` decoded images (for normalisation statistics)."""
        order = torch.randperm(len(self), generator=torch.Generator().manual_seed(seed))[:n].tolist()
        return decode_images([self.samples[i] for i in order], self.shape, self.workers, self.resize)


class LoaderBatches:
    """Like data.Batches, over a FileSplit: yields device tensors, transformed, one batch at a time."""

    def __init__(self, split, batch_size, transform, device, shuffle=False, generator=None, rank=0, world=1):
        self.split, self.transform, self.device = split, transform, device
        self.indices = BatchIndices(len(split), batch_size, shuffle, generator, rank, world)
        self.loader = torch.utils.data.DataLoader(
            ImageFiles(split.samples, split.shape, split.resize),
            batch_sampler=self.indices,
            num_workers=split.workers,
            pin_memory=device.type == "cuda",
            persistent_workers=split.workers > 0,
            # a generator of its own: without one, every pass draws its workers' base seed from torch's
            # global RNG, which dropout also draws from, and a resumed epoch would draw it twice
            generator=torch.Generator().manual_seed(0),
            worker_init_fn=ignore_in_worker,  # the training process alone answers a stop signal
        )

    def __len__(self):
        return len(self.indices)

    def __iter__(self):
        for images, labels, errors in self.loader:
            raise_unreadable(errors)
            x = images.to(self.device, non_blocking=True)
            yield self.transform(x), labels.to(self.device, non_blocking=True)
