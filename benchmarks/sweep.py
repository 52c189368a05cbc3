"""A 4-job learning-rate sweep, one job at a time (Hydra's basic launcher) against two at a time (joblib).

    make bench-sweep            # or: .venv/bin/python benchmarks/sweep.py [--repeats 3]

Wall-clock time of the whole `runner train -m` command, median of `--repeats` runs each.
With the parallel preset, each job gets cores / n_jobs torch threads.
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

SWEEP = ["train", "-m", "optimizer.lr=0.03,0.01,0.003,0.001", "trainer.epochs=10"]


def timed(extra, cwd):
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runner", *SWEEP, *extra], cwd=cwd, check=True, capture_output=True)
    return time.perf_counter() - start


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    launchers = {"basic (1 job at a time)": [], "parallel (joblib, 2 jobs at a time)": ["hydra/launcher=parallel"]}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for _ in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
            for name, extra in launchers.items():
                results.setdefault(name, []).append(timed(extra, tmp))
    base = statistics.median(results["basic (1 job at a time)"])
    print(f"4-job sweep ({' '.join(SWEEP[2:])}), cnn on digits, {os.cpu_count()} cores, median of {args.repeats}:")
    print("| launcher | wall time | speed-up |\n|---|---|---|")
    for name, times in results.items():
        print(f"| {name} | {statistics.median(times):.1f} s | {base / statistics.median(times):.2f}x |")


if __name__ == "__main__":
    main()
