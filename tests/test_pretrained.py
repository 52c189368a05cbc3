"""Pretrained models by name (runner/models/pretrained.py): torchvision's weights from torch hub's cache, timm's from a
file or the Hugging Face cache, offline; their preprocessing becomes the run's; the `finetune_imagefolder` preset.

No weights are downloaded: each test writes random weights of the right architecture under the file name and in the
folder layout the library itself reads (torch hub's checkpoints/<name from the URL>, the Hugging Face cache's
models--org--repo/snapshots/<commit>/model.safetensors), so what is tested is runner finding and loading them.
"""

import json
import sys

import numpy as np
import pytest
import torch
import yaml
from conftest import assert_clean_failure, digest, once_per_session, runner, summary
from PIL import Image

RESNET18_FILE = "resnet18-f37072fd.pth"  # the file name in IMAGENET1K_V1's URL, which torch hub caches it under
STEPS = ["trainer.max_steps=2", "trainer.batch_size=8", "trainer.eval_batch_size=8"]
# ResNet-18 without its head: what the preset freezes (configs/experiment/finetune_imagefolder.yaml)
BACKBONE = ("conv1.", "bn1.", "layer1.", "layer2.", "layer3.", "layer4.")


def image_folder(root, n=36, classes=3, mode="RGB"):
    """`n` images of assorted sizes, portrait and landscape, in `classes` class folders."""
    rng = np.random.default_rng(0)
    for i in range(n):
        size = (40 + 7 * (i % 5), 31 + 5 * (i % 4))
        img = Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8), "RGB").convert(mode)
        (root / f"c{i % classes}").mkdir(parents=True, exist_ok=True)
        img.save(root / f"c{i % classes}" / f"{i:02d}.png")
    return root


def torch_home(root):
    """A TORCH_HOME whose hub cache holds ResNet-18 weights (random, seeded) under IMAGENET1K_V1's file name."""
    import torchvision

    checkpoints = root / "hub" / "checkpoints"
    checkpoints.mkdir(parents=True)
    torch.manual_seed(1)
    model = torchvision.models.resnet18()
    for bn in (m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)):
        bn.momentum = 1.0  # running statistics of real activations, so the logits are of a sane size
    with torch.no_grad():
        model(torch.randn(8, 3, 224, 224))  # inputs on the scale of normalised images
    torch.save(model.state_dict(), checkpoints / RESNET18_FILE)
    return root


@pytest.fixture(scope="session")
def finetuned(tmp_path_factory, worker_id):
    """experiment=finetune_imagefolder, two steps, on an image folder, with the weights in a temporary TORCH_HOME:
    (its cwd, what it printed). One run per session, however many workers read it (ResNet-18 at 224x224)."""

    def make(cwd):
        image_folder(cwd / "pets")
        env = {"TORCH_HOME": str(torch_home(cwd / "torch"))}
        args = ["experiment=finetune_imagefolder", "dataset.root=pets", *STEPS, "hydra.run.dir=ft"]
        (cwd / "stdout.txt").write_text(runner("train", *args, cwd=cwd, env=env).stdout)

    cwd = once_per_session(tmp_path_factory, worker_id, "pretrained", make)
    return cwd, (cwd / "stdout.txt").read_text()


