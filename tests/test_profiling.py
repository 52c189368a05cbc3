"""trainer.profile and summary.json's throughput (runner/training/profiling.py, runner/training/flops.py)."""

import json

import pytest
import torch
from conftest import load, runner, summary

from runner.models import MLP
from runner.training.flops import flops_per_sample, peak_flops, peak_of, throughput


def test_a_profiled_run_writes_a_chrome_trace_of_its_window_and_learns_the_same_weights(tmp_path):
    window = ["trainer.epochs=1", "trainer.profile_steps=[1,1,2]"]
    proc = runner("train", "trainer.profile=true", *window, "hydra.run.dir=profiled", cwd=tmp_path)
    runner("train", *window, "hydra.run.dir=plain", cwd=tmp_path)
    folder = tmp_path / "profiled" / "profile"
    (trace,) = folder.glob("rank0.*.pt.trace.json")
    events = json.loads(trace.read_text())["traceEvents"]  # the Chrome trace format Perfetto and TensorBoard read
    names = {e.get("name", "") for e in events}
    # steps 3 and 4 recorded (1 waited, 1 warmed up), as the profiler numbers them from 0
    assert {"ProfilerStep#2", "ProfilerStep#3"} <= names and "ProfilerStep#1" not in names, sorted(names)[:20]
    assert any(n.startswith("aten::convolution") for n in names)  # the cnn's own operators
    assert "aten::convolution_backward" in (folder / "top_operators.txt").read_text()
    said = " ".join(proc.stdout.split())
    assert "profile of steps 3-4: top operators by own CPU time" in said and "ProfilerStep" not in said
    assert "gpuGetDeviceCount" not in proc.stderr and "USDT" not in proc.stderr  # kineto's notes, kept quiet
    a, b = (load(tmp_path / run / "checkpoints" / "last.pt")["model"] for run in ("profiled", "plain"))
    assert all(torch.equal(a[k], b[k]) for k in a)  # profiling watches; it changes nothing learned
    assert not (tmp_path / "plain" / "profile").exists()


def test_a_run_that_ends_inside_or_before_the_window_says_what_was_recorded(tmp_path):
    # digits: 20 steps an epoch. A window from step 12 for 30 steps is cut at step 20; one from step 32 never begins
    cut = runner("train", "trainer.profile=true", "trainer.profile_steps=[10,1,30]", "trainer.epochs=1", cwd=tmp_path)
    assert "profile of steps 12-20:" in " ".join(cut.stdout.split())
    late = runner("train", "trainer.profile=true", "trainer.profile_steps=[30,1,3]", "trainer.epochs=1", cwd=tmp_path)
    said = " ".join(late.stdout.split())
    assert "before trainer.profile_steps' window began (step 32): nothing was recorded" in said
    assert len(list(tmp_path.glob("outputs/*/*/profile/*.json"))) == 1  # the first run's trace alone


def test_the_summary_gives_throughput_and_the_flops_of_a_training_sample(tmp_path):
    runner("train", "model=mlp", "trainer.epochs=3", "hydra.run.dir=r", cwd=tmp_path)
    speed = summary(tmp_path / "r")["throughput"]
    rates = [float(line.split(",")[6]) for line in (tmp_path / "r" / "metrics.csv").read_text().splitlines()[1:]]
    assert speed["samples_per_s"] == pytest.approx(sorted(rates)[1])  # the median epoch's
    assert speed["steps_per_s"] == pytest.approx(speed["samples_per_s"] / 64)  # trainer.batch_size
    assert speed["flops_per_sample"] == 269_824  # test below: 64 -> 256 -> 128 -> 10, forward and backward
    assert speed["flop_per_s"] == pytest.approx(269_824 * speed["samples_per_s"])
    assert "mfu" not in speed  # a CPU has no peak to measure against


def test_flops_of_an_mlp_are_its_matrix_products_forward_and_backward():
    # forward 2*in*out per layer; backward the weights' gradient (2*in*out) for every layer and the input's
    # gradient (2*in*out) for every layer but the first, whose input needs none
    layers = [(64, 256), (256, 128), (128, 10)]
    expected = sum(4 * i * o for i, o in layers) + sum(2 * i * o for i, o in layers[1:])
    model = MLP([1, 8, 8], 10)
    before = [p.clone() for p in model.parameters()]
    assert flops_per_sample(model, [1, 8, 8], "classification") == expected == 269_824
    assert flops_per_sample(model, [1, 8, 8], "regression") == expected
    assert all(torch.equal(a, b) for a, b in zip(before, model.parameters()))  # counted on a copy, on meta
    assert all(p.grad is None for p in model.parameters())


