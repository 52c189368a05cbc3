"""`runner predict`: a run's model on files, preprocessed as in training, through the real command."""

import csv
import json
import shutil

import numpy as np
import pytest
import torch
from conftest import assert_clean_failure, digest, once_per_session, runner, summary
from omegaconf import OmegaConf
from PIL import Image

import runner as runner_api
from runner.training.build import PIPELINE_KEYS, instantiate


def raw_test_split(run):
    """The run's test split exactly as it drew it, raw (digits: uint8 pixels 0..255)."""
    dataset = OmegaConf.load(run / ".hydra" / "config.yaml").dataset
    return instantiate(OmegaConf.masked_copy(dataset, [k for k in dataset if k not in PIPELINE_KEYS])).test


def predictions(cwd):
    (path,) = (cwd / "outputs" / "predict").glob("*/*/predictions.csv")
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_predict_on_pngs_of_the_test_split_gives_evals_accuracy(tmp_path, digits_run):
    _, run, _ = digits_run
    test = raw_test_split(run)
    assert test.x.dtype == torch.uint8 and len(test) == 359
    for i, (x, y) in enumerate(zip(test.x, test.y.tolist())):  # pngs/<class>/<index>.png, 8-bit grayscale
        (tmp_path / "pngs" / str(y)).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[0].numpy(), "L").save(tmp_path / "pngs" / str(y) / f"{i:03d}.png")

    proc = runner("predict", f"ckpt={run}", "input=pngs", "topk=20", cwd=tmp_path)
    rows = predictions(tmp_path)
    assert len(rows) == 359
    # topk=20 is capped at the 10 classes; the folders are the run's class names, so the true label is known
    assert list(rows[0]) == [
        "filename",
        "label",
        "class_index",
        "true_label",
        *[c for k in range(1, 11) for c in (f"top{k}_label", f"top{k}_prob")],
    ]
    assert all(r["true_label"] == r["filename"].split("/")[0] for r in rows)
    correct = sum(r["label"] == r["true_label"] for r in rows)
    accuracy = summary(run)["test"]["test_accuracy"]
    assert correct / 359 == accuracy  # runner eval's figure for best.pt, to the last digit
    assert f"accuracy {accuracy:.4f} ({correct} / 359 right" in proc.stdout
    assert all(r["top1_label"] == r["label"] and float(r["top1_prob"]) >= float(r["top2_prob"]) for r in rows)
    assert all(abs(sum(float(r[f"top{k}_prob"]) for k in range(1, 11)) - 1) < 1e-5 for r in rows)

    # the same samples through input=test and through the Python API: the same predictions, sample by sample
    runner("predict", f"ckpt={run}", "input=test", "topk=1", "out=from_test", cwd=tmp_path)
    with open(tmp_path / "from_test" / "predictions.csv", newline="") as f:
        by_index = {int(r["index"]): r["label"] for r in csv.DictReader(f)}
    assert {int(r["filename"].split("/")[1][:3]): r["label"] for r in rows} == by_index
    assert sorted((tmp_path / "from_test").iterdir()) == [
        tmp_path / "from_test" / "predict.log",
        tmp_path / "from_test" / "predictions.csv",
    ]
    predictor = runner_api.load_predictor(run)
    api = predictor.predict(tmp_path / "pngs")  # a folder, read in the same sorted order
    assert api.labels == [r["label"] for r in rows]
    threes = sorted(r["filename"] for r in rows if r["true_label"] == "3")
    assert len(predictor.as_batch(str(tmp_path / "pngs" / "*" / "*.png"))) == 359  # a glob
    assert len(predictor.as_batch(str(tmp_path / "pngs" / "3" / "*.png"))) == len(threes) > 0
    torch.save(test.x[:7].clone(), tmp_path / "seven.pt")  # a .pt tensor of raw samples
    assert predictor.predict(tmp_path / "seven.pt").labels == [by_index[i] for i in range(7)]  # test split order


