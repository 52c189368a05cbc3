"""One model, several processes: DistributedDataParallel under torchrun.

    torchrun --nproc_per_node=2 -m runner train trainer.batch_size=128

trainer.batch_size is the global batch: each of N processes takes 1/N of every batch, so a
config means the same optimisation whatever N is (scale optimizer.lr with the batch size,
not with N); BatchNorm's statistics are those of the global batch. NCCL on GPUs, gloo on CPU.
Rank 0 alone prints and writes the run directory.
"""

from __future__ import annotations

import atexit
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, TypeVar

import torch
import torch.distributed as dist

if TYPE_CHECKING:
    from runner.io.signals import StopSignals

T = TypeVar("T")


@dataclass(frozen=True)
class Rank:
    rank: int = 0
    world: int = 1
    local: int = 0

    @property
    def main(self) -> bool:
        return self.rank == 0


# the process group's timeout, in seconds (trainer.ddp_timeout), once joined
_timeout_s: float | None = None
# set when a collective failed because another process left or did not answer
_peer_lost = False
# how long leave() waits for the process group to end at exit
LEAVE_TIMEOUT_S = 10


def join(timeout_s: float | None) -> bool:
    """Join the process group of this job when it has several processes (torchrun's WORLD_SIZE, or the tasks of a
    submitit job: join_submitit_job); True when it did. `timeout_s` (trainer.ddp_timeout) bounds how long a collective
    waits for the other processes: past it, the collective raises instead of hanging (peers_lost_as_interrupted)."""
    if in_submitit_job() is not None:
        join_submitit_job(timeout_s)
    elif int(os.environ.get("WORLD_SIZE", "1")) > 1:
        init(timeout_s)
    return dist.is_initialized()


def init(timeout_s: float | None = None) -> Rank:
    """Join the process group torchrun set up; the backend follows the hardware.

    Under `torchrun --max-restarts=N` the group of each restart meets under its own key prefix in the launcher's
    store: the store outlives a restart, and without the prefix a restarted rank can read the address a dead rank
    published in the round before and fail to connect to it (seen here with gloo; pytorch#167288 with NCCL)."""
    if not dist.is_initialized():
        backend = "nccl" if torch.cuda.is_available() else "gloo"
        if backend == "nccl":
            torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
        global _timeout_s
        from torch.distributed.constants import default_pg_nccl_timeout, default_pg_timeout

        default = default_pg_nccl_timeout if backend == "nccl" else default_pg_timeout
        timeout = default if timeout_s is None else timedelta(seconds=timeout_s)
        _timeout_s = timeout.total_seconds() if timeout is not None else None
        restart = os.environ.get("TORCHELASTIC_RESTART_COUNT")
        if restart is None:
            dist.init_process_group(backend, timeout=timeout)
        else:
            store, rank, world = next(dist.rendezvous("env://", timeout=timeout))
            store = dist.PrefixStore(f"runner/restart_{restart}", store)
            dist.init_process_group(backend, store=store, rank=rank, world_size=world, timeout=timeout)
        # after cli.main's own exit handler, so it runs before it
        atexit.register(_leave_at_exit)
    return current()


def in_submitit_job() -> Any:
    """The submitit JobEnvironment of this process when it is one task of a submitit job of several
    (hydra/launcher=slurm or local with tasks_per_node > 1 or nodes > 1), else None."""
    if not os.environ.get("SUBMITIT_EXECUTOR") or dist.is_initialized():
        return None
    import submitit

    job = submitit.JobEnvironment()
    return job if job.num_tasks > 1 else None


def join_submitit_job(timeout_s: float | None = None) -> Rank:
    """Join the process group of the tasks of this submitit job (in_submitit_job): one job, one run, as under torchrun.

    MASTER_ADDR, MASTER_PORT, RANK, WORLD_SIZE, LOCAL_RANK and LOCAL_WORLD_SIZE come from submitit's own reading of
    the scheduler (submitit.helpers.TorchDistributedEnvironment: SLURM's node list and task ids, or the local
    executor's); the port is drawn from the job id, so a requeued job, which keeps its id, meets on the same port
    (a MASTER_PORT set by the user wins). Each task keeps every GPU of its node visible and uses the one of its local
    rank, as under torchrun (hydra.launcher.tasks_per_node = gpus_per_node is checked when the sweep starts)."""
    from submitit.helpers import TorchDistributedEnvironment

    TorchDistributedEnvironment().export(set_cuda_visible_devices=False, overwrite=True)
    return init(timeout_s)


