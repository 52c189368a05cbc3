"""dataset=csv (runner/data/table.py): a table trained, evaluated and predicted with no Python, from files the tests
write from scikit-learn's bundled tables; the encoding learned from the training split applied alike at predict."""

import json
import re
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import assert_clean_failure, runner, summary


def wine_csv(path):
    """scikit-learn's wine (178 x 13, 3 classes) as an ordinary CSV: the features, then a `label` of class names."""
    from sklearn.datasets import load_wine

    wine = load_wine(as_frame=True)
    frame = wine.frame.drop(columns="target")
    frame["label"] = [str(wine.target_names[i]) for i in wine.target]
    frame.to_csv(path, index=False)
    return path


def test_wine_trains_evaluates_and_predicts_from_its_csv_with_no_python(tmp_path):
    wine_csv(tmp_path / "wine.csv")
    args = ["dataset=csv", "dataset.path=wine.csv", "dataset.target=label", "trainer.epochs=20"]
    runner("train", *args, "hydra.run.dir=w", cwd=tmp_path)
    info = summary(tmp_path / "w")
    assert info["samples"] == {"train": 127, "val": 15, "test": 36}  # 20 % test, then 10 % of the rest, by class
    card = json.loads((tmp_path / "w" / "checkpoints" / "model.json").read_text())
    assert card["input_shape"] == [13] and card["class_names"] == ["class_0", "class_1", "class_2"]
    # pinned: MLP, 20 epochs, seed 0, this machine's CPU; re-pin from summary.json's test_accuracy after a change
    # that means to move it
    assert info["test"]["test_accuracy"] == 1.0
    # the trivial baseline (class_1's 14 of the 36 test rows) and scikit-learn's on the same split, beside it
    # (measured here; both deterministic with seed 0)
    accuracy = {name: figures["test_accuracy"] for name, figures in info["baselines"].items()}
    assert accuracy == pytest.approx(
        {"majority class": 14 / 36, "logistic regression": 1.0, "HistGradientBoosting": 1.0}
    )
    # the run recorded where its file is, absolute, and its SHA-256: eval works from any directory
    (tmp_path / "elsewhere").mkdir()
    runner("eval", f"ckpt={tmp_path / 'w'}", "hydra.run.dir=ev", cwd=tmp_path / "elsewhere")
    assert json.loads((tmp_path / "elsewhere" / "ev" / "metrics.json").read_text())["test_accuracy"] == 1.0
    proc = runner("predict", f"ckpt={tmp_path / 'w'}", "input=test", "out=t", cwd=tmp_path / "elsewhere")
    assert "accuracy 1.0000 (36 / 36 right, against the test split)" in proc.stdout
    # the raw file, its label column included and its columns shuffled: scored against that column
    frame = pd.read_csv(tmp_path / "wine.csv")
    frame[list(reversed(frame.columns))].to_csv(tmp_path / "shuffled.csv", index=False)
    proc = runner("predict", "ckpt=w", "input=shuffled.csv", "out=p", cwd=tmp_path)
    assert "against the table's label column" in proc.stdout
    predicted = pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert (predicted["true_label"] == frame["label"]).all() and len(predicted) == 178
    # the file changed under the run (its rows reordered): eval and resume would split other rows, so they refuse
    frame.sample(frac=1, random_state=0).to_csv(tmp_path / "wine.csv", index=False)
    for command in (["eval", "ckpt=w"], ["train", "resume=w", "trainer.epochs=21"]):
        proc = runner(*command, cwd=tmp_path, check=False)
        assert_clean_failure(proc, "have changed since this run read them", "Put back the files it trained on")


