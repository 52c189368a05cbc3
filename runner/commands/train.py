"""`runner train`: build the parts a config names, train, checkpoint, test the best weights.

    runner train                                   # cnn on digits, the default
    runner train model=mlp dataset=sum_pairs       # the tutorials' regression
    runner train -m optimizer.lr=0.1,0.01,0.001    # one run directory per job
    runner train resume=outputs/2026-11-22/10-31-07 # continue a stopped run (runner/run/resume.py)

A job reads as a recipe: claim the run directory (runner/run/rundir.py), set up, start, fit
(runner/training/loop.py), finish (runner/training/finish.py). Setup checks and builds everything
before the directory is written: the config, the device, the model against a dummy batch (before
any data is loaded), the data, and for a resume the checkpoint, so a job that cannot run changes
nothing.
"""

import torch
from omegaconf import OmegaConf

from runner.config.checks import check_config
from runner.data.batches import describe_augment, train_transform
from runner.data.splits import Split
from runner.inference.card import ModelCard
from runner.io.console import RunConsole, config_tree, model_table
from runner.io.environment import environment
from runner.io.errors import RunnerError
from runner.io.signals import job_stop
from runner.loggers import check_loggers
from runner.run.resume import plan_resume
from runner.run.rundir import RunDir
from runner.training import compiler, distributed
from runner.training.build import (
    build_data,
    build_model,
    build_optimizer,
    make_batches,
    plain,
    summarize,
    target_scale,
    target_scale_std,
    with_weights_preprocessing,
)
from runner.training.device import (
    Precision,
    configure_torch,
    resolve_device,
    use_channels_last,
)
from runner.training.finish import finish
from runner.training.flops import flops_per_sample
from runner.training.loop import Data, Job, fit
from runner.training.metrics import TASKS
from runner.training.profiling import profiling
from runner.training.recipe import Monitor, Recipe, batches_of
from runner.training.schedules import build_schedule, steps_per_epoch
from runner.training.state import TrainState, ema_model, seed_all


def train_job(cfg, run_dir, overrides=(), provenance=None, continue_with=None, report=None):
    """Run (or resume) one training job in `run_dir` (Hydra's output directory) and return its summary.

    Under torchrun every process runs this, with rank 0's `run_dir`; only rank 0 writes.
    `overrides` are the command line's (applied on top of a resumed run's own config);
    `provenance` is the .hydra/ a fresh run records (rundir.provenance); `continue_with` is the
    command an interrupted run tells the user to continue it with (a sweep's, in a sweep); `report` is an Optuna
    trial's pruning callback (training/loop.fit).
    """
    rank = distributed.current()
    console = RunConsole(quiet=not rank.main)
    claim = dict(resume=bool(cfg.get("resume")), write=rank.main, provenance=provenance, continue_with=continue_with)
    # every warning raised in the job (torch's too) goes to train.log as well as the terminal
    with job_stop() as own_stop, RunDir.claim(run_dir, console, **claim) as run, console.relay_warnings():
        stop = distributed.agreed(own_stop)  # under torchrun or SLURM: every rank stops at the same safe point
        job = setup(cfg, run, overrides=overrides, console=console, rank=rank, stop=stop)
        where = (
            "environment" if run.fresh else "resumed_environment"
        )  # a resume keeps the first environment beside its own
        run.start(
            job.state.epoch, **describe(job, rank), **{where: environment(job.device)}
        )  # continues from: 0 for a fresh run
        run.save_model_card(job.card)
        if job.recipe.fast_dev_run:  # Lightning's rule: a quick check feeds no tracker
            console.print(fast_dev_run_line(job, run))
        else:
            run.open_loggers(job.cfg.get("logger"), job.state.step)
        setup_s = run.elapsed()
        with distributed.peers_lost_as_interrupted():  # a process of the job died: interrupted, for a restart
            with profiling(job, run, console):  # trainer.profile: a window of steps, outside the loop
                first_step_at = fit(job, run, console, stop, report=report)
            return finish(job, run, console=console, setup_s=setup_s, first_step_at=first_step_at, stop=stop)


