"""The dataset kinds that read a user's own files, each declared once: what the rest of runner needs to know of it.

    runner train dataset=csv dataset.path=wine.csv dataset.target=label   # CSV: its files, resolver and reader here
    runner train dataset=arrays dataset.path=data.npz                      # arrays: the same, for .npz, .pt, .npy

A kind is its module (the dataset function), its YAML (configs/dataset/NAME.yaml) and its `DatasetKind` below.
From the declarations come: the OmegaConf resolvers its YAML names (config/resolvers.py), the keys that name its
files (config/command_line.DATA_FILE_KEYS: recorded absolute, moved on a resume, fingerprinted by SHA-256), the
values read from its files that a run records (run/provenance.found_data), the keys the run reads rather than the
dataset function (training/build.PIPELINE_KEYS), and predict's reader of its raw files (data/inputs.read_inputs),
handed the model card's block the kind's Splits filled. tests/test_dataset_kinds.py fails when a YAML and its
declaration disagree.

Nothing here imports more than the standard library: `runner --help` reads DATA_FILE_KEYS.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any


@dataclass(frozen=True)
class Resolver:
    """An OmegaConf resolver a kind's YAML names: `${name:...}`."""

    # the name in the YAML: ${table:task}
    name: str
    # the function, "module:function", imported when the resolver first runs (pandas and torch load there)
    function: str
    # called as function(field, the dataset node) (${table:task}); else with the YAML's own arguments
    # (${count_classes:${.root}})
    of_dataset: bool = True
    # resolved once per config (OmegaConf's use_cache), not at every access of the key
    cached: bool = False


@dataclass(frozen=True)
class DatasetKind:
    """One dataset kind that reads the user's files (dataset=NAME), declared once."""

    # the option of the dataset group (configs/dataset/NAME.yaml) and its dataset.name
    name: str
    # the dataset function, as the YAML's _target_ names it
    target: str
    # keys of dataset that name its files, in the order their SHA-256 is recorded (dataset.sha256)
    file_keys: tuple[str, ...]
    # the resolvers its YAML names
    resolvers: tuple[Resolver, ...]
    # keys whose values are read from its files by those resolvers, written as values in the run's config
    found: tuple[str, ...]
    # keys the run reads (not passed to the dataset function)
    pipeline_keys: tuple[str, ...] = ()
    # the suffixes of raw files `runner predict input=` reads in this kind's format, and the reader
    # ("module:function", called as reader(path, wanted: data.inputs.Wanted))
    predict_suffixes: tuple[str, ...] = ()
    predict_reader: str | None = None
    # the model card's preprocessing block its Splits fill (Splits.table: a table's encoding), which predict's
    # reader is handed back; None when it fills none
    card_block: str | None = None

    def files(self, dataset: Any) -> list[str | None]:
        """The values of its file keys in `dataset` (a config node or the dataset function's keywords), in order."""
        return [dataset.get(key) for key in self.file_keys]


CSV = DatasetKind(
    name="csv",
    target="runner.data.table.table",
    file_keys=("path", "train_path", "val_path", "test_path"),
    resolvers=(Resolver("table", "runner.data.table:table_info"),),
    found=("num_classes", "input_shape", "task", "sha256"),
    pipeline_keys=("baselines",),
    predict_suffixes=(".csv", ".parquet", ".pq"),
    predict_reader="runner.data.inputs:table_rows",
    card_block="table",
)
# the same table read through pyarrow (configs/dataset/parquet.yaml extends csv.yaml)
PARQUET = replace(CSV, name="parquet")
ARRAYS = DatasetKind(
    name="arrays",
    target="runner.data.arrays.arrays",
    file_keys=("path", "target_path"),
    resolvers=(Resolver("arrays", "runner.data.arrays:arrays_info"),),
    found=("num_classes", "input_shape", "task", "sha256"),
    pipeline_keys=("baselines",),
    predict_suffixes=(".npy", ".pt", ".npz"),
    predict_reader="runner.data.inputs:array_rows",
)
IMAGEFOLDER = DatasetKind(
    name="imagefolder",
    target="runner.data.imagefolder.imagefolder",
    # dataset.root, which every dataset with files has (mnist's, cifar10's too), is handled as such
    file_keys=(),
    resolvers=(
        Resolver("count_classes", "runner.data.imagefolder:count_classes", of_dataset=False),
        Resolver("image_shape", "runner.data.imagefolder:image_shape_at", of_dataset=False, cached=True),
    ),
    found=("num_classes", "input_shape"),
    pipeline_keys=("baselines",),
)

KINDS: tuple[DatasetKind, ...] = (CSV, PARQUET, ARRAYS, IMAGEFOLDER)


def kind_named(name: str | None) -> DatasetKind | None:
    """The declaration of dataset=`name`, or None for a dataset that reads no files of the user's own."""
    return next((kind for kind in KINDS if kind.name == name), None)


def data_file_keys() -> tuple[str, ...]:
    """Every kind's file keys (dataset.path, ...), each once, in the order of the declarations."""
    return tuple(dict.fromkeys(f"dataset.{key}" for kind in KINDS for key in kind.file_keys))


def found_keys() -> tuple[str, ...]:
    """The dataset keys any kind reads from its files (num_classes, input_shape, task, sha256), each once."""
    return tuple(dict.fromkeys(key for kind in KINDS for key in kind.found))


def pipeline_keys() -> tuple[str, ...]:
    """The dataset keys any kind has that the run reads, not its dataset function (baselines), each once."""
    return tuple(dict.fromkeys(key for kind in KINDS for key in kind.pipeline_keys))


def resolvers() -> dict[str, Resolver]:
    """Every kind's resolvers by name (a name two kinds share, as csv and parquet do, is one resolver)."""
    return {resolver.name: resolver for kind in KINDS for resolver in kind.resolvers}


def predict_reader(suffix: str) -> Callable[..., Any] | None:
    """The reader of a raw file with `suffix` (lower case, with its dot) that a kind declares, or None."""
    kind = next((kind for kind in KINDS if suffix in kind.predict_suffixes and kind.predict_reader), None)
    return None if kind is None or kind.predict_reader is None else load(kind.predict_reader)


def load(function: str) -> Callable[..., Any]:
    """The function "module:function" names, imported now (the standard library's reader of that form)."""
    return pkgutil.resolve_name(function)
