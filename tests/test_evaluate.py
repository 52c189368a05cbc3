"""`runner eval` and `runner.load_model`: a run's checkpoint, rebuilt from the run's own config."""

import json
import shutil

import torch
from conftest import runner, summary

import runner as runner_pkg
from runner.data.toy import digits

PNG = b"\x89PNG\r\n\x1a\n"


def eval_dirs(cwd):
    return sorted(p.parent for p in cwd.glob("outputs/eval/*/*/metrics.json"))


def test_eval_reproduces_the_training_test_metric_to_the_last_digit(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    cwd = tmp_path
    trained = summary(run_dir)["test"]
    proc = runner("eval", f"ckpt={run_dir}", "device=cpu", cwd=cwd)
    result = json.loads((eval_dirs(cwd)[-1] / "metrics.json").read_text())
    assert result["test_accuracy"] == trained["test_accuracy"]
    assert result["test_loss"] == trained["test_loss"]
    assert result["checkpoint"].endswith("checkpoints/best.pt")
    assert (eval_dirs(cwd)[-1] / "confusion_matrix.png").read_bytes().startswith(PNG)
    confusion = torch.tensor(result["confusion_matrix"])
    assert confusion.sum() == result["samples"] == 359
    assert abs(confusion.trace().item() / 359 - result["test_accuracy"]) < 1e-12
    assert "accuracy per class" in proc.stdout and len(result["per_class_accuracy"]) == 10


def test_eval_of_last_pt_uses_its_own_config_and_a_changed_batch_size(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    cwd = tmp_path
    runner("eval", f"ckpt={run_dir}/checkpoints/last.pt", "trainer.eval_batch_size=7", cwd=cwd)
    result = json.loads((eval_dirs(cwd)[-1] / "metrics.json").read_text())
    assert result["checkpoint"].endswith("last.pt") and result["samples"] == 359
    trained = summary(run_dir)
    assert trained["best"]["epoch"] == trained["epochs"]  # precondition: last.pt holds best.pt's weights
    assert result["test_accuracy"] == trained["test"]["test_accuracy"]  # in batches of 7, the same count right


def test_load_model_gives_the_trained_model_in_eval_mode(digits_run):
    _, run_dir, _ = digits_run
    model = runner_pkg.load_model(run_dir)
    assert not model.training
    splits = digits(
        name="digits",
        task="classification",
        input_shape=[1, 8, 8],
        num_classes=10,
        test_fraction=0.2,
        val_fraction=0.1,
        split_seed=0,
        max_value=255,
    )
    x = splits.train.x.float()  # normalised with the training split's statistics, as runner does
    mean, std = x.mean(dim=(0, 2, 3), keepdim=True), x.std(dim=(0, 2, 3), keepdim=True, correction=0)
    with torch.no_grad():
        correct = (model((splits.test.x.float() - mean) / std).argmax(1) == splits.test.y).sum().item()
    assert correct == round(summary(run_dir)["test"]["test_accuracy"] * len(splits.test))


def test_a_run_saved_before_the_data_package_moved_still_evaluates(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    old = tmp_path / "old_run"
    shutil.copytree(run_dir, old)
    config = old / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("runner.data.toy.digits", "runner.datasets.digits"))
    assert "runner.datasets.digits" in config.read_text()  # the module path runs had before runner/data/
    runner("eval", f"ckpt={old}", cwd=tmp_path)
    (metrics,) = tmp_path.glob("outputs/eval/*/*/metrics.json")
    assert json.loads(metrics.read_text())["test_accuracy"] == summary(run_dir)["test"]["test_accuracy"]
