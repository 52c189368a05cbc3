"""`runner export`: each format loaded back as a deployment would, without runner, equals the run's model."""

import hashlib
import json
import shutil

import pytest
import torch
from conftest import TESTS, assert_clean_failure, digest, runner, summary
from test_predict import raw_test_split

import runner as runner_api


def test_every_format_loads_without_runner_and_gives_the_runs_outputs(tmp_path, digits_run):
    import onnxruntime
    from safetensors.torch import load_file

    _, run, _ = digits_run
    proc = runner("export", f"ckpt={run}", "format=[safetensors,pt2,onnx]", "out=deploy", cwd=tmp_path)
    out = tmp_path / "deploy"
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
    assert "onnxruntime" in proc.stdout and "safetensors.torch.load_file" in proc.stdout

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
