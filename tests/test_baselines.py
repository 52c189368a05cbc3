"""The baselines a run's test figure is read against (runner/data/baselines.py): the trivial baseline of every dataset
(the majority class; the mean and the median of the targets), scikit-learn's models on flattened arrays and images,
and a run that does not beat the trivial baseline saying so."""

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import runner, summary
from sklearn import metrics

from runner.data.baselines import MAX_FEATURES, baseline_rows, baselines, beats_trivial, trivial_verdict
from runner.data.splits import Split, Splits
from runner.data.stream import FileSplit


def classes(n, share, seed):
    """n labels, a `share` of them class 0, shuffled."""
    y = np.ones(n, dtype=np.int64)
    y[: round(share * n)] = 0
    return torch.from_numpy(np.random.default_rng(seed).permutation(y))


def test_the_majority_class_is_scored_by_its_accuracy_f1_and_the_log_loss_of_the_class_prior():
    train_y, test_y = classes(200, 0.68, 0), classes(50, 0.7, 1)
    x = torch.randn(250, 3, generator=torch.Generator().manual_seed(0))
    splits = Splits(Split(x[:200], train_y), Split(x[:1], train_y[:1]), Split(x[200:], test_y))
    found = baselines(splits, "classification", 2, models=False)
    assert list(found) == ["majority class"]
    prior = np.tile([0.68, 0.32], (50, 1))
    assert found["majority class"] == pytest.approx(
        {
            "test_accuracy": 0.7,
            "test_f1_macro": metrics.f1_score(test_y, np.zeros(50), average="macro"),
            "test_log_loss": metrics.log_loss(test_y, prior),
        },
        abs=1e-9,
    )


def test_the_mean_and_the_median_are_scored_in_the_targets_own_units():
    rng = np.random.default_rng(0)
    raw = rng.exponential(50.0, 300) + 100
    scale = {"mean": [float(raw[:200].mean())], "std": [float(raw[:200].std())]}
    # the dataset hands the targets over standardised, as a table does
    y = torch.tensor((raw - scale["mean"][0]) / scale["std"][0], dtype=torch.float32)[:, None]
    x = torch.zeros(300, 2)
    splits = Splits(Split(x[:200], y[:200]), Split(x[:1], y[:1]), Split(x[200:], y[200:]), target_scale=scale)
    found = baselines(splits, "regression", 1, models=False)
    test = raw[200:]
    for name, constant in (("mean", raw[:200].mean()), ("median", np.median(raw[:200]))):
        assert found[name]["test_mae"] == pytest.approx(np.abs(test - constant).mean(), rel=1e-5)
        assert found[name]["test_rmse"] == pytest.approx(np.sqrt(((test - constant) ** 2).mean()), rel=1e-5)
        assert found[name]["test_r2"] == pytest.approx(metrics.r2_score(test, np.full(100, constant)), rel=1e-4)
    # skewed targets: the median's absolute error is the smaller
    assert found["median"]["test_mae"] < found["mean"]["test_mae"]


def test_arrays_and_images_get_a_linear_model_on_their_flattened_inputs_where_their_width_allows():
    from sklearn.datasets import load_digits

    # 500 of scikit-learn's 8 x 8 digits, as 8-bit images: 400 to fit on, 100 to test
    digits = load_digits()
    images = torch.from_numpy((digits.images[:500] * 255 / 16).round().astype(np.uint8))[:, None]
    y = torch.from_numpy(digits.target[:500])

    def of(x):
        return Splits(Split(x[:400], y[:400]), Split(x[:1], y[:1]), Split(x[400:], y[400:]))

    found = baselines(of(images), "classification", 10)
    # images: the trivial baseline, then a linear model on the 64 pixels (no boosting on raw pixels)
    assert list(found) == ["majority class", "logistic regression"]
    assert found["logistic regression"]["test_accuracy"] > 0.8 > 0.2 > found["majority class"]["test_accuracy"]
    features = baselines(of(images.reshape(len(images), 64).float()), "classification", 10, models=True)
    assert list(features) == ["majority class", "logistic regression", "HistGradientBoosting"]
    wide = torch.zeros(len(y), MAX_FEATURES + 1)
    assert list(baselines(of(wide), "classification", 10)) == ["majority class"]
    assert list(baselines(of(images), "classification", 10, models=False)) == ["majority class"]
    # a streamed image folder: its labels only, so the trivial baseline alone
    streamed = FileSplit([(f"{i}.png", int(c)) for i, c in enumerate(y[:20])], (1, 8, 8), 0)
    assert list(baselines(Splits(streamed, streamed, streamed), "classification", 10)) == ["majority class"]


