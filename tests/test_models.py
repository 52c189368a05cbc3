"""The built-in models take what the dataset gives: `cnn` on images (C, H, W) and on signals (C, L)."""

import csv
import json

import numpy as np
import torch
from conftest import assert_clean_failure, load, run_dirs, runner, summary
from formats import write_mnist

import runner as runner_api
from runner.models import CNN, FastNet


def test_cnn_is_1d_for_signals_and_keeps_the_2d_layout_for_images():
    signal, image = CNN(2, 5, channels=[4, 8], dims=1), CNN(1, 10)
    assert signal(torch.randn(3, 2, 40)).shape == (3, 5)
    assert {type(m).__name__ for m in signal.modules()} >= {"Conv1d", "BatchNorm1d", "MaxPool1d", "AdaptiveAvgPool1d"}
    assert not any(isinstance(m, torch.nn.Conv2d) for m in signal.modules())
    # the 2-D net's parameter names are those best.pt files saved before dims existed hold
    assert list(image.state_dict())[:3] == ["features.0.0.weight", "features.0.1.weight", "features.0.1.bias"]


def test_a_signal_dataset_trains_the_1d_cnn_and_predicts_from_a_npy_file(tmp_path):
    shape = ["dataset=fake", "dataset.input_shape=[2,40]", "dataset.size=256", "dataset.test_size=64"]
    runner("train", *shape, "trainer.epochs=1", "model.channels=[8,16]", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    assert json.loads((run / "checkpoints" / "model.json").read_text())["model"]["dims"] == 1  # from the input_shape
    assert load(run / "checkpoints" / "best.pt")["features.0.0.weight"].shape == (8, 2, 3)  # a Conv1d's weight
    assert summary(run)["status"] == "completed"

    signals = np.random.default_rng(0).normal(size=(5, 2, 40)).astype(np.float32)
    np.save(tmp_path / "signals.npy", signals)
    runner("predict", f"ckpt={run}", "input=signals.npy", cwd=tmp_path)
    (path,) = (tmp_path / "outputs" / "predict").glob("*/*/predictions.csv")
    with open(path, newline="") as f:
        labels = [r["label"] for r in csv.DictReader(f)]
    assert labels == runner_api.load_predictor(run).predict(signals).labels and len(labels) == 5


def test_fastnet_batchnorm_is_airbench94s():
    # airbench94.py (KellerJordan/cifar10-airbench), class BatchNorm: nn.BatchNorm2d(eps=1e-12, momentum=1 - 0.6),
    # weight.requires_grad = False, bias trained; hyp['net']['batchnorm_momentum'] = 0.6. Six of them, two per group.
    norms = [m for m in FastNet().modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert len(norms) == 6
    assert all(m.momentum == 1 - 0.6 and m.eps == 1e-12 for m in norms), [(m.momentum, m.eps) for m in norms]
    assert all(not m.weight.requires_grad and m.bias.requires_grad for m in norms)
    # airbench's convention, as torch applies it: the running mean keeps 0.6 of itself and takes 0.4 of the batch's
    norm = norms[0]
    x = torch.randn(8, norm.num_features, 4, 4) + 3.0
    norm.train()(x)
    expected = 0.6 * torch.zeros(norm.num_features) + 0.4 * x.mean(dim=(0, 2, 3))
    assert torch.allclose(norm.running_mean, expected, atol=1e-6)


def test_lenet_on_28x28_names_the_padding_that_fits_and_that_command_trains(tmp_path):
    write_mnist(tmp_path / "data")
    proc = runner("train", "dataset=mnist", "model=lenet", "trainer.epochs=1", cwd=tmp_path, check=False)
    assert_clean_failure(
        proc, "cannot take this dataset's input of shape [1, 28, 28]", "model.padding=2 pads 28x28 ones to that"
    )
    runner("train", "dataset=mnist", "model=lenet", "model.padding=2", "trainer.epochs=1", cwd=tmp_path)
    assert summary(run_dirs(tmp_path)[-1])["status"] == "completed"
