"""`runner train` end to end: the run directory, the results it reaches, and same seed = same bytes."""

import csv
import json
import subprocess
import sys

import pytest
import torch
from conftest import FAST, load, run_dirs, runner, summary

from runner.models import CNN

PNG = b"\x89PNG\r\n\x1a\n"


# Golden results of the default run (cnn on digits, 10 epochs, seed 0): CPU runs are deterministic, and these are
# what this machine gives (the README's 99.44 %). A one-sample slack absorbs another CPU's float rounding; a one-point
# regression (3.6 of 359 test digits) fails. To re-pin after a change meant to move them, run `make train` and copy
# test_accuracy, test_loss and the last train_loss from its summary.json and metrics.csv.
# Re-pinned when the digits moved from scikit-learn's 0..16 to 0..255 (dataset.max_value): the normalised inputs
# moved by the rounding of count * 255 / 16 only, and the accuracy stayed (the losses were 0.03316 and 0.01597).
DIGITS_TEST_ACCURACY = 357 / 359
DIGITS_TEST_LOSS = 0.03302
DIGITS_FINAL_TRAIN_LOSS = 0.01588


def test_default_run_reaches_its_pinned_accuracy_and_writes_a_complete_run_directory(digits_run):
    _, run_dir, stdout = digits_run
    info = summary(run_dir)
    assert info["status"] == "completed" and info["error"] is None
    assert info["test"]["test_accuracy"] == pytest.approx(DIGITS_TEST_ACCURACY, abs=1.5 / 359)
    assert info["test"]["test_loss"] == pytest.approx(DIGITS_TEST_LOSS, abs=2e-3)
    assert info["device"] == "cpu" and info["params"] > 0 and info["epochs"] == 10
    assert (
        info["stopped_by"] == "epochs" and info["environment"]["torch"] == torch.__version__
    )  # provenance: test_diff.py

    for name in (".hydra/config.yaml", ".hydra/overrides.yaml", ".hydra/hydra.yaml", "train.log"):
        assert (run_dir / name).stat().st_size > 0, name
    assert (run_dir / "loss_curve.png").read_bytes().startswith(PNG)
    assert "epoch  10/10" in (run_dir / "train.log").read_text()
    assert str(run_dir) in stdout

    with (run_dir / "metrics.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0]) == [
        "epoch",
        "train_loss",
        "val_loss",
        "val_accuracy",
        "lr",
        "epoch_time_s",
        "train_samples_per_s",
    ]
    assert [int(r["epoch"]) for r in rows] == list(range(1, 11))
    assert float(rows[-1]["train_loss"]) == pytest.approx(DIGITS_FINAL_TRAIN_LOSS, abs=1e-3)

    # best.pt is a plain state_dict, loadable exactly as in the tutorials
    model = CNN(in_channels=1, num_classes=10)
    model.load_state_dict(torch.load(run_dir / "checkpoints" / "best.pt", weights_only=True))
    last = load(run_dir / "checkpoints" / "last.pt")
    assert last["epoch"] == 10 and last["step"] == info["steps"]
    assert last["config"]["model"]["_target_"] == "runner.models.CNN"
    assert set(last) >= {"model", "optimizer", "scheduler", "rng", "data_generator", "best_metric"}
    best_epoch = info["best"]["epoch"]
    assert last["best_epoch"] == best_epoch and last["best_metric"] == info["best"]["val_accuracy"]