def test_torchvision_weights_load_offline_from_torch_hubs_cache_with_a_new_head(finetuned):
    cwd, stdout = finetuned
    file = cwd / "torch" / "hub" / "checkpoints" / RESNET18_FILE
    saved, best = (
        torch.load(file, weights_only=True),
        torch.load(cwd / "ft" / "checkpoints" / "best.pt", weights_only=True),
    )
    assert best["fc.weight"].shape == (3, 512) and saved["fc.weight"].shape == (1000, 512)
    backbone = [k for k in saved if k.startswith(BACKBONE)]
    assert len(saved) == 122 and len(backbone) == 120  # every tensor of ResNet-18 but fc's two
    # frozen by the preset for its first epoch: the backbone is the file's, bit for bit, BatchNorm statistics too
    assert all(torch.equal(best[k], saved[k]) for k in backbone)
    info = summary(cwd / "ft")
    assert info["status"] == "completed"
    assert info["pretrained"] == {
        "weights": "torchvision resnet18 IMAGENET1K_V1",
        "file": str(file),
        "sha256": __import__("hashlib").sha256(file.read_bytes()).hexdigest(),
        "kept": 120,
        "reinitialised": ["fc.weight", "fc.bias"],
    }
    out = " ".join(stdout.split())
    assert "preprocessing: the weights' own (torchvision resnet18 IMAGENET1K_V1), not the dataset's statistics" in out
    assert "re-initialised (the output layer's size changed): fc.weight, fc.bias" in out


def test_the_weights_preprocessing_is_the_runs_model_card(finetuned):
    cwd, _ = finetuned
    card = json.loads((cwd / "ft" / "checkpoints" / "model.json").read_text())
    pre = card["preprocessing"]
    assert card["input_shape"] == [3, 224, 224] and card["format"] == 3
    # ImageNet's statistics (torchvision's weights.transforms(): mean 0.485, 0.456, 0.406, std 0.229, 0.224, 0.225),
    # on the 0..255 scale of the raw pixels; the resize 256 and centre crop 224 of the same transforms
    assert np.allclose(np.ravel(pre["mean"]), [123.675, 116.28, 103.53], atol=1e-4)
    assert np.allclose(np.ravel(pre["std"]), [58.395, 57.12, 57.375], atol=1e-4)
    assert {k: pre["image"][k] for k in ("size", "shorter_side", "resample", "mode")} == {
        "size": [224, 224],
        "shorter_side": 256,
        "resample": "BILINEAR",
        "mode": "RGB",
    }


def test_a_pretrained_run_evaluates_predicts_and_resumes_without_the_weights_file(finetuned, tmp_path):
    # eval, predict and resume build the architecture and load the run's own weights: the ImageNet file is not needed
    # any more; eval reads the test split as the run did (crop and the weights' statistics): the same loss, exactly
    import shutil

    cwd, _ = finetuned
    gone = {"TORCH_HOME": str(tmp_path / "empty")}
    runner("eval", f"ckpt={cwd / 'ft'}", f"hydra.run.dir={tmp_path / 'ev'}", cwd=tmp_path, env=gone)
    evaluated = json.loads((tmp_path / "ev" / "metrics.json").read_text())
    assert evaluated["samples"] == 4  # 10 % of the 36 images, rounded up
    assert evaluated["test_loss"] == summary(cwd / "ft")["test"]["test_loss"]
    # 4 test images of 3 classes: a class without one has no accuracy (null, n/a), not 0
    per_class = evaluated["per_class_accuracy"]
    assert all((acc is None) == (sum(row) == 0) for acc, row in zip(per_class.values(), evaluated["confusion_matrix"]))
    proc = runner("predict", f"ckpt={cwd / 'ft'}", "input=test", f"out={tmp_path / 'p'}", cwd=tmp_path, env=gone)
    right = round(evaluated["test_accuracy"] * 4)
    assert f"accuracy {evaluated['test_accuracy']:.4f} ({right} / 4 right, against the test split)" in proc.stdout
    shutil.copytree(cwd / "ft", tmp_path / "ft")
    runner("train", "resume=ft", "trainer.max_steps=3", cwd=tmp_path, env=gone)
    assert summary(tmp_path / "ft")["steps"] == 3
    assert not (tmp_path / "empty").exists()


