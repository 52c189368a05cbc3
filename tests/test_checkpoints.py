"""The checkpoints a run keeps: trainer.save_top_k, every_n_epochs, every_n_steps, save_total_limit, average_top_k
(runner/training/checkpoints.py)."""

import csv
import json
import math
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch
from conftest import load, runner, summary

from runner.training.checkpoints import Kept, average
from runner.training.recipe import Monitor

KNOBS = dict(save_top_k=2, every_n_epochs=None, every_n_steps=None, save_total_limit=None)


class Disk:
    """What Kept writes and deletes, in order."""

    def __init__(self):
        self.files, self.log = set(), []

    def save(self, name):
        self.files.add(name)
        self.log.append(("save", name))

    def remove(self, name):
        self.files.discard(name)
        self.log.append(("remove", name))


def kept(**knobs):
    return Kept(SimpleNamespace(**{**KNOBS, **knobs}), Monitor("val_accuracy", "max"))


def test_the_k_best_epochs_are_kept_and_a_new_one_is_written_before_the_one_it_replaces_goes():
    disk, keep = Disk(), kept(save_top_k=2)
    rows = [(0.5, 1.0), (0.7, 0.9), (0.6, 0.8), (0.7, 0.7), (0.1, 2.0)]  # (val_accuracy, val_loss) of epochs 1-5
    for epoch, (acc, loss) in enumerate(rows, 1):
        keep.after_epoch({"val_accuracy": acc, "val_loss": loss}, epoch, save=disk.save, remove=disk.remove)
    # 0.7 twice: the lower val_loss first (epoch 4), as best.pt's rule breaks the tie
    assert [e["epoch"] for e in keep.top] == [4, 2]
    assert disk.files == {"epoch=004-val_accuracy=0.7000.pt", "epoch=002-val_accuracy=0.7000.pt"}
    assert disk.log.index(("save", "epoch=003-val_accuracy=0.6000.pt")) < disk.log.index(
        ("remove", "epoch=001-val_accuracy=0.5000.pt")
    )
    assert ("save", "epoch=005-val_accuracy=0.1000.pt") not in disk.log  # never better than the kept ones: not written
    again = kept(save_top_k=2)
    again.load_state_dict(json.loads(json.dumps(keep.state_dict())))  # as last.pt carries it
    assert again.top == keep.top


def test_an_epoch_repeated_after_a_crash_writes_its_file_again_and_keeps_it():
    disk, keep = Disk(), kept(save_top_k=2)
    row = {"val_accuracy": 0.5, "val_loss": 1.0}
    keep.after_epoch(row, 1, save=disk.save, remove=disk.remove)
    keep.after_epoch(row, 1, save=disk.save, remove=disk.remove)  # last.pt held epoch 0: the resume repeats epoch 1
    assert disk.files == {"epoch=001-val_accuracy=0.5000.pt"} and [e["epoch"] for e in keep.top] == [1]
    assert ("remove", "epoch=001-val_accuracy=0.5000.pt") not in disk.log


def test_minus_one_keeps_every_epoch_and_periodic_files_are_capped_by_save_total_limit():
    disk, keep = Disk(), kept(save_top_k=-1, every_n_epochs=2, every_n_steps=10, save_total_limit=2)
    for epoch in range(1, 5):
        keep.after_step(epoch * 10, save=disk.save, remove=disk.remove)
        keep.after_epoch({"val_accuracy": epoch / 10, "val_loss": 1.0}, epoch, save=disk.save, remove=disk.remove)
    assert [e["epoch"] for e in keep.top] == [4, 3, 2, 1]
    # the newest two of step=10, step=20, epoch=2, step=30, step=40, epoch=4
    assert keep.periodic == ["step=000040.pt", "epoch=004.pt"]
    assert {f for f in disk.files if "-" not in f} == set(keep.periodic)  # the top-k files carry "-metric="


def test_the_average_is_the_mean_of_every_tensor_cast_back_to_its_dtype():
    states = [
        {"w": torch.tensor([1.0, 2.0]), "n": torch.tensor(3)},
        {"w": torch.tensor([2.0, 4.0]), "n": torch.tensor(4)},
        {"w": torch.tensor([4.0, 9.0]), "n": torch.tensor(6)},
    ]
    mean = average(states)
    assert torch.equal(mean["w"], torch.tensor([7 / 3, 5.0])) and mean["w"].dtype == torch.float32
    assert mean["n"].item() == 4 and mean["n"].dtype == torch.int64  # 13 / 3, toward zero


def metric_rows(run_dir):
    with open(run_dir / "metrics.csv") as f:
        return list(csv.DictReader(f))


