"""The figures of runner/stats in training and eval: trainer.metrics per epoch, trainer.monitor on any of them, every
figure of the final test and of `runner eval` with its interval, a 2-class run's threshold (fixed or tuned) in the model
card and in predict, per_class.csv and reliability.png.

Issue 36's example: a 2-class table with a 68/32 balance reported accuracy alone (0.730 against a majority rate of
0.678), the minority class' recall (40 %) only in eval's table: summary.json now has F1, AUROC and each class'
recall."""

import csv
import json
import os

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from conftest import free_port, runner, summary
from helpers.in_process import runner_in_process

from runner.data.batches import Batches
from runner.data.splits import Split
from runner.stats.metrics import names
from runner.training.metrics import TASKS, Outputs, epoch_figures, evaluate


def rows(path):
    with open(path) as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def imbalanced(tmp_path_factory):
    """A 2-class table with a 68/32 balance (scikit-learn's make_classification), trained with the figures an
    imbalanced problem is judged by, best.pt chosen by validation's macro F1 and the threshold tuned for F1."""
    from sklearn.datasets import make_classification

    cwd = tmp_path_factory.mktemp("imbalanced")
    x, y = make_classification(
        n_samples=600, n_features=6, n_informative=3, weights=[0.68], flip_y=0.05, random_state=0
    )
    with open(cwd / "t.csv", "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow([*(f"f{j}" for j in range(6)), "label"])
        writer.writerows([*map(float, row), ["no", "yes"][c]] for row, c in zip(x, y))
    table = ["dataset=csv", "dataset.path=t.csv", "dataset.target=label", "dataset.baselines=false"]
    runner(
        "train",
        *table,
        "trainer.epochs=4",
        "trainer.metrics=[f1_macro,auroc]",
        "trainer.monitor=val_f1_macro",
        "trainer.threshold=tuned",
        "hydra.run.dir=run",
        cwd=cwd,
    )
    return cwd, cwd / "run"


def test_an_imbalanced_tables_run_reports_f1_auroc_and_each_class_recall_with_intervals(imbalanced):
    _, run = imbalanced
    done = summary(run)
    epochs = rows(run / "metrics.csv")
    # trainer.metrics: their val_ columns each epoch; best.pt is the epoch of the best macro F1 (the first of ties)
    assert {"val_loss", "val_accuracy", "val_f1_macro", "val_auroc"} <= set(epochs[0])
    f1 = [float(r["val_f1_macro"]) for r in epochs]
    assert done["best"]["epoch"] == 1 + f1.index(max(f1)) and done["best"]["val_f1_macro"] == max(f1)
    test = done["test"]
    assert set(test) == {"test_loss", *(f"test_{n}" for n in names("classification", 2))}
    assert 0 < test["test_f1_macro"] < 1 and 0.5 < test["test_auroc"] <= 1
    # the minority class' recall, by name
    assert set(done["per_class"]) == {"no", "yes"} and 0 <= done["per_class"]["yes"]["recall"] <= 1
    assert done["per_class"]["yes"]["support"] < done["per_class"]["no"]["support"]
    # every test figure but the loss has its interval around it, Wilson for accuracy
    intervals = done["intervals"]
    assert set(intervals) == set(test) - {"test_loss"}
    assert intervals["test_accuracy"]["method"] == "wilson" and intervals["test_f1_macro"]["method"] == "bootstrap"
    for name, interval in intervals.items():
        assert interval["low"] <= test[name] <= interval["high"] or name == "test_ece", (name, interval)
        assert interval["n"] == sum(row["support"] for row in done["per_class"].values())
    # the tuned threshold, recorded for predict and export
    card = json.loads((run / "checkpoints" / "model.json").read_text())
    assert done["threshold"]["rule"] == "tuned" and card["threshold"] == done["threshold"]["value"]
    assert 0 < card["threshold"] < 1


def test_eval_gives_the_same_figures_intervals_and_writes_per_class_csv_and_reliability_png(imbalanced):
    cwd, run = imbalanced
    proc = runner("eval", "ckpt=run", "hydra.run.dir=ev", cwd=cwd)
    done, result = summary(run), json.loads((cwd / "ev" / "metrics.json").read_text())
    assert {k: v for k, v in result.items() if k.startswith("test_")} == done["test"]
    assert result["intervals"] == done["intervals"]
    low, high = done["intervals"]["test_f1_macro"]["low"], done["intervals"]["test_f1_macro"]["high"]
    assert f"{done['test']['test_f1_macro']:.3f} [{low:.3f}, {high:.3f}] n=" in proc.stdout
    per_class = rows(cwd / "ev" / "per_class.csv")
    assert [r["class"] for r in per_class] == ["no", "yes"]
    assert float(per_class[1]["recall"]) == pytest.approx(done["per_class"]["yes"]["recall"])
    # the confusion matrix counts the tuned threshold's labels too, as the figures do (not the argmax's)
    assert done["threshold"]["value"] != 0.5  # precondition: the threshold moves labels off the argmax
    confusion = result["confusion_matrix"]
    for i, row in enumerate(per_class):
        assert confusion[i][i] / sum(confusion[i]) == pytest.approx(float(row["recall"]), abs=1e-12)
    assert (cwd / "ev" / "reliability.png").stat().st_size > 0 and (cwd / "ev" / "confusion_matrix.png").is_file()


def test_predict_labels_by_the_runs_threshold(imbalanced):
    cwd, run = imbalanced
    threshold = summary(run)["threshold"]["value"]
    runner("predict", "ckpt=run", "input=t.csv", "topk=2", "out=pr", cwd=cwd)
    predicted = rows(cwd / "pr" / "predictions.csv")
    yes = [float(r["top1_prob"] if r["top1_label"] == "yes" else r["top2_prob"]) for r in predicted]
    clear = [(r, p) for r, p in zip(predicted, yes) if abs(p - threshold) > 1e-6]
    assert len(clear) > 500 and all((r["label"] == "yes") == (p > threshold) for r, p in clear)
    # the rows whose label the threshold moved off their most probable class
    moved = [r for r, p in clear if min(threshold, 0.5) < p < max(threshold, 0.5)]
    assert sum(r["label"] != r["top1_label"] for r, _ in clear) == len(moved)


def test_the_default_run_keeps_its_columns_and_has_every_figure_with_an_interval(digits_run):
    _, run, printed = digits_run
    assert list(rows(run / "metrics.csv")[0])[:4] == ["epoch", "train_loss", "val_loss", "val_accuracy"]
    assert not [
        c for c in rows(run / "metrics.csv")[0] if c.startswith("val_") and c not in ("val_loss", "val_accuracy")
    ]
    done = summary(run)
    assert set(done["test"]) == {"test_loss", *(f"test_{n}" for n in names("classification", 10))}
    assert set(done["intervals"]) == set(done["test"]) - {"test_loss"} and "threshold" not in done
    accuracy = done["intervals"]["test_accuracy"]
    assert f"{done['test']['test_accuracy']:.3f} [{accuracy['low']:.3f}, {accuracy['high']:.3f}] n=359" in printed


def test_a_regression_run_has_its_figures_with_bootstrap_intervals(tmp_path):
    args = ["dataset=sum_pairs", "model=mlp", "trainer.epochs=2", "trainer.monitor=val_r2", "hydra.run.dir=run"]
    runner("train", *args, cwd=tmp_path)
    done = summary(tmp_path / "run")
    assert {"test_mae", "test_rmse", "test_r2", "test_median_ae"} <= set(done["test"])
    assert {i["method"] for i in done["intervals"].values()} == {"bootstrap"}
    assert done["best"]["val_r2"] == max(float(r["val_r2"]) for r in rows(tmp_path / "run" / "metrics.csv"))


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["trainer.metrics=[mae]"], "trainer.metrics: mae is a regression figure, and this is a classification run"),
        (["trainer.metrics=[f2]"], "f2 is no classification figure runner knows. The classification figures: accuracy"),
        (["trainer.monitor=val_r2"], "trainer.monitor=val_r2 is not a column this classification run writes"),
        (["trainer.threshold=0.3"], "trainer.threshold=0.3 decides between 2 classes by class 1's probability"),
        (["dataset=sum_pairs", "trainer.threshold=tuned"], "but this is a regression run (values, no classes)"),
        (["trainer.threshold=1.5"], "a number in (0, 1) or tuned"),
    ],
    ids=["other task", "unknown", "monitor", "threshold of 10 classes", "threshold of a regression", "out of range"],
)
def test_figures_and_thresholds_that_cannot_apply_are_refused_before_the_run(tmp_path, args, said):
    proc = runner_in_process("train", *args, cwd=tmp_path)
    assert proc.returncode == 1 and said in proc.stderr + proc.stdout, proc.stderr[-1500:]
    assert "Traceback" not in proc.stderr