def test_missing_weights_are_named_with_their_url_and_nothing_is_downloaded(tmp_path):
    image_folder(tmp_path / "pets", n=12)
    before = digest(tmp_path)
    home = tmp_path / "torch"
    proc = runner(
        "train",
        "model=torchvision",
        "model.weights=IMAGENET1K_V1",
        "dataset=imagefolder",
        "dataset.root=pets",
        "hydra.run.dir=new",
        cwd=tmp_path,
        env={"TORCH_HOME": str(home)},
        check=False,
    )
    assert_clean_failure(
        proc,
        f"needs the file {RESNET18_FILE}, which is not in torch hub's cache {home / 'hub' / 'checkpoints'}",
        f"https://download.pytorch.org/models/{RESNET18_FILE}",
        "model.download=true",
    )
    assert not home.exists()  # no download began
    assert {p: h for p, h in digest(tmp_path).items() if p.parts[0] != "new"} == before
    assert summary(tmp_path / "new")["status"] == "failed" and not (tmp_path / "new" / "checkpoints").exists()


FOLDER = ["dataset=imagefolder", "dataset.root=pets"]


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    [
        (
            [*FOLDER, "model.weights=IMAGENET1K_V9"],
            "model.weights=IMAGENET1K_V9 is not a weights name of torchvision's",
        ),
        ([*FOLDER, "model.name=resnet19"], "model.name=resnet19 is not one of torchvision's"),
        (["model.weights=DEFAULT"], "take RGB images [3, H, W], and dataset digits has samples of shape [1, 8, 8]"),
        (
            [*FOLDER, "dataset.resize=100", "dataset.input_shape=[3,128,128]"],
            "dataset.resize=100 cannot be centre-cropped",
        ),
        ([*FOLDER, "dataset.interpolation=cubic"], "dataset.interpolation=cubic is not a resize filter runner knows"),
    ],
)
def test_bad_names_and_sizes_are_refused(tmp_path, overrides, phrase):
    image_folder(tmp_path / "pets", n=12)
    args = ["model=torchvision", *overrides, "hydra.run.dir=new"]
    assert_clean_failure(runner("train", *args, cwd=tmp_path, check=False), phrase)


# ------------------------------------------------------------------------------------------------- the preprocessing


def sample_images():
    """RGB images a deployment meets: landscape and portrait, odd sizes, one smaller than the crop."""
    rng = np.random.default_rng(3)
    sizes = [(300, 257), (257, 300), (97, 61), (500, 333)]
    return [Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8), "RGB") for w, h in sizes]


def runners_input(img, pre):
    """An image as runner feeds it to a model with preprocessing `pre`: read_image, then (raw - mean) / std."""
    from runner.data.images import INTERPOLATIONS, Resize, read_image

    h, w = pre.input_size
    raw = read_image(img, (3, h, w), resize=Resize(pre.resize, INTERPOLATIONS[pre.interpolation])).float()
    mean, std = torch.tensor(pre.mean).view(3, 1, 1) * 255, torch.tensor(pre.std).view(3, 1, 1) * 255
    return (raw - mean) / std


def test_runners_input_is_torchvisions_own_transforms_of_the_weights():
    from torchvision.models import ResNet18_Weights, ViT_B_16_Weights

    from runner.models.pretrained import torchvision_model

    for name, weights in [("resnet18", ResNet18_Weights.IMAGENET1K_V1), ("vit_b_16", ViT_B_16_Weights.IMAGENET1K_V1)]:
        pre = torchvision_model.preprocessing(name=name, weights=weights.name)
        theirs = weights.transforms()
        for img in sample_images():
            assert torch.allclose(runners_input(img, pre), theirs(img), atol=2e-5), (name, img.size)


def test_runners_input_is_timms_own_eval_transform():
    timm = pytest.importorskip("timm")
    from runner.models.pretrained import timm_model

    for name in ["test_efficientnet", "resnet18.a1_in1k"]:  # bicubic; crop_pct 0.95 (resize 168 for 160, 235 for 224)
        pre = timm_model.preprocessing(name=name, pretrained=True)
        config = timm.data.resolve_data_config({}, model=timm.create_model(name, pretrained=False))
        theirs = timm.data.create_transform(**config)
        for img in sample_images():
            assert torch.allclose(runners_input(img, pre), theirs(img), atol=2e-5), (name, img.size)


