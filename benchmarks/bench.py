"""Training throughput of `runner train` against a minimal loop and the PyTorch CIFAR-10 tutorial.

    make bench                  # or: .venv/bin/python benchmarks/bench.py [--repeats 5]

For each case, the same model, batch size and number of steps are timed three ways:
  runner    `runner train` in a subprocess; its steady-state samples/s from metrics.csv
            (one row per epoch, the first epoch dropped as warm-up)
  minimal   the tutorial's loop over in-memory, pre-normalised float tensors, no DataLoader:
            the floor of per-step overhead
  tutorial  the CIFAR-10 tutorial's pipeline: a torchvision dataset of PIL images, ToTensor,
            Normalize, DataLoader(shuffle=True, num_workers=2), over files written locally
Figures are medians of `--repeats` timed windows after one warm-up window. Also: the time
from starting `runner train` to its first training step, and `runner --help` latency.

Start-up (`--startup` alone: just this part): from a process's start, measured in this run and
on this machine, medians of `--repeats`:
  import torch     `python -c "import torch"`: the floor every command stands on
  minimal loop     import torch, build the digits cnn and Adam, take one step: a hand-written train.py
  runner train     the default run's first training step (summary.json's timings.first_step_at)
  runner eval      `runner eval ckpt=<that run>` until it prints test_accuracy
each with its difference from import torch; then the default run's 15 slowest imports
(`python -X importtime`, cumulative), so a regression shows which module brought it.
"""

import argparse
import contextlib
import json
import pickle
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from runner.data.toy import digits
from runner.models import CNN, LeNet, resnet18

SGD = dict(lr=0.05, momentum=0.9, weight_decay=5e-4)  # configs/optimizer/sgd.yaml
CASES = [
    # name, model factory, runner overrides, input shape, batch, steps per window
    ("lenet 3x32x32", lambda: LeNet(3, 10), ["model=lenet", "dataset=fake"], (3, 32, 32), 128, 60),
    ("cnn digits", lambda: CNN(1, 10), ["model=cnn", "dataset=digits"], (1, 8, 8), 64, 20),
    ("resnet18 3x32x32", lambda: resnet18(3, 10), ["model=resnet18", "dataset=fake"], (3, 32, 32), 128, 6),
]


def step(model, opt, x, y, dtype=None):
    with torch.autocast(x.device.type, dtype=dtype) if dtype else contextlib.nullcontext():
        loss = F.cross_entropy(model(x), y)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def windows(batches, model, steps, repeats, dtype=None):
    """samples/s of `repeats` windows of `steps` steps each, after one warm-up window (which also compiles)."""
    torch.manual_seed(0)
    opt = torch.optim.SGD(model.parameters(), **SGD)
    rates, it = [], iter(batches())
    device = next(model.parameters()).device
    for w in range(repeats + 1):
        sync(device)
        start, seen = time.perf_counter(), 0
        for _ in range(steps):
            try:
                x, y = next(it)
            except StopIteration:
                it = iter(batches())
                x, y = next(it)
            step(model, opt, x, y, dtype)
            seen += len(y)
        sync(device)
        if w:
            rates.append(seen / (time.perf_counter() - start))
    return statistics.median(rates)


