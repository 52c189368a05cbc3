"""A training job's data, as its setup builds it (training/setup.py): each split's batches, this process's share of
each, with trainer.overfit_batches' fixed batches and trainer.limit_*_batches' limits; the model card that turns a raw
input into the model's; the baselines (data/baselines.py).

    runner train trainer.limit_train_batches=0.25      # a quarter of each epoch's batches
    runner train trainer.overfit_batches=4             # the same 4 batches every epoch: can the model fit them?
"""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING, Any

import torch

from runner.data.batches import describe_augment, train_transform
from runner.data.duplicates import split_digest
from runner.data.splits import Split
from runner.inference.card import ModelCard
from runner.io.errors import RunnerError
from runner.training.build import build_data, make_batches, target_scale, target_scale_std
from runner.training.loop import Data
from runner.training.metrics import target_mean
from runner.training.recipe import Recipe, batches_of

if TYPE_CHECKING:
    from collections.abc import Callable

    from omegaconf import DictConfig

    from runner.data.batches import Batches, Normalizer
    from runner.data.stream import FileSplit, LoaderBatches
    from runner.io.console import RunConsole
    from runner.training.distributed import Rank


def setup_data(
    dataset_cfg: DictConfig,
    recipe: Recipe,
    *,
    seed: int,
    config: dict,
    device: torch.device,
    channels_last: bool,
    rank: Rank,
    console: RunConsole,
) -> tuple[Data, dict, ModelCard, Callable[[], dict] | None]:
    """(the batches of each split, their sizes, the model card: the preprocessing a raw input needs, the baselines
    fitted when first asked: the trivial one and, with dataset.baselines, scikit-learn's; None on the processes of
    torchrun that do not write); printed: what the data was found to be, and the augmentation. `config` is the
    run's resolved config, which the card holds."""
    if recipe.batch_size % rank.world or recipe.eval_batch_size % rank.world:
        raise RunnerError(
            f"trainer.batch_size={recipe.batch_size} and trainer.eval_batch_size={recipe.eval_batch_size} are global "
            f"batch sizes and must divide evenly among the {rank.world} processes. Use multiples of {rank.world}."
        )
    splits, normalize = build_data(dataset_cfg, device)
    if dataset_cfg.task == "regression" and isinstance(splits.train, Split):
        # training advice: said by train, not by eval or predict
        target_scale(splits.train.y, dataset_cfg.name)
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
    # under torchrun, each process takes its share of every batch
    train = train_batches(
        splits.train, dataset_cfg.get("augment"), recipe, normalize, seed=seed, device=device, rank=rank
    )
    val, test = (
        make_batches(
            split, recipe.eval_batch_size, transform=normalize, device=device, rank=rank.rank, world=rank.world
        )
        for split in (splits.val, splits.test)
    )
    limits = limit_batches(recipe, console=console, train=train, val=val, test=test)
    samples = {"train": len(splits.train), "val": len(splits.val), "test": len(splits.test)}
    records: dict[str, Any] = {"validation": validation_size(splits.val, dataset_cfg, console=console)}
    weights, records["class_weights"] = class_weights(recipe, splits.train, dataset_cfg.num_classes, console=console)
    if dataset_cfg.get("sampler"):
        records["sampler"] = balance(train, splits.train, recipe, console=console)
    # the samples two splits share (data/duplicates.py), counted as the splits were built
    records["duplicates"] = splits.duplicates
    # which samples the test split holds: runner report ranks only runs tested on the same ones
    records["test_rows"] = split_digest(splits.test)
    records = {k: v for k, v in records.items() if v is not None}
    # streamed files decode to uint8
    dtype = splits.train.x.dtype if isinstance(splits.train, Split) else torch.uint8
    card = ModelCard.of(
        config,
        normalize,
        input_dtype=dtype,
        class_names=splits.class_names,
        feature_names=splits.feature_names,
        channels_last=channels_last,
        table=splits.table,
        target_scale=splits.target_scale,
    )
    baselines = None
    # what a constant makes of the same split (the trivial baseline, always), and scikit-learn's models where the
    # dataset asks for them (dataset.baselines); fitted when the run's end asks, so that scikit-learn's imports and
    # fits are not on the way to the first step
    if rank.main:
        from runner.data.baselines import baselines as fit_baselines

        models = bool(dataset_cfg.get("baselines"))
        baselines = partial(fit_baselines, splits, dataset_cfg.task, dataset_cfg.num_classes, seed=seed, models=models)
    data = Data(
        train=train,
        val=val,
        test=test,
        num_classes=dataset_cfg.num_classes,
        target_std=target_scale_std(splits, device),
        target_mean=target_mean(splits, device),
        limits=limits,
        class_weights=None if weights is None else weights.to(device),
        records=records,
    )
    return data, samples, card, baselines


