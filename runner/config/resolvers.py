"""runner's OmegaConf resolvers, registered before Hydra composes a config (and before a saved one is read).

    hydra.run.dir: ${unique_dir:outputs/${now:%Y-%m-%d}/${now:%H-%M-%S}}   # -1, -2, ... on a collision
    hydra.run.dir: outputs/${run_folder:${hydra.job.name},${trainer.fast_dev_run}}...   # outputs/lr_find/...
    num_classes: ${count_classes:${dataset.root}}                         # imagefolder: one class per folder
    input_shape: [${image_shape:${..root},0}, ...]                        # imagefolder: the images' own shape

Nothing here imports torch until a resolver runs, so `runner train --help` stays fast.
"""

from runner.io.files import unique_dir


def _count_classes(root):
    from runner.data.imagefolder import count_classes

    return count_classes(root)


def _image_shape(root, dim):
    """One dimension of an image folder's shape: a list of three resolvers, not one resolver returning a list, as
    model configs index it (${dataset.input_shape[0]}) and OmegaConf cannot index into a resolver's result."""
    from runner.data.imagefolder import image_shape

    return image_shape(root)[dim]


def _table(what, _root_):
    from runner.data.table import table_info

    # the whole config, or the dataset node alone (a copy of it passed to the dataset function)
    return table_info(what, _root_.dataset if "dataset" in _root_ else _root_)


def _arrays(what, _root_):
    from runner.data.arrays import arrays_info

    return arrays_info(what, _root_.dataset if "dataset" in _root_ else _root_)


def _run_folder(job_name, fast_dev_run):
    """The folder under outputs/ of a job of train.yaml's config: `runner lr-find`'s (job name lr_find) and
    trainer.fast_dev_run's have their own, so that neither is taken for a training result; "" for a training run.
    (lr_find.yaml sets the job name only: a config that overrode this resolver's key would have Hydra's merge resolve
    train.yaml's value too, and make its folder.)"""
    if job_name == "lr_find":
        return "lr_find/"
    return "fast_dev_run/" if fast_dev_run not in (False, None, 0) else ""


def _spatial_dims(shape):
    """The dimensions after the channels: 2 for images (C, H, W), 1 for signals (C, L)."""
    return len(shape) - 1


def register_resolvers():
    from omegaconf import OmegaConf

    # use_cache: resolved once per config, and Hydra copies the cache to every sweep job.
    OmegaConf.register_new_resolver("unique_dir", unique_dir, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("count_classes", _count_classes, replace=True)
    # use_cache: resolved once per config, not at every access of input_shape
    OmegaConf.register_new_resolver("image_shape", _image_shape, use_cache=True, replace=True)
    OmegaConf.register_new_resolver("run_folder", _run_folder, replace=True)
    OmegaConf.register_new_resolver("spatial_dims", _spatial_dims, replace=True)
    OmegaConf.register_new_resolver("table", _table, replace=True)
    OmegaConf.register_new_resolver("arrays", _arrays, replace=True)