# FAST's narrower CNN: what is kept is read from the run's own metrics.csv, so any model's epochs rank alike
POLICY = [
    "model.channels=[8,16]",
    "trainer.save_top_k=3",
    "trainer.average_top_k=true",
    "trainer.every_n_epochs=2",
    "trainer.save_total_limit=2",
]


def test_a_run_keeps_its_three_best_epochs_by_metrics_csv_and_tests_their_average(tmp_path):
    proc = runner("train", *POLICY, "trainer.epochs=6", "hydra.run.dir=r", cwd=tmp_path)
    run, folder = tmp_path / "r", tmp_path / "r" / "checkpoints"
    rows = metric_rows(run)
    ranked = sorted(rows, key=lambda r: (-float(r["val_accuracy"]), float(r["val_loss"]), int(r["epoch"])))[:3]
    expected = [f"epoch={int(r['epoch']):03d}-val_accuracy={float(r['val_accuracy']):.4f}.pt" for r in ranked]
    files = sorted(p.name for p in folder.glob("*.pt"))
    assert files == sorted([*expected, "epoch=004.pt", "epoch=006.pt", "best.pt", "last.pt", "averaged.pt"]), files
    best, first = load(folder / "best.pt"), load(folder / expected[0])
    assert all(torch.equal(best[k], first[k]) for k in best)  # the best of the three is best.pt
    kept = [load(folder / name) for name in expected]
    averaged = load(folder / "averaged.pt")
    for key, value in averaged.items():
        if value.is_floating_point():
            mean = torch.stack([state[key] for state in kept]).mean(0)
            assert torch.allclose(value, mean, rtol=0, atol=1e-6), key
    info = summary(run)["averaged"]
    assert sorted(info["epochs"]) == sorted(int(r["epoch"]) for r in ranked)
    assert "(averaged.pt: 3 epochs)" in proc.stdout
    # usable as any checkpoint: runner eval tests it to the same accuracy
    evaluated = runner("eval", f"ckpt={folder / 'averaged.pt'}", cwd=tmp_path)
    evaluated_dir = evaluated.stdout.rpartition("eval directory: ")[2].strip()
    assert json.loads((Path(evaluated_dir) / "metrics.json").read_text())["test_accuracy"] == info["test_accuracy"]
    assert f"{info['test_accuracy']:.3f} [" in evaluated.stdout  # printed with its interval (runner/stats)

    # stopped after 3 epochs and resumed to 6, it keeps the same files with the same weights
    runner("train", *POLICY, "trainer.epochs=3", "hydra.run.dir=s", cwd=tmp_path)
    runner("train", "resume=s", "trainer.epochs=6", cwd=tmp_path)
    resumed = tmp_path / "s" / "checkpoints"
    assert sorted(p.name for p in resumed.glob("*.pt")) == files
    for name in files:
        a, b = load(folder / name), load(resumed / name)
        a, b = (a["model"], b["model"]) if name == "last.pt" else (a, b)
        assert all(torch.equal(a[k], b[k]) for k in a), name