def setup(cfg, run, *, overrides, console, rank, stop, command="train"):
    """Check and build everything; for a resume, load last.pt. Writes nothing.

    `stop` (io.signals.StopSignals) is looked at between the phases: a signal during setup stops the job
    before it writes anything. `command` names the job in its first line (`runner lr-find` builds the same setup)."""
    stop.check("before the job started")
    resume = None if run.fresh else plan_resume(cfg, run.last, status=run.summary.get("status"), overrides=overrides)
    stop.check("while reading last.pt")
    cfg = resume.cfg if resume else cfg
    check_config(cfg)
    cfg, weights_note = with_weights_preprocessing(cfg)  # pretrained weights: their preprocessing, not the data's
    if weights_note and run.fresh:
        run.record_config(cfg)  # .hydra/config.yaml: what the run reads, for its eval, predict and export
    check_loggers(cfg.get("logger"))
    task = TASKS[cfg.dataset.task]
    verb = resuming_from(resume.checkpoint) if resume else "->"
    model_name = cfg.model.get("name") or cfg.model._target_.rsplit(".", 1)[-1]  # resnet18, not torchvision_model
    console.print(f"[bold]runner {command}[/]  {cfg.dataset.name} x {model_name}  {verb}  {run.path}")
    for key, (old, new) in (resume.changes if resume else {}).items():
        console.print(f"resume: {key} {old} -> {new}")
    saved_world = len(resume.checkpoint.get("ranks") or [None]) if resume else rank.world
    if saved_world != rank.world:  # allowed: the batch is global, one permutation, so the data order is the same
        console.print(
            f"resume: processes {saved_world} -> {rank.world}: the same batches in the same order and the same "
            f"global-batch steps (gradients summed in another order, so equal to float rounding); every process "
            f"draws its dropout from rank 0's saved random state (docs/scale-out.md)"
        )
    console.detail(config_tree(OmegaConf.to_container(cfg, resolve=True)))
    if weights_note:
        console.print(weights_note)

    recipe = Recipe.of(cfg.trainer)
    check_averaging(recipe)
    compiler.prepare(compiling=recipe.compile)  # torch's compiler: a stand-in unless the run compiles
    configure_torch(num_threads=recipe.num_threads, deterministic=recipe.deterministic, compiling=recipe.compile)
    device = resolve_device(cfg.device.name, rank.local)
    channels_last = use_channels_last(recipe.channels_last, cfg.dataset.input_shape, device)
    precision = Precision.of(recipe.precision, device)
    seed_all(cfg.seed)  # model init and dropout; the data order has its own generator
    # before the data: a model that does not fit it fails fast
    start_from = not resume and cfg.get("init_from")  # the weights come from last.pt or init_from, not pretrained ones
    model = setup_model(
        cfg.model,
        cfg.dataset,
        device=device,
        channels_last=channels_last,
        console=console,
        pretrained=not (resume or start_from),
    )
    if hasattr(model, "pretrained_from"):  # models/pretrained.py
        console.print(pretrained_line(model.pretrained_from), soft_wrap=True)
    init = None
    if start_from:  # a resumed run's weights are last.pt's
        from runner.training.init_from import load_init

        init = load_init(model, cfg.init_from, task=cfg.dataset.task, num_classes=cfg.dataset.num_classes)
        for line in init.lines():
            console.print(line, soft_wrap=True)  # a path to copy
    stop.check("while the model was built")
    with console.relay_warnings():
        data, samples, card, scores = setup_data(
            cfg, recipe, device=device, channels_last=channels_last, rank=rank, console=console
        )
    if init:
        from runner.training.init_from import preprocessing_note

        note = preprocessing_note(init, card)
        if note:
            console.print(note, soft_wrap=True)
    stop.check("while the data was loaded")
    optimizer = build_optimizer(cfg.optimizer, model)
    steps = steps_per_epoch(len(data.train), recipe.accumulate_grad_batches)
    schedule = build_schedule(
        cfg.scheduler, optimizer, steps_per_epoch=steps, epochs=recipe.epochs, max_steps=recipe.max_steps
    )
    ema = None
    if recipe.ema_decay:
        ema = ema_model(model, recipe.ema_decay, recipe.ema_warmup)
    monitor = Monitor.of(recipe, cfg.dataset.task)
    state = TrainState(
        model,
        optimizer,
        scheduler=schedule,
        scaler=precision.scaler,
        batches=data.train.indices,
        config=plain(cfg),
        ema=ema,
        kept=setup_kept(recipe, monitor),
    )
    if resume:
        resume.restore(state)  # weights, optimizer, scheduler, counters, every RNG, the data order; then the overrides
    freezer = setup_freezing(model, recipe, rank)
    if freezer is not None:
        freezer.at(state.epoch + 1)  # before DDP wraps the model: it leaves out what does not train
        console.print(freezer.line())
        if recipe.unfreeze_at_epoch is not None and recipe.unfreeze_at_epoch > recipe.epochs:
            console.print(
                f"trainer.unfreeze_at_epoch={recipe.unfreeze_at_epoch} comes after the run's last epoch "
                f"(trainer.epochs={recipe.epochs}): it ends frozen, unless a resume gives it more epochs."
            )
    # counted before DDP wraps the model: its BatchNorm becomes a synchronised one, which a meta copy cannot run
    flops = flops_per_sample(model, cfg.dataset.input_shape, cfg.dataset.task)
    net = distributed.wrap(model, device)
    net = torch.compile(net) if recipe.compile else net
    stop.check("during setup")
    return Job(
        cfg=cfg,
        recipe=recipe,
        task=task,
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
        baselines=scores,
        flops=flops,
    )


