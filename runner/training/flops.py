"""Throughput, FLOPs and model FLOPs utilisation (MFU): summary.json's `throughput`.

FLOPs are counted by torch.utils.flop_counter.FlopCounterMode on a copy of the model on the meta device (no memory,
no compute, no random draw): a forward and backward pass of a batch of 2, per sample. Operators it has no formula
for count 0, so a model built of custom kernels is under-counted (the number says what was counted). MFU is the
achieved FLOP/s over the GPU's dense peak for the run's precision (PEAK_TFLOPS, from NVIDIA's datasheets);
none on a CPU or an unknown GPU.
"""

import copy
import itertools
import statistics

import torch

# Dense (no sparsity) peak TFLOP/s per GPU: (bf16/fp16 tensor cores, fp32), from NVIDIA's datasheets: H100 and H200
# Tensor Core GPU (SXM; PCIe), A100 Tensor Core GPU (SXM and PCIe), L40S, L4, A10, Tesla V100 (SXM2), Tesla T4.
# Matched by the first name that torch.cuda.get_device_name() contains, in this order.
PEAK_TFLOPS = (
    ("H100 PCIe", 756.0, 51.2),
    ("H100", 989.4, 66.9),
    ("H200", 989.4, 66.9),
    ("A100", 312.0, 19.5),
    ("L40S", 362.05, 91.6),
    ("L4", 121.0, 30.3),
    ("A10", 125.0, 31.2),
    ("V100", 125.0, 15.7),
    ("T4", 65.0, 8.1),
)


def flops_per_sample(model, input_shape, num_outputs, task):
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


def meta_copy(model):
    """A copy of `model` whose parameters and buffers are on the meta device, made without copying their data (a
    deepcopy of a large model on a full GPU would not fit)."""
    memo, parameters = {}, {id(p) for p in model.parameters()}
    for tensor in itertools.chain(model.parameters(), model.buffers()):
        meta = torch.empty_like(tensor, device="meta")
        memo[id(tensor)] = torch.nn.Parameter(meta, tensor.requires_grad) if id(tensor) in parameters else meta
    return copy.deepcopy(model, memo)


def peak_flops(device, precision):
    """(peak FLOP/s, the GPU's name) for `device` at `precision` ("32", "bf16", "16-mixed"), or (None, name)."""
    if device.type != "cuda":
        return None, None
    name = torch.cuda.get_device_name(device)
    return peak_of(name, precision), name


def peak_of(gpu_name, precision):
    """The dense peak FLOP/s of the GPU called `gpu_name` (torch.cuda.get_device_name's) at `precision`: the bf16/fp16
    tensor-core figure for "bf16" and "16-mixed", the fp32 one for "32"; None for a GPU not in PEAK_TFLOPS."""
    for key, half, single in PEAK_TFLOPS:
        if key in gpu_name:
            return (single if precision == "32" else half) * 1e12
    return None


def throughput(rows, *, batch_size, accumulate, flops, peak=None):
    """summary.json's `throughput` from metrics.csv's `rows`: the median epoch's training samples/s, its optimizer
    steps/s (samples over batch_size x accumulate), and with `flops` (per sample) the FLOP/s, with `peak` the MFU."""
    samples = statistics.median(r["train_samples_per_s"] for r in rows)
    result = {"samples_per_s": samples, "steps_per_s": samples / (batch_size * accumulate)}
    if flops:
        result |= {"flops_per_sample": flops, "flop_per_s": flops * samples}
        if peak:
            result |= {"peak_flop_per_s": peak, "mfu": flops * samples / peak}
    return result