def test_sum_pairs_regression_learns_the_sum(tmp_path):
    runner("train", "dataset=sum_pairs", "model=mlp", cwd=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    info = summary(run_dir)
    assert info["task"] == "regression" and info["monitor"] == "val_mae"
    # pinned as the digits run is (re-pin from `runner train dataset=sum_pairs model=mlp`'s summary.json): an MAE of
    # 0.0099 on sums in [-2, 2]; 10 % worse fails
    assert info["test"]["test_mae"] == pytest.approx(0.00994, abs=1e-3)
    assert info["test"]["test_loss"] == pytest.approx(1.668e-4, abs=3e-5)  # MSE
    assert "val_mae" in (run_dir / "metrics.csv").read_text().splitlines()[0]


@pytest.mark.parametrize("model", ["lenet", pytest.param("resnet18", marks=pytest.mark.slow)])
def test_image_models_train_on_fake_cifar_shaped_data(tmp_path, model):
    runner(
        "train",
        f"model={model}",
        "dataset=fake",
        "dataset.size=80",
        "dataset.test_size=16",
        "trainer.epochs=1",
        "trainer.batch_size=32",
        "optimizer=sgd",
        "scheduler=cosine",
        cwd=tmp_path,
    )
    (run_dir,) = run_dirs(tmp_path)
    info = summary(run_dir)
    assert info["status"] == "completed" and info["steps"] == 2  # 72 training samples // 32
    expected = {"lenet": 62006, "resnet18": 11181642}[model]  # the tutorial's Net; torchvision's ResNet-18, 10 classes
    assert info["params"] == expected


@pytest.mark.slow  # test_rundir.py compares the bytes of runs made by separate processes in the default suite
def test_same_seed_gives_identical_metrics_and_bytes(tmp_path):
    for _ in range(2):
        runner("train", *FAST, cwd=tmp_path)
    a, b = run_dirs(tmp_path)
    assert a != b
    strip = lambda d: [line.split(",")[:5] for line in (d / "metrics.csv").read_text().splitlines()]  # noqa: E731
    assert strip(a) == strip(b)
    assert (a / "checkpoints" / "best.pt").read_bytes() == (b / "checkpoints" / "best.pt").read_bytes()
    assert (a / "checkpoints" / "last.pt").read_bytes() == (b / "checkpoints" / "last.pt").read_bytes()


@pytest.mark.slow
def test_runs_that_collide_on_a_directory_name_get_a_directory_each(tmp_path):
    # every run asks for the same name, as runs started in the same second do with the default <date>/<time>
    cmd = [
        sys.executable,
        "-m",
        "runner",
        "train",
        *FAST,
        "trainer.epochs=1",
        "hydra.run.dir=${unique_dir:outputs/day/same}",
    ]
    procs = [subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE) for _ in range(3)]
    assert [p.wait(timeout=300) for p in procs] == [0, 0, 0]
    dirs = run_dirs(tmp_path)
    assert [d.name for d in dirs] == ["same", "same-1", "same-2"]  # the collision happened, and was resolved
    assert all(summary(d)["status"] == "completed" for d in dirs)


@pytest.mark.slow  # test_sweep.py's summary test runs a sweep in the default suite
def test_multirun_writes_one_complete_run_directory_per_job(tmp_path):
    runner("train", "-m", "optimizer.lr=0.1,0.01,0.001", *FAST, "trainer.epochs=1", cwd=tmp_path)
    jobs = sorted(p.parent for p in tmp_path.glob("outputs/multirun/*/*/*/summary.json"))
    assert [j.name for j in jobs] == ["0", "1", "2"]
    lrs = []
    for job in jobs:
        assert summary(job)["status"] == "completed"
        assert (job / "checkpoints" / "best.pt").is_file() and (job / "loss_curve.png").is_file()
        lrs.append(load(job / "checkpoints" / "last.pt")["config"]["optimizer"]["lr"])
    assert lrs == [0.1, 0.01, 0.001]


@pytest.mark.slow
@pytest.mark.parametrize("precision", ["bf16", "16-mixed"])
def test_reduced_precision_trains_and_eval_reproduces_it(tmp_path, precision):
    # 2 epochs: 16-mixed runs at ~160 samples/s on CPU (float16 is emulated there), 8 s an epoch on a quiet 2 cores
    runner("train", f"trainer.precision={precision}", "trainer.epochs=2", cwd=tmp_path)
    (run_dir,) = run_dirs(tmp_path)
    info = summary(run_dir)
    # 2026-12-07: bf16 0.9805, 16-mixed 0.9777 of digits' 359 test images; a point below fails. Re-pin from
    # `runner train trainer.precision=P trainer.epochs=2`.
    assert info["test"]["test_accuracy"] >= 0.967
    runner("eval", f"ckpt={run_dir}", cwd=tmp_path)
    (metrics,) = tmp_path.glob("outputs/eval/*/*/metrics.json")
    assert json.loads(metrics.read_text())["test_accuracy"] == info["test"]["test_accuracy"]


@pytest.mark.slow
def test_memory_format_does_not_change_what_is_learned(tmp_path):
    for setting in ("true", "false"):
        runner("train", *FAST, f"trainer.channels_last={setting}", cwd=tmp_path)
    a, b = run_dirs(tmp_path)
    assert summary(a)["channels_last"] is True and summary(b)["channels_last"] is False
    la, lb = (load(d / "checkpoints" / "best.pt") for d in (a, b))
    assert all(torch.allclose(la[k].float(), lb[k].float(), atol=1e-4) for k in la)


@pytest.mark.slow
def test_compiled_model_learns_what_the_eager_model_learns(tmp_path):
    for setting in ("true", "false"):
        runner(
            "train", *FAST, "model.dropout=0", f"trainer.compile={setting}", cwd=tmp_path
        )  # inductor draws dropout masks its own way
    compiled, eager = run_dirs(tmp_path)
    assert summary(compiled)["status"] == "completed"
    assert not any(k.startswith("_orig_mod") for k in load(compiled / "checkpoints" / "best.pt"))
    losses = [
        [float(line.split(",")[1]) for line in (d / "metrics.csv").read_text().splitlines()[1:]]
        for d in (compiled, eager)
    ]
    assert losses[0] == pytest.approx(losses[1], rel=1e-3)
