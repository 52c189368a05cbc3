"""BatchNorm under torchrun on CPU: two gloo processes compute what one process computes on the whole batch."""

import os

import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import free_port

from runner.models import CNN
from runner.training.distributed import GlobalBatchNorm, wrap


def _model():
    torch.manual_seed(0)
    return CNN(in_channels=3, num_classes=4, channels=(8, 16), dropout=0.0)


def _batch():
    g = torch.Generator().manual_seed(1)
    return torch.randn(16, 3, 8, 8, generator=g) * 3 + 1, torch.randint(0, 4, (16,), generator=g)


def _step(model, x, y):
    """One training step's loss, gradients and BatchNorm buffers."""
    model.train()
    loss = torch.nn.functional.cross_entropy(model(x), y)
    loss.backward()
    buffers = {k: v.clone() for k, v in model.state_dict().items() if "running" in k}
    return loss.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}, buffers


def _rank(rank, world, port, out):
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    x, y = _batch()
    model = _model()
    net = wrap(model, torch.device("cpu"))  # DDP, with GlobalBatchNorm in place of BatchNorm
    _loss, grads, buffers = _step(net, x[rank::world], y[rank::world])  # this rank's share, as BatchIndices gives it
    assert sum(isinstance(m, GlobalBatchNorm) for m in model.modules()) == 4
    if rank == 0:
        torch.save(
            {
                "grads": {k.removeprefix("module."): v for k, v in grads.items()},
                "buffers": {k.removeprefix("module."): v for k, v in buffers.items()},
            },
            out,
        )
    dist.destroy_process_group()


def test_two_processes_step_like_one_process_on_the_whole_batch(tmp_path, world=2):
    torch.set_num_threads(1)
    x, y = _batch()
    _, grads, buffers = _step(_model(), x, y)
    out = tmp_path / "rank0.pt"
    mp.spawn(_rank, args=(world, free_port(), out), nprocs=world, join=True)
    ddp = torch.load(out, weights_only=True)
    for (
        k,
        g,
    ) in grads.items():  # DDP averages the ranks' gradients; with global statistics that is the one-process gradient
        assert torch.allclose(ddp["grads"][k], g, rtol=1e-4, atol=1e-6), k
    for k, b in buffers.items():
        assert torch.allclose(ddp["buffers"][k], b, rtol=1e-5, atol=1e-6), k


def test_without_global_statistics_the_gradients_differ(tmp_path):
    """The precondition of the test above: half batches' own statistics really give other gradients."""
    torch.set_num_threads(1)
    x, y = _batch()
    _, whole, _ = _step(_model(), x, y)
    halves = [_step(_model(), x[r::2], y[r::2])[1] for r in range(2)]
    averaged = {k: (halves[0][k] + halves[1][k]) / 2 for k in whole}
    assert not all(torch.allclose(averaged[k], whole[k], rtol=1e-4, atol=1e-6) for k in whole)
