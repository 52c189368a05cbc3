"""runner's OmegaConf resolvers, registered before Hydra composes a config (and before a saved one is read).

    hydra.run.dir: ${unique_dir:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}   # -1, -2, ... on a collision
    num_classes: ${count_classes:${dataset.root}}                         # imagefolder: one class per folder

Nothing here imports torch until a resolver runs, so `runner train --help` stays fast.
"""

from runner.io.files import unique_dir


def _count_classes(root):
    from runner.data.imagefolder import count_classes

    return count_classes(root)


def _spatial_dims(shape):
    """The dimensions after the channels: 2 for images (C, H, W), 1 for signals (C, L)."""
    return len(shape) - 1


def register_resolvers():
    from omegaconf import OmegaConf

    # use_cache: resolved once per config, and Hydra copies the cache to every sweep job.
    OmegaConf.register_new_resolver("unique_dir", unique_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("count_classes", _count_classes, replace=True)
    OmegaConf.register_new_resolver("spatial_dims", _spatial_dims, replace=True)
