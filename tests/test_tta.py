"""Test-time augmentation: `runner eval tta=flip`, `runner predict tta=flip` (runner/inference/tta.py)."""

import json

import pytest
import torch
from conftest import runner

from runner import load_predictor
from runner.inference.loading import load_test_split
from runner.inference.tta import FlipTTA, with_tta
from runner.io.errors import RunnerError


def test_on_mirror_symmetric_images_flip_tta_is_the_plain_model_and_elsewhere_it_is_not(digits_run):
    _, run_dir, _ = digits_run
    predictor = load_predictor(run_dir)
    split = load_test_split(run_dir)
    x = predictor.normalize(predictor.as_batch(split.x))
    symmetric = (x + x.flip(-1)) / 2  # each image equal to its mirror
    tta = FlipTTA(predictor.model, "classification")
    with torch.inference_mode():
        plain = predictor.model(symmetric).log_softmax(1)
        averaged = tta(symmetric)
        assert torch.allclose(averaged, plain, atol=1e-5)  # the mean of two equal distributions is that one
        assert torch.equal(averaged.argmax(1), plain.argmax(1))
        # digits are not mirror-symmetric (a mirrored 2 is another symbol): there TTA changes the outputs
        assert not torch.allclose(tta(x), predictor.model(x).log_softmax(1), atol=1e-3)
    regression = FlipTTA(lambda v: v.mean(dim=(1, 2, 3))[:, None] + v[:, 0, 0, :1], "regression")
    batch = torch.arange(8.0).reshape(1, 1, 2, 4)
    assert regression(batch).item() == pytest.approx((3.5 + 0.0 + 3.5 + 3.0) / 2)  # the mean of both outputs


def test_tta_mirrors_images_only_and_knows_one_augmentation():
    model = torch.nn.Identity()
    assert with_tta(model, None, task="classification", input_shape=[2]) is model
    with pytest.raises(RunnerError, match="no mirror image that means the same thing"):
        with_tta(model, "flip", task="regression", input_shape=[2])
    with pytest.raises(RunnerError, match="Use tta=flip"):
        with_tta(model, "rotate", task="classification", input_shape=[1, 8, 8])


def test_eval_and_predict_name_their_tta_metrics_and_agree(tmp_path, digits_run):
    _, run_dir, _ = digits_run
    runner("eval", f"ckpt={run_dir}", "tta=flip", "hydra.run.dir=tta", cwd=tmp_path)
    runner("eval", f"ckpt={run_dir}", "hydra.run.dir=plain", cwd=tmp_path)
    tta = json.loads((tmp_path / "tta" / "metrics.json").read_text())
    plain = json.loads((tmp_path / "plain" / "metrics.json").read_text())
    assert tta["tta"] == "flip" and "test_accuracy" not in tta and "test_accuracy_tta_flip" not in plain
    assert tta["test_loss_tta_flip"] != plain["test_loss"]  # flipped digits are other symbols: it must show
    predicted = runner("predict", f"ckpt={run_dir}", "input=test", "tta=flip", f"out={tmp_path / 'p'}", cwd=tmp_path)
    said = " ".join(predicted.stdout.split())
    assert f"accuracy_tta_flip {tta['test_accuracy_tta_flip']:.4f}" in said, said
