"""k-fold cross-validation (dataset.folds, dataset.fold, dataset.group): the folds a dataset draws, in the pytest
process; the sweep they make, its out-of-fold predictions and its resume, end to end."""

import csv
from collections import Counter

import numpy as np
import pytest
from conftest import digest, runner, summary
from helpers.in_process import runner_in_process

from runner.data.arrays import arrays
from runner.data.imagefolder import imagefolder
from runner.data.splits import fold_rows
from runner.data.table import table
from runner.io.errors import RunnerError
from runner.sweeps.folds import fold_jobs, folds_argument

TABLE = ["dataset=csv", "dataset.path=t.csv", "dataset.target=label", "trainer.epochs=1", "trainer.batch_size=8"]


def write_table(path, rows=60):
    """A table of 3 features, a 2:1 class balance and 10 sites (6 rows each, both classes in most)."""
    rng = np.random.default_rng(0)
    with open(path, "w", newline="") as f:
        out = csv.writer(f)
        out.writerow(["a", "b", "c", "site", "label"])
        for i in range(rows):
            label = "yes" if i % 3 else "no"
            out.writerow([*np.round(rng.normal(size=3) + (label == "yes"), 3), f"s{i % 10}", label])
    return path


def splits_of(path, **keys):
    base = {"name": "csv", "task": "classification", "input_shape": [3], "num_classes": 2, "target": "label"}
    return table(**base, path=str(path), **keys)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_folds_are_disjoint_cover_the_pool_keep_the_test_split_and_the_class_ratio(tmp_path):
    path = write_table(tmp_path / "t.csv")
    plain = splits_of(path)
    folds = [splits_of(path, folds=5, fold=i) for i in range(5)]
    test = set(plain.test.ids)
    assert len(test) == 12 and all(set(s.test.ids) == test for s in folds)  # the same test split as without folds
    held = [set(s.val.ids) for s in folds]
    pool = set(range(2, 62)) - test  # CSV lines 2..61
    assert sum(map(len, held)) == len(pool) and set().union(*held) == pool  # disjoint and covering
    for s, val in zip(folds, held):
        assert set(s.train.ids) == pool - val
        # stratified: each fold holds out the pool's 2:1 balance, within one row
        counts = Counter(s.val.y.tolist())
        assert abs(counts[1] - 2 * counts[0]) <= 2 and counts[0] >= 2, counts


def test_a_group_stays_in_one_fold_and_on_one_side_of_the_test_split(tmp_path):
    path = write_table(tmp_path / "t.csv")
    site = {line: f"s{(line - 2) % 10}" for line in range(2, 62)}
    folds = [splits_of(path, folds=3, fold=i, group="site") for i in range(3)]
    test_sites = {site[line] for line in folds[0].test.ids}
    assert 1 <= len(test_sites) < 10
    seen = []
    for s in folds:
        val_sites, train_sites = {site[line] for line in s.val.ids}, {site[line] for line in s.train.ids}
        assert not val_sites & train_sites and not test_sites & (val_sites | train_sites)
        seen += sorted(val_sites)
    assert sorted(seen) == sorted(set(site.values()) - test_sites)  # each group held out by exactly one fold
    # the group column keeps rows together; it is no feature
    assert "site" not in " ".join(folds[0].feature_names)