def test_categories_missing_values_and_an_unseen_category_are_encoded_alike_in_training_and_prediction(tmp_path):
    from runner.data.inputs import read_inputs
    from runner.data.table import TableKeys, plan, table

    rng = np.random.default_rng(0)
    n = 120
    frame = pd.DataFrame(
        {
            "size": rng.normal(10, 2, n).round(2),
            "colour": rng.choice(["red", "green", "blue"], n),
            "flag": rng.choice([True, False], n),
            "id": [f"row{i}" for i in range(n)],  # an ID: left out
            "same": 1,  # constant: left out
        }
    )
    frame.loc[[3, 50], "size"] = np.nan
    frame["flag"] = frame["flag"].astype(object)
    frame.loc[7:11, "flag"] = None  # blanks in a column of booleans: still numbers, filled and flagged
    frame["kind"] = np.where(frame["colour"] == "red", 1, 2)  # whole-number labels
    frame.to_csv(tmp_path / "t.csv", index=False)
    args = dict(name="csv", task="classification", input_shape=[8], num_classes=2, target="kind")
    splits = table(**args, path=str(tmp_path / "t.csv"))
    names = ["size", "size_missing", "colour=blue", "colour=green", "colour=red", "colour=<other>", "flag",
             "flag_missing"]  # fmt: skip
    assert splits.feature_names == names and splits.class_names == ["1", "2"]
    assert (
        splits.notes[1]
        == "table: left out 'id' (a different text in every row, as an ID); 'same' (the same value in every row)."
    )
    assert splits.notes[0].startswith("table: 2 classes of kind (1, 2); 2 numeric columns; missing values filled")
    # predict's reader on the whole raw file gives, row for row, the tensors each split trained and was tested on
    read = read_inputs(str(tmp_path / "t.csv"), [8], "float32", names, table=splits.table)
    parts = plan(TableKeys.of({"path": str(tmp_path / "t.csv"), "target": "kind"}, "classification")).parts
    for name in ("train", "val", "test"):
        rows = torch.tensor(parts[name].index.tolist())
        assert torch.equal(read.x[rows], getattr(splits, name).x), name
        assert torch.equal(torch.tensor([read.labels[i] for i in rows.tolist()]), getattr(splits, name).y), name
    median = splits.table["columns"][0]["fill"]
    train_sizes = parts["train"]["size"].dropna().to_numpy()
    assert median == pytest.approx(float(np.median(train_sizes)))  # the training split's own median
    assert read.x[3, :2].tolist() == [pytest.approx(median), 1.0]  # missing: the training split's median, flagged
    # a colour training never saw, and an empty label cell (which makes pandas read the labels as floats)
    rows = frame.iloc[[3, 7]].copy()
    rows.loc[rows.index[1], "colour"] = "purple"
    rows.loc[rows.index[0], "kind"] = None
    rows.to_csv(tmp_path / "new.csv", index=False)
    new = read_inputs(str(tmp_path / "new.csv"), [8], "float32", names, table=splits.table)
    assert new.x[1, 2:6].tolist() == [0, 0, 0, 1]  # purple: none of the training split's colours
    assert new.labels == [None, int(frame.loc[7, "kind"] == 2)]  # no truth for the empty cell; 2.0 read as "2"


def breast_cancer_csv(path):
    """scikit-learn's breast_cancer (569 x 30, 2 classes): the features, then a `diagnosis` of class names."""
    from sklearn.datasets import load_breast_cancer

    data = load_breast_cancer(as_frame=True)
    frame = data.frame.drop(columns="target")
    frame["diagnosis"] = [str(data.target_names[i]) for i in data.target]
    frame.to_csv(path, index=False)


def diabetes_csv(path):
    """scikit-learn's diabetes (442 x 10) in its original units, its `target` a disease progression score."""
    from sklearn.datasets import load_diabetes

    load_diabetes(as_frame=True, scaled=False).frame.to_csv(path, index=False)