def test_epoch_figures_are_the_knobs_and_the_monitor_less_what_the_device_measures():
    task = TASKS["classification"]
    assert epoch_figures(None, "val_loss", task) == [] and epoch_figures(None, "val_accuracy", task) == []
    assert epoch_figures(["f1_macro", "accuracy"], "val_auroc", task) == ["f1_macro", "auroc"]
    assert epoch_figures(["auroc"], "val_auroc", task) == ["auroc"] and epoch_figures(None, "train_loss", task) == []


def _evaluate_share(rank, world, port, out):
    """Rank `rank`'s evaluation of the test split as BatchIndices shares it, its kept outputs gathered."""
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(1)
    model, split = _model_and_split()
    kept = Outputs()
    batches = Batches(split, 8, transform=lambda x: x, rank=rank, world=world)
    evaluate(model, batches, task=TASKS["classification"], num_classes=3, keep=kept)
    if rank == 0:
        torch.save({"y": torch.from_numpy(kept.y), "out": torch.from_numpy(kept.out)}, out)
    dist.destroy_process_group()


def _model_and_split():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3))
    return model, Split(torch.randn(21, 4), torch.arange(21) % 3)


def test_kept_outputs_are_in_the_datasets_order_under_torchrun(tmp_path, world=2):
    model, split = _model_and_split()
    kept = Outputs()
    # 21 samples in global batches of 8: the last batch's 5 split 3 and 2
    evaluate(model, Batches(split, 8, transform=lambda x: x), task=TASKS["classification"], num_classes=3, keep=kept)
    assert kept.out.shape == (21, 3) and np.array_equal(kept.y, split.y.numpy())
    mp.spawn(_evaluate_share, args=(world, free_port(), tmp_path / "rank0.pt"), nprocs=world, join=True)
    gathered = torch.load(tmp_path / "rank0.pt", weights_only=True)
    assert np.array_equal(gathered["y"].numpy(), kept.y)
    assert np.allclose(gathered["out"].numpy(), kept.out, rtol=1e-6, atol=1e-9)