def labels_of(split: Split | FileSplit) -> torch.Tensor:
    """A classification split's class indices, (N,) int64 on the CPU."""
    if isinstance(split, Split):
        return split.y.cpu()
    return torch.tensor([label for _, label in split.samples], dtype=torch.int64)


# runner's rule for a validation split too small to choose between epochs (docs/metrics.md, validation)
MIN_VAL_SAMPLES, MIN_VAL_PER_CLASS = 50, 5


def validation_size(val: Split | FileSplit, dataset_cfg: DictConfig, *, console: RunConsole) -> dict:
    """summary.json's `validation`: its samples, and whether it is too small to choose between epochs by runner's
    rule (fewer than 50 samples or, for classification, fewer than 5 of a class), said at setup with the fixes. The
    interval of an accuracy on 7 samples spans half the scale: best.pt picked by it is picked by noise."""
    n = len(val)
    if n == 0:
        console.print(
            "validation: none (dataset.val_fraction=0): nothing chooses between epochs; best.pt is the last epoch "
            "(trainer.monitor=train_loss: the epoch of the lowest training loss), written at each epoch's end"
        )
        return {"samples": 0, "too_small": False}
    reasons = [f"fewer than {MIN_VAL_SAMPLES} samples"] if n < MIN_VAL_SAMPLES else []
    if dataset_cfg.task == "classification":
        counts = torch.bincount(labels_of(val), minlength=dataset_cfg.num_classes).tolist()
        few = [i for i, c in enumerate(counts) if c < MIN_VAL_PER_CLASS]
        if few:
            reasons.append(
                f"{len(few)} of its {len(counts)} classes with fewer than {MIN_VAL_PER_CLASS} (class {few[0]}: "
                f"{counts[few[0]]})"
            )
    if reasons:
        console.print(
            f"validation: {n} samples, too few to choose between epochs ({'; '.join(reasons)}; runner's rule: at "
            f"least {MIN_VAL_SAMPLES} samples and {MIN_VAL_PER_CLASS} of each class), so best.pt may be picked by "
            f"noise. Hold out more (e.g. dataset.val_fraction=0.2), or train without a validation split and keep the "
            f"last epoch (dataset.val_fraction=0), or pick best.pt by the training loss (trainer.monitor=train_loss)"
        )
    return {"samples": n, "too_small": bool(reasons)}