def test_arrays_take_folds_and_a_group_array_of_the_file(tmp_path):
    rng = np.random.default_rng(1)
    path = tmp_path / "data.npz"
    np.savez(path, x=rng.normal(size=(40, 4)), y=np.arange(40) % 2, subject=np.arange(40) // 4)
    base = {"name": "arrays", "task": "classification", "input_shape": [4], "num_classes": 2, "path": str(path)}
    folds = [arrays(**base, folds=2, fold=i, group="subject") for i in range(2)]
    assert set(folds[0].test.ids) == set(folds[1].test.ids)
    assert not set(folds[0].val.ids) & set(folds[1].val.ids)
    assert set(folds[0].val.ids) | set(folds[1].val.ids) == set(range(40)) - set(folds[0].test.ids)
    for s in folds:
        assert not {i // 4 for i in s.val.ids} & {i // 4 for i in s.train.ids}
    with pytest.raises(RunnerError, match=r"has no array of that name beside x.*subject"):
        arrays(**base, folds=2, fold=0, group="patient")


@pytest.mark.parametrize("in_memory", [True, False])
def test_image_folders_take_folds_stratified_by_class_folder(tmp_path, in_memory):
    from formats import write_image_folder

    root = write_image_folder(tmp_path / "pets", per_class=12)
    base = {"name": "imagefolder", "task": "classification", "input_shape": [3, 8, 8], "num_classes": 2}
    keys = {**base, "root": str(root), "val_fraction": 0.1, "test_fraction": 0.2, "split_seed": 0}
    keys |= {"in_memory": in_memory, "memory_limit_gb": 1, "workers": 0, "cache_dir": str(tmp_path / "cache")}
    folds = [imagefolder(**keys, folds=3, fold=i) for i in range(3)]

    def files(split):
        return [s[0].rsplit("pets/", 1)[1] for s in split.samples] if not in_memory else split.ids

    test = set(files(folds[0].test))
    assert len(test) == 5 and all(set(files(s.test)) == test for s in folds)
    held = [set(files(s.val)) for s in folds]
    assert sum(map(len, held)) == 19 and len(set().union(*held)) == 19 and not test & set().union(*held)
    # stratified: each fold holds out both classes
    assert all({name.split("/")[0] for name in val} == {"cat", "dog"} for val in held)
    (root / "val" / "cat").mkdir(parents=True)
    with pytest.raises(RunnerError, match=r"val is a validation split of its own"):
        imagefolder(**keys, folds=3, fold=0)


@pytest.mark.parametrize(
    ("keys", "words"),
    [
        ({"folds": 1, "fold": 0}, "dataset.folds=1: k-fold cross-validation"),
        ({"folds": 5}, "runs 5 jobs, one per held-out fold, as a sweep: runner train -m dataset.folds=5"),
        ({"fold": 2}, "dataset.fold=2 names a held-out fold, and dataset.folds is null"),
        ({"folds": 3, "fold": 3}, "dataset.fold=3: a held-out fold of dataset.folds=3 is 0 to 2"),
        ({"folds": 20, "fold": 0}, "the class 'no' has 16 rows left for training, fewer than dataset.folds=20"),
        ({"folds": 3, "fold": 0, "group": "place"}, "no column named 'place' \\(dataset.group\\)"),
        ({"folds": 3, "fold": 0, "group": "label"}, "dataset.group=label is the target column"),
    ],
)
def test_folds_that_cannot_be_drawn_are_refused_with_the_fix(tmp_path, keys, words):
    path = write_table(tmp_path / "t.csv")
    with pytest.raises(RunnerError, match=words):
        splits_of(path, **keys)


def test_more_folds_than_groups_is_refused():
    groups = np.repeat(np.arange(3), 4)
    with pytest.raises(RunnerError, match=r"dataset.folds=4 needs at least 4 groups.*has 3"):
        fold_rows(12, 4, 0, 0, groups=groups)


def test_folds_on_the_command_line_make_a_sweep_and_each_setting_k_jobs():
    assert folds_argument(["dataset.folds=5", "x=1"], {}) == ["-m", "dataset.folds=5", "x=1"]
    # the folder asked for holds the sweep
    assert folds_argument(["dataset.folds=5", "hydra.run.dir=cv"], {}) == [
        "-m",
        "dataset.folds=5",
        "hydra.sweep.dir=cv",
    ]
    for kept in (["dataset.folds=5", "dataset.fold=1"], ["-m", "dataset.folds=5"], ["dataset.folds=null"], ["a=1"]):
        assert folds_argument(kept, {}) == kept
    folds = {"dataset.folds=2": 2, "dataset.folds=3": 3}

    def compose(job):
        return {"dataset": {"folds": next((folds[o] for o in job if o in folds), None)}}

    grid = [["lr=1", "dataset.folds=2"], ["lr=2", "dataset.folds=3"], ["lr=3"], ["dataset.folds=3", "dataset.fold=1"]]
    assert fold_jobs(grid, compose) == [
        *(["lr=1", "dataset.folds=2", f"dataset.fold={i}"] for i in range(2)),
        *(["lr=2", "dataset.folds=3", f"dataset.fold={i}"] for i in range(3)),
        ["lr=3"],
        ["dataset.folds=3", "dataset.fold=1"],
    ]
    with pytest.raises(RunnerError, match=r"dataset.folds=0"):
        fold_jobs([["x=1"]], lambda job: {"dataset": {"folds": 0}})


def test_an_optuna_search_with_folds_is_refused_before_anything_is_written(tmp_path):
    write_table(tmp_path / "t.csv")
    proc = runner_in_process("train", "hparams_search=optuna_lr", *TABLE, "dataset.folds=3", cwd=tmp_path)
    assert (
        proc.returncode == 1 and "dataset.folds=3 with an Optuna search: folds are a grid sweep's axis" in proc.stderr
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t.csv"]


def test_a_five_fold_run_writes_out_of_fold_predictions_and_its_resume_keeps_finished_folds(tmp_path):
    from runner.inference.loading import load_test_split

    write_table(tmp_path / "t.csv")
    # no -m: dataset.folds on the command line runs its jobs as a sweep
    runner("train", *TABLE, "dataset.folds=5", cwd=tmp_path)
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    jobs = [sweep / str(i) for i in range(5)]
    assert all(summary(job)["status"] == "completed" for job in jobs) and not (sweep / "5").exists()
    assert [(job / ".hydra" / "overrides.yaml").read_text().splitlines()[-1] for job in jobs] == [
        f"- dataset.fold={i}" for i in range(5)
    ]
    tests = [load_test_split(job).ids for job in jobs]
    assert len(tests[0]) == 12 and all(t == tests[0] for t in tests)
    held = [[int(r["line"]) for r in read_csv(job / "val_predictions.csv")] for job in jobs]
    oof = read_csv(sweep / "oof_predictions.csv")
    pool = sorted(set(range(2, 62)) - set(tests[0]))
    assert sorted(int(r["line"]) for r in oof) == pool  # every training-pool row exactly once
    assert {int(r["line"]): int(r["fold"]) for r in oof} == {line: i for i, lines in enumerate(held) for line in lines}
    row = oof[0]
    assert list(row) == ["line", "fold", "target", "prediction", "prob_no", "prob_yes"]
    assert row["target"] in ("no", "yes") and abs(float(row["prob_no"]) + float(row["prob_yes"]) - 1) < 1e-5

    # a sweep cut short after four folds: its resume keeps them and runs the fifth
    kept = {job.name: digest(job) for job in jobs[:4]}
    for path in sorted(jobs[4].rglob("*"), reverse=True):
        path.rmdir() if path.is_dir() else path.unlink()
    jobs[4].rmdir()
    (sweep / "oof_predictions.csv").unlink()
    proc = runner("train", "-m", f"resume={sweep}", cwd=tmp_path)
    assert {job.name: digest(job) for job in jobs[:4]} == kept
    assert proc.stdout.count("completed earlier, kept as it is") == 4
    assert summary(jobs[4])["status"] == "completed"
    assert sorted(int(r["line"]) for r in read_csv(sweep / "oof_predictions.csv")) == pool


def test_folds_times_another_axis_on_the_parallel_launcher_name_the_setting_of_a_regression(tmp_path):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(60, 3))
    y = np.round(100 + 20 * x[:, 0] + rng.normal(size=60), 2)
    with open(tmp_path / "t.csv", "w", newline="") as f:
        csv.writer(f).writerows([["a", "b", "c", "label"], *([*row, target] for row, target in zip(x, y))])
    grid = ["hydra/launcher=parallel", "dataset.folds=2", "optimizer.lr=0.01,0.001"]
    runner("train", "-m", *TABLE, *grid, cwd=tmp_path)
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    assert sorted(p.parent.name for p in sweep.glob("*/summary.json")) == ["0", "1", "2", "3"]
    oof = read_csv(sweep / "oof_predictions.csv")
    assert list(oof[0]) == ["setting", "line", "fold", "target", "prediction"]
    assert Counter(r["setting"].split()[-1] for r in oof) == {"optimizer.lr=0.01": 48, "optimizer.lr=0.001": 48}
    # in the target's own units: the CSV's values, not standardised ones
    assert all(abs(float(r["target"]) - y[int(r["line"]) - 2]) < 1e-4 for r in oof)