def test_mfu_is_the_achieved_flops_over_the_gpus_peak_for_the_precision():
    rows = [{"train_samples_per_s": r} for r in (100.0, 300.0, 200.0)]
    speed = throughput(rows, batch_size=50, accumulate=2, flops=1e9, peak=1e12)
    assert speed == {
        "samples_per_s": 200.0,  # the median epoch
        "steps_per_s": 2.0,  # 200 samples/s over 100 samples a step
        "flops_per_sample": 1e9,
        "flop_per_s": 2e11,
        "peak_flop_per_s": 1e12,
        "mfu": 0.2,
    }
    assert "mfu" not in throughput(rows, batch_size=50, accumulate=1, flops=1e9)  # no known peak: no MFU
    assert peak_flops(torch.device("cpu"), "bf16") == (None, None)


def test_peaks_are_matched_by_the_gpus_name_and_the_precision():
    assert peak_of("NVIDIA H100 80GB HBM3", "bf16") == pytest.approx(989.4e12)  # SXM
    assert peak_of("NVIDIA H100 PCIe", "16-mixed") == pytest.approx(756e12)  # PCIe: matched before the SXM entry
    assert peak_of("NVIDIA H200", "bf16") == pytest.approx(989.4e12)
    assert peak_of("NVIDIA A100-SXM4-80GB", "bf16") == pytest.approx(312e12)  # not the A10's
    assert peak_of("NVIDIA L40S", "bf16") == pytest.approx(362.05e12)  # not the L4's
    assert peak_of("NVIDIA L4", "bf16") == pytest.approx(121e12)
    # variants with other figures, not in the table: no MFU rather than another GPU's
    for name in ("NVIDIA L40", "NVIDIA A10G", "NVIDIA H100 NVL", "NVIDIA GeForce GTX 1080"):
        assert peak_of(name, "bf16") is None, name
    assert peak_of("NVIDIA H100 80GB HBM3", "32") is None  # fp32 convolutions run on TF32: no fp32 peak measures them


@pytest.mark.slow  # two profiled trainings (10 s)
def test_the_window_records_training_steps_only_and_nothing_when_the_run_ends_before_it(tmp_path):
    # window 3-5 (the default [1, 1, 3]). A run of 2 steps printed "profile of steps 3-2" with its last validation as
    # the table; one of 4 steps recorded that validation as a third step, with no backward pass
    before = runner("train", "trainer.profile=true", "trainer.max_steps=2", "hydra.run.dir=two", cwd=tmp_path)
    said = " ".join(before.stdout.split())
    assert "before trainer.profile_steps' window began (step 3): nothing was recorded" in said
    assert "profile of steps" not in said and not (tmp_path / "two" / "profile").exists()
    cut = runner("train", "trainer.profile=true", "trainer.max_steps=4", "hydra.run.dir=four", cwd=tmp_path)
    assert "profile of steps 3-4:" in " ".join(cut.stdout.split())
    (trace,) = (tmp_path / "four" / "profile").glob("rank0.*.pt.trace.json")
    names = [e.get("name", "") for e in json.loads(trace.read_text())["traceEvents"]]
    steps = {n for n in names if n.startswith("ProfilerStep#")}
    assert steps == {"ProfilerStep#2", "ProfilerStep#3"}, steps  # steps 3 and 4, as the profiler numbers them
    # every convolution recorded has its backward pass: no validation batch in the window (the cnn has 4 a step)
    assert names.count("aten::convolution") == names.count("aten::convolution_backward") == 2 * 4


@pytest.mark.slow  # two profiled trainings (12 s)
def test_a_window_never_holds_a_validation_it_stops_at_its_epochs_end_or_starts_after_it(tmp_path):
    # digits: 20 steps an epoch, validated after step 20. A window of steps 18-23 stops at 20; one whose first step
    # would be 21 (the span after step 20, its validation included) begins at 22
    two = ["trainer.profile=true", "trainer.epochs=2"]
    cut = runner("train", *two, "trainer.profile_steps=[16,1,6]", "hydra.run.dir=cut", cwd=tmp_path)
    said = " ".join(cut.stdout.split())
    assert "profile of steps 18-20:" in said and "the window stopped at step 20, its epoch's last" in said
    moved = runner("train", *two, "trainer.profile_steps=[19,1,2]", "hydra.run.dir=moved", cwd=tmp_path)
    assert "profile of steps 22-23:" in " ".join(moved.stdout.split())
    for run, steps in (("cut", 3), ("moved", 2)):
        (trace,) = (tmp_path / run / "profile").glob("rank0.*.pt.trace.json")
        names = [e.get("name", "") for e in json.loads(trace.read_text())["traceEvents"]]
        assert sum(n.startswith("ProfilerStep#") for n in names) == steps
        # no validation batch: every convolution has its backward pass (the cnn has 4 a step)
        assert names.count("aten::convolution") == names.count("aten::convolution_backward") == 4 * steps, run
