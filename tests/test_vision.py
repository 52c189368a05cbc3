"""CIFAR-10, MNIST and Fashion-MNIST, read from tiny files in their official formats."""

import gzip
import json
import os

import pytest
from conftest import assert_clean_failure, digest, run_dirs, runner, summary
from formats import CIFAR_CLASSES, write_cifar10, write_mnist

SMALL_CNN = ["model=cnn", "model.channels=[8,16]", "trainer.batch_size=32"]


@pytest.mark.slow  # the MNIST test reads torchvision's files in the default suite
def test_cifar10_trains_evaluates_and_caches_the_decoded_tensor(tmp_path):
    raw = write_cifar10(tmp_path / "shared")
    # the environment variables, not dataset.root and dataset.cache_dir
    env = {"RUNNER_DATA": str(tmp_path / "shared"), "RUNNER_CACHE": str(tmp_path / "cache")}
    runner("train", "dataset=cifar10", *SMALL_CNN, "trainer.epochs=10", "optimizer.lr=0.01", cwd=tmp_path, env=env)
    (run,) = run_dirs(tmp_path)
    info = summary(run)
    assert info["samples"] == {"train": 180, "val": 20, "test": 60}  # 5 x 40 official training images, 10% held out
    assert info["test"]["test_accuracy"] >= 0.5  # class k is 20 levels brighter: learnable, 10% is chance
    (cache,) = (tmp_path / "cache" / "datasets").glob("cifar10-*.pt")
    assert not (tmp_path / "shared" / "runner-cache").exists()  # the shared copy is read, never written

    # evaluation reads the same files, names the classes from batches.meta, and matches training exactly
    proc = runner("eval", f"ckpt={run}", cwd=tmp_path, env=env)
    (metrics,) = tmp_path.glob("outputs/eval/*/*/metrics.json")
    result = json.loads(metrics.read_text())
    assert result["test_accuracy"] == info["test"]["test_accuracy"]
    assert list(result["per_class_accuracy"]) == CIFAR_CLASSES and "automobile" in proc.stdout

    # the second run reads the cache: a raw file spoiled behind runner's back (same size and mtime) goes unread
    batch = raw / "data_batch_3"
    stat = batch.stat()
    batch.write_bytes(b"\0" * stat.st_size)
    os.utime(batch, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    runner("train", "dataset=cifar10", *SMALL_CNN, "trainer.epochs=1", cwd=tmp_path, env=env)
    assert summary(run_dirs(tmp_path)[-1])["status"] == "completed"

    # a raw file that changed (new mtime) invalidates the cache: decoding runs again, and finds the damage
    os.utime(batch)
    proc = runner("train", "dataset=cifar10", *SMALL_CNN, "trainer.epochs=1", cwd=tmp_path, env=env, check=False)
    assert_clean_failure(proc, "incomplete or corrupted")
    assert cache.exists()  # a failed rebuild leaves the old cache alone


@pytest.mark.parametrize(
    "dataset,folder", [("mnist", "MNIST"), pytest.param("fashion_mnist", "FashionMNIST", marks=pytest.mark.slow)]
)
def test_mnist_family_reads_idx_files(tmp_path, dataset, folder):
    write_mnist(tmp_path / "data", folder=folder)
    runner("train", f"dataset={dataset}", *SMALL_CNN, "trainer.epochs=10", "optimizer.lr=0.01", cwd=tmp_path)
    info = summary(run_dirs(tmp_path)[0])
    assert info["samples"] == {"train": 180, "val": 20, "test": 60}
    assert info["test"]["test_accuracy"] >= 0.5


def test_mnist_files_as_distributed_gzipped_are_read_offline_and_left_as_they_are(tmp_path):
    raw = write_mnist(tmp_path / "data")
    for f in list(raw.iterdir()):  # what the official mirrors serve: train-images-idx3-ubyte.gz, ...
        (raw / f"{f.name}.gz").write_bytes(gzip.compress(f.read_bytes()))
        f.unlink()
    before = digest(tmp_path / "data")
    offline = ["dataset=mnist", "dataset.download=false"]
    runner("train", *offline, *SMALL_CNN, "trainer.epochs=10", "optimizer.lr=0.01", cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    info = summary(run)
    assert info["samples"] == {"train": 180, "val": 20, "test": 60} and info["test"]["test_accuracy"] >= 0.5
    runner("eval", f"ckpt={run}", cwd=tmp_path)
    (metrics,) = tmp_path.glob("outputs/eval/*/*/metrics.json")
    result = json.loads(metrics.read_text())
    assert result["test_accuracy"] == info["test"]["test_accuracy"] and "0 - zero" in result["per_class_accuracy"]
    assert digest(tmp_path / "data") == before  # read in place: nothing decompressed beside them, no cache


@pytest.mark.parametrize(
    "dataset,expected,download",
    [
        ("cifar10", "data_batch_1", "true"),
        pytest.param("mnist", "train-images-idx3-ubyte", "true", marks=pytest.mark.slow),
        pytest.param("cifar10", "data_batch_1", "false", marks=pytest.mark.slow),
    ],
)
def test_missing_files_offline_name_the_directory_and_files_and_leave_nothing(tmp_path, dataset, expected, download):
    proc = runner("train", f"dataset={dataset}", f"dataset.download={download}", cwd=tmp_path, check=False)
    reason = "could not be downloaded" if download == "true" else "dataset.download=false"
    assert_clean_failure(proc, f"its files are not in {tmp_path / 'data'}", expected, reason, "RUNNER_DATA")
    assert not (tmp_path / "data").exists() or not any((tmp_path / "data").rglob("*"))  # no half-written archive


@pytest.mark.parametrize("existing_root", [True, False], ids=["existing root", "new root"])
def test_a_download_that_breaks_off_leaves_the_data_root_as_it_was(tmp_path, existing_root):
    if existing_root:
        (tmp_path / "data").mkdir()
        (tmp_path / "data" / "keep.txt").write_text("mine")
    marker = tmp_path / "download-began"
    proc = runner(
        "train", "dataset=cifar10", cwd=tmp_path, check=False, env={"RUNNER_TEST_BROKEN_DOWNLOAD": str(marker)}
    )
    assert_clean_failure(proc, "they could not be downloaded (ConnectionResetError", "cifar-10-python.tar.gz")
    assert "cifar-10-python.tar.gz" in marker.read_text()  # the download really began, and wrote part of the archive
    left = sorted(p.name for p in (tmp_path / "data").rglob("*")) if (tmp_path / "data").exists() else None
    assert left == (["keep.txt"] if existing_root else None)
