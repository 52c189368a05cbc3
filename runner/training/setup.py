"""A training job's setup: check and build everything a `Job` is made of, before its run directory is written.

    runner train                 # commands/train.py: claim the run directory, setup, start, fit, finish
    runner lr-find               # commands/lr_find.py: the same setup, a range test instead of fit

`setup` reads as an outline of keyword calls, each part taking the piece of config it needs (torchtune's
`_setup_model(cfg_model=...)`): the config and its first lines, the device, the model (checked against a dummy
batch before any data is loaded), the data (training/setup_data.py), the optimisation, the state (for a resume,
last.pt restored into it), freezing, and the wrapping that runs the model (DDP, torch.compile). A job that cannot
run fails here and changes nothing; the refusals that read only the trainer's knobs are the Recipe's own
(training/recipe.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

import torch
from omegaconf import OmegaConf

from runner.config.checks import check_config
from runner.io.console import config_tree, model_table
from runner.io.errors import RunnerError
from runner.loggers import check_loggers
from runner.run.resume import plan_resume
from runner.training import compiler, distributed
from runner.training.build import build_model, build_optimizer, plain, summarize, with_weights_preprocessing
from runner.training.device import Precision, configure_torch, resolve_device, use_channels_last
from runner.training.flops import count_later
from runner.training.loop import Job
from runner.training.metrics import TASKS
from runner.training.recipe import Monitor, Recipe
from runner.training.schedules import build_schedule, steps_per_epoch
from runner.training.setup_data import setup_data
from runner.training.state import TrainState, ema_model, seed_all

if TYPE_CHECKING:
    from collections.abc import Callable, Sequence

    from omegaconf import DictConfig

    from runner.data.batches import BatchIndices
    from runner.inference.card import ModelCard
    from runner.io.console import RunConsole
    from runner.io.signals import StopSignals
    from runner.run.resume import Resume
    from runner.run.rundir import RunDir
    from runner.training.checkpoints import Kept
    from runner.training.distributed import AgreedStop, Rank
    from runner.training.freezing import Freezer
    from runner.training.init_from import Init
    from runner.training.schedules import Schedule


def setup(
    cfg: DictConfig,
    run: RunDir,
    *,
    overrides: Sequence[str],
    console: RunConsole,
    rank: Rank,
    stop: StopSignals | AgreedStop,
    command: str = "train",
    pruner: Callable[[int, float], bool] | None = None,
) -> Job:
    """Check and build everything; for a resume, load last.pt. Writes nothing (but a fresh run's config.yaml, where
    pretrained weights changed its preprocessing).

    `stop` is looked at between the parts: a signal during setup stops the job before it writes anything. `command`
    names the job in its first line (`runner lr-find` builds the same setup); `pruner` is an Optuna trial's pruning
    callback, which the loop asks after each epoch."""
    stop.check("before the job started")
    resume = None if run.fresh else plan_resume(cfg, run.last, status=run.summary.get("status"), overrides=overrides)
    stop.check("while reading last.pt")
    cfg = setup_config(
        resume.cfg if resume else cfg, run=run, resume=resume, rank=rank, console=console, command=command
    )
    recipe = Recipe.of(cfg.trainer)
    device, channels_last, precision = setup_device(
        recipe, device_name=cfg.device.name, input_shape=cfg.dataset.input_shape, local_rank=rank.local
    )
    # model init and dropout; the data order has its own generator
    seed_all(cfg.seed)
    # a resumed run's weights are last.pt's, a run's with init_from= that file's: no pretrained ones for either
    init_from = None if resume else cfg.get("init_from")
    model, init = setup_model(
        cfg.model,
        cfg.dataset,
        device=device,
        channels_last=channels_last,
        console=console,
        pretrained=not (resume or init_from),
        init_from=init_from,
    )
    stop.check("while the model was built")
    with console.relay_warnings():
        data, samples, card, baselines = setup_data(
            cfg.dataset,
            recipe,
            seed=cfg.seed,
            config=plain(cfg),
            device=device,
            channels_last=channels_last,
            rank=rank,
            console=console,
        )
    tell_init_preprocessing(init, card, console=console)
    stop.check("while the data was loaded")
    optimizer, schedule = setup_optimization(
        cfg.optimizer, cfg.scheduler, model, recipe=recipe, batches=len(data.train)
    )
    check_validation(recipe, val_samples=samples["val"])
    monitor = Monitor.of(recipe, cfg.dataset.task, validated=samples["val"] > 0)
    state = setup_state(
        model,
        optimizer,
        schedule,
        recipe=recipe,
        monitor=monitor,
        precision=precision,
        order=data.train.indices,
        config=plain(cfg),
        resume=resume,
    )
    freezer = setup_freezing(model, recipe, world=rank.world, epoch=state.epoch + 1, console=console)
    # copied before DDP wraps the model (its BatchNorm becomes a synchronised one, which a meta copy cannot run),
    # counted after training
    flops = count_later(model, cfg.dataset.input_shape, cfg.dataset.task)
    net = setup_net(model, device=device, compile=recipe.compile)
    stop.check("during setup")
    return Job(
        cfg=cfg,
        recipe=recipe,
        task=TASKS[cfg.dataset.task],
        device=device,
        precision=precision,
        channels_last=channels_last,
        monitor=monitor,
        data=data,
        samples=samples,
        state=state,
        net=net,
        card=card,
        init=init,
        freezer=freezer,
        baselines=baselines,
        flops=flops,
        pruner=pruner,
    )


def setup_config(
    cfg: DictConfig, *, run: RunDir, resume: Resume | None, rank: Rank, console: RunConsole, command: str
) -> DictConfig:
    """The config checked, with pretrained weights' preprocessing in place of the data's (recorded in a fresh run's
    .hydra/config.yaml: what its eval, predict and export read); the job's first lines printed."""
    check_config(cfg)
    cfg, weights_note = with_weights_preprocessing(cfg)
    if weights_note and run.fresh:
        run.record_config(cfg)
    check_loggers(cfg.get("logger"))
    verb = resume.resuming_from if resume else "->"
    # resnet18, not torchvision_model
    model_name = cfg.model.get("name") or cfg.model._target_.rsplit(".", 1)[-1]
    console.print(f"[bold]runner {command}[/]  {cfg.dataset.name} x {model_name}  {verb}  {run.path}")
    for key, (old, new) in (resume.changes if resume else {}).items():
        console.print(f"resume: {key} {old} -> {new}")
    saved_world = resume.saved_world if resume else rank.world
    # allowed: the batch is global, one permutation, so the data order is the same
    if saved_world != rank.world:
        console.print(
            f"resume: processes {saved_world} -> {rank.world}: the same batches in the same order and the same "
            f"global-batch steps (gradients summed in another order, so equal to float rounding); every process "
            f"draws its dropout from rank 0's saved random state (docs/scale-out.md)"
        )
    console.detail(config_tree(OmegaConf.to_container(cfg, resolve=True)))
    if weights_note:
        console.print(weights_note)
    return cfg