def class_weights(
    recipe: Recipe, train: Split | FileSplit, num_classes: int, *, console: RunConsole
) -> tuple[torch.Tensor | None, dict | None]:
    """(trainer.class_weights as the float32 weight tensor F.cross_entropy takes, summary.json's `class_weights`), or
    (None, None) without it. `balanced` is scikit-learn's n / (k * n_c) over the k classes of the training split
    (sklearn.utils.class_weight.compute_class_weight); a class the training split lacks never occurs in the training
    loss, and gets 0. The training loss is weighted; val_loss and test_loss are not, so they compare across runs."""
    if recipe.class_weights is None:
        return None, None
    if isinstance(recipe.class_weights, str):
        import numpy as np
        from sklearn.utils.class_weight import compute_class_weight

        y = labels_of(train).numpy()
        present = np.unique(y)
        weights = np.zeros(num_classes)
        weights[present] = compute_class_weight("balanced", classes=present, y=y)
        values, rule = weights.tolist(), "balanced: n / (k * n_c) on the training split (scikit-learn)"
    else:
        values, rule = list(recipe.class_weights), "given"
    shown = ", ".join(f"{w:.4g}" for w in values)
    console.print(
        f"class weights (trainer.class_weights, {rule}): [{shown}]; the training loss is weighted by them, val_loss "
        f"and test_loss are not"
    )
    return torch.tensor(values, dtype=torch.float32), {"rule": rule, "weights": values}


def balance(batches: Batches | LoaderBatches, train: Split | FileSplit, recipe: Recipe, *, console: RunConsole) -> str:
    """dataset.sampler=balanced on the training batches: each epoch draws len(train) samples with replacement, a
    sample of class c with weight 1 / n_c (data/batches.BatchIndices.balance), from the shuffling generator;
    summary.json's `sampler`. Refused with trainer.overfit_batches' fixed batches."""
    if recipe.overfit_batches:
        raise RunnerError(
            "dataset.sampler=balanced draws new batches each epoch, and trainer.overfit_batches trains on the same "
            "fixed batches every epoch. Run the overfit check without it (dataset.sampler=null)."
        )
    # in memory or streamed from files alike: both draw their batches' indices from BatchIndices
    batches.indices.balance(labels_of(train))
    console.print(
        "sampler: balanced (dataset.sampler): each epoch draws as many samples as the training split holds, with "
        "replacement, every class equally often (weights 1 / n_c)"
    )
    return "balanced"


def train_batches(
    split: Split | FileSplit,
    augment: DictConfig | None,
    recipe: Recipe,
    normalize: Normalizer,
    *,
    seed: int,
    device: torch.device,
    rank: Rank,
) -> Batches | LoaderBatches:
    """The training split's batches, augmented and shuffled by their own generator (seeded by `seed`, apart from the
    model's RNG); with trainer.overfit_batches the same batches every epoch, unaugmented: can the model fit them at
    all?"""
    generator = torch.Generator().manual_seed(seed)
    transform = train_transform(augment, normalize, generator, rank=rank.rank, world=rank.world)
    shuffle = True
    if recipe.overfit_batches:
        n = batches_of(recipe.overfit_batches, len(split) // recipe.batch_size, "overfit_batches")
        fixed = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed))
        split, shuffle, transform = split.subset(fixed[: n * recipe.batch_size]), False, normalize
    return make_batches(
        split,
        recipe.batch_size,
        transform=transform,
        device=device,
        shuffle=shuffle,
        generator=generator,
        rank=rank.rank,
        world=rank.world,
    )


def limit_batches(recipe: Recipe, *, console: RunConsole, **splits: Batches | LoaderBatches) -> dict:
    """trainer.limit_*_batches (fast_dev_run's too) applied to each split's batches: {split: {"batches": taken,
    "of": a whole pass}} for the splits limited (none: {}), said in a line."""
    limits = {}
    for name, batches in splits.items():
        value, full = getattr(recipe, f"limit_{name}_batches"), len(batches)
        # no validation split (dataset.val_fraction=0): nothing to limit
        if full == 0:
            continue
        batches.indices.limit = batches_of(value, full, f"limit_{name}_batches")
        if value is not None:
            limits[name] = {"batches": len(batches), "of": full}
    if not limits:
        return limits
    parts = ", ".join(f"{name} {n['batches']} of {n['of']}" for name, n in limits.items())
    knob = "trainer.fast_dev_run" if recipe.fast_dev_run else "trainer.limit_*_batches"
    console.print(f"batches per pass: {parts} ({knob})")
    return limits