def test_a_card_from_before_shorter_side_is_read_as_stretching_images(digits_run, tmp_path):
    # format 2 had no image.shorter_side: its images were stretched to input_shape, which shorter_side null means
    import shutil

    import runner as package

    _, run, _ = digits_run
    card = json.loads((run / "checkpoints" / "model.json").read_text())
    assert card["format"] == 3 and card["preprocessing"]["image"]["shorter_side"] is None
    old = tmp_path / "old"
    shutil.copytree(run, old)
    del card["preprocessing"]["image"]["shorter_side"]
    (old / "checkpoints" / "model.json").write_text(json.dumps(card | {"format": 2}))
    assert package.load_predictor(old).card == package.load_predictor(run).card


def test_stretching_instead_of_the_centre_crop_would_be_seen():
    # the comparison above can fail: runner's own stretch to 224x224 is not torchvision's resize + crop
    from torchvision.models import ResNet18_Weights

    from runner.data.images import read_image
    from runner.models.pretrained import torchvision_model

    pre = torchvision_model.preprocessing(name="resnet18", weights="IMAGENET1K_V1")
    img = sample_images()[0]
    stretched = (read_image(img, (3, 224, 224)).float() - torch.tensor(pre.mean).view(3, 1, 1) * 255) / (
        torch.tensor(pre.std).view(3, 1, 1) * 255
    )
    assert (stretched - ResNet18_Weights.IMAGENET1K_V1.transforms()(img)).abs().max() > 0.1


# ------------------------------------------------------------------------------------------------------------- timm


def hf_cache(root, repo, state):
    """A Hugging Face hub cache holding `state` as `repo`'s model.safetensors, in the hub's own layout."""
    from safetensors.torch import save_file

    commit = "0123456789abcdef0123456789abcdef01234567"
    folder = root / f"models--{repo.replace('/', '--')}"
    (folder / "snapshots" / commit).mkdir(parents=True)
    (folder / "refs").mkdir()
    (folder / "refs" / "main").write_text(commit)
    save_file({k: v.contiguous() for k, v in state.items()}, folder / "snapshots" / commit / "model.safetensors")
    return folder / "snapshots" / commit / "model.safetensors"