def resuming_from(checkpoint):
    """Where a resume continues, in the words of the stop that saved `checkpoint` ("stopped by SIGTERM in epoch 2
    after step 234"): its "epoch" counts finished epochs, "batch" the batches done in the one under way."""
    epoch, step = checkpoint["epoch"], checkpoint["step"]
    if checkpoint.get("batch"):
        return f"resuming in epoch {epoch + 1} after step {step}"
    return f"resuming after epoch {epoch}, step {step}"


def check_averaging(recipe):
    """trainer.average_top_k needs more than one kept checkpoint to average; save_total_limit caps the periodic ones,
    which every_n_epochs or every_n_steps make; the two quick checks are one or the other."""
    if recipe.save_total_limit and not (recipe.every_n_epochs or recipe.every_n_steps):
        raise RunnerError(
            f"trainer.save_total_limit={recipe.save_total_limit} caps the periodic checkpoints, and there are none: "
            f"set trainer.every_n_epochs=5 or trainer.every_n_steps=500 with it, or drop it."
        )
    if recipe.fast_dev_run and recipe.overfit_batches:
        raise RunnerError(
            "trainer.fast_dev_run and trainer.overfit_batches are two different checks (one epoch of every split; many "
            "epochs of the same batches). Run one, then the other."
        )
    if recipe.average_top_k and recipe.save_top_k == 1:
        raise RunnerError(
            "trainer.average_top_k averages the checkpoints trainer.save_top_k keeps, and save_top_k=1 keeps one (the "
            "average of one checkpoint is that checkpoint). Start the run with trainer.save_top_k=3 (a resume keeps "
            "its run's k), or drop trainer.average_top_k."
        )


def setup_kept(recipe, monitor):
    """The checkpoints kept beside last.pt and best.pt (training/checkpoints.Kept), or None when only those two are."""
    if recipe.save_top_k == 1 and not recipe.every_n_epochs and not recipe.every_n_steps:
        return None
    from runner.training.checkpoints import Kept

    return Kept(recipe, monitor)


def pretrained_line(record):
    """What a pretrained model's factory loaded (models/pretrained.py's record), in one line."""
    file = f" from {record['file']} (sha256 {record['sha256'][:12]})" if record["file"] else ""
    fresh = record["reinitialised"]
    return f"pretrained: {record['weights']}: {record['kept']} tensors loaded{file}" + (
        f"; re-initialised (the output layer's size changed): {', '.join(fresh)}" if fresh else ""
    )


def setup_freezing(model, recipe, rank):
    """trainer.freeze's Freezer (training/freezing.py), or None; refuses what it cannot do honestly."""
    if recipe.unfreeze_at_epoch is not None and not recipe.freeze:
        raise RunnerError(
            f"trainer.unfreeze_at_epoch={recipe.unfreeze_at_epoch} unfreezes nothing: trainer.freeze is empty. Give "
            f"the parameters to freeze until then, e.g. 'trainer.freeze=[features]', or drop it."
        )
    if recipe.unfreeze_at_epoch is not None and rank.world > 1:
        raise RunnerError(
            "trainer.unfreeze_at_epoch under torchrun: DDP synchronises only the parameters that trained when it "
            "wrapped the model, so unfrozen ones would drift apart between processes. Freeze for the whole run "
            "(drop unfreeze_at_epoch) or unfreeze on one process."
        )
    if not recipe.freeze:
        return None
    from runner.training.freezing import Freezer

    return Freezer(model, recipe.freeze, recipe.unfreeze_at_epoch)


