"""Image folders: runner's streamed path against torchvision's ImageFolder + DataLoader, and the decode-once cache.

    make bench-stream           # or: .venv/bin/python benchmarks/stream.py [--images 50000] [--epochs 3]

Writes a folder of small JPEGs (10 classes, 32x32, CIFAR-10's size and count by default) and measures:
  streamed  `runner train dataset=imagefolder dataset.in_memory=false`: its steady-state train
            samples/s from metrics.csv (epoch 1 dropped as warm-up), against the same model,
            batch, optimizer and number of worker processes on torchvision's ImageFolder with
            the same transforms (resize, random flip, normalise) in a DataLoader, timed the same way
  cache     the first in-memory run's setup (decode every image, write runner-cache/) and the
            next run's (read the cache), with each run's peak memory, against the tutorial
            pipeline's first epoch over the same folder
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runner.models import LeNet

SGD = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)  # configs/optimizer/sgd.yaml
BATCH, WORKERS = 128, 2


def _write_class(args):
    from PIL import Image

    folder, label, n = args
    rng = np.random.default_rng(label)
    folder.mkdir(parents=True)
    for i in range(n):
        pixels = rng.integers(0, 60, (32, 32, 3), dtype=np.uint8) + np.uint8(label * 19)
        Image.fromarray(pixels).save(folder / f"{i:05d}.jpg", quality=90)


def write_folder(root, n):
    with ProcessPoolExecutor(os.cpu_count()) as pool:
        list(pool.map(_write_class, [(root / f"class{k}", k, n // 10) for k in range(10)]))


def runner_train(args, cwd):
    """(the run's summary.json, metrics rows, the process's peak RSS in MiB) of `runner train ARGS` in `cwd`."""
    wrapper = (
        "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); "
        "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"
    )
    out = subprocess.run(
        [sys.executable, "-c", wrapper, sys.executable, "-m", "runner", "train", *args],
        cwd=cwd,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    (run,) = [p.parent for p in Path(cwd).glob("outputs/*/*/summary.json")]
    summary = json.loads((run / "summary.json").read_text())
    rows = (run / "metrics.csv").read_text().splitlines()
    shutil.rmtree(Path(cwd, "outputs"))
    return summary, rows, int(out.split()[-1]) / 1024


def runner_streamed(epochs, cwd):
    summary, rows, _ = runner_train(
        [
            "dataset=imagefolder",
            "dataset.root=images",
            "dataset.input_shape=[3,32,32]",
            "dataset.in_memory=false",
            f"dataset.workers={WORKERS}",
            "model=lenet",
            "optimizer=sgd",
            f"trainer.batch_size={BATCH}",
            f"trainer.epochs={epochs}",
        ],
        cwd,
    )
    col = rows[0].split(",").index("train_samples_per_s")
    return statistics.median(float(r.split(",")[col]) for r in rows[2:]), summary


def torchvision_loader(root):
    import torchvision.transforms as T
    from torchvision.datasets import ImageFolder

    tf = T.Compose([T.Resize((32, 32)), T.RandomHorizontalFlip(), T.ToTensor(), T.Normalize((0.5,) * 3, (0.25,) * 3)])
    dataset = ImageFolder(root, transform=tf)
    return torch.utils.data.DataLoader(
        dataset, batch_size=BATCH, shuffle=True, num_workers=WORKERS, drop_last=True, persistent_workers=True
    )


def torchvision_epochs(root, epochs):
    """samples/s of each epoch of LeNet trained on ImageFolder through a DataLoader; and the first epoch's seconds."""
    torch.manual_seed(0)
    loader, model = torchvision_loader(root), LeNet(3, 10)
    opt = torch.optim.SGD(model.parameters(), **SGD)
    rates, first = [], None
    for _ in range(epochs):
        start, seen = time.perf_counter(), 0
        for x, y in loader:
            loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            seen += len(y)
        elapsed = time.perf_counter() - start
        first = elapsed if first is None else first
        rates.append(seen / elapsed)
    return statistics.median(rates[1:]), first


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--images", type=int, default=50_000, help="JPEGs in the folder (CIFAR-10's training set: 50,000)"
    )
    parser.add_argument("--epochs", type=int, default=3, help="epochs per streamed figure; the first is warm-up")
    args = parser.parse_args()
    print(
        f"torch {torch.__version__}, {os.cpu_count()} cores, {args.images:,} 32x32 JPEGs, batch {BATCH}, {WORKERS} "
        f"workers"
    )
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        start = time.perf_counter()
        write_folder(tmp / "images", args.images)
        print(f"  wrote the folder in {time.perf_counter() - start:.1f} s", flush=True)

        streamed, _ = runner_streamed(args.epochs, tmp)
        print(f"  runner streamed: {streamed:,.0f} samples/s", flush=True)
        baseline, tutorial_first_epoch = torchvision_epochs(tmp / "images", args.epochs)
        print(f"  torchvision ImageFolder + DataLoader: {baseline:,.0f} samples/s", flush=True)

        in_memory = [
            "dataset=imagefolder",
            "dataset.root=images",
            "dataset.input_shape=[3,32,32]",
            "dataset.in_memory=true",
            f"dataset.workers={WORKERS}",
            "model=lenet",
            "optimizer=sgd",
            f"trainer.batch_size={BATCH}",
            "trainer.epochs=1",
        ]
        cold, _, cold_rss = runner_train(in_memory, tmp)
        warm, _, warm_rss = runner_train(in_memory, tmp)
        cache_mib = sum(p.stat().st_size for p in (tmp / "images" / "runner-cache").glob("*.pt")) / 2**20

    print()
    print("| streamed path | samples/s |")
    print("|---|---|")
    print(f"| runner `dataset.in_memory=false` | {streamed:,.0f} |")
    print(f"| torchvision `ImageFolder` + `DataLoader` | {baseline:,.0f} |")
    print(f"| runner / torchvision | {streamed / baseline:.2f} |")
    print()
    print("| decode once, then cached | seconds | peak memory |")
    print("|---|---|---|")
    print(
        f"| runner, first run's setup (decode {args.images:,} images, write a {cache_mib:.0f} MiB cache) | "
        f"{cold['timings']['setup_s']:.1f} | {cold_rss:,.0f} MiB |"
    )
    print(f"| runner, next run's setup (read the cache) | {warm['timings']['setup_s']:.1f} | {warm_rss:,.0f} MiB |")
    print(f"| runner, one in-memory epoch (train + validate) | {warm['timings']['train_s']:.1f} | |")
    print(f"| tutorial pipeline, first epoch (decode + train) | {tutorial_first_epoch:.1f} | |")


if __name__ == "__main__":
    main()
