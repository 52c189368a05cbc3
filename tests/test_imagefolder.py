"""Image folders: what counts as an image and a class, the decoded-tensor cache, and same bytes from every path."""

import json
import os
import shutil
import warnings
from pathlib import Path

import pytest
import torch
from conftest import assert_clean_failure, digest, run_dirs, runner, same_run, summary
from formats import write_image_folder
from omegaconf import OmegaConf

from runner.data.cache import checksum, place
from runner.data.imagefolder import imagefolder
from runner.io.errors import RunnerWarning
from runner.io.serialization import safe_load, save

SMALL_CNN = ["model=cnn", "model.channels=[8,16]", "trainer.batch_size=32"]


def load_folder(root, shape=(3, 8, 8)):
    """The dataset function itself, as `dataset=imagefolder dataset.root=ROOT dataset.cache_dir=ROOT/../cache`
    calls it; (splits, RunnerWarnings)."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", RunnerWarning)
        splits = imagefolder(
            name="imagefolder",
            task="classification",
            input_shape=list(shape),
            num_classes=2,
            root=str(root),
            val_fraction=0.1,
            test_fraction=0.1,
            split_seed=0,
            in_memory=True,
            memory_limit_gb=2,
            workers=0,
            cache_dir=str(root.parent / "cache"),
        )
    return splits, [str(w.message) for w in caught if issubclass(w.category, RunnerWarning)]


# the streamed twin is slow-tier: it never had a cache to fill, and its first run drew no RNG either
@pytest.mark.parametrize("in_memory", ["auto", pytest.param("false", marks=pytest.mark.slow)])
def test_image_folder_trains_the_same_bytes_on_the_run_that_fills_the_cache_and_the_next(tmp_path, in_memory):
    write_image_folder(tmp_path / "pets" / "train", classes=("cat", "dog", "fox"), per_class=16)
    write_image_folder(tmp_path / "pets" / "val", classes=("cat", "dog", "fox"), per_class=4, seed=1)
    args = [
        "train",
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.input_shape=[3,16,16]",
        "dataset.workers=0",
        f"dataset.in_memory={in_memory}",
        *SMALL_CNN,
        "trainer.batch_size=8",
        "trainer.epochs=3",
    ]
    env = {"RUNNER_CACHE": str(tmp_path / "cache")}
    runner(*args, cwd=tmp_path, env=env)
    cache = tmp_path / "cache" / "datasets"
    assert len(list(cache.glob("imagefolder-3x16x16-*.pt"))) == (in_memory == "auto")  # the first run decoded, cached
    runner(*args, cwd=tmp_path, env=env)  # in memory: reads the cache
    first, second = run_dirs(tmp_path)
    info = summary(first)
    assert info["samples"] == {"train": 43, "val": 12, "test": 5}  # val/ used as is; test held out of train/
    assert info["status"] == "completed" and info["best"]["val_accuracy"] >= 0.5
    assert info["params"] and any(float(r.split(",")[1]) for r in (first / "metrics.csv").read_text().splitlines()[1:])
    same_run(first, second)  # cnn has dropout: a run that drew from torch's RNG while decoding would differ


@pytest.mark.slow
def test_image_folder_streams_when_it_does_not_fit(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=10)
    runner(
        "train",
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.input_shape=[3,16,16]",
        "dataset.memory_limit_gb=0.00001",
        "dataset.workers=1",
        *SMALL_CNN,
        "trainer.batch_size=4",
        "trainer.epochs=1",
        cwd=tmp_path,
    )
    assert summary(run_dirs(tmp_path)[0])["samples"] == {"train": 16, "val": 2, "test": 2}
    assert not list((tmp_path / "pets").rglob("*.pt"))  # streamed: nothing decoded ahead


def _one_class(root):
    write_image_folder(root, classes=("cat",))


def _empty_class(root):
    write_image_folder(root)
    (root / "owl" / ".hidden").mkdir(parents=True)
    (root / "owl" / "._001.jpg").write_bytes(b"\0\5\26\7 a macOS resource fork")  # hidden files are not images
    (root / "owl" / ".hidden" / "002.png").write_bytes(b"")


@pytest.mark.parametrize(
    "make,phrases",
    [
        (_one_class, ["only the class folder 'cat'"]),
        (
            lambda root: [(root / c).mkdir(parents=True) for c in ("a", "b")],
            ["class folders with no images in them: a, b"],
        ),
        (_empty_class, ["class folders with no images in them: owl.", "or remove the folders"]),
        (lambda root: None, ["is not a directory"]),
    ],
    ids=["one class", "no images", "empty class", "missing"],
)
def test_bad_image_folders(tmp_path, make, phrases):
    make(tmp_path / "pets")
    proc = runner("train", "dataset=imagefolder", "dataset.root=pets", "dataset.workers=0", cwd=tmp_path, check=False)
    assert_clean_failure(proc, *phrases)
    shutil.rmtree(tmp_path / "outputs", ignore_errors=True)


def test_hidden_files_and_folders_are_not_read_as_images(tmp_path):
    root = write_image_folder(tmp_path / "pets", per_class=10)
    (root / "cat" / "._000.png").write_bytes(b"\0\5\26\7 a macOS resource fork, not a PNG")
    (root / ".thumbnails").mkdir()
    write_image_folder(root / "dog" / ".cache", classes=("x",), per_class=3)  # a hidden folder inside a class
    splits, _ = load_folder(root)
    assert splits.class_names == ["cat", "dog"]
    assert len(splits.train) + len(splits.val) + len(splits.test) == 20


def _caches(root):
    """The caches of the folder `root` that load_folder wrote, by name."""
    return sorted((root.parent / "cache" / "datasets").glob(f"imagefolder-*-{place(root)}-*.pt"))


def _cache(root):
    (path,) = _caches(root)
    return path


def _rewrite(path, change):
    """Change the cache's data with `change(data)` and write it back with a checksum that fits (only the check can
    catch it)."""
    cache = safe_load(path)
    change(cache["data"])
    cache["checksum"] = checksum(cache["data"])
    save(cache, path)


@pytest.mark.parametrize(
    ("spoil", "reason"),
    [
        (lambda p: save({"features": torch.zeros(3)}, p), "it is not a runner cache of this version"),
        (
            lambda p: _rewrite(p, lambda d: d.update(train_x=d["train_x"][:1], train_y=d["train_y"][:1])),
            "train_x has shape [1, 3, 8, 8], which does not fit [20, 3, 8, 8]",
        ),
        (lambda p: _rewrite(p, lambda d: d.update(train_y=d["train_y"].int())), "train_y is not a torch.int64 tensor"),
        (
            lambda p: _rewrite(p, lambda d: d.update(classes=["dog", "cat"])),
            "classes is ['dog', 'cat'], not ['cat', 'dog']",
        ),
        (
            lambda p: save(
                {**safe_load(p), "data": {**safe_load(p)["data"], "train_x": safe_load(p)["data"]["train_x"] ^ 1}}, p
            ),
            "its tensors do not match the checksum written with them",
        ),
        (lambda p: p.write_bytes(p.read_bytes()[:500]), "it cannot be read"),
    ],
    ids=["other keys", "wrong size", "wrong dtype", "other classes", "changed tensors", "truncated"],
)
def test_a_cache_that_does_not_hold_what_it_must_is_rebuilt_saying_why(tmp_path, spoil, reason):
    root = write_image_folder(tmp_path / "pets", per_class=10)
    good, warned = load_folder(root)
    assert not warned
    path = _cache(root)
    spoil(path)
    splits, warned = load_folder(root)
    assert warned == [
        f"the dataset cache {path} is not valid ({reason}); decoding the raw files again and rebuilding it."
    ]
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(splits, name).x, getattr(good, name).x)
        assert torch.equal(getattr(splits, name).y, getattr(good, name).y)
    assert load_folder(root)[1] == []  # rebuilt: the next read trusts it again


def test_each_size_of_a_folder_keeps_its_own_cache_and_only_its_own_stale_one_is_deleted(tmp_path):
    root = write_image_folder(tmp_path / "pets", per_class=10)
    load_folder(root, (3, 8, 8))
    load_folder(root, (3, 16, 16))
    small, large = _caches(root)
    stems = [small.name.rsplit("-", 1)[0], large.name.rsplit("-", 1)[0]]
    assert stems == [f"imagefolder-3x16x16-{place(root)}", f"imagefolder-3x8x8-{place(root)}"]
    write_image_folder(root, classes=("cat",), per_class=1, seed=5)  # a changed file: the 3x8x8 cache is stale
    load_folder(root, (3, 8, 8))
    after = _caches(root)
    assert small in after and large not in after and len(after) == 2  # 3x16x16 kept, the stale 3x8x8 replaced


# the run's files fit; the 276 kB cache does not
FILE_SIZE_LIMIT = {"RLIMIT_FSIZE": (150_000, 150_000)}


def test_a_cache_directory_that_cannot_be_written_costs_only_the_cache(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=20, size=(32, 32))
    proc = runner(
        "train",
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.input_shape=[3,48,48]",
        "dataset.workers=0",
        "trainer.epochs=1",
        "trainer.batch_size=8",
        "model.channels=[8,16]",
        cwd=tmp_path,
        env={"RUNNER_CACHE": str(tmp_path / "cache")},
        rlimits=FILE_SIZE_LIMIT,
    )
    message = " ".join(proc.stdout.split())
    assert "warning: the dataset cache was not saved (cannot write" in message and "File too large" in message
    assert "training without it" in message
    assert not [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]  # no partial file left behind
    (run,) = run_dirs(tmp_path)
    assert (
        summary(run)["status"] == "completed"
        and "warning: the dataset cache was not saved" in (run / "train.log").read_text()
    )


def test_a_cache_written_for_another_folder_is_not_used(tmp_path):
    pets = write_image_folder(tmp_path / "pets", per_class=10)
    load_folder(pets)
    other = write_image_folder(tmp_path / "other", per_class=10, seed=3)
    load_folder(other)
    shutil.copy(_cache(pets), _cache(other))  # the other folder's file, under this folder's name
    splits, warned = load_folder(other)
    assert len(warned) == 1 and f"it was written for imagefolder-3x8x8-{place(pets)}-" in warned[0]
    assert torch.equal(splits.train.x, load_folder(other)[0].train.x)


def test_the_cache_stays_out_of_the_image_folder_and_torchvisions_imagefolder_still_reads_it(tmp_path):
    from torchvision.datasets import ImageFolder

    write_image_folder(tmp_path / "pets", per_class=10)
    before = digest(tmp_path / "pets")
    args = ["train", "dataset=imagefolder", "dataset.root=pets", "dataset.workers=0", *SMALL_CNN, "trainer.epochs=1"]
    runner(*args, "trainer.batch_size=8", cwd=tmp_path)
    assert digest(tmp_path / "pets") == before  # nothing written into the user's folder
    assert list(Path(os.environ["RUNNER_CACHE"], "datasets").glob(f"imagefolder-*-{place(tmp_path / 'pets')}-*.pt"))
    assert ImageFolder(tmp_path / "pets").classes == ["cat", "dog"]  # "Found no valid file for runner-cache" before

    # dataset.cache_dir puts it elsewhere, as a path of the user's choosing
    runner(*args, "trainer.batch_size=8", "dataset.cache_dir=mine", cwd=tmp_path)
    assert len(list((tmp_path / "mine" / "datasets").glob("imagefolder-*.pt"))) == 1


def write_digits(root, n=60, size=28):
    """root/<digit>/<i>.png: 8-bit grayscale digits of `size` x `size` (scikit-learn's 8x8 ones, scaled up)."""
    from PIL import Image
    from sklearn.datasets import load_digits

    digits = load_digits()
    for i, (pixels, y) in enumerate(zip(digits.images[:n], digits.target[:n])):
        (root / str(y)).mkdir(parents=True, exist_ok=True)
        image = Image.fromarray((pixels * 255 / 16).astype("uint8"), "L").resize((size, size), Image.BILINEAR)
        image.save(root / str(y) / f"{i:04d}.png")
    return root


def test_a_folder_of_grayscale_digits_trains_at_its_own_shape_unflipped_and_the_run_records_it(tmp_path):
    # runner train dataset=imagefolder dataset.root=digits28 on all 1,797 digits as 28x28 PNGs (2 CPU cores):
    # before, resized to RGB 64x64 and flipped: 71.67 % test, 180 s; now [1, 28, 28], unflipped: 98.89 %, 28.5 s
    write_digits(tmp_path / "digits")
    proc = runner(
        "train",
        "dataset=imagefolder",
        "dataset.root=digits",
        *SMALL_CNN[:2],
        "trainer.batch_size=8",
        "trainer.epochs=1",
        cwd=tmp_path,
    )
    said = " ".join(proc.stdout.split())
    assert "image folder: found 60 images, 28x28 grayscale: input_shape [1, 28, 28], as found." in said
    assert "augmentation: none (dataset.augment)" in said
    (run,) = run_dirs(tmp_path)
    assert "augmentation: none" in (run / "train.log").read_text()
    saved = OmegaConf.load(run / ".hydra" / "config.yaml")
    assert saved.dataset.input_shape == [1, 28, 28] and saved.dataset.num_classes == 10  # values, not resolvers
    assert json.loads((run / "checkpoints" / "model.json").read_text())["input_shape"] == [1, 28, 28]

    # the run is its own: predict and export read what it trained on, wherever the folder went
    (tmp_path / "digits").rename(tmp_path / "moved")
    runner("predict", f"ckpt={run}", "input=moved/3", cwd=tmp_path)
    # safetensors: every format reads the run's card and verification inputs alike; ONNX's own writer is test_export's
    runner("export", f"ckpt={run}", "format=safetensors", cwd=tmp_path)

    # a given shape is what every image is resized to, and the log says so
    proc = runner(
        "train",
        "dataset=imagefolder",
        "dataset.root=moved",
        "dataset.input_shape=[3,16,16]",
        "dataset.augment.flip=true",
        *SMALL_CNN[:2],
        "trainer.batch_size=8",
        "trainer.epochs=1",
        cwd=tmp_path,
    )
    said = " ".join(proc.stdout.split())
    assert "found 60 images, 28x28 grayscale: converted to RGB and resized to [3, 16, 16]" in said
    assert "augmentation: random horizontal flip (dataset.augment)" in said
