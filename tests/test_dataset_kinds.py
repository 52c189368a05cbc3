"""A dataset kind that reads the user's files is declared once (runner/data/kinds.py): its YAML and its declaration
agree, and what the rest of runner reads of it (path keys, the resume table, the recorded values, the pipeline keys,
the resolvers, predict's readers) comes from the declarations. In-process: nothing here trains or reads a file."""

import dataclasses
import inspect
import re
from pathlib import Path

import pytest
from omegaconf import OmegaConf

from runner.data.kinds import (
    ARRAYS,
    CSV,
    KINDS,
    data_file_keys,
    found_keys,
    kind_named,
    load,
    pipeline_keys,
    predict_reader,
    resolvers,
)

DATASETS = Path(__file__).resolve().parent.parent / "configs" / "dataset"
# keys every dataset's YAML may have that the run reads, whatever its kind (training/build.PIPELINE_KEYS' own)
SHARED_PIPELINE_KEYS = ("augment", "normalize", "sampler", "duplicates")


def dataset_yaml(name):
    """configs/dataset/NAME.yaml as Hydra composes it, unresolved: the options its defaults list names, then itself."""
    own = OmegaConf.load(DATASETS / f"{name}.yaml")
    merged = OmegaConf.create()
    for entry in own.get("defaults", []):
        if isinstance(entry, str) and entry != "_self_":
            merged = OmegaConf.merge(merged, dataset_yaml(entry))
    own = OmegaConf.masked_copy(own, [k for k in own if k != "defaults"])
    return OmegaConf.to_container(OmegaConf.merge(merged, own), resolve=False)


def used_resolvers(value):
    """The resolvers `${NAME:...}` a YAML value (a string, or a list of them) names."""
    text = " ".join(map(str, value)) if isinstance(value, list) else str(value)
    return set(re.findall(r"\$\{(\w+):", text))


def disagreements(kind, yaml):
    """What the declaration `kind` says that its YAML (dataset_yaml) does not; [] when they agree."""
    problems = []
    if yaml.get("name") != kind.name:
        problems.append(f"name: the YAML's is {yaml.get('name')}")
    if yaml.get("_target_") != kind.target:
        problems.append(f"target: the YAML's _target_ is {yaml.get('_target_')}")
    paths = [k for k in yaml if k == "path" or k.endswith("_path")]
    if sorted(paths) != sorted(kind.file_keys):
        problems.append(f"file_keys {list(kind.file_keys)}: the YAML's path keys are {paths}")
    declared = {r.name for r in kind.resolvers}
    used = set().union(*(used_resolvers(v) for v in yaml.values())) & set(resolvers())
    if used != declared:
        problems.append(f"resolvers {sorted(declared)}: the YAML names {sorted(used)}")
    found = [k for k in yaml if used_resolvers(yaml[k]) & declared]
    if sorted(found) != sorted(kind.found):
        problems.append(f"found {list(kind.found)}: the YAML's keys its resolvers give are {found}")
    params = inspect.signature(load(kind.target.rpartition(".")[0] + ":" + kind.target.rpartition(".")[2])).parameters
    for key in yaml:
        if key in ("_target_", *SHARED_PIPELINE_KEYS):
            continue
        if key in kind.pipeline_keys and key in params:
            problems.append(f"pipeline key {key} is an argument of {kind.target}, which would never be given it")
        if key not in kind.pipeline_keys and key not in params:
            problems.append(f"{key} is neither an argument of {kind.target} nor one of the kind's pipeline_keys")
    return problems


@pytest.mark.parametrize("kind", KINDS, ids=lambda kind: kind.name)
def test_each_declared_kind_agrees_with_its_yaml(kind):
    assert (DATASETS / f"{kind.name}.yaml").is_file(), f"{kind.name} is declared, and has no configs/dataset/ YAML"
    assert disagreements(kind, dataset_yaml(kind.name)) == []


def test_a_yaml_that_reads_the_users_files_has_a_declaration():
    names = sorted(p.stem for p in DATASETS.glob("*.yaml"))
    assert {"csv", "parquet", "arrays", "imagefolder", "digits"} <= set(names)
    for name in names:
        yaml = dataset_yaml(name)
        file_backed = any(k == "path" or k.endswith("_path") for k in yaml)
        named = set().union(*(used_resolvers(v) for v in yaml.values())) & set(resolvers())
        if file_backed or named:
            assert kind_named(name) is not None, f"configs/dataset/{name}.yaml reads files: declare it in data/kinds.py"
        else:
            assert kind_named(name) is None, f"{name} is declared, and its YAML names no file and no kind's resolver"