def setup_device(
    recipe: Recipe, *, device_name: str, input_shape: Sequence[int], local_rank: int = 0, compiling: bool | None = None
) -> tuple[torch.device, bool, Precision]:
    """(the device, whether inputs are channels-last, the precision), torch's threads and determinism set, and its
    compiler a stand-in unless the job compiles (`compiling`, else trainer.compile). `runner eval` runs this too, so
    an evaluation runs the way its training did."""
    compiling = recipe.compile if compiling is None else compiling
    compiler.prepare(compiling=compiling)
    configure_torch(num_threads=recipe.num_threads, deterministic=recipe.deterministic, compiling=compiling)
    device = resolve_device(device_name, local_rank)
    channels_last = use_channels_last(recipe.channels_last, input_shape, device)
    return device, channels_last, Precision.of(recipe.precision, device)


def setup_model(
    model_cfg: DictConfig,
    dataset_cfg: DictConfig,
    *,
    device: torch.device,
    channels_last: bool,
    console: RunConsole,
    pretrained: bool = True,
    init_from: str | None = None,
) -> tuple[torch.nn.Module, Init | None]:
    """(the model on its device, checked against a dummy batch of the dataset's shape; what init_from= loaded into
    it, or None). `pretrained` False leaves out its pretrained weights (a resume loads last.pt's)."""
    model = build_model(model_cfg, pretrained=pretrained).to(device)
    layers = summarize(model, dataset_cfg.input_shape, num_outputs=dataset_cfg.num_classes, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.detail(model_table(model_cfg._target_, layers, params, trainable))
    # models/pretrained.py's record of what it loaded
    pretrained_from = getattr(model, "pretrained_from", None)
    if pretrained_from is not None:
        console.print(pretrained_line(pretrained_from), soft_wrap=True)
    if not init_from:
        return model, None
    from runner.training.init_from import load_init

    init = load_init(model, init_from, task=dataset_cfg.task, num_classes=dataset_cfg.num_classes)
    for line in init.lines():
        # soft-wrapped: a path to copy
        console.print(line, soft_wrap=True)
    return model, init


def pretrained_line(record: dict) -> str:
    """What a pretrained model's factory loaded (models/pretrained.py's record), in one line."""
    file = f" from {record['file']} (sha256 {record['sha256'][:12]})" if record["file"] else ""
    fresh = record["reinitialised"]
    return f"pretrained: {record['weights']}: {record['kept']} tensors loaded{file}" + (
        f"; re-initialised (the output layer's size changed): {', '.join(fresh)}" if fresh else ""
    )


def tell_init_preprocessing(init: Init | None, card: ModelCard, *, console: RunConsole) -> None:
    """Where init_from='s weights learned on other preprocessing than this run's data (training/init_from.py)."""
    if init is None:
        return
    from runner.training.init_from import preprocessing_note

    note = preprocessing_note(init, card)
    if note:
        console.print(note, soft_wrap=True)


def check_validation(recipe: Recipe, *, val_samples: int) -> None:
    """A run without a validation split (dataset.val_fraction=0) refuses what would choose by one: a val_ monitor,
    early stopping, the k best checkpoints and their average; with trainer.monitor=train_loss they choose by the
    epoch's training loss. A tuned decision threshold needs one whatever the monitor."""
    if not val_samples and recipe.threshold == "tuned":
        raise RunnerError(
            "trainer.threshold=tuned picks class 1's threshold by the best F1 on the validation split, and there is "
            "none (dataset.val_fraction=0). Set dataset.val_fraction=0.1, or a fixed threshold (trainer.threshold=0.5)."
        )
    if val_samples or recipe.monitor == "train_loss":
        return
    # (the setting, whether the run has it, the override that turns it off)
    needs = [
        (f"trainer.monitor={recipe.monitor}", recipe.monitor is not None, "trainer.monitor=null"),
        (
            f"trainer.early_stopping.patience={recipe.patience}",
            recipe.patience is not None,
            "trainer.early_stopping.patience=null",
        ),
        (f"trainer.save_top_k={recipe.save_top_k}", recipe.save_top_k != 1, "trainer.save_top_k=1"),
        ("trainer.average_top_k=true", recipe.average_top_k, "trainer.average_top_k=false"),
    ]
    for knob, asked, off in needs:
        if asked:
            raise RunnerError(
                f"{knob} chooses epochs by the monitored validation metric, and there is no validation split to "
                f"monitor (dataset.val_fraction=0). Set dataset.val_fraction=0.1 or trainer.monitor=train_loss (the "
                f"epoch's training loss), or turn it off ({off})."
            )


def setup_optimization(
    optimizer_cfg: DictConfig, scheduler_cfg: DictConfig, model: torch.nn.Module, *, recipe: Recipe, batches: int
) -> tuple[torch.optim.Optimizer, Schedule | None]:
    """The optimizer of `model`'s parameter groups and its learning-rate schedule, laid out over the run's epochs of
    `batches` training batches (their optimizer steps: trainer.accumulate_grad_batches) and trainer.max_steps."""
    optimizer = build_optimizer(optimizer_cfg, model)
    steps = steps_per_epoch(batches, recipe.accumulate_grad_batches)
    schedule = build_schedule(
        scheduler_cfg, optimizer, steps_per_epoch=steps, epochs=recipe.epochs, max_steps=recipe.max_steps
    )
    return optimizer, schedule


def setup_state(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    schedule: Schedule | None,
    *,
    recipe: Recipe,
    monitor: Monitor,
    precision: Precision,
    order: BatchIndices,
    config: dict,
    resume: Resume | None,
) -> TrainState:
    """Everything a stop must save (training/state.py), with trainer.ema.decay's average and the checkpoints kept; for
    a resume, last.pt's weights, optimizer, schedule, counters, every RNG and the data order, then the overrides."""
    ema = ema_model(model, recipe.ema_decay, recipe.ema_warmup) if recipe.ema_decay else None
    state = TrainState(
        model=model,
        optimizer=optimizer,
        schedule=schedule,
        scaler=precision.scaler,
        order=order,
        config=config,
        ema=ema,
        kept=setup_kept(recipe, monitor),
    )
    if resume:
        resume.restore(state)
    return state


def setup_kept(recipe: Recipe, monitor: Monitor) -> Kept | None:
    """The checkpoints kept beside last.pt and best.pt (training/checkpoints.Kept), or None when only those two are."""
    if recipe.save_top_k == 1 and not recipe.every_n_epochs and not recipe.every_n_steps:
        return None
    from runner.training.checkpoints import Kept

    return Kept(recipe, monitor)


def setup_freezing(
    model: torch.nn.Module, recipe: Recipe, *, world: int, epoch: int, console: RunConsole
) -> Freezer | None:
    """trainer.freeze's Freezer (training/freezing.py) set for `epoch`, the first the job trains, or None. Set before
    DDP wraps the model, which leaves out what does not train; that is also why unfreezing is refused under torchrun
    (the freeze alone is the Recipe's own check)."""
    if recipe.unfreeze_at_epoch is not None and world > 1:
        raise RunnerError(
            "trainer.unfreeze_at_epoch under torchrun: DDP synchronises only the parameters that trained when it "
            "wrapped the model, so unfrozen ones would drift apart between processes. Freeze for the whole run "
            "(drop unfreeze_at_epoch) or unfreeze on one process."
        )
    if not recipe.freeze:
        return None
    from runner.training.freezing import Freezer

    freezer = Freezer(model, recipe.freeze, recipe.unfreeze_at_epoch)
    freezer.at(epoch)
    console.print(freezer.line())
    if recipe.unfreeze_at_epoch is not None and recipe.unfreeze_at_epoch > recipe.epochs:
        console.print(
            f"trainer.unfreeze_at_epoch={recipe.unfreeze_at_epoch} comes after the run's last epoch "
            f"(trainer.epochs={recipe.epochs}): it ends frozen, unless a resume gives it more epochs."
        )
    return freezer


def setup_net(model: torch.nn.Module, *, device: torch.device, compile: bool) -> torch.nn.Module:
    """What runs the model: DDP around it under torchrun, compiled with trainer.compile, else the model itself."""
    net = distributed.wrap(model, device)
    return cast("torch.nn.Module", torch.compile(net)) if compile else net