@pytest.mark.parametrize(
    ("metric", "value", "beats"),
    [
        ("accuracy", 0.73, True),
        ("accuracy", 0.68, False),
        ("accuracy", float("nan"), False),
        ("mae", 0.70, True),
        ("mae", 0.75, False),
        ("rmse", 1.0, None),
    ],
)
def test_a_test_figure_beats_the_trivial_baseline_only_where_it_is_strictly_better(metric, value, beats):
    record = {
        "majority class": {"test_accuracy": 0.68},
        "mean": {"test_mae": 0.80},
        # the better of the two constants is the one to beat
        "median": {"test_mae": 0.72},
        "ridge": {"test_mae": 0.5},
    }
    assert beats_trivial({f"test_{metric}": value}, record, metric) is beats
    line = trivial_verdict({f"test_{metric}": value}, record, metric)
    assert (line is not None) == (beats is False)


def test_the_results_rows_put_the_trivial_baseline_first_and_a_losing_run_is_told_in_words():
    record = {"median": {"test_mae": 0.72}, "mean": {"test_mae": 0.8}, "ridge": {"test_mae": 0.98}}
    assert baseline_rows(record, "mae") == [
        ("test_mae of the median (trivial baseline)", 0.72),
        ("test_mae of the mean (trivial baseline)", 0.8),
        ("test_mae of ridge (scikit-learn)", 0.98),
    ]
    line = trivial_verdict({"test_mae": 0.916}, record, "mae")
    assert line.startswith("test_mae 0.9160 does not beat the trivial baseline: always predicting the training median")
    # a summary of a run from before the trivial baseline: scikit-learn's figures alone, no verdict
    assert beats_trivial({"test_mae": 0.9}, {"ridge": 0.98}, "mae") is None


def noise_table(path, n=240):
    """Features and a target of noise around 0, unrelated: nothing to learn, and the median (about 0) is hard to
    beat."""
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"f{i}" for i in range(6)])
    frame["y"] = rng.laplace(0.0, 0.5, n)
    frame.to_csv(path, index=False)


def imbalanced_table(path, n=250):
    """A 2-class table, 68 % of its rows class `no`, with features that tell the classes apart a little."""
    rng = np.random.default_rng(0)
    y = rng.random(n) < 0.32
    frame = pd.DataFrame(rng.normal(size=(n, 4)) + 0.5 * y[:, None], columns=["a", "b", "c", "d"])
    frame["label"] = np.where(y, "yes", "no")
    frame.to_csv(path, index=False)


def test_a_regression_losing_to_a_constant_says_so_and_a_68_32_table_shows_its_majority_rate(tmp_path):
    noise_table(tmp_path / "noise.csv")
    args = ["dataset=csv", "dataset.path=noise.csv", "dataset.target=y", "trainer.epochs=3", "dataset.baselines=false"]
    proc = runner("train", *args, "hydra.run.dir=noise", cwd=tmp_path)
    info = summary(tmp_path / "noise")
    assert list(info["baselines"]) == ["mean", "median"] and info["beats_trivial"] is False
    median = info["baselines"]["median"]["test_mae"]
    assert info["test"]["test_mae"] > median
    said = " ".join(proc.stdout.split())
    assert "test_mae of the median (trivial baseline)" in said
    assert f"does not beat the trivial baseline: always predicting the training median scores {median:.4f}" in said

    imbalanced_table(tmp_path / "t.csv")
    args = ["dataset=csv", "dataset.path=t.csv", "dataset.target=label", "trainer.epochs=3"]
    proc = runner("train", *args, "hydra.run.dir=t", cwd=tmp_path)
    info = summary(tmp_path / "t")
    # the test split's own majority rate, stratified as the file: 34 of 50 rows
    share = (pd.read_csv(tmp_path / "t.csv")["label"] == "no").mean()
    majority = info["baselines"]["majority class"]["test_accuracy"]
    assert majority == pytest.approx(share, abs=0.02)
    assert list(info["baselines"]) == ["majority class", "logistic regression", "HistGradientBoosting"]
    (row,) = [line for line in proc.stdout.splitlines() if "test_accuracy of the majority class" in line]
    assert f"{majority:.4f}" in row
    assert info["beats_trivial"] == (info["test"]["test_accuracy"] > majority)