def setup_model(model_cfg, dataset_cfg, *, device, channels_last, console, pretrained=True):
    """The model on its device, checked against a dummy batch of the dataset's shape; `pretrained` False leaves out
    its pretrained weights (a resume loads last.pt's)."""
    model = build_model(model_cfg, pretrained=pretrained).to(device)
    layers = summarize(model, dataset_cfg.input_shape, num_outputs=dataset_cfg.num_classes, device=device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    params = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    console.detail(model_table(model_cfg._target_, layers, params, trainable))
    return model


def setup_data(cfg, recipe, *, device, channels_last, rank, console):
    """(the batches of each split, their sizes, the model card: the preprocessing a raw input needs); printed: what
    the data was found to be, and the augmentation."""
    dataset_cfg, seed = cfg.dataset, cfg.seed
    if recipe.batch_size % rank.world or recipe.eval_batch_size % rank.world:
        raise RunnerError(
            f"trainer.batch_size={recipe.batch_size} and trainer.eval_batch_size={recipe.eval_batch_size} are global "
            f"batch sizes and must divide evenly among the {rank.world} processes. Use multiples of {rank.world}."
        )
    splits, normalize = build_data(dataset_cfg, device)
    if dataset_cfg.task == "regression" and isinstance(splits.train, Split):
        target_scale(splits.train.y, dataset_cfg.name)  # training advice: said by train, not by eval or predict
    normalize.channels_last = channels_last
    if recipe.batch_size > len(splits.train):
        raise RunnerError(
            f"trainer.batch_size={recipe.batch_size} is larger than the training split of {dataset_cfg.name} "
            f"({len(splits.train)} samples), so an epoch would have no full batch. Use "
            f"trainer.batch_size={len(splits.train)} or less."
        )
    for note in splits.notes:
        console.print(note)
    console.print(describe_augment(dataset_cfg.get("augment")))
    generator = torch.Generator().manual_seed(seed)  # data order and augmentation, apart from the model's RNG
    shard = dict(rank=rank.rank, world=rank.world)  # under torchrun, each process takes its share of every batch
    transform = train_transform(dataset_cfg.get("augment"), normalize, generator, **shard)
    train_split, shuffle = splits.train, True
    if recipe.overfit_batches:  # the same batches every epoch, unaugmented: can the model fit them at all?
        n = batches_of(recipe.overfit_batches, len(splits.train) // recipe.batch_size, "overfit_batches")
        fixed = torch.randperm(len(splits.train), generator=torch.Generator().manual_seed(seed))
        train_split, shuffle, transform = splits.train.subset(fixed[: n * recipe.batch_size]), False, normalize
    train = make_batches(
        train_split,
        recipe.batch_size,
        transform=transform,
        device=device,
        shuffle=shuffle,
        generator=generator,
        **shard,
    )
    val, test = (
        make_batches(split, recipe.eval_batch_size, transform=normalize, device=device, **shard)
        for split in (splits.val, splits.test)
    )
    limits = {}  # trainer.limit_*_batches (fast_dev_run's too): batches taken of a pass, per split
    for name, batches in (("train", train), ("val", val), ("test", test)):
        value, full = getattr(recipe, f"limit_{name}_batches"), len(batches)
        batches.indices.limit = batches_of(value, full, f"limit_{name}_batches")
        if value is not None:
            limits[name] = {"batches": len(batches), "of": full}
    if limits:
        parts = ", ".join(f"{name} {n['batches']} of {n['of']}" for name, n in limits.items())
        knob = "trainer.fast_dev_run" if recipe.fast_dev_run else "trainer.limit_*_batches"
        console.print(f"batches per pass: {parts} ({knob})")
    samples = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    dtype = splits.train.x.dtype if isinstance(splits.train, Split) else torch.uint8  # streamed files decode to uint8
    card = ModelCard.of(
        plain(cfg),
        normalize,
        input_dtype=dtype,
        class_names=splits.class_names,
        feature_names=splits.feature_names,
        channels_last=channels_last,
        table=splits.table,
        target_scale=splits.target_scale,
    )
    scores = None
    features = isinstance(splits.train, Split) and splits.train.x.dim() == 2
    if dataset_cfg.get("baselines") and features and rank.main:  # what scikit-learn makes of the same split
        from runner.data.baselines import baselines

        scores = baselines(splits, dataset_cfg.task, seed=seed)
    target_std = target_scale_std(splits, device)
    return Data(train, val, test, dataset_cfg.num_classes, target_std, limits), samples, card, scores


def fast_dev_run_line(job, run):
    """What trainer.fast_dev_run does, and where its files are, in a line."""
    n = job.recipe.limit_train_batches  # fast_dev_run's N
    return (
        f"fast_dev_run: at most {n} batch{'es' * (n > 1)} of train, val and test, one epoch, no logger; a check of the "
        f"setup, not a result (runner report leaves it out); its files: {run.path}"
    )


def describe(job, rank):
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
    )
