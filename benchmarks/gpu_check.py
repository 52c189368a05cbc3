"""The GPU acceptance check: the first thing to run on a machine with a GPU, in under 8 minutes.

    make gpu-check                                                # on cuda, every check
    .venv/bin/python benchmarks/gpu_check.py --device cpu --quick   # the same script on CPU (the slow tier runs it)

Every check drives the real command line (`python -m runner ...`) in a temporary directory, on the default cnn
and digits (built in: nothing is downloaded), and reads what the runs wrote:
  resume, per precision   32, bf16 and 16-mixed (the loss scaler's state too): a run stopped after epoch 1 and
                          resumed to epoch 3 equals the uninterrupted run, every weight to the bit
  channels-last           the same, with trainer.channels_last=true
  compile                 trainer.compile=true trains to the eager run's accuracy (within 2 points); its first
                          epoch (compiling) against the median of the others
  predict, export         runner predict on the test split, on the device, gives the accuracy the run recorded;
                          runner export writes safetensors, pt2 and onnx of the device-trained run and verifies them
  MFU                     a bf16 run's summary.json throughput: FLOP/s and, on a GPU of known peak, MFU
  bench                   runner against the minimal loop (benchmarks/bench.py's device table), per variant
It prints one table headed with the device's name and exits 1 if any check failed. --quick (the CPU tier) leaves
out compile, trains on 5 batches an epoch (trainer.limit_train_batches) and runs the device table with one timed
window: the same code paths in a quarter of the time.
"""

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

BASE = ["model=cnn", "dataset=digits", "trainer.batch_size=64"]


class Check:
    """One row of the table: a name, PASS or FAIL, what was seen, seconds."""

    def __init__(self):
        self.rows = []

    def run(self, name, fn):
        started = time.perf_counter()
        try:
            ok, detail = fn()
        except Exception as err:
            ok, detail = False, f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
        self.rows.append((name, "PASS" if ok else "FAIL", detail, time.perf_counter() - started))
        print(f"  {name}: {'PASS' if ok else 'FAIL'}  {detail}", flush=True)

    @property
    def failed(self):
        return [r for r in self.rows if r[1] != "PASS"]


def runner(*args, cwd):
    """`python -m runner ARGS` in `cwd`; its CompletedProcess, raising with its output when it fails."""
    proc = subprocess.run([sys.executable, "-m", "runner", *args], cwd=cwd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"runner {' '.join(args)} exited {proc.returncode}: {(proc.stderr or proc.stdout)[-400:]}")
    return proc


def summary(run):
    return json.loads((run / "summary.json").read_text())


def weights(run):
    return torch.load(run / "checkpoints" / "last.pt", weights_only=True, map_location="cpu")["model"]


def resume_exact(cwd, device, extra, name):
    """A run of 3 epochs against one stopped after epoch 1 and resumed: (same weights and curve, what differed)."""
    args = [*BASE, f"device={device}", *extra]
    runner("train", *args, "trainer.epochs=3", f"hydra.run.dir={name}-full", cwd=cwd)
    runner("train", *args, "trainer.epochs=1", f"hydra.run.dir={name}-part", cwd=cwd)
    runner("train", f"resume={name}-part", "trainer.epochs=3", cwd=cwd)
    full, part = weights(cwd / f"{name}-full"), weights(cwd / f"{name}-part")
    differ = [k for k in full if not torch.equal(full[k], part[k])]
    curve = [(cwd / n / "metrics.csv").read_text().splitlines() for n in (f"{name}-full", f"{name}-part")]
    same_curve = [r.split(",")[:5] for r in curve[0]] == [r.split(",")[:5] for r in curve[1]]
    accuracy = summary(cwd / f"{name}-full")["test"]["test_accuracy"]
    if differ or not same_curve:
        return (
            False,
            f"resumed != uninterrupted: {len(differ)} tensors differ ({differ[:3]}), same metrics {same_curve}",
        )
    return True, f"resumed == uninterrupted, {len(full)} tensors to the bit; test_accuracy {accuracy:.4f}"


def compiled(cwd, device):
    args = [*BASE, f"device={device}", "trainer.epochs=4"]
    runner("train", *args, "trainer.compile=true", "hydra.run.dir=compiled", cwd=cwd)
    runner("train", *args, "hydra.run.dir=eager", cwd=cwd)
    rows = [r.split(",") for r in (cwd / "compiled" / "metrics.csv").read_text().splitlines()[1:]]
    times = [float(r[5]) for r in rows]
    accs = [summary(cwd / n)["test"]["test_accuracy"] for n in ("compiled", "eager")]
    ok = abs(accs[0] - accs[1]) <= 0.02
    return ok, (
        f"test_accuracy {accs[0]:.4f} compiled, {accs[1]:.4f} eager; epoch 1 (compiling) {times[0]:.1f} s, "
        f"then {statistics.median(times[1:]):.2f} s an epoch"
    )


