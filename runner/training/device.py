"""Where and how tensors run: the device, threads and determinism, memory format, precision.

Shared by `runner train` and `runner eval`, so an evaluation runs the way its training did.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Sequence
from dataclasses import dataclass

import torch

from runner.io.errors import RunnerError
from runner.training import compiler


def resolve_device(name: str, local_rank: int = 0) -> torch.device:
    """`auto` means cuda, then mps, then cpu; an explicit device must exist. Under torchrun, cuda is cuda:LOCAL_RANK."""
    mps = getattr(torch.backends, "mps", None)
    available = {"cpu": True, "cuda": torch.cuda.is_available(), "mps": bool(mps and mps.is_available())}
    if name == "auto":
        name = next(d for d in ("cuda", "mps", "cpu") if available[d])
    if not available.get(name.split(":")[0], False):
        present = ", ".join(d for d, ok in available.items() if ok)
        raise RunnerError(
            f"device={name} is not available on this machine (available: {present}). Use device=auto or device=cpu."
        )
    if name == "cuda":
        name = f"cuda:{local_rank}"
    return torch.device(name)


def configure_torch(*, num_threads: int | None, deterministic: bool, compiling: bool) -> None:
    """Threads and determinism: what makes two runs of one config on CPU give the same bytes.

    `num_threads` None keeps torch's default; `compiling` picks how determinism is set (training/compiler.py)."""
    if num_threads:
        torch.set_num_threads(num_threads)
    if deterministic:
        # cuBLAS is deterministic only with a fixed workspace, read when its first handle is made (after this, which
        # runs before the model reaches the GPU): PyTorch's reproducibility notes. A value the user set wins.
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
        compiler.deterministic(True, warn_only=True, compiling=compiling)


def use_channels_last(setting: bool | str, input_shape: Sequence[int], device: torch.device) -> bool:
    """`auto`: channels-last for images on CPU and CUDA, where it measured faster (docs/figures.md)."""
    if setting == "auto":
        return len(input_shape) == 3 and device.type in ("cpu", "cuda")
    return bool(setting) and len(input_shape) == 3


@dataclass
class Precision:
    """`trainer.precision` as an autocast context and a gradient scaler (a no-op unless 16-mixed)."""

    # None for full precision
    dtype: torch.dtype | None
    device_type: str
    scaler: torch.amp.GradScaler

    @classmethod
    def of(cls, precision: str | int, device: torch.device) -> Precision:
        dtype = {"32": None, "bf16": torch.bfloat16, "16-mixed": torch.float16}[str(precision)]
        return cls(dtype, device.type, torch.amp.GradScaler(device.type, enabled=dtype is torch.float16))

    def autocast(self) -> contextlib.AbstractContextManager[object]:
        return torch.autocast(self.device_type, dtype=self.dtype) if self.dtype else contextlib.nullcontext()