def first_process() -> bool:
    """Whether this process is rank 0 of its job by its launcher's environment (torchrun's RANK, submitit's task
    rank): true before the process group is joined, and when joining failed."""
    if os.environ.get("SUBMITIT_EXECUTOR"):
        import submitit

        return submitit.JobEnvironment().global_rank == 0
    return int(os.environ.get("RANK", "0")) == 0


def current() -> Rank:
    if not dist.is_initialized():
        return Rank()
    return Rank(dist.get_rank(), dist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")))


def broadcast(value: T) -> T:
    """Rank 0's `value` on every rank."""
    if not dist.is_initialized():
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def decided_by_rank_0(decide: Callable[[], T]) -> T:
    """`decide()`, called by rank 0 alone, its result handed to every rank; what it raises is raised on every rank (a
    RunnerError as it is, anything else as a RunnerError naming it on the other ranks), since a rank left waiting for
    the answer would hang. `decide()` itself in a single process. For what only one process may do and every process
    must act on: take a directory's lock, read a run's status, ask Optuna's pruner."""
    from runner.io.errors import RunnerError

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return decide()
    decided: Any = None
    failure: BaseException | None = None
    if dist.get_rank() == 0:
        try:
            decided = decide()
        # a refusal, a bug, a second Ctrl-C: the others must not wait for the answer
        except BaseException as err:
            failure = err
            decided = err if isinstance(err, RunnerError) else _Failed(f"{type(err).__name__}: {err}")
    decided = broadcast(decided)
    if failure is not None:
        raise failure
    if isinstance(decided, RunnerError):
        raise decided
    if isinstance(decided, _Failed):
        raise RunnerError(f"rank 0 of the job failed ({decided.what}); its own output says more")
    return decided


@dataclass(frozen=True)
class _Failed:
    what: str


def asked_of_rank_0(make: Callable[[], Callable[..., T] | None]) -> Callable[..., T] | None:
    """`make()` (a callable, or None, that only rank 0 can build and answer: an Optuna pruner reading the study),
    built by rank 0 alone, as every rank's callable, which returns rank 0's answer; None on every rank when rank 0's
    is None. `make()` itself in a single process."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return make()
    built: list[Any] = []

    def build() -> bool:
        built.append(make())
        return built[0] is not None

    if not decided_by_rank_0(build):
        return None
    return lambda *args: decided_by_rank_0(lambda: built[0](*args))


def all_sum(*tensors: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Sum each tensor over ranks, in place (no-op in a single process)."""
    if dist.is_initialized():
        for t in tensors:
            dist.all_reduce(t)
    return tensors


def max_over_ranks(value: float) -> float:
    """The largest of every rank's float `value` (itself in a single process): one figure all ranks act on, such as
    the training time trainer.max_time is measured by (each process's own clock differs by a little)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    t = torch.tensor([float(value)], dtype=torch.float64, device=_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def first_non_negative(value: torch.Tensor) -> int:
    """int(value) of a scalar tensor where -1 means none (the first step with a non-finite loss): under torchrun, the
    smallest non-negative one over the ranks, or -1 when no rank has one, so that every rank acts on it together."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return int(value)
    none = torch.iinfo(torch.int64).max
    t = torch.where(value < 0, none, value).to(device=_device(), dtype=torch.int64).reshape(1)
    dist.all_reduce(t, op=dist.ReduceOp.MIN)
    return -1 if int(t.item()) == none else int(t.item())


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def leave(timeout_s: float = LEAVE_TIMEOUT_S) -> None:
    """End this process's part in the job's process group (torch.distributed.destroy_process_group, as Lightning's
    teardown does), waiting at most `timeout_s` seconds for it; nothing when no group was joined, or when a peer was
    lost (peers_lost_as_interrupted), since work still queued for a silent peer would wait for trainer.ddp_timeout.

    init() registers it to run at exit. Left to the interpreter's shutdown, gloo's threads can be torn down in the
    middle of their work and the process aborts ("terminate called without an active exception", SIGABRT: 4 of 30
    two-process runs of tests/test_scaleout.py's rank-0 test on a loaded machine, 0 of 30 with it), which torchrun
    counts as a failed worker. The wait is bounded because tearing a gloo group down waits for its queued
    collectives; past `timeout_s` the process exits as it did before."""
    if not dist.is_initialized() or _peer_lost:
        return
    ending = threading.Thread(target=dist.destroy_process_group, daemon=True)
    ending.start()
    ending.join(timeout_s)


def lost_a_peer() -> bool:
    """Whether a collective of this process failed because another process of the job left or did not answer
    (peers_lost_as_interrupted): what only this process can tell, since rank 0 may be the one that is gone."""
    return _peer_lost


def _leave_at_exit() -> None:
    # the command has ended and said how: an exit is no place for a traceback
    with suppress(BaseException):
        leave()


def wrap(model: torch.nn.Module, device: torch.device) -> torch.nn.Module:
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

    def _check_input_dim(self, x: torch.Tensor) -> None:
        if x.dim() < 2:
            raise ValueError(f"expected at least 2D input (got {x.dim()}D input)")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or not dist.is_initialized():
            return super().forward(x)
        from torch.distributed.nn.functional import all_reduce

        dims, shape = [0, *range(2, x.dim())], [1, -1] + [1] * (x.dim() - 2)
        local = torch.cat([x.sum(dims), x.new_tensor([x.numel() / x.shape[1]])])
        total = all_reduce(local)
        n, mean = total[-1], total[:-1] / total[-1]
        centered = x - mean.reshape(shape)
        # two passes: the variance without cancellation
        var = all_reduce((centered * centered).sum(dims)) / n
        y = centered * torch.rsqrt(var + self.eps).reshape(shape)
        if self.affine:
            y = y * self.weight.reshape(shape) + self.bias.reshape(shape)
        # buffers that exist where track_running_stats is set (torch types them Optional)
        tracked, running_mean, running_var = self.num_batches_tracked, self.running_mean, self.running_var
        if self.track_running_stats and tracked is not None and running_mean is not None and running_var is not None:
            with torch.no_grad():
                tracked += 1
                momentum = 1 / float(tracked) if self.momentum is None else self.momentum
                running_mean.lerp_(mean.detach(), momentum)
                # unbiased, as BatchNorm keeps it
                running_var.lerp_(var.detach() * n / (n - 1), momentum)
        return y

    @classmethod
    def convert(cls, module: torch.nn.Module) -> torch.nn.Module:
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


def in_sync(model: torch.nn.Module) -> bool:
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


def gather(value: T) -> list[T] | None:
    """[every rank's `value`] on rank 0, in rank order (None on the others); [value] in a single process."""
    if not dist.is_initialized():
        return [value]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == 0 else None
    dist.gather_object(value, out, dst=0)
    return out


class AgreedStop:
    """A stop request agreed by every rank at each safe point, so that every rank stops at the same one.

    Each process's own handler (io.signals.StopSignals) records the signal it was sent; a scheduler may signal one
    task only, or the tasks at different moments. Reading `requested` (each safe point does, on every rank, at the
    same places: the ranks run the same steps) all-reduces which rank got which signal, as Lightning's trainer agrees
    a SIGTERM before stopping; so the ranks leave the loop at the same step, and a collective never waits for a rank
    that has left. One all-reduce of `world` int64 per safe point (one per optimizer step): tens of microseconds on
    gloo. After the first agreement the answer is kept and the all-reduces stop.
    """

    def __init__(self, stop: StopSignals) -> None:
        self.stop = stop
        self.agreed: str | None = None

    @property
    def requested(self) -> str | None:
        if self.agreed is None:
            import signal

            # read once: a signal arriving during the all-reduce waits for the next point
            own = self.stop.requested
            flags = torch.zeros(dist.get_world_size(), dtype=torch.int64, device=_device())
            if own:
                flags[dist.get_rank()] = int(signal.Signals[own])
            dist.all_reduce(flags)
            sent = flags.nonzero().flatten().tolist()
            if sent:
                name = signal.Signals(int(flags[sent[0]])).name
                self.agreed = own if own else f"{name} (sent to rank {sent[0]})"
                # a SIGUSR2 to any task requeues the job (signals.job_stop)
                self.stop.by_peer = None if own else name
        return self.agreed

    def check(self, where: str) -> None:
        """A safe point of every rank: raise Interrupted on all of them when any was asked to stop."""
        from runner.io.errors import Interrupted

        if self.requested:
            raise Interrupted(f"stopped by {self.agreed} {where}")


def agreed(stop: StopSignals) -> StopSignals | AgreedStop:
    """`stop` agreed over the ranks of a torchrun or SLURM job (AgreedStop); `stop` itself in a single process."""
    return AgreedStop(stop) if dist.is_initialized() and dist.get_world_size() > 1 else stop


def _device() -> torch.device:
    """Where a collective's tensors live: the process's GPU under NCCL, the CPU under gloo."""
    return torch.device("cuda", torch.cuda.current_device()) if dist.get_backend() == "nccl" else torch.device("cpu")


# what gloo and NCCL say when a peer process has gone (killed, crashed, or stopped by its launcher)
LOST_PEER = (
    "Connection reset by peer",
    "Connection closed by peer",
    "Broken pipe",
    "remote process exiting",
    "NCCL communicator was aborted",
)
# and when it has not answered within the process group's timeout (trainer.ddp_timeout): stopped, hung, cut off
TIMED_OUT = ("Timed out waiting", "Watchdog caught collective operation timeout")


def lost_peer(err: BaseException) -> str | None:
    """ "left" when `err`, raised in a collective of a job of several processes, says that another process has gone,
    "timeout" when one did not answer within trainer.ddp_timeout, else None."""
    if not (dist.is_initialized() and dist.get_world_size() > 1 and isinstance(err, RuntimeError)):
        # torch.distributed.DistError and gloo's errors are RuntimeErrors
        return None
    text = str(err)
    if isinstance(err, dist.DistNetworkError) or any(marker in text for marker in LOST_PEER):
        return "left"
    if any(marker in text for marker in TIMED_OUT):
        return "timeout"
    return None


@contextmanager
def peers_lost_as_interrupted() -> Iterator[None]:
    """A collective that fails because a peer process has gone, or has not answered within the group's timeout
    (trainer.ddp_timeout), raises Interrupted instead of its RuntimeError: the run ends `interrupted`, not `failed`,
    so that torchrun's --max-restarts, a requeue or the same command again resumes it from last.pt, which holds its
    last checkpoint (a process that died mid-step leaves no consistent state to save). Under NCCL, torch's watchdog
    may end the processes on a timeout before this runs (not run here: no GPU)."""
    from runner.io.errors import Interrupted

    try:
        yield
    except RuntimeError as err:
        why = lost_peer(err)
        if why is None:
            raise
        global _peer_lost
        _peer_lost = True
        who = f"rank {1 - dist.get_rank()}" if dist.get_world_size() == 2 else "another process of the job"
        cause = f"{who} left" if why == "left" else f"{who} did not answer within trainer.ddp_timeout={_timeout_s:g} s"
        restarts = int(os.environ.get("TORCHELASTIC_MAX_RESTARTS", "0"))
        restarted = int(os.environ.get("TORCHELASTIC_RESTART_COUNT", "0"))
        then = "; torchrun restarts the job (--max-restarts), which resumes from it" if restarted < restarts else ""
        raise Interrupted(f"stopped because {cause} ({_gist(err)}); last.pt holds the last checkpoint{then}") from None


def _gist(err: BaseException, width: int = 160) -> str:
    """A backend's error in one line for a message: gloo's source location ([.../gloo/transport/tcp/pair.cc:545])
    left out, cut at a word within `width` characters, with an ellipsis where it was cut."""
    from runner.io.errors import one_line

    return one_line(re.sub(r"^\[[^\]]*\.(cc|cpp|h):\d+\]\s*", "", one_line(err, None)), width)