def test_an_ordinary_png_of_a_digit_gets_the_dataset_samples_prediction(tmp_path, digits_run):
    # a user's own 0..255 image of a digit: scikit-learn's 0..16 counts times 16 (white clipped to 255), not runner's
    # rounding. With the digits stored as 0..16, the model read such a PNG 16 times too bright (7 of 12 right).
    _, run, _ = digits_run
    dataset = OmegaConf.load(run / ".hydra" / "config.yaml").dataset
    args = OmegaConf.masked_copy(dataset, [k for k in dataset if k not in PIPELINE_KEYS])
    counts = instantiate(args, max_value=16).test.x
    (tmp_path / "mine").mkdir()
    for i, x in enumerate(counts):
        Image.fromarray(np.minimum(x[0].numpy().astype(np.int32) * 16, 255).astype(np.uint8), "L").save(
            tmp_path / "mine" / f"{i:03d}.png"
        )
    predictor = runner_api.load_predictor(run)
    from_pngs = predictor.predict(tmp_path / "mine")
    from_dataset = predictor.predict(raw_test_split(run).x)
    assert int(counts.max()) == 16 and len(from_pngs.labels) == 359
    assert from_pngs.labels == from_dataset.labels
    assert (from_pngs.probs - from_dataset.probs).abs().max() < 0.05  # a pixel one level off here and there


def test_a_photo_of_another_size_and_mode_is_converted_as_training_converts_images(tmp_path, digits_run):
    _, run, _ = digits_run
    rgb = np.zeros((40, 56, 4), dtype=np.uint8)  # RGBA, 56x40: converted to L (over black) and resized to 8x8
    rgb[8:32, 20:36] = (255, 255, 255, 255)
    Image.fromarray(rgb, "RGBA").save(tmp_path / "photo.png")
    runner("predict", f"ckpt={run}", "input=photo.png", cwd=tmp_path)
    (row,) = predictions(tmp_path)
    assert row["filename"] == "photo.png" and "true_label" not in row
    predictor = runner_api.load_predictor(run)
    with Image.open(tmp_path / "photo.png") as img:
        expected = predictor.predict(img)  # a PIL image through the API: the same reader, the same answer
    assert row["label"] == expected.labels[0]
    assert float(row["top1_prob"]) == pytest.approx(float(expected.probs[0].max()), abs=1e-6)


@pytest.fixture(scope="session")
def sum_pairs_run(tmp_path_factory, worker_id):
    """One regression run (an MLP on sum_pairs, 3 epochs) per session, whichever worker asks: its run directory."""
    cwd = once_per_session(
        tmp_path_factory,
        worker_id,
        "sum_pairs",
        lambda cwd: runner("train", "dataset=sum_pairs", "model=mlp", "trainer.epochs=3", cwd=cwd),
    )
    (run,) = (cwd / "outputs").glob("*/*/summary.json")
    return run.parent


def test_predict_reads_feature_rows_from_a_csv_with_the_features_named_in_any_order(tmp_path, sum_pairs_run):
    (tmp_path / "rows.csv").write_text("x2,x1\n0.5,0.25\n-0.5,-0.25\n0.0,0.0\n")
    runner("predict", f"ckpt={sum_pairs_run}", "input=rows.csv", cwd=tmp_path)
    rows = predictions(tmp_path)
    assert [r["index"] for r in rows] == ["0", "1", "2"] and list(rows[0]) == ["index", "value"]
    values = [float(r["value"]) for r in rows]
    expected = (
        runner_api.load_predictor(sum_pairs_run).predict(torch.tensor([[0.25, 0.5], [-0.25, -0.5], [0.0, 0.0]])).values
    )
    assert values == pytest.approx(expected[:, 0].tolist(), abs=1e-5)  # x1, x2 reordered to the run's order
    assert values[0] == pytest.approx(0.75, abs=0.15) and values[1] == pytest.approx(
        -0.75, abs=0.15
    )  # it learned x1 + x2


def bad_inputs(root):
    (root / "empty").mkdir()
    (root / "notes").mkdir()
    (root / "notes" / "readme.txt").write_text("no images here")
    (root / "broken.png").write_bytes(b"this is not a png")
    np.save(root / "wrong.npy", np.zeros((4, 8, 8), dtype=np.uint8))
    np.save(root / "scaled.npy", np.full((2, 1, 8, 8), 0.5, dtype=np.float32))
    (root / "cols.csv").write_text("x1,x3,id\n0.1,0.2,7\n")


