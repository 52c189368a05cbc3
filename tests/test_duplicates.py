"""Leaked duplicates (runner/data/duplicates.py): inputs two splits share are counted, named and recorded as the
splits are built (training/build.build_data, the one place every dataset kind's splits pass), and kept, dropped from
the validation and test splits, or refused (dataset.duplicates)."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_clean_failure, runner, summary
from formats import write_image_folder
from omegaconf import OmegaConf

from runner.data.duplicates import check
from runner.data.splits import Split, Splits
from runner.io.errors import RunnerError
from runner.training.build import build_data

# planted: val rows 0-2 copy train rows 10-12, test rows 0-3 copy train rows 20-23, test rows 4-5 copy val rows 5-6
COPIES = {"train_val": [(10, 0), (11, 1), (12, 2)], "train_test": [(20, 0), (21, 1), (22, 2), (23, 3)]}
VAL_TEST = [(5, 4), (6, 5)]


def write_splits(root):
    """train.csv (60 rows), val.csv (15) and test.csv (20) of distinct random rows, then the planted copies."""
    rng = np.random.default_rng(0)
    frames = {}
    for name, n in (("train", 60), ("val", 15), ("test", 20)):
        frames[name] = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "y": rng.integers(0, 2, n)})
    for pair, rows in COPIES.items():
        first, second = pair.split("_")
        for i, j in rows:
            frames[second].iloc[j] = frames[first].iloc[i]
    for i, j in VAL_TEST:
        frames["test"].iloc[j] = frames["val"].iloc[i]
    for name, frame in frames.items():
        frame.to_csv(root / f"{name}.csv", index=False)
    return frames


def table_splits(root, mode):
    """build_data on the three files, as dataset=csv dataset.train_path=... composes them (resolved)."""
    dataset = OmegaConf.create(
        {
            "_target_": "runner.data.table.table",
            "name": "csv",
            "task": "classification",
            "input_shape": [2],
            "num_classes": 2,
            "target": "y",
            **{f"{name}_path": str(root / f"{name}.csv") for name in ("train", "val", "test")},
            "duplicates": mode,
        }
    )
    return build_data(dataset, "cpu")[0]


def test_planted_duplicates_in_a_table_are_counted_and_named_and_kept_by_default(tmp_path):
    write_splits(tmp_path)
    splits = table_splits(tmp_path, "warn")
    assert splits.duplicates == {"train_val": 3, "train_test": 4, "val_test": 2}
    assert (len(splits.val), len(splits.test)) == (15, 20)
    (note,) = [n for n in splits.notes if n.startswith("duplicates:")]
    # the first examples by their CSV lines (row i is line i + 2): train row 10 is val row 0
    assert "train/val 3, train/test 4, val/test 2" in note and "train line 12 = val line 2" in note, note
    assert "dataset.duplicates=drop" in note


def test_drop_removes_the_validation_and_test_copies_and_never_the_training_rows(tmp_path):
    write_splits(tmp_path)
    splits = table_splits(tmp_path, "drop")
    assert splits.duplicates == {"train_val": 3, "train_test": 4, "val_test": 2, "dropped": {"val": 3, "test": 6}}
    assert (len(splits.train), len(splits.val), len(splits.test)) == (60, 12, 14)
    # what is left shares no row with an earlier split: the CSV lines of the copies are gone
    assert 2 not in splits.val.ids and {2, 3, 4, 5, 6, 7}.isdisjoint(splits.test.ids)
    rows = {name: {tuple(r) for r in getattr(splits, name).x.tolist()} for name in ("train", "val", "test")}
    assert not rows["train"] & rows["val"] and not rows["train"] & rows["test"] and not rows["val"] & rows["test"]


def test_refuse_names_the_counts_and_the_fix(tmp_path):
    write_splits(tmp_path)
    with pytest.raises(RunnerError, match=r"train/val 3, train/test 4, val/test 2.*dataset.duplicates=drop"):
        table_splits(tmp_path, "refuse")
    with pytest.raises(RunnerError, match=r"dataset.duplicates=keep: .*Use one of warn, drop, refuse"):
        table_splits(tmp_path, "keep")


def test_a_test_split_of_copies_alone_is_refused_rather_than_emptied():
    x = torch.arange(12.0).reshape(6, 2)
    splits = Splits(Split(x, torch.zeros(6)), Split(x[:1] + 100, torch.zeros(1)), Split(x[2:4], torch.zeros(2)))
    with pytest.raises(RunnerError, match="would leave it empty"):
        check(splits, "drop", "t")


def test_a_refused_run_trains_nothing_and_a_dropping_run_is_evaluated_on_the_test_split_it_was_tested_on(tmp_path):
    write_splits(tmp_path)
    files = ["dataset=csv", "dataset.train_path=train.csv", "dataset.val_path=val.csv", "dataset.test_path=test.csv"]
    args = [*files, "dataset.target=y", "trainer.epochs=1", "trainer.batch_size=20"]
    proc = runner("train", *args, "dataset.duplicates=refuse", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "train/val 3, train/test 4, val/test 2", "dataset.duplicates=drop")
    # refused at setup, before a step or a checkpoint: the directory holds the failed run's own record alone
    (refused,) = tmp_path.glob("outputs/*/*/summary.json")
    assert summary(refused.parent)["status"] == "failed" and not list(refused.parent.rglob("*.pt"))
    runner("train", *args, "dataset.duplicates=drop", "hydra.run.dir=r", cwd=tmp_path)
    info = summary(tmp_path / "r")
    assert info["duplicates"]["dropped"] == {"val": 3, "test": 6} and info["samples"]["test"] == 14
    assert "dropped 3 from val and 6 from test" in (tmp_path / "r" / "train.log").read_text()
    runner("eval", "ckpt=r", "hydra.run.dir=ev", cwd=tmp_path)
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["samples"] == 14 and evaluated["test_accuracy"] == info["test"]["test_accuracy"]
    # tested on fewer rows than a run that kept the copies: runner report does not rank the two together
    runner("train", *args, "hydra.run.dir=w", cwd=tmp_path)
    assert summary(tmp_path / "w")["samples"]["test"] == 20  # precondition: warn keeps the 6 copies
    assert summary(tmp_path / "w")["test_rows"] != info["test_rows"]
    from runner.commands import report

    rows, _ = report.build([tmp_path / "w", tmp_path / "r"])
    assert rows[0]["data"] != rows[1]["data"] and all("test rows" in row["data"] for row in rows)


@pytest.mark.parametrize("in_memory", [True, False])
def test_an_image_file_copied_into_another_split_is_found_decoded_or_streamed(tmp_path, in_memory):
    from runner.data.imagefolder import imagefolder

    for part, seed in (("train", 0), ("val", 1), ("test", 2)):
        write_image_folder(tmp_path / "pets" / part, per_class=4, seed=seed)
    shutil.copy(tmp_path / "pets" / "train" / "dog" / "002.png", tmp_path / "pets" / "test" / "dog" / "copy.png")
    splits = imagefolder(
        name="imagefolder",
        task="classification",
        input_shape=[3, 16, 20],
        num_classes=2,
        root=str(tmp_path / "pets"),
        val_fraction=0.1,
        test_fraction=0.1,
        split_seed=0,
        in_memory=in_memory,
        memory_limit_gb=2,
        workers=0,
        cache_dir=str(tmp_path / "cache"),
    )
    assert len(splits.test) == 9
    splits = check(splits, "warn", "imagefolder")
    assert splits.duplicates == {"train_val": 0, "train_test": 1, "val_test": 0}
    (note,) = [n for n in splits.notes if n.startswith("duplicates:")]
    # named by their files
    assert "dog/002.png" in note and "dog/copy.png" in note, note


def test_a_splits_digest_is_its_samples_whatever_their_order():
    from runner.data.duplicates import split_digest

    x = torch.arange(12.0).reshape(6, 2)
    same = split_digest(Split(x, torch.zeros(6)))
    assert len(same) == 12 and same == split_digest(Split(x.flip(0), torch.zeros(6)))
    assert same != split_digest(Split(x[1:], torch.zeros(5)))  # one sample fewer: other test rows
