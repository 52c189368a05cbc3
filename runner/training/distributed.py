"""One model, several processes: DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m runner train trainer.batch_size=128

trainer.batch_size is the global batch: each of N processes takes 1/N of every batch, so a
config means the same optimisation whatever N is (scale optimizer.lr with the batch size,
not with N); BatchNorm's statistics are those of the global batch. NCCL on GPUs, gloo on CPU.
Rank 0 alone prints and writes the run directory.
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
    """DDP around `model` when there is more than one process; the model itself otherwise.

    BatchNorm normalises with the statistics of the global batch, as one process would: torch's
    SyncBatchNorm on CUDA, GlobalBatchNorm on CPU (SyncBatchNorm refuses CPU tensors).
    """
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return model
    from torch.nn.parallel import DistributedDataParallel

    if device.type == "cuda":
        model = torch.nn.SyncBatchNorm.convert_sync_batchnorm(model)
        return DistributedDataParallel(model, device_ids=[device.index])
    return DistributedDataParallel(GlobalBatchNorm.convert(model))


class GlobalBatchNorm(torch.nn.modules.batchnorm._BatchNorm):
    """BatchNorm whose training statistics are those of the whole batch, summed over processes (gloo, CPU).

    The all-reduces are differentiable (torch.distributed.nn), so the backward pass, too, is
    that of one process holding the global batch, as in torch's SyncBatchNorm on CUDA.
    """

    def _check_input_dim(self, x):
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x):
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
        local = torch.cat([x.sum(dims), x.new_tensor([x.numel() / x.shape[1]])])
        total = all_reduce(local)
        n, mean = total[-1], total[:-1] / total[-1]
        centered = x - mean.reshape(shape)
        var = all_reduce((centered * centered).sum(dims)) / n  # two passes: the variance without cancellation
        y = centered * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        if self.track_running_stats:
            with torch.no_grad():
                self.num_batches_tracked += 1
                momentum = 1 / float(self.num_batches_tracked) if self.momentum is None else self.momentum
                self.running_mean.lerp_(mean.detach(), momentum)
                self.running_var.lerp_(var.detach() * n / (n - 1), momentum)  # unbiased, as BatchNorm keeps it
        return y

    @classmethod
    def convert(cls, module):
        """`module` with each BatchNorm replaced by a GlobalBatchNorm holding its very parameters and buffers."""
        if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
            new = cls(module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats)
            # the same Parameter and buffer objects: the optimizer, built before, keeps updating them
            new.weight, new.bias = module.weight, module.bias
            new.running_mean, new.running_var, new.num_batches_tracked = (
                module.running_mean,
                module.running_var,
                module.num_batches_tracked,
            )
            new.train(module.training)
            return new
        for name, child in module.named_children():
            module.add_module(name, cls.convert(child))
        return module


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
