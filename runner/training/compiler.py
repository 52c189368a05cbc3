"""torch's compiler (torch._dynamo, torch._inductor), imported only by a run that compiles.

Importing torch._dynamo takes about as long as importing torch itself (1.2 s on the 2-core
machine of docs/figures.md), and plain eager PyTorch pays it twice over without compiling
anything:

- `torch.use_deterministic_algorithms(mode)` imports torch._inductor.config (and with it
  torch._dynamo) to set `inductor_config.deterministic`, which only compiled code reads, then
  calls `torch._C._set_deterministic_algorithms(mode, warn_only=...)`, which is the setting eager
  kernels obey. `deterministic()` makes that one call when the run does not compile.
- every `torch.optim.Optimizer` imports torch._dynamo on its first `add_param_group`
  (torch._disable_dynamo, which asks torch._dynamo.disable for a wrapper) and on every `step`
  (torch._dynamo.graph_break(), around the update). In eager mode both are no-ops: `disable(fn)`
  runs fn with dynamo's frame hook off, and there is no hook; `graph_break()` is an empty
  function. `defer()` puts a stand-in module at sys.modules["torch._dynamo"] that answers those
  two itself and imports the real torch._dynamo, and hands over to it, the moment anything asks
  it for anything else, so code that really needs dynamo gets dynamo, only later.

`prepare(compiling)` is the one place runner does either; `runner train` and `runner eval` call
it in their setup, before anything else touches torch. A run that compiles gets torch's own
calls, and the real torch._dynamo at once (a stand-in an earlier job of the same process put in
place, as the basic launcher runs a sweep's jobs, is handed over first). RUNNER_DEFER_DYNAMO=0
in the environment switches the stand-in off: every run then imports torch._dynamo as plain
PyTorch does (1.2 s more at start-up, nothing else changes).

Why a later compiled job in the same process is safe: torch._disable_dynamo caches, per function,
what `disable` returned the first time (the stand-in's pass-through) on torch.optim's methods; those
run in the eager loop around the compiled model, never inside a compiled frame, where the wrapper
would matter. tests/test_startup.py checks it end to end (a sweep over trainer.compile=false,true
equals the compiled job in a fresh process) and fails when torch changes what this relies on: the
body of use_deterministic_algorithms, what torch.optim asks of torch._dynamo, and the default run's
imports.
"""

from __future__ import annotations

import importlib
import os
import sys
import types
from collections.abc import Callable
from typing import Any

# what the stand-in answers without importing dynamo
ANSWERED = ("graph_break", "disable")


class _DeferredDynamo(types.ModuleType):
    """sys.modules["torch._dynamo"] until something needs more than an eager no-op from it."""

    @staticmethod
    def graph_break(msg: str = "") -> None:
        """Eager mode: nothing to break (torch._dynamo.decorators.graph_break is an empty function)."""

    @staticmethod
    def disable(
        fn: Callable[..., Any] | None = None,
        recursive: bool = True,
        *,
        reason: str | None = None,
        wrapping: bool = True,
    ) -> Callable[..., Any]:
        """Eager mode: fn itself (dynamo's wrapper only turns off a frame hook that is not there)."""
        if fn is None:
            return lambda f: f
        return fn

    # anything else, including __path__ for a submodule's import: the real one
    def __getattr__(self, name: str) -> Any:
        return getattr(_real(), name)


def _real() -> types.ModuleType:
    import torch

    if isinstance(sys.modules.get("torch._dynamo"), _DeferredDynamo):
        del sys.modules["torch._dynamo"]
    if isinstance(torch.__dict__.get("_dynamo"), _DeferredDynamo):
        del torch._dynamo
    return importlib.import_module("torch._dynamo")


def prepare(compiling: bool) -> None:
    """Before a job touches torch: a stand-in for torch._dynamo unless `compiling` (or RUNNER_DEFER_DYNAMO=0);
    for a compiling job, the real torch._dynamo now."""
    if compiling:
        _real()
    elif os.environ.get("RUNNER_DEFER_DYNAMO", "1") != "0" and "torch._dynamo" not in sys.modules:
        sys.modules["torch._dynamo"] = _DeferredDynamo("torch._dynamo", __doc__)


def deterministic(mode: bool, warn_only: bool, compiling: bool) -> None:
    """torch.use_deterministic_algorithms(mode, warn_only=warn_only), without importing inductor unless compiling."""
    import torch

    if compiling:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)
