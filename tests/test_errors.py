"""More bad input (the matrix is in test_bad_inputs.py): each gives its message, a non-zero exit, no traceback."""

import hashlib
import os
import shutil

import pytest
import torch
from conftest import assert_clean_failure, runner

SLOW = pytest.mark.slow  # the same rule as a row of test_bad_inputs.py, with another value
TRAIN_CASES = [
    # (overrides, a phrase the message must contain)
    (["trainer.epochs=0"], "trainer.epochs must be an integer >= 1"),
    pytest.param(["optimizer.lr=-0.1"], "optimizer.lr must be a number > 0", marks=SLOW),
    (["optimizer.lr=fast"], "optimizer.lr must be a number > 0, got 'fast'"),
    pytest.param(["trainer.batch_size=0"], "trainer.batch_size must be an integer >= 1", marks=SLOW),
    (["dataset.val_fraction=1.5"], "dataset.val_fraction must be a fraction between 0 and 1"),
    (["model=lenet"], "cannot take this dataset's input of shape [1, 8, 8]"),
    (["dataset=sum_pairs"], "model CNN takes images (C, H, W) or signals (C, L), so its dims must be 2 or 1, not 0"),
    (["+model.widht=3"], "model.widht is not an argument of runner.models.CNN"),
    (["model=mlp", "model.num_outputs=3"], "returns outputs of shape [3] per sample"),
    (
        ["dataset=sum_pairs", "model=mlp", "trainer.label_smoothing=0.1"],
        "smooths class labels, but this is a regression run",
    ),
    pytest.param(
        ["scheduler=step", "scheduler.warmup_epochs=0.5"],
        "warmup_epochs=0.5 is a fraction of an epoch, but this schedule steps once per epoch",
        marks=SLOW,
    ),
    pytest.param(["scheduler=onecycle", "scheduler.warmup_epochs=1"], "does not apply to onecycle", marks=SLOW),
    pytest.param(["trainer.max_time=soon"], "trainer.max_time must be null, seconds, or DD:HH:MM:SS", marks=SLOW),
    pytest.param(["+trainer.early_stopping.patiense=3"], "Did you mean trainer.early_stopping.patience?", marks=SLOW),
    pytest.param(["scheduler.warmup_epochs=20"], "as long as the whole run (20 steps)", marks=SLOW),
]


@pytest.mark.parametrize(
    ("overrides", "phrase"),
    TRAIN_CASES,
    ids=[" ".join(c.values[0] if hasattr(c, "values") else c[0]) for c in TRAIN_CASES],
)
def test_bad_train_input(tmp_path, overrides, phrase):
    proc = runner("train", "trainer.epochs=1", *overrides, cwd=tmp_path, check=False)
    assert_clean_failure(proc, phrase)
    assert not list(tmp_path.glob("outputs/*/*/checkpoints/*.pt"))  # nothing half-trained left behind


def test_full_error_shows_the_traceback(tmp_path):
    proc = runner(
        "train", "trainer.epochs=1", "optimizer.lr=0", cwd=tmp_path, check=False, env={"HYDRA_FULL_ERROR": "1"}
    )
    assert proc.returncode != 0 and "Traceback" in proc.stderr


def test_a_failed_run_says_so_in_its_summary(tmp_path):
    runner("train", "trainer.epochs=1", "model=lenet", cwd=tmp_path, check=False)
    (summary_file,) = tmp_path.glob("outputs/*/*/summary.json")
    assert '"status": "failed"' in summary_file.read_text() and "cannot take" in summary_file.read_text()


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_unavailable_device(tmp_path):
    assert_clean_failure(
        runner("train", "trainer.epochs=1", "device=cuda", cwd=tmp_path, check=False), "device=cuda is not available"
    )


def _digest(directory):
    return {
        p.relative_to(directory): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in directory.rglob("*")
        if p.is_file()
    }


class Evil:
    def __reduce__(self):  # what a hostile checkpoint does: run a command while unpickling
        return (os.system, (f"touch {self.marker}",))


def _hostile(path):
    evil = Evil()
    evil.marker = path.parent / "pwned"
    torch.save({"model": evil}, path)


CKPT_CASES = [
    # (how to spoil a copy of a good run, extra args, phrase)
    ("pickled callable", lambda run: _hostile(run / "checkpoints/best.pt"), [], "was refused"),
    ("no checkpoint in dir", lambda run: shutil.rmtree(run / "checkpoints"), [], "without checkpoints/best.pt"),
]


@pytest.mark.parametrize(("spoil", "extra", "phrase"), [c[1:] for c in CKPT_CASES], ids=[c[0] for c in CKPT_CASES])
def test_bad_checkpoint(tmp_path, digits_run, spoil, extra, phrase):
    _, good_run, _ = digits_run
    before = _digest(good_run)
    run = tmp_path / "run"
    shutil.copytree(good_run, run)
    spoil(run)
    proc = runner("eval", f"ckpt={run}", *extra, cwd=tmp_path, check=False)
    assert_clean_failure(proc, phrase)
    assert not (run / "checkpoints" / "pwned").exists()  # the pickled callable never ran
    assert _digest(good_run) == before


def test_eval_without_ckpt(tmp_path):
    assert_clean_failure(runner("eval", cwd=tmp_path, check=False), "runner eval needs ckpt=")


def test_weight_mismatch_lists_keys_and_shapes(tmp_path, digits_run):
    _, run, _ = digits_run
    proc = runner("eval", f"ckpt={run}", "model.channels=[16,64]", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "features.0.0.weight: checkpoint (32, 1, 3, 3) vs model (16, 1, 3, 3)")
