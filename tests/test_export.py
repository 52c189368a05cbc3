"""`runner export`: each format loaded back as a deployment would, without runner, equals the run's model."""

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
import torch
from conftest import TESTS, assert_clean_failure, digest, once_per_session, runner, summary
from test_predict import raw_test_split

import runner as runner_api


@pytest.fixture(scope="session")
def exported(tmp_path_factory, worker_id, digits_run):
    """digits_run exported once per session in every format (`runner export ... out=deploy`): (that folder, what the
    command printed). The tests read it, or copy it where they change it."""
    _, run, _ = digits_run

    def make(cwd):
        proc = runner("export", f"ckpt={run}", "format=[safetensors,pt2,onnx]", "out=deploy", cwd=cwd)
        (cwd / "stdout.txt").write_text(proc.stdout)

    cwd = once_per_session(tmp_path_factory, worker_id, "export", make)
    return cwd / "deploy", (cwd / "stdout.txt").read_text()


def test_every_format_loads_without_runner_and_gives_the_runs_outputs(digits_run, exported):
    import onnxruntime
    from safetensors.torch import load_file

    _, run, _ = digits_run
    out, stdout = exported
    assert sorted(p.name for p in out.iterdir()) == [
        "config.json",
        "export.log",
        "export_manifest.json",
        "model.onnx",
        "model.pt2",
        "model.safetensors",
    ]
    manifest = json.loads((out / "export_manifest.json").read_text())
    for name, entry in manifest["files"].items():  # the manifest describes the very bytes on disk
        assert hashlib.sha256((out / name).read_bytes()).hexdigest() == entry["sha256"]
    assert manifest["verified_on"] == "the run's test split" and manifest["torch"] == torch.__version__
    assert manifest["onnx_opset"] >= 18 and all(v["max_abs_diff"] <= 1e-4 for v in manifest["verified"].values())
    assert "onnxruntime" in stdout and "safetensors.torch.load_file" in stdout

    # a deployment: config.json's preprocessing on the raw test split, then each artefact, no runner code involved
    config = json.loads((out / "config.json").read_text())
    test = raw_test_split(run)
    pre = config["preprocessing"]
    mean, std = torch.tensor(pre["mean"]), torch.tensor(pre["std"])
    x = ((test.x.float() - mean) / std).contiguous()
    expected = runner_api.load_predictor(run).model(x.contiguous(memory_format=torch.channels_last)).detach()

    from runner.models import CNN  # the architecture config.json names, with its arguments

    assert config["model"]["_target_"] == "runner.models.CNN"
    fresh = CNN(**{k: v for k, v in config["model"].items() if k != "_target_"}).eval()
    fresh.load_state_dict(load_file(out / "model.safetensors"))
    program = torch.export.load(out / "model.pt2").module()
    session = onnxruntime.InferenceSession(out / "model.onnx", providers=["CPUExecutionProvider"])
    with torch.inference_mode():
        outputs = {
            "safetensors": fresh(x),
            "pt2": program(x),
            "pt2, one sample": program(x[:1]),
            "onnx": torch.from_numpy(session.run(None, {"x": x.numpy()})[0]),
            "onnx, one sample": torch.from_numpy(session.run(None, {"x": x[:1].numpy()})[0]),
        }
    for name, got in outputs.items():
        want = expected[:1] if "one sample" in name else expected
        assert (got - want).abs().max() <= 1e-4, name
    onnx_accuracy = (outputs["onnx"].argmax(1) == test.y).double().mean().item()
    assert onnx_accuracy == summary(run)["test"]["test_accuracy"]  # all 359 samples at once: the batch is dynamic
    assert len(x) == 359 and manifest["input"]["shape"] == ["batch", 1, 8, 8]


def test_an_export_that_does_not_reproduce_the_model_keeps_nothing(tmp_path, digits_run):
    _, run, _ = digits_run
    drifting = shutil.copytree(run, tmp_path / "run")  # the same weights under a model whose exported graph adds 1e-3
    for path in (drifting / ".hydra" / "config.yaml", drifting / "checkpoints" / "model.json"):
        path.write_text(path.read_text().replace("runner.models.CNN", "drifting_model.DriftsWhenExported"))
    before = digest(drifting)
    proc = runner(
        "export",
        f"ckpt={drifting}",
        "format=[safetensors,pt2]",
        cwd=tmp_path,
        check=False,
        env={"PYTHONPATH": str(TESTS)},
    )
    assert_clean_failure(
        proc,
        "the pt2 model's outputs differ from the runner model's by up to 0.001",
        "tolerance 0.0001), so it was not kept",
    )
    assert not (tmp_path / "outputs").exists()  # the safetensors file that passed is not kept either
    assert digest(drifting) == before


BAD = {  # name: (arguments, phrases)
    "unknown format": (
        ["format=[onnx,tflite]"],
        ["format=tflite is not a format runner exports", "safetensors, pt2, onnx"],
    ),
    "out not empty": (["format=onnx", "out=taken"], ["taken already holds files; an export never writes over another"]),
    "extra missing": (
        ["format=onnx"],
        ["format=onnx needs onnxruntime, which is not installed", "pip install 'runner[export]'"],
    ),
}