def minimal(factory, data, batch, steps, repeats, device="cpu", dtype=None, channels_last=False, compile=False):
    """The tutorial's loop over whole tensors already on `device`: the floor of per-step overhead there."""
    device = torch.device(device)
    x, y = data
    x = (x.float() - x.float().mean(dim=(0, 2, 3), keepdim=True)) / x.float().std(dim=(0, 2, 3), keepdim=True)
    x, y = x.to(device), y.to(device)
    if channels_last:
        x = x.contiguous(memory_format=torch.channels_last)
    model = factory().to(device)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    net = torch.compile(model) if compile else model

    def batches():
        order = torch.randperm(len(y), device=device)
        for i in range(len(y) // batch):
            idx = order[i * batch : (i + 1) * batch]
            yield x[idx], y[idx]

    return windows(batches, net, steps, repeats, dtype)


def tutorial(factory, dataset, batch, steps, repeats):
    loader = torch.utils.data.DataLoader(dataset, batch_size=batch, shuffle=True, num_workers=2, drop_last=True)
    return windows(lambda: loader, factory(), steps, repeats)


def write_cifar(root, n):
    """CIFAR-10's python format (five data batches, a test batch, batches.meta) with random pixels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for name in [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"]:
        m = n // 5 if name != "test_batch" else 128
        entry = {"data": rng.integers(0, 256, (m, 3072), dtype=np.uint8), "labels": rng.integers(0, 10, m).tolist()}
        (folder / name).write_bytes(pickle.dumps(entry, protocol=2))
    (folder / "batches.meta").write_bytes(pickle.dumps({"label_names": [str(i) for i in range(10)]}))


def cifar_tutorial_dataset(root):
    import torchvision
    import torchvision.datasets.cifar as cifar
    import torchvision.transforms as T

    cifar.check_integrity = lambda fpath, md5=None: Path(
        fpath
    ).is_file()  # local stand-ins cannot match the release md5s
    tf = T.Compose([T.ToTensor(), T.Normalize((0.5, 0.5, 0.5), (0.5, 0.5, 0.5))])
    return torchvision.datasets.CIFAR10(root, train=True, download=False, transform=tf)


class DigitsPIL(torch.utils.data.Dataset):
    """The digits as PIL images, so the tutorial pipeline (PIL -> ToTensor -> Normalize) applies unchanged."""

    def __init__(self, split):
        import torchvision.transforms as T
        from PIL import Image

        self.images = [Image.fromarray((x[0].numpy() * 16).clip(0, 255).astype(np.uint8)) for x in split.x]
        self.labels = split.y.tolist()
        self.tf = T.Compose([T.ToTensor(), T.Normalize((0.5,), (0.5,))])

    def __len__(self):
        return len(self.labels)

    def __getitem__(self, i):
        return self.tf(self.images[i]), self.labels[i]


def runner_train(overrides, batch, steps, repeats, cwd):
    """(steady-state samples/s, seconds from process start to the first step) of `runner train`."""
    args = [*overrides, f"trainer.batch_size={batch}", f"trainer.epochs={repeats + 1}", "optimizer=sgd"]
    if "dataset=fake" in overrides:
        args += [f"dataset.size={batch * steps + 16}", "dataset.val_fraction=0.01", "dataset.test_size=64"]
    start = time.time()
    subprocess.run([sys.executable, "-m", "runner", "train", *args], cwd=cwd, check=True, capture_output=True)
    (run,) = [p.parent for p in Path(cwd).glob("outputs/*/*/summary.json")]
    summary = json.loads((run / "summary.json").read_text())
    rows = (run / "metrics.csv").read_text().splitlines()
    col = rows[0].split(",").index("train_samples_per_s")
    rates = [float(r.split(",")[col]) for r in rows[2:]]  # epoch 1 is warm-up
    shutil.rmtree(Path(cwd, "outputs"))  # the next case finds its own run directory alone
    return statistics.median(rates), summary["timings"]["first_step_at"] - start


MINIMAL_LOOP = """
import time
import torch
import torch.nn.functional as F
from runner.models import CNN
model = CNN(1, 10)
opt = torch.optim.Adam(model.parameters(), lr=1e-3)
x, y = torch.randn(64, 1, 8, 8), torch.randint(0, 10, (64,))
loss = F.cross_entropy(model(x), y)
opt.zero_grad()
loss.backward()
opt.step()
print(time.time())
"""


def since_start(command, cwd, until="printed"):
    """Seconds from starting `command` to the unix time it prints ("printed"), to the moment it prints a line
    containing `until` ("test_accuracy"), or to the unix time `until(cwd)` reads from what it wrote."""
    start = time.time()
    proc = subprocess.Popen(command, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    seen, lines = None, []
    for line in proc.stdout:
        lines.append(line)
        if seen is None and isinstance(until, str) and until != "printed" and until in line:
            seen = time.time()
    if proc.wait():
        raise SystemExit(f"{' '.join(command)} failed")
    at = float(lines[-1]) if until == "printed" else seen if isinstance(until, str) else until(cwd)
    return at - start


def first_step(cwd):
    (run,) = [p.parent for p in Path(cwd).glob("outputs/*/*/summary.json")]
    at = json.loads((run / "summary.json").read_text())["timings"]["first_step_at"]
    shutil.rmtree(Path(cwd, "outputs"))
    return at


def startup(repeats):
    """The start-up table and the default run's slowest imports. The commands take turns (import torch, the minimal
    loop, runner train, runner eval, import torch, ...), so a change in the machine's speed falls on every row."""
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [py, "-m", "runner", "train", "trainer.epochs=1", "hydra.run.dir=run"],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        commands = {
            "import torch": ([py, "-c", "import torch, time; print(time.time())"], "printed"),
            "minimal loop: first step": ([py, "-c", MINIMAL_LOOP], "printed"),
            "runner train: first step": ([py, "-m", "runner", "train", "trainer.epochs=1"], first_step),
            "runner eval: metrics printed": ([py, "-m", "runner", "eval", "ckpt=run"], "test_accuracy"),
        }
        times = {name: [] for name in commands}
        for _ in range(repeats):
            for name, (command, until) in commands.items():
                times[name].append(since_start(command, tmp, until))
        imports = subprocess.run(
            [py, "-X", "importtime", "-m", "runner", "train", "trainer.epochs=1", "hydra.run.dir=imports"],
            cwd=tmp,
            check=True,
            capture_output=True,
            text=True,
        ).stderr
    rows = [(name, statistics.median(seconds)) for name, seconds in times.items()]
    floor = rows[0][1]
    print(f"\nStart-up, seconds from the process's start (median of {repeats}, the commands taking turns):\n")
    print("| what | seconds | minus import torch |")
    print("|---|---|---|")
    for name, seconds in rows:
        print(f"| {name} | {seconds:.2f} | {'' if name == 'import torch' else f'{seconds - floor:+.2f}'} |")
    timed = []
    for line in imports.splitlines():
        if line.startswith("import time:") and "|" in line:
            _, cumulative, name = line.split("|")
            if cumulative.strip().isdigit():
                timed.append((int(cumulative), name.rstrip()))
    print("\nThe default run's 15 slowest imports (python -X importtime, cumulative, nested ones indented):\n")
    for cumulative, name in sorted(timed, reverse=True)[:15]:
        print(f"  {cumulative / 1e6:6.3f} s  {name[1:] if name.startswith(' ') else name}")


