"""make bench's start-up table and device table, run for real on CPU with one window (the figures themselves are
not asserted: they are measurements, printed for docs/figures.md). On a machine with CUDA, `make bench` adds the device
table for cuda; here it is this same code on the CPU."""

import re
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "benchmarks" / "bench.py"


def table(text, header):
    """The rows of the Markdown table under `header`, as lists of cells."""
    lines = text[text.index(header) :].splitlines()[2:]
    return [[c.strip() for c in line.strip("|").split("|")] for line in lines if line.startswith("|")]


@pytest.mark.slow  # eight processes
def test_startup_table_measures_each_command_against_import_torch_and_lists_the_slowest_imports(tmp_path):
    out = subprocess.run(
        [sys.executable, str(BENCH), "--startup", "--repeats", "1"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = table(out, "| what | seconds | minus import torch |")
    assert [r[0] for r in rows] == [
        "import torch",
        "minimal loop: first step",
        "runner train: first step",
        "runner eval: metrics printed",
    ]
    floor = float(rows[0][1])
    for _name, seconds, minus in rows[1:]:
        # three figures, each printed rounded to hundredths from the unrounded ones
        assert float(seconds) > 0 and float(minus) == pytest.approx(float(seconds) - floor, abs=0.0151)
    imports = re.findall(r"^\s+([\d.]+) s  ( *\S.*)$", out, flags=re.M)
    assert len(imports) == 15 and any(name.strip() == "torch" for _, name in imports)
    assert [float(s) for s, _ in imports] == sorted((float(s) for s, _ in imports), reverse=True)


@pytest.mark.slow  # two runner trainings and two minimal loops
def test_device_table_runs_runner_and_the_minimal_loop_per_variant(tmp_path):
    out = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--device",
            "cpu",
            "--cases",
            "cnn digits",
            "--variants",
            "fp32,bf16",
            "--repeats",
            "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rows = table(out, "| case | variant |")
    assert [(r[0], r[1]) for r in rows] == [("cnn digits", "fp32"), ("cnn digits", "bf16")]
    for _, _, runner, minimal, ratio in rows:
        r, m = (float(v.replace(",", "")) for v in (runner, minimal))
        # both rates are printed rounded to units and the ratio to hundredths, each from the unrounded figures
        assert r > 0 and m > 0 and (r - 0.5) / (m + 0.5) - 0.005 <= float(ratio) <= (r + 0.5) / (m - 0.5) + 0.005


GPU_CHECK = BENCH.parent / "gpu_check.py"


@pytest.mark.slow  # about 20 runner processes: the acceptance check a GPU gets first, here on CPU so it never rots
def test_the_gpu_check_passes_every_check_on_cpu_and_prints_its_table(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(GPU_CHECK), "--device", "cpu", "--quick"], cwd=tmp_path, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    rows = table(proc.stdout, "| check | result | what was seen | seconds |")
    names = ["resume, 32", "resume, bf16", "resume, 16-mixed", "channels-last", "predict, export", "throughput, MFU"]
    assert [r[0] for r in rows] == [*names, "bench: runner / minimal"], rows
    assert all(r[1] == "PASS" for r in rows), rows
    assert all("to the bit" in r[2] for r in rows[:4])
    assert "model.onnx" in rows[4][2] and "model.pt2" in rows[4][2] and "GFLOP/s" in rows[5][2]


def test_the_gpu_check_without_a_gpu_says_so_and_exits_2(tmp_path):
    if __import__("torch").cuda.is_available():
        pytest.skip("this machine has CUDA: make gpu-check runs for real")
    proc = subprocess.run([sys.executable, str(GPU_CHECK)], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 2 and "no CUDA device here" in proc.stderr and "Traceback" not in proc.stderr