BAD = [  # (run, input, phrases of the one-paragraph message)
    ("digits", "empty", ["input=empty is a folder with no images in it"]),
    ("digits", "notes", ["input=notes is a folder with no images in it"]),
    ("digits", "broken.png", ["cannot read 1 image", "broken.png (UnidentifiedImageError"]),
    ("digits", "wrong.npy", ["holds an array of shape [4, 8, 8] (uint8)", "samples of shape [1, 8, 8]"]),
    ("digits", "scaled.npy", ["trained on uint8 images (pixel values 0..255", "float32 values from 0.5 to 0.5"]),
    ("digits", "nothing_here", ["input=nothing_here names nothing"]),
    ("digits", "cols.csv", ["has 3 columns ('x1', 'x3', 'id'); this run's model takes 64 features per sample"]),
    ("sum_pairs", "cols.csv", ["has other columns than this run's features: missing 'x2'; extra 'x3', 'id'"]),
    ("sum_pairs", "broken.png", ["input=broken.png is images, but this run's model takes samples of shape [2]"]),
]


@pytest.mark.parametrize("which, spec, phrases", BAD, ids=[f"{w}-{s}" for w, s, _ in BAD])
def test_bad_input_is_refused_by_name_and_writes_nothing(tmp_path, digits_run, sum_pairs_run, which, spec, phrases):
    run = digits_run[1] if which == "digits" else sum_pairs_run
    bad_inputs(tmp_path)
    before, run_before = digest(tmp_path), digest(run)
    proc = runner("predict", f"ckpt={run}", f"input={spec}", cwd=tmp_path, check=False)
    assert_clean_failure(proc, *phrases)
    assert not (tmp_path / "outputs").exists()  # not even the empty outputs/predict/<date>/<time> Hydra made
    assert digest(tmp_path) == before and digest(run) == run_before


def test_a_run_without_a_model_card_is_refused_with_what_it_lacks(tmp_path, digits_run):
    old = shutil.copytree(digits_run[1], tmp_path / "old")
    (old / "checkpoints" / "model.json").unlink()
    proc = runner("predict", f"ckpt={old}", "input=test", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "has no checkpoints/model.json: it was trained before runs recorded their preprocessing")
    assert not (tmp_path / "outputs").exists()


def test_folders_not_named_after_the_classes_say_why_no_accuracy_is_shown(tmp_path, digits_run):
    # torchvision's MNIST names its classes "0 - zero", ...; folders 0/ ... 9/ are the same kind of mismatch
    _, run, _ = digits_run
    test = raw_test_split(run)
    words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    for i, (x, y) in enumerate(zip(test.x[:40], test.y[:40].tolist())):
        (tmp_path / "pngs" / words[y]).mkdir(parents=True, exist_ok=True)
        Image.fromarray(x[0].numpy(), "L").save(tmp_path / "pngs" / words[y] / f"{i:03d}.png")
    proc = runner("predict", f"ckpt={run}", "input=pngs", cwd=tmp_path)
    said = " ".join(proc.stdout.split())
    assert "accuracy " not in said and "true_label" not in predictions(tmp_path)[0]
    assert "no accuracy: the images are labelled by their folders, but the folders 'eight', 'five'," in said
    assert "are not among this run's class names ('0', '1', '2', '3', ...)" in said


def test_a_regression_test_split_is_predicted_with_its_true_values_and_their_mae(tmp_path, sum_pairs_run):
    proc = runner("predict", f"ckpt={sum_pairs_run}", "input=test", cwd=tmp_path)
    rows = predictions(tmp_path)
    assert list(rows[0]) == ["index", "value", "true_value"]
    # sum_pairs' target is x1 + x2 with no noise: the truth is known apart from the run's own records
    x = raw_test_split(sum_pairs_run).x.double()
    assert [float(r["true_value"]) for r in rows] == pytest.approx((x[:, 0] + x[:, 1]).tolist(), abs=1e-5)
    mae = float(np.mean([abs(float(r["value"]) - float(r["true_value"])) for r in rows]))
    assert mae == pytest.approx(summary(sum_pairs_run)["test"]["test_mae"], abs=1e-5)  # eval's figure for best.pt
    said = " ".join(proc.stdout.split())
    assert f"(over {len(rows)} of {len(rows)} rows, against the test split)" in said and f"mae {mae:.4f}" in said