def test_a_regressions_kept_outputs_are_in_the_targets_units():
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    split = Split(torch.randn(10, 3), torch.randn(10, 2))
    std, mean = torch.tensor([2.0, 10.0]), torch.tensor([-1.0, 100.0])
    kept = Outputs()
    measured, _ = evaluate(
        model,
        Batches(split, 4, transform=lambda x: x),
        task=TASKS["regression"],
        num_classes=2,
        target_std=std,
        target_mean=mean,
        keep=kept,
    )
    with torch.no_grad():
        expected = (model(split.x) * std + mean).double().numpy()
    assert np.allclose(kept.out, expected) and np.allclose(kept.y, (split.y * std + mean).double().numpy())
    # the MAE evaluate measures on the device (in the targets' units) is the kept outputs' own
    assert measured["mae"] == pytest.approx(np.abs(kept.out - kept.y).mean(), rel=1e-5)


def test_a_monitored_figure_undefined_on_the_validation_split_is_named_as_the_cause_not_divergence():
    from runner.training.finish import no_best

    # AUROC without a sample of every class in the validation split is NaN at every epoch, with nothing diverging
    said = str(no_best("val_auroc", 3))
    assert "not defined on a validation split with no sample of some class" in said and "optimizer.lr" not in said
    assert "a target of 0" in str(no_best("val_mape", 3))
    # a loss that was NaN at every epoch did diverge: that advice stays
    assert "Lower optimizer.lr" in str(no_best("val_loss", 3))
