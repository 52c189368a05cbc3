"""A training job's data, as its setup builds it (training/setup.py): each split's batches, this process's share of
each, with trainer.overfit_batches' fixed batches and trainer.limit_*_batches' limits; the model card that turns a raw
input into the model's; a table's scikit-learn baselines.

    runner train trainer.limit_train_batches=0.25      # a quarter of each epoch's batches
    runner train trainer.overfit_batches=4             # the same 4 batches every epoch: can the model fit them?
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from runner.data.batches import describe_augment, train_transform
from runner.data.splits import Split
from runner.inference.card import ModelCard
from runner.io.errors import RunnerError
from runner.training.build import build_data, make_batches, target_scale, target_scale_std
from runner.training.loop import Data
from runner.training.metrics import target_mean
from runner.training.recipe import Recipe, batches_of

if TYPE_CHECKING:
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
) -> tuple[Data, dict, ModelCard, dict | None]:
    """(the batches of each split, their sizes, the model card: the preprocessing a raw input needs, a table's
    scikit-learn baselines or None); printed: what the data was found to be, and the augmentation. `config` is the
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
    features = isinstance(splits.train, Split) and splits.train.x.dim() == 2
    # what scikit-learn makes of the same split
    if dataset_cfg.get("baselines") and features and rank.main:
        from runner.data.baselines import baselines as fit_baselines

        baselines = fit_baselines(splits, dataset_cfg.task, seed=seed)
    data = Data(
        train=train,
        val=val,
        test=test,
        num_classes=dataset_cfg.num_classes,
        target_std=target_scale_std(splits, device),
        target_mean=target_mean(splits, device),
        limits=limits,
    )
    return data, samples, card, baselines


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
        batches.indices.limit = batches_of(value, full, f"limit_{name}_batches")
        if value is not None:
            limits[name] = {"batches": len(batches), "of": full}
    if not limits:
        return limits
    parts = ", ".join(f"{name} {n['batches']} of {n['of']}" for name, n in limits.items())
    knob = "trainer.fast_dev_run" if recipe.fast_dev_run else "trainer.limit_*_batches"
    console.print(f"batches per pass: {parts} ({knob})")
    return limits