def test_averaging_needs_more_than_one_checkpoint(tmp_path):
    proc = runner("train", "trainer.average_top_k=true", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "Start the run with trainer.save_top_k=3" in " ".join(proc.stderr.split())


@pytest.mark.parametrize("k", [0, -2])
def test_save_top_k_is_a_count_or_minus_one(tmp_path, k):
    proc = runner("train", f"trainer.save_top_k={k}", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and "an integer >= 1, or -1 for every epoch" in proc.stderr


def test_an_epoch_whose_monitored_value_is_nan_or_infinite_is_never_kept_among_the_k_best():
    disk, keep = Disk(), kept(save_top_k=2)
    nan, inf = float("nan"), float("inf")
    rows = [(nan, nan), (0.5, 1.0), (inf, 0.9), (0.6, 0.8), (nan, 0.7)]  # (val_accuracy, val_loss) of epochs 1-5
    for epoch, (acc, loss) in enumerate(rows, 1):
        keep.after_epoch({"val_accuracy": acc, "val_loss": loss}, epoch, save=disk.save, remove=disk.remove)
    assert [e["epoch"] for e in keep.top] == [4, 2]
    assert disk.files == {"epoch=004-val_accuracy=0.6000.pt", "epoch=002-val_accuracy=0.5000.pt"}
    assert all("nan" not in name and "inf" not in name for _, name in disk.log)  # never written, not even at first
    # a NaN kept by a last.pt of a run before this rule ranks last, so it is the first file to go
    old = kept(save_top_k=2)
    old.load_state_dict({"top": [{"epoch": 1, "metric": nan, "val_loss": nan, "file": "a.pt"}], "periodic": []})
    for epoch, acc in ((2, 0.5), (3, 0.4)):
        old.after_epoch({"val_accuracy": acc, "val_loss": 1.0}, epoch, save=disk.save, remove=disk.remove)
    assert [e["epoch"] for e in old.top] == [2, 3] and ("remove", "a.pt") in disk.log


def strict_json(path):
    """A JSON file read as strict readers read it (jq, JavaScript's JSON.parse): a bare NaN or Infinity is refused."""

    def refuse(constant):
        raise ValueError(f"{path.name} holds a bare {constant}")

    return json.loads(path.read_text(), parse_constant=refuse)


def test_json_files_hold_null_for_nan_and_infinity_and_refuse_what_they_cannot_write(tmp_path):
    from runner.io.files import write_json

    nan, inf = float("nan"), float("inf")
    write_json(tmp_path / "s.json", {"best": {"val_loss": nan}, "final": [1.5, inf, -inf], "n": 3, "ok": True})
    assert strict_json(tmp_path / "s.json") == {
        "best": {"val_loss": None},
        "final": [1.5, None, None],
        "n": 3,
        "ok": True,
    }
    with pytest.raises(TypeError):  # what json cannot write fails in the writer, and the old file stays
        write_json(tmp_path / "s.json", {"x": object()})
    assert strict_json(tmp_path / "s.json")["n"] == 3


NAN_IN_EPOCH_1 = {"PYTHONPATH": str(Path(__file__).resolve().parent), "RUNNER_TEST_NAN_UNTIL": "5"}
# tests/nan_model.py: eval outputs are NaN until 5 batches are trained, i.e. for epoch 1 of 5 batches
NAN_MODEL = ["model._target_=nan_model.cnn", "model.channels=[8,16]", "trainer.limit_train_batches=5"]


@pytest.mark.slow  # two short runs of a small CNN
def test_a_nan_validation_in_epoch_1_is_not_best_and_a_run_that_never_validates_finite_ends_diverged(tmp_path):
    # Lightning #2636: epoch 1's NaN became best.pt and stayed best; the test then ran on epoch 1's weights (NaN)
    monitor = ["trainer.monitor=val_loss", "trainer.save_top_k=2"]
    proc = runner(
        "train", *NAN_MODEL, *monitor, "trainer.epochs=3", "hydra.run.dir=r", cwd=tmp_path, env=NAN_IN_EPOCH_1
    )
    run = tmp_path / "r"
    rows = metric_rows(run)
    assert rows[0]["val_loss"] == "nan" and all(math.isfinite(float(r["val_loss"])) for r in rows[1:])  # precondition
    epoch_1 = next(line for line in proc.stdout.splitlines() if line.startswith("epoch   1/3"))
    assert "val_loss nan" in epoch_1 and not epoch_1.rstrip().endswith("*")
    s = strict_json(run / "summary.json")
    best = min(rows[1:], key=lambda r: float(r["val_loss"]))
    assert s["best"]["epoch"] == int(best["epoch"]) and s["best"]["val_loss"] == float(best["val_loss"])
    assert math.isfinite(s["test"]["test_loss"])  # best.pt holds a later epoch's weights, which validate finite
    kept = sorted(p.name for p in (run / "checkpoints").glob("epoch=*"))
    assert kept == [f"epoch={int(r['epoch']):03d}-val_loss={float(r['val_loss']):.4f}.pt" for r in rows[1:]]

    # every validation NaN: no best.pt to test, so the run ends diverged in a paragraph (early stopping, patience 1,
    # stops it after epoch 1 and says there was no best), with summary.json still strict JSON
    never = {**NAN_IN_EPOCH_1, "RUNNER_TEST_NAN_UNTIL": "1000"}
    stop = ["trainer.early_stopping.patience=1", "trainer.epochs=3", "hydra.run.dir=n"]
    proc = runner("train", *NAN_MODEL, *monitor, *stop, cwd=tmp_path, env=never, check=False)
    assert proc.returncode == 3 and "Traceback" not in proc.stderr, proc.stderr
    assert "best none yet: every validation was NaN or infinite" in " ".join(proc.stdout.split())
    assert "every validation's val_loss was NaN or infinite (1 epoch), so no epoch is best" in " ".join(
        proc.stderr.split()
    )
    assert strict_json(tmp_path / "n" / "summary.json")["status"] == "diverged"
    assert not (tmp_path / "n" / "checkpoints" / "best.pt").exists()
