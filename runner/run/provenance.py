"""What a fresh run records of how it was made: .hydra/ as Hydra writes it, with what the data was found to be.

    outputs/2026-11-22/10-31-07/.hydra/{config,hydra,overrides}.yaml

RunDir (run/rundir.py) writes them when the run first writes anything, never before its claim has checked the
directory; eval, predict and export read the run's config.yaml back.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, cast

from omegaconf import OmegaConf

from runner.data.kinds import found_keys

if TYPE_CHECKING:
    from omegaconf import DictConfig

__all__ = ["found_data", "provenance"]


def found_data(cfg: DictConfig) -> DictConfig:
    """`cfg` with what the data was found to be written as values: an image folder's num_classes and input_shape are
    counted and measured by resolvers (${count_classes:...}, ${image_shape:...}), a table's task read from its target
    and its files' SHA-256 (${table:...}, ${arrays:...}): the keys each kind declares found (data/kinds.py). The run's
    eval, predict and export must read what it trained on, not what the folder holds later (or fail where it moved,
    or changed)."""
    recorded = OmegaConf.create(OmegaConf.to_container(cfg))
    from omegaconf.errors import OmegaConfBaseException

    for key in found_keys():
        try:
            value = OmegaConf.select(cfg, f"dataset.{key}")
            value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        # only on a resume's command line (no dataset.root): never written
        except OmegaConfBaseException:
            continue
        if value is not None:
            recorded.dataset[key] = value
    return cast("DictConfig", recorded)


def provenance(cfg: DictConfig, hydra_cfg: DictConfig) -> dict[str, str]:
    """.hydra/ as Hydra writes it (config.yaml, hydra.yaml, overrides.yaml), for RunDir to write itself.

    configs/train.yaml sets hydra.output_subdir to null so that Hydra does not write these
    before runner has checked the directory: in a reused directory they would overwrite a run's own.
    """
    return {
        "config.yaml": OmegaConf.to_yaml(found_data(cfg)),
        "hydra.yaml": OmegaConf.to_yaml(hydra_cfg),
        "overrides.yaml": OmegaConf.to_yaml(hydra_cfg.hydra.overrides.task),
    }