# Pinned: a table's defaults (configs/trainer/table.yaml, model mlp_table), 20 (breast_cancer) or 30 (diabetes)
# epochs, seed 0, this machine's CPU; re-pin from the run's summary.json (test, baselines) after a change that means to
# move them. breast_cancer: 108 of 114 test rows right against 109 for both baselines (109 at the defaults' own
# epochs: tests/test_table_recipe.py); diabetes: a test MAE of 44.78 in the target's own units, ridge 46.2, boosting
# 50.9.
TABLES = {
    "breast_cancer": (breast_cancer_csv, "diagnosis", 20, "accuracy", 108 / 114, {"logistic regression": 109 / 114,
                      "HistGradientBoosting": 109 / 114}),
    "diabetes": (diabetes_csv, "target", 30, "mae", 44.7804, {"ridge": 46.2287, "HistGradientBoosting": 50.8561}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(TABLES))
def test_a_table_trains_from_one_command_beside_its_scikit_learn_baselines(tmp_path, name):
    write, target, epochs, metric, pinned, baselines = TABLES[name]
    write(tmp_path / "t.csv")
    # no model= and no shapes: a table's default model is the MLP, its widths counted from the file
    args = ["dataset=csv", "dataset.path=t.csv", f"dataset.target={target}", f"trainer.epochs={epochs}"]
    proc = runner("train", *args, "hydra.run.dir=r", cwd=tmp_path)
    info = summary(tmp_path / "r")
    assert info["test"][f"test_{metric}"] == pytest.approx(pinned, abs=1e-4)
    models = {name: figures[f"test_{metric}"] for name, figures in info["baselines"].items() if name in baselines}
    assert models == pytest.approx(baselines, abs=1e-4)
    assert f"test_{metric} of HistGradientBoosting (scikit-learn)" in proc.stdout
    runner("eval", "ckpt=r", "hydra.run.dir=ev", cwd=tmp_path)
    assert (
        json.loads((tmp_path / "ev" / "metrics.json").read_text())[f"test_{metric}"] == info["test"][f"test_{metric}"]
    )
    if metric == "mae":  # regression: predict and a deployment of the export give values in the target's units
        regression_in_its_units(tmp_path, target, info["test"]["test_mae"])


def regression_in_its_units(tmp_path, target, test_mae):
    """The run `r` of t.csv: predict on the raw file scores its target column; the ONNX export, fed the features
    as config.json says and its output unscaled by config.json's target_scale, gives predict's values."""
    import onnxruntime

    from runner.data.table import TableKeys, plan

    # the run's test rows, as the run drew them (the same split function, keys and seed), written as a raw CSV
    plan(TableKeys.of({"path": str(tmp_path / "t.csv"), "target": target})).parts["test"].to_csv(tmp_path / "test.csv")
    proc = runner("predict", "ckpt=r", "input=test.csv", "out=p", cwd=tmp_path)
    frame, predicted = pd.read_csv(tmp_path / "test.csv"), pd.read_csv(tmp_path / "p" / "predictions.csv")
    assert len(frame) == 89 and np.allclose(predicted["true_value"], frame[target], rtol=1e-5)
    assert f"(over 89 of 89 rows, against the table's {target} column)" in proc.stdout
    # predict on the raw rows scores them as eval scored the test split: in the target's units
    assert float((predicted["value"] - frame[target]).abs().mean()) == pytest.approx(test_mae, abs=1e-3)
    runner("export", "ckpt=r", "format=onnx", "out=deploy", cwd=tmp_path)
    config = json.loads((tmp_path / "deploy" / "config.json").read_text())
    contract = config["preprocessing"]
    assert contract["table"]["target"] == target and contract["image"] is None
    x = frame[config["feature_names"]].to_numpy(np.float32)  # numbers only, none missing: encoded as they are
    x = (x - np.float32(contract["mean"])) / np.float32(contract["std"])
    session = onnxruntime.InferenceSession(tmp_path / "deploy" / "model.onnx", providers=["CPUExecutionProvider"])
    scale = contract["target_scale"]
    values = session.run(None, {"x": x})[0] * np.float32(scale["std"]) + np.float32(scale["mean"])
    assert np.allclose(values[:, 0], predicted["value"], rtol=1e-5, atol=1e-3)  # predictions.csv keeps 6 digits


def test_the_same_table_as_parquet_and_as_arrays_trains_to_the_same_weights(tmp_path):
    pytest.importorskip("pyarrow")
    wine_csv(tmp_path / "wine.csv")
    frame = pd.read_csv(tmp_path / "wine.csv")
    frame.to_parquet(tmp_path / "wine.parquet")
    x = frame.drop(columns="label").to_numpy()  # float64, the numbers pandas read from the CSV
    y = frame["label"].str.removeprefix("class_").astype(int).to_numpy()  # class_0, 1, 2 -> 0, 1, 2: the same order
    np.savez(tmp_path / "wine.npz", x=x, y=y)
    np.save(tmp_path / "x.npy", x)
    np.save(tmp_path / "y.npy", y)
    sources = {
        "csv": ["dataset=csv", "dataset.path=wine.csv", "dataset.target=label"],
        "parquet": ["dataset=parquet", "dataset.path=wine.parquet", "dataset.target=label"],
        "npz": ["dataset=arrays", "dataset.path=wine.npz"],
        "npy": ["dataset=arrays", "dataset.path=x.npy", "dataset.target_path=y.npy", "dataset.baselines=false"],
    }
    # the model and trainer a table chooses (dataset=csv), named for the arrays
    for name in ("npz", "npy"):
        sources[name] += ["model=mlp_table", "trainer=table"]
    for name, args in sources.items():
        runner("train", *args, "trainer.epochs=3", f"hydra.run.dir={name}", cwd=tmp_path)
    weights = {name: torch.load(tmp_path / name / "checkpoints" / "best.pt", weights_only=True) for name in sources}
    assert all(torch.equal(w[k], weights["csv"][k]) for w in weights.values() for k in weights["csv"])
    assert len({json.dumps(summary(tmp_path / name)["test"]) for name in sources}) == 1
    assert summary(tmp_path / "npz")["samples"] == {"train": 127, "val": 15, "test": 36}  # as wine's CSV splits
    # dataset.baselines=false: the trivial baseline alone
    assert "logistic regression" in summary(tmp_path / "npz")["baselines"]
    assert list(summary(tmp_path / "npy")["baselines"]) == ["majority class"]
    runner("predict", "ckpt=parquet", "input=wine.parquet", "out=pp", cwd=tmp_path)  # a Parquet file to predict on
    assert len(pd.read_csv(tmp_path / "pp" / "predictions.csv")) == 178
    card = json.loads((tmp_path / "npz" / "checkpoints" / "model.json").read_text())
    assert card["input_shape"] == [13] and card["class_names"] == ["0", "1", "2"]


def test_arrays_in_parts_train_a_regression_reported_and_predicted_in_the_targets_units(tmp_path):
    from sklearn.datasets import load_diabetes

    x, y = load_diabetes(return_X_y=True, scaled=False)  # y: a disease progression score, mean 152, std 77
    parts = {"x_train": x[:350], "y_train": y[:350], "x_test": x[350:], "y_test": y[350:]}  # no x_val: held out
    torch.save({k: torch.from_numpy(v) for k, v in parts.items()}, tmp_path / "d.pt")
    runner("train", "dataset=arrays", "dataset.path=d.pt", "trainer.epochs=5", "hydra.run.dir=r", cwd=tmp_path)
    info = summary(tmp_path / "r")
    assert info["task"] == "regression" and info["samples"] == {"train": 315, "val": 35, "test": 92}
    assert list(info["baselines"]) == ["mean", "median", "ridge", "HistGradientBoosting"]
    runner("eval", "ckpt=r", "hydra.run.dir=ev", cwd=tmp_path)
    assert json.loads((tmp_path / "ev" / "metrics.json").read_text())["test_mae"] == info["test"]["test_mae"]
    np.save(tmp_path / "x_test.npy", x[350:])
    runner("predict", "ckpt=r", "input=x_test.npy", "out=p", cwd=tmp_path)
    values = pd.read_csv(tmp_path / "p" / "predictions.csv")["value"].to_numpy()
    # predict's values, unscaled by the card's target_scale, score the test part as the run did, in its units
    assert np.abs(values - y[350:]).mean() == pytest.approx(info["test"]["test_mae"], rel=1e-4)
    assert 40 < info["test"]["test_mae"] < 150  # the score's units, not standardised ones (~0.6-1)


def test_uint8_image_arrays_keep_their_shape_and_take_a_cnn(tmp_path):
    from sklearn.datasets import load_digits

    digits = load_digits()
    x = (digits.images * 255 / 16).round().astype(np.uint8)[:, None]  # (1797, 1, 8, 8), 0..255 pixels
    np.savez(tmp_path / "digits.npz", x=x, y=digits.target)
    runner("train", "dataset=arrays", "dataset.path=digits.npz", "model=cnn", "model.channels=[8,16]",
           "trainer.epochs=1", "hydra.run.dir=r", cwd=tmp_path)  # fmt: skip
    card = json.loads((tmp_path / "r" / "checkpoints" / "model.json").read_text())
    assert card["input_shape"] == [1, 8, 8] and card["input_dtype"] == "uint8" and card["model"]["dims"] == 2
    # images: a linear model on the 64 pixels beside the trivial baseline, no boosting on raw pixels
    assert list(summary(tmp_path / "r")["baselines"]) == ["majority class", "logistic regression"]
    assert len(card["class_names"]) == 10
    runner("predict", "ckpt=r", "input=digits.npz", "out=p", cwd=tmp_path)  # the same file's x, as predict input
    assert len(pd.read_csv(tmp_path / "p" / "predictions.csv")) == 1797


def test_parquet_without_pyarrow_names_the_extra(tmp_path, monkeypatch):
    from runner.data.table import read_table
    from runner.io.errors import RunnerError

    (tmp_path / "t.parquet").write_bytes(b"PAR1")  # a file is there; what is missing is the reader
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # `import pyarrow` raises ImportError, as without it
    with pytest.raises(RunnerError, match=r"pip install 'runner\[parquet\]'"):
        read_table(tmp_path / "t.parquet")


def test_the_task_can_be_overridden_and_the_keys_of_a_table_do_what_they_say(tmp_path):
    from omegaconf import OmegaConf

    from runner.config.resolvers import register_resolvers
    from runner.data.table import TableKeys, plan, table_info
    from runner.io.errors import RunnerError

    register_resolvers()  # ${table:task}, as a command has them
    rng = np.random.default_rng(1)
    frame = pd.DataFrame({"a": rng.normal(size=300), "b": rng.normal(size=300), "kind": rng.choice(["x", "y"], 300)})
    frame["score"] = np.arange(300) % 30  # 30 whole numbers: more than 20, so read as a regression target
    frame.to_csv(tmp_path / "t.csv", sep=";", index=False)  # semicolons, as Excel saves CSV in much of Europe

    def node(**keys):
        return OmegaConf.create({"path": str(tmp_path / "t.csv"), "task": "${table:task}", **keys})

    assert table_info("task", node(target="score")) == "regression"
    assert table_info("num_classes", node(target="score")) == 1
    assert table_info("num_classes", node(target="score", task="classification", val_fraction=0.15)) == 30
    assert table_info("width", node(target="kind", features="a")) == 1  # one name, not a list: that column
    assert table_info("width", node(target="kind")) == 3  # a, b and score
    regression = "dataset.task=regression needs numbers in the target column 'kind', and line 2 (row 1) has"
    with pytest.raises(RunnerError, match=re.escape(regression)):  # fmt: skip
        table_info("width", node(target="kind", task="regression"))
    with pytest.raises(RunnerError, match=r"dataset\.features lists the target column 'kind'"):
        table_info("width", node(target="kind", features=["a", "kind"], task="classification"))
    with pytest.raises(RunnerError, match=r"dataset\.target must be set"):
        table_info("width", OmegaConf.create({"path": str(tmp_path / "t.csv"), "target": "???", "task": "x"}))
    # your own splits: the files as given, nothing held out of them
    frame.iloc[:200].to_csv(tmp_path / "train.csv", index=False)
    frame.iloc[200:250].to_csv(tmp_path / "val.csv", index=False)
    frame.iloc[250:].to_csv(tmp_path / "test.csv", index=False)
    mine = TableKeys(train_path=str(tmp_path / "train.csv"), val_path=str(tmp_path / "val.csv"),
                     test_path=str(tmp_path / "test.csv"), target="kind")  # fmt: skip
    assert {k: len(v) for k, v in plan(mine).parts.items()} == {"train": 200, "val": 50, "test": 50}
    # dataset.missing=refuse names the cell by its line in the file, whichever split it fell in
    frame.loc[[150], "b"] = np.nan
    frame.to_csv(tmp_path / "gap.csv", index=False)
    with pytest.raises(RunnerError, match=re.escape("column 'b' has a missing value at line 152 (row 151)")):
        plan(TableKeys(path=str(tmp_path / "gap.csv"), target="kind", missing="refuse"))


def test_arrays_read_their_task_like_a_table_and_refuse_images_with_their_channels_last(tmp_path):
    from runner.data.arrays import plan
    from runner.data.inputs import read_inputs
    from runner.io.errors import RunnerError

    x = np.random.default_rng(0).normal(size=(100, 3)).astype(np.float32)
    np.savez(tmp_path / "f.npz", x=x, y=(x[:, 0] > 0).astype(np.float32))  # 0.0 / 1.0: torch's default dtype
    assert plan(str(tmp_path / "f.npz")).task == "classification"  # as the same column in a CSV would be
    np.savez(tmp_path / "one.npz", x=x[:, 0], y=np.arange(100) % 2)  # x of shape (N,): one feature each
    assert plan(str(tmp_path / "one.npz")).parts["train"][0].shape[1:] == (1,)
    np.savez(tmp_path / "hwc.npz", x=np.zeros((10, 8, 8, 3), np.uint8), y=np.arange(10) % 2)
    with pytest.raises(RunnerError, match=r"channels last \(N, H, W, C\).*x\.transpose\(0, 3, 1, 2\)"):
        plan(str(tmp_path / "hwc.npz"))
    (tmp_path / "cut.npz").write_bytes((tmp_path / "f.npz").read_bytes()[:100])
    with pytest.raises(RunnerError, match=r"is not a readable \.npz"):
        plan(str(tmp_path / "cut.npz"))
    np.savez(tmp_path / "parts.npz", x_train=x[:80], y_train=np.arange(80) % 2, x_test=x[80:], y_test=np.arange(20) % 2)
    read = read_inputs(str(tmp_path / "parts.npz"), [3], "float32")  # predict on the same file: its x_test
    assert torch.equal(read.x, torch.from_numpy(x[80:]))


def penguins(n=150, seed=0):
    """A table like palmerpenguins: a body mass in grams, an island (3 categories), a free-text comment (almost every
    one different, as a field note is), and the species to predict, which the mass and island decide."""
    rng = np.random.default_rng(seed)
    island = rng.choice(["Biscoe", "Dream", "Torgersen"], n)
    mass = rng.normal(4200, 800, n).round()
    species = np.where(mass > 4200, "Gentoo", np.where(island == "Dream", "Chinstrap", "Adelie"))
    notes = [f"nest {rng.integers(1000)} seen {rng.integers(1, 28)} Nov" for _ in range(n)]
    notes[1] = notes[0]  # not an ID: two rows share a note
    return pd.DataFrame({"body_mass_g": mass, "island": island, "comment": notes, "species": species})


def test_an_unseen_category_is_an_ordinary_input_and_free_text_is_left_out_by_name(tmp_path):
    from runner.data.batches import Normalizer
    from runner.data.inputs import read_inputs
    from runner.data.table import table

    frame = penguins()
    frame.to_csv(tmp_path / "p.csv", index=False)
    args = dict(name="csv", task="classification", input_shape=[5], num_classes=3, target="species")
    splits = table(**args, path=str(tmp_path / "p.csv"))
    # the comment would be ~100 one-hot columns no other split shares: left out, and the log names it
    assert splits.feature_names == [
        "body_mass_g",
        "island=Biscoe",
        "island=Dream",
        "island=Torgersen",
        "island=<other>",
    ]
    assert "table: left out 'comment' (free text: " in splits.notes[1], splits.notes
    normalize = Normalizer.fit(splits.train.x)
    # <other> is all zeros in training: scaled by 1 (scikit-learn's StandardScaler), not by a floor of 1e-6
    assert splits.train.x[:, 4].abs().max() == 0 and normalize.std[0, 4] == 1.0
    new = frame.iloc[:2].copy()
    new["island"] = ["Anvers", None]  # an island training never saw, and an empty cell
    new.to_csv(tmp_path / "new.csv", index=False)
    x = normalize(read_inputs(str(tmp_path / "new.csv"), [5], "float32", splits.feature_names, table=splits.table).x)
    assert torch.isfinite(x).all() and x.abs().max() < 100, x  # was about 1,000,000 in <other>


def test_real_csv_files_quoted_headers_and_other_separators_are_read(tmp_path):
    from runner.data.table import TableKeys, plan
    from runner.data.tablefile import read_table
    from runner.io.errors import RunnerError

    rows = "".join(f"{20 + i} {i % 3} {'ny'[i % 2]}\n" for i in range(30))
    files = {
        "quoted.csv": "'age','party','vote'\n" + rows.replace(" ", ","),  # headers in single quotes
        "spaces.txt": "age  party   vote\n" + rows,  # whitespace-separated, as R's write.table and many .dat files
        "semicolons.csv": "age;party;vote\n" + rows.replace(" ", ";"),  # Excel's CSV in much of Europe
        "tabs.tsv": '"age"\t"party"\t"vote"\n' + rows.replace(" ", "\t"),
    }
    for name, text in files.items():
        (tmp_path / name).write_text(text)
        frame = read_table(tmp_path / name)
        assert list(frame.columns) == ["age", "party", "vote"], name
        assert frame["vote"].tolist()[:2] == ["n", "y"] and len(frame) == 30, name
    # dataset.sep is pandas' sep: a separator the header does not show is given
    (tmp_path / "bars.txt").write_text("age:party:vote\n" + rows.replace(" ", ":"))
    keys = TableKeys.of({"path": str(tmp_path / "bars.txt"), "target": "vote"})
    with pytest.raises(RunnerError) as refused:  # read as one column: said so, each name shown as repr
        plan(keys)
    said = str(refused.value)
    assert "no column named 'vote' (dataset.target). Its columns are: 'age:party:vote' (one column" in said
    # the separator the lone name shows (separator() finds , ; tab and | itself, so ';' is never the fix here)
    assert "dataset.sep=: gives it" in said
    found = plan(TableKeys.of({"path": str(tmp_path / "bars.txt"), "target": "vote", "sep": ":"}))
    assert found.classes == ["n", "y"] and found.encoder.names() == ["age", "party"]


@pytest.mark.parametrize(
    "name, override",
    [
        ("age:party:vote", "dataset.sep=:"),
        ("age#party#vote", "'dataset.sep=\"#\"'"),  # a character Hydra reads only quoted
        ("age party vote", "dataset.sep=CHAR"),  # nothing but letters and spaces: no separator shown
        ("vote", "dataset.sep=CHAR"),
    ],
)
def test_the_one_column_hint_names_the_separator_the_name_shows(name, override):
    from runner.data.tablefile import sep_override

    assert sep_override(name) == override


def test_the_separator_a_one_column_refusal_suggests_reads_the_file_as_typed(tmp_path):
    import shlex

    import yaml

    from runner.data.table import TableKeys, plan

    # a '#'-separated file: the suggestion must be quoted for Hydra and for the shell, and still give '#'
    rows = "".join(f"{20 + i}#{i % 3}#{'ny'[i % 2]}\n" for i in range(30))
    (tmp_path / "t.csv").write_text("age#party#vote\n" + rows)
    start = ["train", "dataset=csv", "dataset.path=t.csv", "dataset.target=vote"]
    refused = runner(*start, cwd=tmp_path, check=False)
    assert_clean_failure(refused)
    said = " ".join((refused.stdout + refused.stderr).split())
    assert "Its columns are: 'age#party#vote' (one column: is its separator another?" in said, said
    fix = shlex.split(said.split("is its separator another? ")[1].split(" gives it")[0])  # as a shell passes it
    assert fix == ['dataset.sep="#"'], fix
    # typed as suggested: read with its columns, the two features and the two classes of vote
    dataset = yaml.safe_load(runner(*start, *fix, "--cfg", "job", "--resolve", cwd=tmp_path).stdout)["dataset"]
    assert (dataset["sep"], dataset["input_shape"], dataset["num_classes"]) == ("#", [2], 2), dataset
    found = plan(TableKeys.of({**dataset, "path": str(tmp_path / "t.csv")}))
    assert found.classes == ["n", "y"] and found.encoder.names() == ["age", "party"]


def test_a_saved_index_is_left_out_when_rows_with_an_empty_target_are_dropped(tmp_path):
    from runner.data.table import TableKeys, plan

    # pandas' to_csv with its index: a first column '' (read as 'Unnamed: 0') of 0, 1, 2, ...
    x = np.arange(60)
    frame = pd.DataFrame(
        {"a": (x * 7) % 11, "c": (x * 5) % 13, "b": [None if i in (4, 9, 17) else "ab"[i % 2] for i in x]}
    )
    frame.to_csv(tmp_path / "t.csv")
    assert (tmp_path / "t.csv").read_text().startswith(",a,c,b\n0,0,0,a\n")
    for missing_target in ("refuse", "drop"):
        keys = {"path": str(tmp_path / "t.csv"), "target": "b", "missing_target": missing_target}
        if missing_target == "refuse":
            # the same file with no empty target: what is found with no row dropped, for comparison
            frame.fillna("a").to_csv(tmp_path / "t.csv")
        else:
            frame.to_csv(tmp_path / "t.csv")
        found = plan(TableKeys.of(keys))
        # with the three rows dropped the index ran 0..3, 5..8, ... and was kept as a feature
        assert found.encoder.names() == ["a", "c"], (missing_target, found.encoder.names())
        assert any("'Unnamed: 0' (the row numbers, as pandas writes its index)" in n for n in found.notes), found.notes


def test_rows_with_an_empty_target_are_refused_or_dropped_and_counted(tmp_path):
    from runner.data.table import TableKeys, plan
    from runner.io.errors import RunnerError

    # a feature that is not 0, 1, 2, ... (that would be a saved index, left out)
    lines = [f"{i * 7 % 11},{'' if i in (4, 9, 17) else 'ab'[i % 2]}" for i in range(60)]
    (tmp_path / "t.csv").write_text("a,b\n" + "\n".join(lines) + "\n")
    keys = {"path": str(tmp_path / "t.csv"), "target": "b"}
    refused = "is empty at line 6, line 11, line 19. Give every row a target, or leave those rows out with "
    with pytest.raises(RunnerError, match=re.escape(refused + "dataset.missing_target=drop")):
        plan(TableKeys.of(keys))
    found = plan(TableKeys.of({**keys, "missing_target": "drop"}))
    assert sum(len(part) for part in found.parts.values()) == 57  # 60 rows, 3 without a target
    kept = {label for part in found.parts.values() for label in part.index}
    assert not {4, 9, 17} & kept and len(kept) == 57
    assert "table: left out 3 of 60 rows of t.csv whose 'b' is empty (line 6, line 11, line 19;" in found.notes[-1]


@pytest.mark.slow  # a training, eval and predict (12 s)
def test_a_tables_predictions_name_their_csv_lines_and_an_unseen_island_gets_an_ordinary_probability(tmp_path):
    frame = penguins(n=200)
    frame.to_csv(tmp_path / "p.csv", index=False)
    args = ["dataset=csv", "dataset.path=p.csv", "dataset.target=species", "trainer.epochs=5", "hydra.run.dir=r"]
    train = runner("train", *args, cwd=tmp_path)
    assert "table: left out 'comment' (free text: " in train.stdout
    runner("predict", "ckpt=r", "input=test", "out=t", cwd=tmp_path)
    rows = pd.read_csv(tmp_path / "t" / "predictions.csv")
    assert list(rows.columns[:4]) == ["line", "label", "class_index", "true_label"] and len(rows) == 40
    lines = (tmp_path / "p.csv").read_text().splitlines()  # line 1 is the header
    assert [lines[n - 1].split(",")[-1] for n in rows["line"]] == rows["true_label"].tolist()
    # islands the training split never saw, and an empty one: ordinary inputs, ordinary probabilities
    new = frame.iloc[:6].copy()
    new["island"] = ["Anvers", "Anvers", None, "Deception", "Biscoe", "Dream"]
    new.drop(columns="species").to_csv(tmp_path / "new.csv", index=False)
    runner("predict", "ckpt=r", "input=new.csv", "out=n", cwd=tmp_path)
    unseen = pd.read_csv(tmp_path / "n" / "predictions.csv")
    assert unseen["line"].tolist() == [2, 3, 4, 5, 6, 7]
    # with <other> scaled by 1e-6 its 1 became 1,000,000 and every such row a class at p = 1.000000
    assert (unseen["top1_prob"].iloc[:4] < 0.999999).all(), unseen
