"""trainer.profile: torch.profiler over a window of optimizer steps, outside the loop.

    runner train trainer.profile=true                       # steps 3-5: wait 1, warm up 1, record 3
    runner train trainer.profile=true 'trainer.profile_steps=[5,2,10]'

The profiler steps on an optimizer post-step hook, so the loop (training/loop.py) knows nothing of it. At the end of
the window it writes profile/rank0.<time>.pt.trace.json, which Perfetto (ui.perfetto.dev), chrome://tracing and
TensorBoard's profiler plugin open, and profile/top_operators.txt, the operators by their own time; the console
shows the top ten. Steps inside the window are slower (the profiler records every operator): that epoch's
samples/s says so.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from runner.io.console import results_table
from runner.io.files import atomic_write
from runner.training.schedules import steps_per_epoch

if TYPE_CHECKING:
    from rich.table import Table

    from runner.io.console import RunConsole
    from runner.run.rundir import RunDir
    from runner.training.loop import Job

TOP = 10


@contextmanager
def profiling(job: Job, run: RunDir, console: RunConsole) -> Iterator[None]:
    """Profile `job`'s optimizer steps inside trainer.profile_steps' window while the block runs, on the process that
    writes (rank 0); nothing when trainer.profile is off."""
    if not job.recipe.profile or not run.write:
        yield
        return
    from torch.profiler import ProfilerAction, ProfilerActivity, profile, tensorboard_trace_handler

    cuda = job.device.type == "cuda"
    # kineto's start and stop notes, and "gpuGetDeviceCount failed" on a machine without one
    if not cuda:
        # 6: none of its levels (a level set by the user wins)
        os.environ.setdefault("KINETO_LOG_LEVEL", "6")
    wait, warmup, active = job.recipe.profile_steps
    folder = run.path / "profile"
    start, n_batches = job.state.step, len(job.data.train)
    # the first recorded optimizer step (counted over resumes); one later where a validation would open the window
    window = {"first": start + wait + warmup + 1}
    asked = window["first"]
    # the run's last optimizer step, where known beforehand (its epochs' steps, trainer.max_steps)
    recipe = job.recipe
    planned = recipe.epochs * steps_per_epoch(n_batches, recipe.accumulate_grad_batches)
    last_step = min(planned, recipe.max_steps or planned)
    seen: dict[str, Any] = {"ended": None, "cut": False}

    def action(n: int) -> ProfilerAction:
        """torch.profiler's schedule: what to do in the profiler's step n, the span of optimizer step start + n + 1
        (wait, warm up, record `active` steps, once: torch's schedule(repeat=1), with a first step that can move)."""
        step, first = start + n + 1, window["first"]
        if step < first:
            return ProfilerAction.WARMUP if step >= first - warmup else ProfilerAction.NONE
        if step < first + active - 1:
            return ProfilerAction.RECORD
        return ProfilerAction.RECORD_AND_SAVE if step == first + active - 1 else ProfilerAction.NONE

    def ready(prof: profile) -> None:
        first = window["first"]
        if seen["ended"] is not None and seen["ended"] < first:
            # nothing of the window ran: what the profiler holds is no step of it
            return
        tensorboard_trace_handler(str(folder), worker_name="rank0")(prof)
        averages = prof.key_averages()
        table = averages.table(sort_by=own_time(cuda), row_limit=30)
        atomic_write(folder / "top_operators.txt", lambda f: f.write(table.encode()))
        # the last step recorded: the window's, or the run's or the epoch's last where it ended inside the window
        last = min(first + active - 1, seen["ended"] or first + active - 1)
        console.print(top_table(averages, cuda, first=first, last=last))
        if seen["cut"]:
            console.print(
                f"profile: the window stopped at step {last}, its epoch's last: the validation that follows is no "
                f"training step (a window inside one epoch records all of its steps)"
            )
        console.print(f"profile: {folder / 'top_operators.txt'}; the trace opens in ui.perfetto.dev", soft_wrap=True)

    def end(step: int) -> None:
        """Stop the profiler after optimizer step `step`: it writes the window's steps it recorded."""
        if seen["ended"] is None:
            seen["ended"] = step
            profiler.stop()

    def after_step(*_: object) -> None:
        """After each optimizer step: the next step of the profiler, or its end where a validation follows (the
        epoch's last step) or the run ends (its last step), so that nothing but training steps is recorded."""
        if seen["ended"] is not None:
            return
        # called by the optimizer inside its step: the step under way is state.step + 1, and the batch that ends it is
        # not counted yet (the loop counts a batch once train_step returns), so it is batch batches_done + 1
        step, first = job.state.step + 1, window["first"]
        epoch_end = job.state.batches_done + 1 == n_batches
        if step >= last_step or (epoch_end and step >= first):
            seen["cut"] = step < last_step and step < first + active - 1
            end(step)
            return
        if epoch_end and step == first - 1:
            # the window's first step would hold the validation: it begins one step later
            window["first"] += 1
        profiler.step()

    activities = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if cuda else [])
    profiler = profile(activities=activities, schedule=action, on_trace_ready=ready, record_shapes=True)
    profiler.start()
    hook = job.state.optimizer.register_step_post_hook(after_step)
    try:
        yield
    finally:
        hook.remove()
        # a run that ended before its planned last step, mid-epoch (max_time, a signal): the steps it recorded
        end(job.state.step)
        if seen["ended"] < window["first"]:
            console.print(
                f"profile: the run ended at step {seen['ended']}, before trainer.profile_steps' window began (step "
                f"{window['first']}{', moved past the validation at its epoch end' if window['first'] > asked else ''}"
                f"): nothing was recorded. Lower its wait and warmup, e.g. trainer.profile_steps=[0,1,3]."
            )


def own_time(cuda: bool) -> str:
    """The profiler's key for an operator's own time: on the GPU where there is one."""
    return "self_device_time_total" if cuda else "self_cpu_time_total"


def top_table(averages: Any, cuda: bool, *, first: int, last: int) -> Table:
    """The TOP operators by their own time (device time on a GPU), as a console table; the profiler's own step
    markers (ProfilerStep#N) left out."""
    key = own_time(cuda)
    # with the step markers, as top_operators.txt counts
    total = sum(getattr(e, key) for e in averages) or 1
    averages = [e for e in averages if not e.key.startswith("ProfilerStep")]
    events = sorted(averages, key=lambda e: getattr(e, key), reverse=True)
    rows = [
        (e.key, f"{getattr(e, key) / 1000:,.2f} ms  {100 * getattr(e, key) / total:4.1f} %  x{e.count}")
        for e in events[:TOP]
    ]
    return results_table(f"profile of steps {first}-{last}: top operators by own {'GPU' if cuda else 'CPU'} time", rows)