def test_timm_weights_load_offline_from_the_hugging_face_cache(tmp_path):
    timm = pytest.importorskip("timm")
    image_folder(tmp_path / "pets", mode="L")  # grayscale: read as RGB, as the weights take it
    torch.manual_seed(2)
    saved = timm.create_model("test_efficientnet").state_dict()
    file = hf_cache(tmp_path / "hf", "timm/test_efficientnet.r160_in1k", saved)
    head = ("classifier.",)
    freeze = "trainer.freeze=[conv_stem,bn1,blocks,conv_head,bn2]"  # everything but the classifier
    env = {"HF_HUB_CACHE": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1"}
    args = ["model=timm", "model.name=test_efficientnet", "model.pretrained=true", "dataset=imagefolder"]
    proc = runner("train", *args, "dataset.root=pets", freeze, *STEPS, "hydra.run.dir=t", cwd=tmp_path, env=env)
    best = torch.load(tmp_path / "t" / "checkpoints" / "best.pt", weights_only=True)
    assert best["classifier.weight"].shape[0] == 3 and saved["classifier.weight"].shape[0] == 1000
    assert all(torch.equal(best[k], v) for k, v in saved.items() if not k.startswith(head))
    info = summary(tmp_path / "t")
    assert info["pretrained"]["file"] == str(file)
    assert info["pretrained"]["reinitialised"] == ["classifier.weight", "classifier.bias"]
    assert "preprocessing: the weights' own (timm test_efficientnet.r160_in1k)" in " ".join(proc.stdout.split())
    pre = json.loads((tmp_path / "t" / "checkpoints" / "model.json").read_text())["preprocessing"]
    # timm's pretrained config of test_efficientnet.r160_in1k: 160x160, crop_pct 0.95, bicubic, ImageNet statistics
    assert (pre["image"]["size"], pre["image"]["shorter_side"], pre["image"]["resample"]) == (
        [160, 160],
        168,
        "BICUBIC",
    )
    assert np.allclose(np.ravel(pre["mean"]), [123.675, 116.28, 103.53], atol=1e-4)

    # the run's own config holds what it trained with (the grayscale folder read as RGB at the weights' size, the
    # weights' tag pinned), so predict builds the same network, without timm's cache
    recorded = yaml.safe_load((tmp_path / "t" / ".hydra" / "config.yaml").read_text())
    assert recorded["dataset"]["input_shape"] == [3, 160, 160] and recorded["dataset"]["resize"] == 168
    assert recorded["model"]["name"] == "test_efficientnet.r160_in1k"
    none = {**env, "HF_HUB_CACHE": str(tmp_path / "none")}
    proc = runner("predict", "ckpt=t", "input=pets/c0", "out=p", cwd=tmp_path, env=none)
    assert (tmp_path / "p" / "predictions.csv").read_text().count("\n") == 1 + 12

    # without the cache: named, with the command that fills it
    proc = runner(
        "train",
        *args,
        "dataset.root=pets",
        "hydra.run.dir=u",
        cwd=tmp_path,
        env=none,
        check=False,
    )
    assert_clean_failure(
        proc,
        f"the Hugging Face cache {tmp_path / 'none'} has no copy of timm/test_efficientnet.r160_in1k",
        "hf download timm/test_efficientnet.r160_in1k",
        "model.pretrained_path=PATH",
    )


def test_timm_weights_from_a_file_resize_the_head(tmp_path):
    timm = pytest.importorskip("timm")
    from safetensors.torch import save_file

    from runner.models.pretrained import timm_model

    torch.manual_seed(3)
    saved = timm.create_model("test_vit").state_dict()
    save_file({k: v.contiguous() for k, v in saved.items()}, tmp_path / "w.safetensors")
    model = timm_model("test_vit", num_classes=5, pretrained_path=str(tmp_path / "w.safetensors"))
    own = model.state_dict()
    assert own["head.weight"].shape == (5, 64) and saved["head.weight"].shape == (1000, 64)
    assert all(torch.equal(own[k], v) for k, v in saved.items() if not k.startswith("head."))
    assert model.pretrained_from["reinitialised"] == ["head.weight", "head.bias"]


def test_model_timm_without_timm_names_the_extra(monkeypatch):
    from runner.io.errors import RunnerError
    from runner.models.pretrained import timm_model

    monkeypatch.setitem(sys.modules, "timm", None)  # `import timm` raises ImportError, as without the package
    with pytest.raises(RunnerError, match=r"pip install 'runner\[timm\]'"):
        timm_model("resnet18", num_classes=3)


@pytest.mark.slow  # ONNX export of ResNet-18 at 224x224, then onnxruntime: about a minute on 2 cores
def test_a_deployment_following_config_json_resizes_and_crops_as_the_weights_want(finetuned, tmp_path):
    # the docs' deploy.py (numpy, Pillow, onnxruntime) on config.json's contract gives runner predict's probabilities
    # on images of other sizes, landscape and portrait: the resize of the shorter side and the centre crop followed
    import csv

    from test_export import deployed_probs

    cwd, _ = finetuned
    env = {"TORCH_HOME": str(tmp_path / "empty")}  # export and predict need the run, not the pretrained file
    runner("export", f"ckpt={cwd / 'ft'}", "format=onnx", "out=deploy", cwd=tmp_path, env=env)
    folder = tmp_path / "photos"
    folder.mkdir()
    for i, img in enumerate(sample_images()):
        img.save(folder / f"{i}.png")
    runner("predict", f"ckpt={cwd / 'ft'}", "input=photos", "topk=3", "out=predicted", cwd=tmp_path, env=env)
    with open(tmp_path / "predicted" / "predictions.csv", newline="") as f:
        rows = {r["filename"]: r for r in csv.DictReader(f)}
    classes = json.loads((tmp_path / "deploy" / "config.json").read_text())["class_names"]
    names = sorted(rows)
    runners = {n: [float(rows[n][f"top{k}_prob"]) for k in (1, 2, 3)] for n in names}
    order = {n: [classes.index(rows[n][f"top{k}_label"]) for k in (1, 2, 3)] for n in names}
    deployed = deployed_probs(tmp_path, [f"photos/{n}" for n in names])
    assert len(names) == 4 and max(p for n in names for p in runners[n]) < 0.99  # probabilities that can move
    for n in names:
        assert np.abs(np.array(deployed[n])[order[n]] - runners[n]).max() <= 1e-5, n

    # a deployment that stretches the images instead (shorter_side ignored) is told apart by the same comparison
    config = tmp_path / "deploy" / "config.json"
    config.write_text(config.read_text().replace('"shorter_side": 256', '"shorter_side": null'))
    stretched = deployed_probs(tmp_path, [f"photos/{n}" for n in names])
    assert max(np.abs(np.array(stretched[n])[order[n]] - runners[n]).max() for n in names) > 1e-4


# ------------------------------------------------------------------------------------- the preprocessing, in-process


def test_an_image_folder_resized_and_cropped_reads_alike_in_memory_streamed_and_by_torchvision(tmp_path):
    from torchvision import transforms

    from runner.data.imagefolder import imagefolder
    from runner.data.images import decode_images

    image_folder(tmp_path / "pets", n=12)
    args = dict(
        name="imagefolder",
        task="classification",
        input_shape=[3, 24, 24],
        num_classes=3,
        root=str(tmp_path / "pets"),
        val_fraction=0.1,
        test_fraction=0.1,
        split_seed=0,
        memory_limit_gb=1,
        workers=0,
        cache_dir=str(tmp_path / "cache"),
        resize=30,
        interpolation="bicubic",
    )
    held, streamed = imagefolder(in_memory=True, **args), imagefolder(in_memory=False, **args)
    train = streamed.train
    assert torch.equal(decode_images(train.samples, train.shape, 0, train.resize), held.train.x)
    path = train.samples[0][0]
    theirs = transforms.Compose(
        [transforms.Resize(30, transforms.InterpolationMode.BICUBIC), transforms.CenterCrop(24)]
    )
    assert torch.equal(transforms.functional.pil_to_tensor(theirs(Image.open(path))), held.train.x[0])
    # stretched instead: its own cache entry (the same key would hand back the cropped tensors)
    stretched = imagefolder(in_memory=True, **{**args, "resize": None})
    assert stretched.train.x.shape == held.train.x.shape and not torch.equal(stretched.train.x, held.train.x)


def test_googlenet_is_built_as_its_weights_were_trained_without_the_auxiliary_classifiers(tmp_path, monkeypatch):
    # torchvision's builder sets transform_input=True for GoogLeNet's weights; the aux heads' tensors are not loaded
    import torchvision

    from runner.models.pretrained import torchvision_model

    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    torch.manual_seed(4)
    saved = torchvision.models.googlenet(aux_logits=True, init_weights=False).state_dict()
    url = torchvision.models.GoogLeNet_Weights.IMAGENET1K_V1.url
    torch.save(saved, tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[1])
    model = torchvision_model("googlenet", num_classes=3, weights="IMAGENET1K_V1")
    assert model.transform_input and model.aux1 is None and model.fc.out_features == 3
    own = model.state_dict()
    assert all(torch.equal(own[k], v) for k, v in saved.items() if k in own and not k.startswith("fc."))
    assert any(k.startswith("aux1.") for k in saved) and not any(k.startswith("aux1.") for k in own)
    assert model.pretrained_from["reinitialised"] == ["fc.weight", "fc.bias"]


def _cfg(model, dataset):
    from omegaconf import OmegaConf

    return OmegaConf.create({"model": model, "dataset": {"name": "data", "task": "classification", **dataset}})


def test_a_dataset_of_tensors_takes_the_weights_statistics_and_keeps_its_size():
    from runner.training.build import with_weights_preprocessing

    model = {"_target_": "runner.models.pretrained.torchvision_model", "name": "resnet18", "weights": "DEFAULT"}
    cfg, note = with_weights_preprocessing(_cfg(model, {"input_shape": [3, 32, 32], "num_classes": 10}))
    assert cfg.model.weights == "IMAGENET1K_V1"  # DEFAULT pinned to what it means today
    assert list(cfg.dataset.input_shape) == [3, 32, 32] and "resize" not in cfg.dataset
    assert list(cfg.dataset.normalize.mean) == [0.485, 0.456, 0.406]
    assert "the images keep data's own size 32x32 (the weights saw 224x224)" in note
    assert with_weights_preprocessing(cfg)[0] == cfg  # its own result is a fixed point: a resume changes nothing


def test_a_model_factory_of_your_own_can_declare_its_weights_preprocessing(tmp_path, monkeypatch):
    # docs/extending.md: a `preprocessing` attribute on the factory, returning a Preprocessing
    from runner.training.build import with_weights_preprocessing

    (tmp_path / "my_pretrained.py").write_text(
        "import torch\n"
        "from runner.models.pretrained import Preprocessing\n\n"
        "def net(num_classes, weights=None):\n"
        "    return torch.nn.Linear(3, num_classes)\n\n"
        "net.preprocessing = lambda weights=None, **_: weights and Preprocessing(\n"
        "    'mine', (64, 64), 72, 'bicubic', (0.5, 0.5, 0.5), (0.25, 0.25, 0.25), {})\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    folder = {"input_shape": [1, 20, 30], "num_classes": 2, "resize": None, "interpolation": "bilinear"}
    cfg, note = with_weights_preprocessing(_cfg({"_target_": "my_pretrained.net", "weights": "w"}, folder))
    dataset = cfg.dataset
    assert (list(dataset.input_shape), dataset.resize, dataset.interpolation) == ([3, 64, 64], 72, "bicubic")
    assert list(dataset.normalize.std) == [0.25] * 3 and note.startswith("preprocessing: the weights' own (mine)")
    assert with_weights_preprocessing(_cfg({"_target_": "my_pretrained.net"}, folder)) == (
        _cfg({"_target_": "my_pretrained.net"}, folder),
        None,
    )  # no weights: the dataset's own


def test_init_from_a_run_that_read_its_inputs_otherwise_says_so(finetuned, tmp_path):
    # the preset run read 224x224 crops with ImageNet's statistics; a run from its weights at the folder's own size
    # and statistics would feed them inputs unlike those they learned on: the log says so
    cwd, _ = finetuned
    args = ["model=torchvision", "dataset=imagefolder", f"dataset.root={cwd / 'pets'}", f"init_from={cwd / 'ft'}"]
    proc = runner("train", *args, "trainer.max_steps=1", "trainer.batch_size=8", "hydra.run.dir=r", cwd=tmp_path)
    out = " ".join(proc.stdout.split())
    said = "init_from: the source run read its inputs otherwise (input_shape [3, 224, 224] -> [3, 31, 40]; the image"
    assert said + " resize; the mean and std" in out
    again = runner(
        "train",
        *args[:-1],
        f"init_from={tmp_path / 'r'}",
        "trainer.max_steps=1",
        "trainer.batch_size=8",
        "hydra.run.dir=s",
        cwd=tmp_path,
    )
    assert "init_from: the source run read its inputs otherwise" not in again.stdout  # the same reading: no line


def test_model_timm_names_a_key_its_model_does_not_take():
    pytest.importorskip("timm")
    from runner.io.errors import RunnerError
    from runner.models.pretrained import timm_model

    with pytest.raises(RunnerError, match=r"dropped with '~model.weights'"):
        timm_model("test_efficientnet", num_classes=3, weights="IMAGENET1K_V1")  # a torchvision preset's key