@pytest.mark.slow  # trains on an image folder (10 s)
def test_an_image_folders_test_split_is_named_by_its_files(tmp_path):
    from formats import write_image_folder

    write_image_folder(tmp_path / "pets", per_class=15)
    folder = ["dataset=imagefolder", "dataset.root=pets", "dataset.input_shape=[3,8,8]", "dataset.workers=0"]
    runner("train", *folder, "model.channels=[8,16]", "trainer.epochs=1", "trainer.batch_size=8", "hydra.run.dir=r",
           cwd=tmp_path)  # fmt: skip
    runner("predict", "ckpt=r", "input=test", cwd=tmp_path)
    rows = predictions(tmp_path)
    assert list(rows[0])[:4] == ["filename", "label", "class_index", "true_label"] and len(rows) == 3  # 10 % of 30
    assert len({r["filename"] for r in rows}) == 3
    assert all((tmp_path / "pets" / r["filename"]).is_file() for r in rows)
    assert all(r["filename"].split("/")[0] == r["true_label"] for r in rows)  # the folder is the class
    # each named file, predicted on its own, is the sample of that row
    probs = runner_api.load_predictor(tmp_path / "r").predict([tmp_path / "pets" / r["filename"] for r in rows]).probs
    assert probs.max(dim=1).values.tolist() == pytest.approx([float(r["top1_prob"]) for r in rows], abs=1e-6)


@pytest.mark.slow  # three trainings (17 s)
def test_arrays_name_their_classes_from_the_file_or_the_command_line(tmp_path):
    from runner.data.arrays import arrays
    from runner.io.errors import RunnerError

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 4)).astype(np.float32)
    y = (x[:, 0] > 0).astype(np.int64) + (x[:, 1] > 0.5)  # classes 0, 1, 2
    np.savez(tmp_path / "a.npz", x=x, y=y, classes=np.array(["cat", "dog", "eel"]))
    runner("train", "dataset=arrays", "dataset.path=a.npz", "trainer.epochs=2", "hydra.run.dir=r", cwd=tmp_path)
    runner("predict", "ckpt=r", "input=test", cwd=tmp_path)
    rows = predictions(tmp_path)
    assert list(rows[0])[:4] == ["index", "label", "class_index", "true_label"] and len(rows) == 24
    # each row named by its place in the file's x: the true class is that row's y, by name
    assert [r["true_label"] for r in rows] == [["cat", "dog", "eel"][y[int(r["index"])]] for r in rows]
    assert {r["label"] for r in rows} <= {"cat", "dog", "eel"}
    runner("eval", "ckpt=r", "hydra.run.dir=ev", cwd=tmp_path)
    metrics = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert list(metrics["per_class_accuracy"]) == ["cat", "dog", "eel"]  # the confusion matrix's rows too
    # dataset.class_names names them where the file does not, and wins where it does
    np.savez(tmp_path / "b.npz", x=x, y=y)
    args = dict(name="arrays", task="classification", input_shape=[4], num_classes=3)
    assert arrays(**args, path=str(tmp_path / "b.npz")).class_names == ["0", "1", "2"]
    assert arrays(**args, path=str(tmp_path / "b.npz"), class_names=["x", "y", "z"]).class_names == ["x", "y", "z"]
    assert arrays(**args, path=str(tmp_path / "a.npz"), class_names=["x", "y", "z"]).class_names == ["x", "y", "z"]
    with pytest.raises(RunnerError, match=r"dataset.class_names has 2 names \(class 0 to 1\), and y holds the class 2"):
        arrays(**args, path=str(tmp_path / "b.npz"), class_names=["x", "y"])
