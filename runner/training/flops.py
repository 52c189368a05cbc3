"""Throughput, FLOPs and model FLOPs utilisation (MFU): summary.json's `throughput`.

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on a copy of the model on the meta device (no memory,
no compute, no random draw): a forward and backward pass of a batch of 2, per sample. Operators it has no formula
for count 0, so a model built of custom kernels is under-counted (the number says what was counted). MFU is the
achieved FLOP/s over the dense bf16/fp16 peak of the job's GPUs (PEAK_TFLOPS, from NVIDIA's datasheets, times the
number of processes) for a bf16 or 16-mixed run; none on a CPU, an unknown GPU or at precision 32.

A run counts after it trained (`count_later`): FlopCounterMode brings torch.fx's symbolic shapes and sympy with it,
a second that would otherwise stand between `import torch` and the first step (docs/figures.md, Start-up).
"""

from __future__ import annotations

import copy
import functools
import itertools
import re
import statistics
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from torch import nn

# Dense (no sparsity) bf16/fp16 tensor-core peak TFLOP/s per GPU, from NVIDIA's datasheets: H100 and H200 Tensor
# Core GPU (SXM; PCIe), A100 Tensor Core GPU (SXM and PCIe), L40S, L4, A10, Tesla V100 (SXM2, fp16), Tesla T4 (fp16).
# Matched by the first pattern (a regular expression, whole words) found in torch.cuda.get_device_name(), in this
# order; None: a variant whose figure differs and is not in the table (H100 NVL, L40, A10G), so no MFU rather than
# a wrong one.
PEAK_TFLOPS = (
    (r"H100 NVL", None),
    (r"H100 PCIe", 756.0),
    (r"H100", 989.4),
    (r"H200", 989.4),
    (r"A100", 312.0),
    (r"L40S", 362.05),
    (r"L4", 121.0),
    (r"A10", 125.0),
    (r"V100", 125.0),
    (r"T4", 65.0),
)


def flops_per_sample(model: nn.Module, input_shape: Sequence[int], task: str) -> float | None:
    """Training FLOPs of one sample (forward + backward) of `model`, counted on a copy on the meta device; None where
    counting fails (an operator without a meta kernel)."""
    from torch.utils.flop_counter import FlopCounterMode

    try:
        meta = meta_copy(model).train()
        x = torch.zeros(2, *input_shape, device="meta")
        with FlopCounterMode(display=False) as counter:
            out = meta(x)
            target = torch.zeros(2, dtype=torch.long, device="meta") if task == "classification" else out.detach()
            loss = (
                torch.nn.functional.cross_entropy(out, target)
                if task == "classification"
                else (out - target).square().mean()
            )
            loss.backward()
    except Exception:
        return None
    return counter.get_total_flops() / 2


def count_later(model: nn.Module, input_shape: Sequence[int], task: str) -> Callable[[], float | None]:
    """`flops_per_sample` of `model` as it is now, counted at the first call (once): the meta copy is made now, so
    what trains now is what is counted (parameters freezing left out count no weight gradient, whatever the weights
    do later), and the count itself waits until it is asked for (`throughput`, after training)."""
    try:
        meta = meta_copy(model)
    except Exception:
        return lambda: None
    return functools.cache(lambda: flops_per_sample(meta, input_shape, task))


def meta_copy(model: nn.Module) -> nn.Module:
    """A copy of `model` whose parameters and buffers are on the meta device, made without copying their data (a
    deepcopy of a large model on a full GPU would not fit)."""
    memo, parameters = {}, {id(p) for p in model.parameters()}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = torch.nn.Parameter(meta, tensor.requires_grad) if id(tensor) in parameters else meta
    return copy.deepcopy(model, memo)


def peak_flops(device: torch.device, precision: str) -> tuple[float | None, str | None]:
    """(peak FLOP/s, the GPU's name) for `device` at `precision` ("32", "bf16", "16-mixed"), or (None, name)."""
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    return peak_of(name, precision), name


def peak_of(gpu_name: str, precision: str) -> float | None:
    """The dense bf16/fp16 peak FLOP/s of the GPU called `gpu_name` (torch.cuda.get_device_name's) for "bf16" and
    "16-mixed"; None for "32" (convolutions run on TF32 tensor cores by default, cudnn.allow_tf32, so no fp32 peak
    measures them) and for a GPU not in PEAK_TFLOPS."""
    if precision == "32":
        return None
    for pattern, tflops in PEAK_TFLOPS:
        if re.search(rf"\b{pattern}\b", gpu_name):
            return tflops * 1e12 if tflops else None
    return None


def throughput(
    rows: Sequence[dict],
    *,
    batch_size: int,
    accumulate: int,
    flops: float | Callable[[], float | None] | None,
    peak: float | None = None,
) -> dict:
    """summary.json's `throughput` from metrics.csv's `rows`: the median epoch's training samples/s (of every process
    together), its optimizer steps/s (samples over the global batch_size x accumulate), and with `flops` (per sample,
    or `count_later`'s count, made here) the FLOP/s, with `peak` (of every process's GPU together) the MFU."""
    if callable(flops):
        flops = flops()
    samples = statistics.median(r["train_samples_per_s"] for r in rows)
    result = {"samples_per_s": samples, "steps_per_s": samples / (batch_size * accumulate)}
    if flops:
        result |= {"flops_per_sample": flops, "flop_per_s": flops * samples}
        if peak:
            result |= {"peak_flop_per_s": peak, "mfu": flops * samples / peak}
    return result
