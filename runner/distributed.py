"""One model, several processes: DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m runner train trainer.batch_size=128

trainer.batch_size is the global batch: each of N processes takes 1/N of every batch, so a
config means the same optimisation whatever N is (scale optimizer.lr with the batch size,
not with N). NCCL on GPUs, gloo on CPU. Rank 0 alone prints and writes the run directory.
"""

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self):
        return self.rank == 0


def launched():
    """True under torchrun (or any launcher that sets WORLD_SIZE > 1)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init():
    """Join the process group torchrun set up; the backend follows the hardware."""
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        dist.init_process_group(backend)
    return current()


def current():
    if not dist.is_initialized():
        return Rank()
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast(value):
    """Rank 0's `value` on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def all_sum(*tensors):
    """Sum each tensor over ranks, in place (no-op in a single process)."""
    if dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t)
    return tensors


def barrier():
    if dist.is_initialized():
        dist.barrier()


def wrap(model, device):
    """DDP around `model` when there is more than one process; the model itself otherwise."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)  # BatchNorm statistics over the global batch
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(model)


def in_sync(model):
    """True when every process holds the same weights (checked once, at the end of training)."""
    if not dist.is_initialized():
        return True
    with torch.no_grad():
        flat = torch.cat([t.detach().double().flatten() for t in model.state_dict().values()])
        weights = torch.arange(1, len(flat) + 1, dtype=torch.float64, device=flat.device)
        checks = torch.stack([flat.sum(), (flat * weights).sum()])
        low, high = checks.clone(), checks.clone()
        dist.all_reduce(low, op=dist.ReduceOp.MIN)
        dist.all_reduce(high, op=dist.ReduceOp.MAX)
    return bool(torch.equal(low, high))