# trainer.* overrides of runner, and the same settings of the minimal loop, for the device table
VARIANTS = {
    "fp32": ([], {}),
    "bf16": (["trainer.precision=bf16"], {"dtype": torch.bfloat16}),
    "channels-last": (["trainer.channels_last=true"], {"channels_last": True}),
    "compile": (["trainer.compile=true"], {"compile": True}),
}


def case_data(shape, batch, steps, digits_train):
    if shape == (1, 8, 8):
        return digits_train.x, digits_train.y
    n = batch * steps
    return torch.randint(0, 256, (n, *shape), dtype=torch.uint8), torch.randint(0, 10, (n,))


def device_table(device, repeats, variants, digits_train, cases=None):
    """runner against the minimal loop on `device`, per case and variant (make bench adds it when CUDA is there)."""
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, factory, overrides, shape, batch, steps in CASES:
            if cases and name not in cases:
                continue
            data = case_data(shape, batch, steps, digits_train)
            for variant in variants:
                extra, settings = VARIANTS[variant]
                r, _ = runner_train(
                    [*overrides, f"device={device.split(':')[0]}", *extra], batch, steps, repeats, Path(tmp)
                )
                m = minimal(factory, data, batch, steps, repeats, device, **settings)
                rows.append((name, variant, r, m))
                print(f"  {device} {name} {variant}: runner {r:,.0f}  minimal {m:,.0f} samples/s", flush=True)
    where = torch.cuda.get_device_name(device) if device.startswith("cuda") else device
    print(f"\nOn {where} (medians of {repeats} windows; epoch 1, which compiles, is warm-up):\n")
    print("| case | variant | runner (samples/s) | minimal loop | runner / minimal |")
    print("|---|---|---|---|---|")
    for name, variant, r, m in rows:
        print(f"| {name} | {variant} | {r:,.0f} | {m:,.0f} | {r / m:.2f} |")
    return rows