@pytest.mark.parametrize("name", BAD)
def test_a_refused_export_changes_nothing(tmp_path, digits_run, name):
    _, run, _ = digits_run
    args, phrases = BAD[name]
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "model.onnx").write_bytes(b"an earlier export")
    env = None
    if name == "extra missing":  # onnxruntime shadowed by a package that cannot be imported
        (tmp_path / "hide" / "onnxruntime").mkdir(parents=True)
        (tmp_path / "hide" / "onnxruntime" / "__init__.py").write_text("raise ImportError('not installed (test)')\n")
        env = {"PYTHONPATH": str(tmp_path / "hide")}
    before, run_before = digest(tmp_path), digest(run)
    proc = runner("export", f"ckpt={run}", *args, cwd=tmp_path, check=False, env=env)
    assert_clean_failure(proc, *phrases)
    assert digest(tmp_path) == before and digest(run) == run_before
    assert not (tmp_path / "outputs").exists()


def odd_images(folder, digit):
    """Images a deployment meets, each made from one test digit (uint8 [8, 8], 0..255): another size, RGB for a
    grayscale model, RGBA, LA, palette transparency, 16 bits with a busy low byte, an EXIF-rotated JPEG."""
    from PIL import Image

    folder.mkdir()
    big = Image.fromarray(digit, "L").resize((37, 29), Image.Resampling.NEAREST)
    pixels = np.asarray(big).astype(np.uint16)
    ramp = np.linspace(0, 255, 37, dtype=np.uint16)[None, :].repeat(29, 0)  # alpha and colour that vary
    big.save(folder / "other_size.png")
    rgb = np.stack([pixels, (pixels * 3) % 256, 255 - ramp], axis=-1).astype(np.uint8)
    Image.fromarray(rgb, "RGB").save(folder / "rgb.png")
    Image.fromarray(np.dstack([rgb, ramp.astype(np.uint8)]), "RGBA").save(folder / "rgba.png")
    Image.fromarray(np.dstack([pixels, ramp]).astype(np.uint8), "LA").save(folder / "la.png")
    palette = big.quantize(7)
    palette.save(folder / "palette.png", transparency=0)
    sixteen = pixels * 257 + (ramp * 97) % 256  # the low byte is noise the high-byte rule must drop
    Image.fromarray(sixteen.astype(np.uint16)).save(folder / "sixteen.png")
    assert Image.open(folder / "sixteen.png").mode == "I;16"
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: rotate 90 degrees clockwise to view
    Image.fromarray(rgb, "RGB").save(folder / "rotated.jpg", exif=exif, quality=95)
    return sorted(p.name for p in folder.iterdir())


# the docs' deploy.py imported as a module: its prepare() and session, on each file named; softmax in numpy
DRIVER = """
import json, sys
import numpy as np
import deploy
out = {}
for path in sys.argv[1:]:
    logits = deploy.session.run(None, {"x": deploy.prepare(path)})[0][0].astype(np.float64)
    e = np.exp(logits - logits.max())
    out[path.split("/")[-1]] = (e / e.sum()).tolist()
assert not {"torch", "runner", "torchvision"} & set(sys.modules), "the deployment imported torch or runner"
print(json.dumps(out))
"""


def deployed_probs(root, files):
    """Each file's probabilities from the docs' deploy.py, run in `root` (holding deploy/) as a deployment runs."""
    from test_readme import blocks

    (script,) = [text for lang, text in blocks("docs/predict-export.md") if text.startswith("# deploy.py")]
    (root / "deploy.py").write_text(script)
    proc = subprocess.run(
        [sys.executable, "-c", DRIVER, *map(str, files)], cwd=root, capture_output=True, text=True, env=no_runner()
    )
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def no_runner():
    """An environment in which `import runner` fails unless the deployment adds it: PYTHONPATH cleared."""
    return {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}


def test_a_deployment_following_config_json_gives_runner_predicts_probabilities_on_odd_images(
    tmp_path, digits_run, exported
):
    # the contract in config.json, followed by a script that has only onnxruntime, numpy and Pillow, must give
    # runner predict's probabilities on every kind of image runner reads (to 1e-5), not only on 8x8 PNGs
    _, run, _ = digits_run
    digit = raw_test_split(run).x[5, 0].numpy()
    assert digit.max() == 255  # digits on the 0..255 scale of an ordinary image
    # the session's export of the run (its ONNX file and config.json among the formats), copied: this test edits it
    shutil.copytree(exported[0], tmp_path / "deploy")
    names = odd_images(tmp_path / "odd", digit)
    runner("predict", f"ckpt={run}", "input=odd", "topk=10", "out=predicted", cwd=tmp_path)
    with open(tmp_path / "predicted" / "predictions.csv", newline="") as f:
        rows = {r["filename"]: r for r in csv.DictReader(f)}
    assert sorted(rows) == names and len(names) == 7
    classes = json.loads((tmp_path / "deploy" / "config.json").read_text())["class_names"]
    runners = {n: [float(r[f"top{k}_prob"]) for k in range(1, 11)] for n, r in rows.items()}
    order = {n: [classes.index(r[f"top{k}_label"]) for k in range(1, 11)] for n, r in rows.items()}

    deployed = deployed_probs(tmp_path, [f"odd/{n}" for n in names])
    for name in names:
        assert np.abs(np.array(deployed[name])[order[name]] - runners[name]).max() <= 1e-5, name
    assert len({rows[n]["label"] for n in names}) > 1  # the images differ enough to be told apart

    # the same script with Pillow's default filter (bicubic) in place of the contract's: the test sees it
    config = tmp_path / "deploy" / "config.json"
    config.write_text(config.read_text().replace('"resample": "BILINEAR"', '"resample": "BICUBIC"'))
    bicubic = deployed_probs(tmp_path, [f"odd/{n}" for n in names])
    assert max(np.abs(np.array(bicubic[n])[order[n]] - runners[n]).max() for n in names) > 1e-4
