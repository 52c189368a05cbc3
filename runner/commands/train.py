"""`runner train`: build the parts a config names, train, checkpoint, test the best weights.

    runner train                                   # cnn on digits, the default
    runner train model=mlp dataset=sum_pairs       # the tutorials' regression
    runner train -m optimizer.lr=0.1,0.01,0.001    # one run directory per job
    runner train resume=outputs/2026-11-22/10-31-07 # continue a stopped run (runner/run/resume/)

A job reads as a recipe: claim the run directory (runner/run/rundir.py), set up (runner/training/setup.py), start,
fit (runner/training/loop.py), finish (runner/training/finish.py). Setup checks and builds everything before the
directory is written: the config, the device, the model against a dummy batch (before any data is loaded), the data,
and for a resume the checkpoint, so a job that cannot run changes nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from runner.io.console import RunConsole
from runner.io.environment import environment
from runner.io.signals import job_stop
from runner.run.rundir import RunDir
from runner.training import distributed
from runner.training.finish import finish
from runner.training.loop import fit
from runner.training.profiling import profiling
from runner.training.setup import setup

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from pathlib import Path

    from omegaconf import DictConfig

    from runner.training.distributed import Rank
    from runner.training.loop import Job


def train_job(
    cfg: DictConfig,
    run_dir: str | Path,
    overrides: Sequence[str] = (),
    provenance: dict[str, str] | None = None,
    continue_with: str | None = None,
    pruner: Callable[[int, float], bool] | None = None,
) -> dict:
    """Run (or resume) one training job in `run_dir` (Hydra's output directory) and return its summary.

    Under torchrun every process runs this, with rank 0's `run_dir`; only rank 0 writes.
    `overrides` are the command line's (applied on top of a resumed run's own config);
    `provenance` is the .hydra/ a fresh run records (run/provenance.py); `continue_with` is the
    command an interrupted run tells the user to continue it with (a sweep's, in a sweep); `pruner` is an Optuna
    trial's pruning callback (sweeps/search.trial_pruner), which the loop asks after each epoch.
    """
    rank = distributed.current()
    console = RunConsole(quiet=not rank.main)
    resume, write = bool(cfg.get("resume")), rank.main
    # the stop signals first: a signal while the directory is claimed stops the job too; every warning raised in the
    # job (torch's too) goes to train.log as well as the terminal
    with (
        job_stop() as own_stop,
        RunDir.claim(
            run_dir, console, resume=resume, write=write, provenance=provenance, continue_with=continue_with
        ) as run,
        console.relay_warnings(),
    ):
        # under torchrun or SLURM: every rank stops at the same safe point
        stop = distributed.agreed(own_stop)
        job = setup(cfg, run, overrides=overrides, console=console, rank=rank, stop=stop, pruner=pruner)
        # a resume keeps the first environment beside its own
        where = "environment" if run.fresh else "resumed_environment"
        # the epoch it continues from: 0 for a fresh run
        run.start(job.state.epoch, **describe(job, rank), **{where: environment(job.device)})
        run.save_model_card(job.card)
        # Lightning's rule: a quick check feeds no tracker
        if job.recipe.fast_dev_run:
            console.print(fast_dev_run_line(job, run))
        else:
            run.open_loggers(job.cfg.get("logger"), job.state.step)
        setup_s = run.elapsed()
        # a process of the job died: interrupted, for a restart
        with distributed.peers_lost_as_interrupted():
            # trainer.profile: a window of steps, outside the loop
            with profiling(job, run, console):
                first_step_at = fit(job, run, console, stop)
            return finish(job, run, console=console, setup_s=setup_s, first_step_at=first_step_at, stop=stop)


def fast_dev_run_line(job: Job, run: RunDir) -> str:
    """What trainer.fast_dev_run does, and where its files are, in a line."""
    # fast_dev_run's N, which Recipe.of made every split's limit
    n = cast("int", job.recipe.limit_train_batches)
    return (
        f"fast_dev_run: at most {n} batch{'es' * (n > 1)} of train, val and test, one epoch, no logger; a check of the "
        f"setup, not a result (runner report leaves it out); its files: {run.path}"
    )


def describe(job: Job, rank: Rank) -> dict:
    """What summary.json says about the job from the start."""
    model = job.state.model
    return dict(
        task=job.cfg.dataset.task,
        device=str(job.device),
        processes=rank.world,
        params=sum(p.numel() for p in model.parameters()),
        trainable_params=sum(p.numel() for p in model.parameters() if p.requires_grad),
        monitor=job.monitor.name,
        monitor_mode=job.monitor.mode,
        channels_last=job.channels_last,
        samples=job.samples,
        **({"pretrained": model.pretrained_from} if hasattr(model, "pretrained_from") else {}),
        **({"init_from": job.init.record()} if job.init else {}),
        **({"frozen": job.freezer.summary()} if job.freezer else {}),
        **({"quick_check": job.recipe.quick_check} if job.recipe.quick_check else {}),
        **({"limits": job.data.limits} if job.data.limits else {}),
        # validation's size; trainer.class_weights and dataset.sampler where set
        **(job.data.records or {}),
    )
