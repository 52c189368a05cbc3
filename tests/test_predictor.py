"""A run's model used on raw inputs: checkpoints/model.json carries the preprocessing, the predictor applies it."""

import json
import shutil

import pytest
import torch
from conftest import load, summary
from omegaconf import OmegaConf

import runner
from runner.io.errors import RunnerError
from runner.training.build import PIPELINE_KEYS, instantiate


def test_raw_test_digits_through_the_predictor_reach_evals_accuracy_exactly(digits_run):
    _, run, _ = digits_run
    card = json.loads((run / "checkpoints" / "model.json").read_text())
    assert card["task"] == "classification" and card["input_shape"] == [1, 8, 8] and card["input_dtype"] == "uint8"
    assert card["class_names"] == [str(d) for d in range(10)] and card["model"]["_target_"] == "runner.models.CNN"
    # digits' pixels are 0..255 (scikit-learn's 0..16 counts times 255 / 16), with a mean near 4.9 * 255 / 16
    assert 60 < card["preprocessing"]["mean"][0][0][0][0] < 95 and card["preprocessing"]["range"] == [0, 255]

    # the test split exactly as the run drew it, as raw uint8 pixels (0..255): no normalisation by hand
    dataset = OmegaConf.load(run / ".hydra" / "config.yaml").dataset
    splits = instantiate(OmegaConf.masked_copy(dataset, [k for k in dataset if k not in PIPELINE_KEYS]))
    raw = splits.test.x
    assert raw.dtype == torch.uint8 and int(raw.max()) == 255

    predictor = runner.load_predictor(run)
    result = predictor.predict(raw)
    correct = int((result.indices == splits.test.y).sum())
    assert correct / len(raw) == summary(run)["test"]["test_accuracy"]  # runner eval's figure, to the last digit
    assert result.labels[:3] == [str(i) for i in result.indices[:3].tolist()]
    assert torch.allclose(result.probs.sum(dim=1), torch.ones(len(raw)))
    one = predictor.predict(raw[0])  # a single sample, without a batch dimension
    assert one.indices.tolist() == result.indices[:1].tolist()

    with pytest.raises(
        RunnerError,
        match=r"inputs of shape \[5, 8, 8\] do not fit this model, which takes samples of shape \[1, 8, 8\]",
    ):
        predictor.predict(torch.zeros(5, 8, 8, dtype=torch.uint8))


def test_best_pt_holds_contiguous_tensors(digits_run):
    _, run, _ = digits_run
    assert (
        summary(run)["channels_last"] is True
    )  # the model trained channels-last: its conv weights were not contiguous
    best = load(run / "checkpoints" / "best.pt")
    assert all(t.is_contiguous() for t in best.values())


def test_a_run_without_a_model_card_still_says_how_to_predict(tmp_path, digits_run):
    _, run, _ = digits_run
    old = shutil.copytree(run, tmp_path / "old")
    (old / "checkpoints" / "model.json").unlink()
    with pytest.raises(RunnerError, match=r"has no checkpoints/model\.json: it was trained before runs recorded"):
        runner.load_predictor(old)
    assert runner.load_model(old).training is False  # the model itself still loads


def test_a_checkpoint_file_outside_checkpoints_belongs_to_the_folder_it_lies_in(tmp_path, digits_run):
    # ckpt=RUN/weights.pt: its run is RUN (the file's folder), as for eval and predict, not RUN's parent
    _, run, _ = digits_run
    copy = shutil.copytree(run, tmp_path / "run")
    loose = copy / "weights.pt"
    shutil.copyfile(copy / "checkpoints" / "best.pt", loose)
    assert not (tmp_path / "checkpoints").exists()  # the folder above the run holds no card to find by mistake
    predictor = runner.load_predictor(loose)
    assert predictor.card.class_names == [str(d) for d in range(10)] and predictor.weights == loose


def test_a_run_from_before_digits_moved_to_0_255_still_evaluates_and_predicts(tmp_path):
    # such a run trained on scikit-learn's 0..16 and saved a format-1 card (`normalize`, no preprocessing block) and a
    # config without dataset.max_value: it must evaluate as it did, and read a 0..255 PNG on its own 0..16 scale
    from conftest import run_dirs
    from conftest import runner as run_runner
    from PIL import Image

    run_runner("train", "dataset.max_value=16", "trainer.epochs=2", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    config = run / ".hydra" / "config.yaml"
    config.write_text(config.read_text().replace("  max_value: 16\n", ""))
    card_file = run / "checkpoints" / "model.json"
    card = json.loads(card_file.read_text())
    pre = card.pop("preprocessing")
    card_file.write_text(json.dumps(card | {"format": 1, "normalize": {"mean": pre["mean"], "std": pre["std"]}}))
    assert "max_value" not in config.read_text() and "preprocessing" not in card_file.read_text()

    run_runner("eval", f"ckpt={run}", cwd=tmp_path)
    (metrics,) = tmp_path.glob("outputs/eval/*/*/metrics.json")
    assert json.loads(metrics.read_text())["test_accuracy"] == summary(run)["test"]["test_accuracy"]
    predictor = runner.load_predictor(run)
    assert predictor.card.preprocessing["range"] == [0, 16] and predictor.card.preprocessing["image"]["mode"] == "L"
    dataset = OmegaConf.load(config).dataset
    counts = instantiate(
        OmegaConf.masked_copy(dataset, [k for k in dataset if k not in PIPELINE_KEYS]), max_value=16
    ).test.x
    pngs = [Image.fromarray((counts[i, 0].double() * 255 / 16).round().to(torch.uint8).numpy(), "L") for i in range(40)]
    from_pngs, from_counts = predictor.predict(pngs), predictor.predict(counts[:40])
    assert torch.equal(from_pngs.probs, from_counts.probs)  # each 0..255 pixel back to its count exactly
