"""The default run under load: `runner train` beside busy processes, against `trainer.num_threads=1` beside the same.

    make bench-load             # or: .venv/bin/python benchmarks/load.py [--repeats 3] [--busy 2] [--epochs 4]

Four cases of the default run (cnn on digits; 4 epochs rather than 10, so that the whole benchmark takes minutes),
each a whole `runner train` command timed from its start to its exit, and its training samples/s (the median
epoch's, summary.json's throughput):
  default     `runner train`: torch's threads (one per core) with runner's OpenMP wait (OMP_WAIT_POLICY=PASSIVE,
              GOMP_SPINCOUNT=30000, set by runner/cli.py before torch loads: a waiting thread spins about 0.3 ms,
              then sleeps)
  1 thread    `runner train trainer.num_threads=1`
  spinning    GOMP_SPINCOUNT=300000, libgomp's own spin when no policy is set: a waiting thread spins for about
              3 ms first, as every run did before runner set its wait
  sleeping    GOMP_SPINCOUNT=0, what OMP_WAIT_POLICY=PASSIVE alone gives: a waiting thread sleeps at once
first with `--busy` processes beside them (`yes > /dev/null`, started here and stopped before the quiet rows), then
on the quiet machine. Figures are medians of `--repeats`; the cases take turns (default, 1 thread, spinning,
default, ...) so a change in the machine's speed falls on all four, and the ratios are of figures of this run.
Also each case's test accuracy: a wait policy changes no float, so default, spinning and sleeping must agree to the bit.
The "quiet" rows are as quiet as the machine is: other processes running then count against the spinning case.
"""

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CASES = {
    "default": ([], {}),
    "1 thread": (["trainer.num_threads=1"], {}),
    "spinning": ([], {"GOMP_SPINCOUNT": "300000"}),
    "sleeping": ([], {"GOMP_SPINCOUNT": "0"}),
}


@contextlib.contextmanager
def busy(count):
    """`count` processes that keep a core busy each (`yes > /dev/null`), stopped on leaving."""
    procs = [subprocess.Popen(["yes"], stdout=subprocess.DEVNULL) for _ in range(count)]
    try:
        time.sleep(0.5)
        yield
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()


def timed_run(overrides, env, cwd, epochs):
    """(seconds from start to exit, training samples/s, the test accuracy) of one `runner train` in `cwd`."""
    start = time.perf_counter()
    subprocess.run(
        [sys.executable, "-m", "runner", "train", *overrides, f"trainer.epochs={epochs}", "hydra.run.dir=run"],
        cwd=cwd,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
    )
    seconds = time.perf_counter() - start
    summary = json.loads(Path(cwd, "run", "summary.json").read_text())
    subprocess.run(["rm", "-rf", str(Path(cwd, "run"))], check=True)
    return seconds, summary["throughput"]["samples_per_s"], summary["test"]["test_accuracy"]


def measure(repeats, cwd, epochs):
    """{case: (median seconds, median samples/s, the accuracies)}, the cases taking turns."""
    runs = {name: [] for name in CASES}
    for _ in range(repeats):
        for name, (overrides, env) in CASES.items():
            runs[name].append(timed_run(overrides, env, cwd, epochs))
            print(f"  {name}: {runs[name][-1][0]:.1f} s, {runs[name][-1][1]:,.0f} samples/s", flush=True)
    return {
        name: (
            statistics.median(r[0] for r in runs[name]),
            statistics.median(r[1] for r in runs[name]),
            {r[2] for r in runs[name]},
        )
        for name in CASES
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="runs per case and load (median)")
    parser.add_argument("--busy", type=int, default=2, help="busy processes beside the loaded runs")
    parser.add_argument("--epochs", type=int, default=4, help="trainer.epochs of each run")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        print(f"{os.cpu_count()} cores; {args.busy} busy processes beside the loaded runs", flush=True)
        with busy(args.busy):
            loaded = measure(args.repeats, tmp, args.epochs)
        quiet = measure(args.repeats, tmp, args.epochs)
    print(
        f"\nThe default run ({args.epochs} epochs): the whole command in seconds and its training samples/s, medians "
        f"of {args.repeats}; seconds / 1 thread's under the same load:\n"
    )
    print(
        f"| case | {args.busy} busy: seconds | / 1 thread | samples/s | quiet: seconds | / 1 thread | samples/s "
        "| test accuracy |"
    )
    print("|---|---|---|---|---|---|---|---|")
    one_loaded, one_quiet = loaded["1 thread"][0], quiet["1 thread"][0]
    for name in CASES:
        (lo, lo_rate, acc), (qu, qu_rate, acc_quiet) = loaded[name], quiet[name]
        accuracies = ", ".join(f"{a:.4f}" for a in sorted(acc | acc_quiet))
        print(
            f"| {name} | {lo:.1f} | {lo / one_loaded:.2f}x | {lo_rate:,.0f} | {qu:.1f} | {qu / one_quiet:.2f}x | "
            f"{qu_rate:,.0f} | {accuracies} |"
        )


if __name__ == "__main__":
    main()