def cifar10_fast_time(root):
    """Wall-clock seconds of experiment=cifar10_fast until its validation accuracy first reaches 94 %, on the
    CIFAR-10 files at `root` (None when they are not there: nothing is downloaded)."""
    if not (Path(root) / "cifar-10-batches-py" / "data_batch_1").is_file():
        return None
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(
            [
                sys.executable,
                "-m",
                "runner",
                "train",
                "experiment=cifar10_fast",
                f"dataset.root={Path(root).resolve()}",
                "device=cuda",
                "hydra.run.dir=run",
            ],
            cwd=tmp,
            check=True,
            capture_output=True,
        )
        rows = (Path(tmp) / "run" / "metrics.csv").read_text().splitlines()
        header = rows[0].split(",")
        elapsed = 0.0
        for line in rows[1:]:
            row = dict(zip(header, map(float, line.split(","))))
            elapsed += row["epoch_time_s"]
            if row["val_accuracy"] >= 0.94:
                return elapsed
    return float("inf")


def help_latency(repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, "-m", "runner", "--help"], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed windows (and runner epochs) per figure")
    parser.add_argument("--startup", action="store_true", help="only the start-up table and the slowest imports")
    parser.add_argument(
        "--device",
        default=None,
        help="only the device table, on this device (make bench adds cuda's when CUDA is there)",
    )
    parser.add_argument(
        "--cases",
        default=None,
        help=f"the device table's cases, comma-separated (default: all of {[c[0] for c in CASES]})",
    )
    parser.add_argument(
        "--variants", default=",".join(VARIANTS), help=f"the device table's variants (default: {','.join(VARIANTS)})"
    )
    parser.add_argument(
        "--cifar-root", default="data", help="where CIFAR-10's files are, for cifar10_fast's time to 94 %% on a GPU"
    )
    args = parser.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.repeats} timed windows per figure")
    if args.startup:
        startup(args.repeats)
        return
    digits_train = digits(
        name="digits",
        task="classification",
        input_shape=[1, 8, 8],
        num_classes=10,
        test_fraction=0.2,
        val_fraction=0.1,
        split_seed=0,
        max_value=255,
    ).train
    if args.device:
        device_table(
            args.device, args.repeats, args.variants.split(","), digits_train, args.cases and args.cases.split(",")
        )
        return
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        write_cifar(tmp / "cifar", n=128 * 60 + 640)
        cifar = cifar_tutorial_dataset(tmp / "cifar")
        for name, factory, overrides, shape, batch, steps in CASES:
            tensors = case_data(shape, batch, steps, digits_train)
            pil = DigitsPIL(digits_train) if shape == (1, 8, 8) else cifar
            r, first_step = runner_train(overrides, batch, steps, args.repeats, tmp)
            m = minimal(factory, tensors, batch, steps, args.repeats)
            t = tutorial(factory, pil, batch, steps, args.repeats)
            rows.append((name, batch, steps, r, m, t, first_step))
            print(f"  {name}: runner {r:,.0f}  minimal {m:,.0f}  tutorial {t:,.0f} samples/s", flush=True)
    latency = help_latency(args.repeats)

    print()
    print(
        "| case | batch | steps/window | runner (samples/s) | minimal loop | tutorial pipeline | runner / minimal | "
        "runner / tutorial | start to first step |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for name, batch, steps, r, m, t, first in rows:
        print(
            f"| {name} | {batch} | {steps} | {r:,.0f} | {m:,.0f} | {t:,.0f} | {r / m:.2f} | {r / t:.2f} | {first:.1f} "
            f"s |"
        )
    print(f"\n`runner --help`: {latency * 1000:.0f} ms (median of {args.repeats})")
    startup(args.repeats)
    if not torch.cuda.is_available():
        print("\nNo CUDA device here: no GPU table (bench.py --device cuda on a machine with one).")
        return
    device_table("cuda", args.repeats, list(VARIANTS), digits_train)
    seconds = cifar10_fast_time(args.cifar_root)
    print(
        "\ncifar10_fast to 94 % validation accuracy: "
        + (
            f"no CIFAR-10 files under {args.cifar_root}/"
            if seconds is None
            else "not reached"
            if seconds == float("inf")
            else f"{seconds:.1f} s of training"
        )
    )


if __name__ == "__main__":
    main()
