"""runner's OmegaConf resolvers, registered before Hydra composes a config (and before a saved one is read).

    hydra.run.dir: ${unique_dir:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}   # -1, -2, ... on a collision
    hydra.run.dir: outputs/${run_folder:${hydra.job.name},${trainer.fast_dev_run}}...   # outputs/lr_find/...
    num_classes: ${count_classes:${dataset.root}}                         # imagefolder: one class per folder
    input_shape: [${image_shape:${..root},0}, ...]                        # imagefolder: the images' own shape

Nothing here imports torch until a resolver runs, so `runner train --help` stays fast.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from runner.data.kinds import Resolver, load, resolvers
from runner.io.files import unique_dir


def dataset_resolver(resolver: Resolver) -> Callable[..., Any]:
    """The function OmegaConf calls for a dataset kind's `resolver` (data/kinds.py), importing the kind's module only
    when it runs. One of the dataset node (${table:task}) is handed the whole config or the dataset node alone (a
    copy of it passed to the dataset function); OmegaConf hands `_root_` by the parameter's name."""
    if resolver.of_dataset:

        def of_dataset(what: str, _root_: Any) -> Any:
            return load(resolver.function)(what, _root_.dataset if "dataset" in _root_ else _root_)

        return of_dataset

    def of_arguments(*args: Any) -> Any:
        return load(resolver.function)(*args)

    return of_arguments


def _run_folder(job_name: str, fast_dev_run: Any) -> str:
    """The folder under outputs/ of a job of train.yaml's config: `runner lr-find`'s (job name lr_find) and
    trainer.fast_dev_run's have their own, so that neither is taken for a training result; "" for a training run.
    (lr_find.yaml sets the job name only: a config that overrode this resolver's key would have Hydra's merge resolve
    train.yaml's value too, and make its folder.)"""
    if job_name == "lr_find":
        return "lr_find/"
    return "fast_dev_run/" if fast_dev_run not in (False, None, 0) else ""


def _spatial_dims(shape: list[int]) -> int:
    """The dimensions after the channels: 2 for images (C, H, W), 1 for signals (C, L)."""
    return len(shape) - 1


def register_resolvers() -> None:
    from omegaconf import OmegaConf

    # use_cache: resolved once per config, and Hydra copies the cache to every sweep job.
    OmegaConf.register_new_resolver("unique_dir", unique_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("run_folder", _run_folder, replace=True)
    OmegaConf.register_new_resolver("spatial_dims", _spatial_dims, replace=True)
    for name, resolver in resolvers().items():
        OmegaConf.register_new_resolver(name, dataset_resolver(resolver), use_cache=resolver.cached, replace=True)