def predict_and_export(cwd, device):
    run = cwd / "32-full"  # trained on the device by the fp32 resume check
    recorded = summary(run)["test"]["test_accuracy"]
    said = " ".join(runner("predict", f"ckpt={run}", "input=test", f"device={device}", cwd=cwd).stdout.split())
    ok = f"accuracy {recorded:.4f}" in said
    runner("export", f"ckpt={run}", "format=[safetensors,pt2,onnx]", f"out={cwd / 'exported'}", cwd=cwd)
    files = sorted(p.name for p in (cwd / "exported").iterdir())
    return ok, f"predict on {device}: {'the' if ok else 'NOT the'} recorded {recorded:.4f}; export: {', '.join(files)}"


def mfu(cwd, device):
    runner(
        "train", *BASE, f"device={device}", "trainer.precision=bf16", "trainer.epochs=3", "hydra.run.dir=bf16", cwd=cwd
    )
    speed = summary(cwd / "bf16")["throughput"]
    detail = f"{speed['samples_per_s']:,.0f} samples/s, {speed.get('flop_per_s', 0) / 1e9:,.2f} GFLOP/s"
    if "mfu" in speed:
        detail += f", MFU {100 * speed['mfu']:.2f} % of {speed['gpu']}'s bf16 peak"
    elif device == "cuda":
        detail += ", no MFU: this GPU's peak is not in runner/training/flops.py's table"
    return "flop_per_s" in speed, detail


def bench(device, quick):
    sys.path.insert(0, str(Path(__file__).parent))
    from bench import VARIANTS, device_table

    from runner.data.toy import digits

    train = digits(
        name="digits", task="classification", input_shape=[1, 8, 8], num_classes=10, test_fraction=0.2,
        val_fraction=0.1, split_seed=0, max_value=255,
    ).train  # fmt: skip
    variants = ["fp32"] if quick else [v for v in VARIANTS if device == "cuda" or v != "compile"]
    rows = device_table(device, 1 if quick else 3, variants, train, cases=["cnn digits"])
    measured = len(rows) == len(variants) and all(r > 0 and m > 0 for _, _, r, m in rows)
    return measured, "; ".join(f"{variant} {r / m:.2f}x the minimal loop" for _, variant, r, m in rows)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", default="cuda", help="cuda (default) or cpu")
    parser.add_argument(
        "--quick",
        action="store_true",
        help="no compile check, 5 batches an epoch, one timed window in the device table",
    )
    args = parser.parse_args()
    if args.quick:
        BASE.append("trainer.limit_train_batches=5")
    if args.device == "cuda" and not torch.cuda.is_available():
        print("gpu-check: no CUDA device here. Run it on a machine with a GPU, or with --device cpu.", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({torch.get_num_threads()} threads)"
    print(f"gpu-check on {name}, torch {torch.__version__}{', --quick' if args.quick else ''}", flush=True)
    check = Check()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        cwd = Path(tmp)
        for precision in ("32", "bf16", "16-mixed"):
            extra = [f"trainer.precision={precision}"]
            check.run(f"resume, {precision}", lambda e=extra, p=precision: resume_exact(cwd, args.device, e, p))
        check.run("channels-last", lambda: resume_exact(cwd, args.device, ["trainer.channels_last=true"], "cl"))
        if not args.quick:
            check.run("compile", lambda: compiled(cwd, args.device))
        check.run("predict, export", lambda: predict_and_export(cwd, args.device))
        check.run("throughput, MFU", lambda: mfu(cwd, args.device))
        check.run("bench: runner / minimal", lambda: bench(args.device, args.quick))
    print(f"\ngpu-check on {name}, torch {torch.__version__}, {time.perf_counter() - started:.0f} s in all\n")
    print("| check | result | what was seen | seconds |")
    print("|---|---|---|---|")
    for row_name, result, detail, seconds in check.rows:
        print(f"| {row_name} | {result} | {detail} | {seconds:.0f} |")
    if check.failed:
        print(f"\n{len(check.failed)} check(s) failed: {', '.join(r[0] for r in check.failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