def test_a_declaration_that_disagrees_with_its_yaml_is_caught():
    yaml = dataset_yaml("csv")
    assert disagreements(CSV, yaml) == []
    wrong = [
        dataclasses.replace(CSV, file_keys=("path", "train_path", "val_path")),
        dataclasses.replace(CSV, found=("task", "num_classes")),
        dataclasses.replace(CSV, pipeline_keys=()),
        dataclasses.replace(CSV, resolvers=ARRAYS.resolvers),
        dataclasses.replace(CSV, target=ARRAYS.target),
    ]
    for kind in wrong:
        assert disagreements(kind, yaml), kind
    # a key added to the YAML and not to the declaration (a new file of the kind's own)
    assert disagreements(ARRAYS, {**dataset_yaml("arrays"), "classes_path": None})


def test_what_runner_reads_of_the_kinds_comes_from_the_declarations():
    from runner.config.command_line import DATA_FILE_KEYS, PATH_KEYS
    from runner.run.resume import resume_rule
    from runner.training.build import PIPELINE_KEYS

    every_file_key = {f"dataset.{key}" for kind in KINDS for key in kind.file_keys}
    assert data_file_keys() == DATA_FILE_KEYS
    assert set(DATA_FILE_KEYS) == every_file_key and len(DATA_FILE_KEYS) == len(every_file_key)
    # the files a run's config.yaml has recorded since before the declarations, in their order
    assert DATA_FILE_KEYS == (
        "dataset.path",
        "dataset.train_path",
        "dataset.val_path",
        "dataset.test_path",
        "dataset.target_path",
    )
    for key in DATA_FILE_KEYS:
        assert key in PATH_KEYS
        applied, why = resume_rule(key)
        assert applied and "SHA-256" in why, (key, why)
    assert set(pipeline_keys()) <= set(PIPELINE_KEYS) and "baselines" in PIPELINE_KEYS
    assert (
        set(found_keys())
        == {key for kind in KINDS for key in kind.found}
        == {
            "num_classes",
            "input_shape",
            "task",
            "sha256",
        }
    )


def test_found_data_records_each_declared_found_key_as_a_value():
    from runner.run.provenance import found_data

    cfg = OmegaConf.create({"dataset": {"name": "x", "other": "${dataset.name}"}})
    for i, key in enumerate(found_keys()):
        cfg.dataset[key] = f"${{dataset.v{i}}}"
        cfg.dataset[f"v{i}"] = i
    recorded = found_data(cfg)
    assert all(not OmegaConf.is_interpolation(recorded.dataset, key) for key in found_keys())
    assert [recorded.dataset[key] for key in found_keys()] == list(range(len(found_keys())))
    # what is not found from the files stays as the user wrote it
    assert OmegaConf.is_interpolation(recorded.dataset, "other")


SEEN = []


def probe_info(what, dataset):
    """A kind's resolver function for the test below: what it was handed."""
    SEEN.append((what, OmegaConf.to_container(dataset)))
    return what


def test_every_declared_resolver_is_registered_with_its_caching():
    from runner.config.resolvers import dataset_resolver, register_resolvers
    from runner.data.kinds import Resolver

    register_resolvers()
    for name, resolver in resolvers().items():
        assert OmegaConf.has_resolver(name), name
        assert callable(load(resolver.function)), resolver.function
    assert resolvers()["image_shape"].cached and not resolvers()["table"].cached
    # a resolver of the dataset node reads the dataset node whether it is handed the whole config or the node alone
    SEEN.clear()
    resolve = dataset_resolver(Resolver("probe", f"{__name__}:probe_info"))
    assert resolve("task", OmegaConf.create({"dataset": {"path": "a"}, "seed": 0})) == "task"
    resolve("width", OmegaConf.create({"path": "b"}))
    assert SEEN == [("task", {"path": "a"}), ("width", {"path": "b"})]


def test_predict_reads_each_declared_suffix_with_its_kinds_reader():
    from runner.data.inputs import array_rows, table_rows
    from runner.inference.card import preprocessing

    assert predict_reader(".npz") is array_rows and predict_reader(".pt") is array_rows
    assert predict_reader(".csv") is table_rows and predict_reader(".parquet") is table_rows
    assert predict_reader(".png") is None and predict_reader(".txt") is None
    from runner.data.splits import Splits

    fields = {f.name for f in dataclasses.fields(Splits)}
    block_keys = preprocessing([4], "float32", 255, mean=[0.0], std=[1.0])
    for kind in KINDS:
        if kind.card_block is not None:
            assert kind.card_block in fields and kind.card_block in block_keys, kind.name


def test_a_files_sha256_is_taken_in_the_declared_order(tmp_path):
    from runner.io.files import data_sha256, sha256

    a, b = tmp_path / "a.csv", tmp_path / "b.csv"
    a.write_text("x,y\n1,2\n")
    b.write_text("x,y\n3,4\n")
    dataset = {"train_path": str(a), "test_path": str(b), "path": None}
    assert CSV.files(dataset) == [None, str(a), None, str(b)]
    assert data_sha256(*CSV.files(dataset)) == f"{sha256(a)},{sha256(b)}"
