"""Never lose a run: exact resume, resume overrides, signals from outside, kill -9 at any moment, divergence.

The run directory's lifecycle (states, lock, stops during setup and the final test) is in test_rundir.py.
"""

import csv
import random
import re
import shutil
import signal
import time
from pathlib import Path

import pytest
import torch
from conftest import (
    FAST,
    SIGNAL_CNN,
    WITH_SIGNAL_MODEL,
    assert_clean_failure,
    digest,
    load,
    run_dirs,
    runner,
    same_run,
    signal_at,
    start,
    summary,
    wait_for,
)
from formats import write_image_folder

from runner.commands.resume import RESUME_OVERRIDES, resume_rule
from runner.io.serialization import safe_load
from runner.models import CNN


@pytest.mark.slow  # test_rundir.py resumes mid-epoch in the default suite
def test_stopped_after_epoch_2_and_resumed_to_4_equals_4_in_one_go(tmp_path):
    runner("train", *FAST, "trainer.epochs=4", cwd=tmp_path)
    runner("train", *FAST, "trainer.epochs=2", cwd=tmp_path)
    whole, part = run_dirs(tmp_path)
    proc = runner("train", f"resume={part}", "trainer.epochs=4", cwd=tmp_path)
    assert "resuming after epoch 2, step" in proc.stdout
    assert run_dirs(tmp_path) == [whole, part]  # no new directory: the run continued in its own
    same_run(whole, part)
    info = summary(part)
    assert info["status"] == "completed" and info["resumed"] == 1 and info["epochs"] == 4
    log = (part / "train.log").read_text()
    assert log.count("runner train") == 2 and "epoch   1/2" in log and "epoch   4/4" in log  # appended


def test_trainer_epochs_may_not_drop_below_the_epoch_last_pt_stopped_in(tmp_path):
    # a completed 3-epoch run, extended to 5 and stopped in epoch 4, then run again with its original command: that
    # used to complete "at 3 epochs" over a last.pt of 3 epochs and some steps of the 4th, undoing the extension
    args = [*SIGNAL_CNN, "trainer.epochs=3", "hydra.run.dir=run"]
    runner("train", *args, cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    stopped = runner("train", "resume=run", "trainer.epochs=5", cwd=tmp_path, check=False, env=signal_at("step:7"))
    assert stopped.returncode == 130
    last = load(tmp_path / "run" / "checkpoints" / "last.pt")
    assert last["epoch"] == 3 and last["batch"] == 7  # stopped in epoch 4 (20 steps an epoch), as meant
    before = digest(tmp_path / "run")
    proc = runner("train", *args, cwd=tmp_path, check=False, env=WITH_SIGNAL_MODEL)  # the original command again
    assert_clean_failure(proc, "trainer.epochs=3 is fewer than last.pt holds (3 epochs and 7 batches of epoch 4")
    assert_clean_failure(proc, "Give trainer.epochs=4 or more")
    assert digest(tmp_path / "run") == before
    runner("train", "resume=run", "trainer.epochs=4", cwd=tmp_path, env=WITH_SIGNAL_MODEL)  # the fix it names
    assert summary(tmp_path / "run")["status"] == "completed" and summary(tmp_path / "run")["epochs"] == 4


def test_resume_applies_a_new_learning_rate_and_device_for_real(tmp_path):
    runner("train", *FAST, cwd=tmp_path)
    (run,) = run_dirs(tmp_path)
    proc = runner("train", f"resume={run}", "trainer.epochs=3", "optimizer.lr=0.01", "device=cpu", cwd=tmp_path)
    assert "resume: optimizer.lr 0.001 -> 0.01" in proc.stdout
    assert [line.split(",")[4] for line in (run / "metrics.csv").read_text().splitlines()[1:]] == [
        "0.001",
        "0.001",
        "0.01",
    ]
    last = load(run / "checkpoints" / "last.pt")
    assert [g["lr"] for g in last["optimizer"]["param_groups"]] == [0.01]  # the optimizer itself, not only the config
    assert last["config"]["optimizer"]["lr"] == 0.01 and summary(run)["device"] == "cpu"


# What the resume table of docs/resume.md promises, key by key (commands/resume.py holds the rules;
# the trainer's come from training/recipe.py's declarations).
RESUME_KEYS = [
    ("trainer.epochs", True),
    ("trainer.batch_size", True),
    ("trainer.eval_batch_size", True),
    ("trainer.grad_clip", True),
    ("trainer.checkpoint_every_n_steps", True),
    ("trainer.num_threads", True),
    ("trainer.compile", True),
    ("device", True),
    ("device.name", True),
    ("optimizer.lr", True),
    ("optimizer.momentum", True),
    ("optimizer.weight_decay", True),
    ("optimizer.betas", True),
    ("dataset.root", True),
    ("dataset.download", True),
    ("dataset.workers", True),
    ("optimizer", False),
    ("optimizer._target_", False),
    ("optimizer._partial_", False),
    ("optimizer.param_groups", False),
    ("scheduler", False),
    ("scheduler.T_max", False),
    ("model", False),
    ("model.channels", False),
    ("dataset", False),
    ("dataset.split_seed", False),
    ("dataset.input_shape", False),
    ("seed", False),
    ("init_from", False),
    ("trainer.freeze", False),
    ("trainer.unfreeze_at_epoch", False),
    ("trainer.precision", False),
    ("trainer.monitor", False),
    ("trainer.monitor_mode", False),
    ("hparams_search", False),
    ("new_key", False),
    ("trainer.label_smoothing", True),
    ("trainer.early_stopping.patience", True),
    ("trainer.max_steps", True),
    ("trainer.max_time", True),
    ("trainer.ddp_timeout", True),
    ("trainer.accumulate_grad_batches", False),
    ("trainer.ema.decay", False),
    ("scheduler.warmup_epochs", False),
]


@pytest.mark.parametrize(("key", "applied"), RESUME_KEYS, ids=[k for k, _ in RESUME_KEYS])
def test_resume_override_table(key, applied):
    assert resume_rule(key)[0] is applied


def test_docs_list_every_resume_override_rule():
    page = (Path(__file__).resolve().parent.parent / "docs" / "resume.md").read_text()
    missing = [pattern for pattern, _, _ in RESUME_OVERRIDES if f"`{pattern}`" not in page]
    assert not missing, f"the resume table of docs/resume.md lacks {missing}"


def _interrupt_and_resume(tmp_path, sig, args):
    """Signal a run mid-training, resume it, and run it again uninterrupted to compare."""
    proc = start("train", *args, cwd=tmp_path)
    deadline = time.time() + 120
    while not list(tmp_path.glob("outputs/*/*/train.log")) and time.time() < deadline:
        time.sleep(0.05)
    (log,) = tmp_path.glob("outputs/*/*/train.log")
    wait_for(log, "epoch   1/")
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, out + err
    (stopped,) = run_dirs(tmp_path)
    info = summary(stopped)
    assert info["status"] == "interrupted" and f"runner train resume={stopped}" in err
    assert safe_load(stopped / "checkpoints" / "last.pt")["batch"] > 0  # the signal landed mid-epoch
    where = re.search(r"in epoch (\d+) after step (\d+)", err)
    assert where, err
    resumed = runner("train", f"resume={stopped}", cwd=tmp_path)
    # the resume says where it continues in the stop's own words
    assert f"resuming in epoch {where[1]} after step {where[2]}" in resumed.stdout, resumed.stdout
    runner("train", *args, cwd=tmp_path)
    same_run(*run_dirs(tmp_path))


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_mid_epoch_and_resume_is_exact(tmp_path, sig):
    # batch 8: 161 steps an epoch, so the signal sent right after epoch 1's line lands inside epoch 2
    _interrupt_and_resume(
        tmp_path, sig, [*FAST, "trainer.epochs=3", "trainer.batch_size=8", "trainer.checkpoint_every_n_steps=3"]
    )


@pytest.mark.slow
def test_dataloader_path_resumes_exactly_mid_epoch(tmp_path):
    write_image_folder(tmp_path / "pets", per_class=100, size=(12, 12))
    args = [
        "dataset=imagefolder",
        "dataset.root=pets",
        "dataset.in_memory=false",
        "dataset.workers=0",
        "dataset.input_shape=[3,12,12]",
        "dataset.augment.crop_padding=2",
        *FAST,
        "trainer.batch_size=2",
        "trainer.epochs=3",
        "trainer.checkpoint_every_n_steps=2",
    ]
    _interrupt_and_resume(tmp_path, signal.SIGINT, args)


@pytest.mark.slow
def test_kill_9_at_random_moments_always_leaves_a_loadable_checkpoint(tmp_path):
    rng = random.Random(0)
    for i in range(10):
        work = tmp_path / str(i)
        work.mkdir()
        proc = start("train", *FAST, "trainer.epochs=50", "trainer.checkpoint_every_n_steps=1", cwd=work)
        deadline = time.time() + 120
        while not list(work.glob("outputs/*/*/checkpoints/last.pt")) and time.time() < deadline:
            time.sleep(0.02)
        time.sleep(rng.uniform(0, 1.5))  # last.pt is being rewritten every step now
        proc.kill()
        proc.wait()
        (last,) = work.glob("outputs/*/*/checkpoints/last.pt")
        state = safe_load(last)  # never a torn file
        model = CNN(in_channels=1, num_classes=10, channels=[8, 16])
        assert state["step"] >= 1 and set(state["model"]) == set(model.state_dict())
        model.load_state_dict(state["model"])  # whole tensors of the right shapes
        shutil.rmtree(work)  # and the next kill starts clean


def test_divergence_stops_keeps_the_last_good_checkpoint_and_says_where(tmp_path):
    # lr 0.01 in epoch 1, then x1e7: the loss blows up in epoch 2
    args = [
        *FAST,
        "trainer.epochs=4",
        "optimizer=sgd",
        "optimizer.lr=0.01",
        "scheduler=step",
        "scheduler.step_size=1",
        "scheduler.gamma=1e7",
    ]
    proc = runner("train", *args, cwd=tmp_path, check=False)
    assert proc.returncode == 3
    assert "became NaN or infinite at step" in proc.stderr and "epoch 2, learning rate 100000" in proc.stderr
    (run,) = run_dirs(tmp_path)
    assert summary(run)["status"] == "diverged"
    assert safe_load(run / "checkpoints" / "last.pt")["epoch"] == 1  # the last good one


def test_a_diverged_job_is_reported_and_the_sweep_goes_on(tmp_path):
    proc = runner("train", "-m", "optimizer=sgd", "optimizer.lr=0.01,1e6", *FAST, cwd=tmp_path, check=False)
    assert proc.returncode != 0
    (summary_csv,) = tmp_path.glob("outputs/multirun/*/*/summary.csv")
    assert [row["status"] for row in csv.DictReader(summary_csv.read_text().splitlines())] == ["completed", "diverged"]


def test_a_new_base_rate_on_resume_spares_the_groups_with_a_rate_of_their_own():
    # optimizer.lr on resume, with optimizer.param_groups=[{params: [...], lr: 0.01}] and a schedule: group 0 (the
    # optimizer's own rate) takes the new base, group 1 keeps its 0.01 in the optimizer and in the schedule
    from omegaconf import OmegaConf

    from runner.commands.resume import set_optimizer_value
    from runner.training.schedules import build_schedule

    model = torch.nn.Sequential(torch.nn.Linear(2, 2), torch.nn.Linear(2, 2))
    optimizer = torch.optim.SGD([{"params": model[0].parameters()}, {"params": model[1].parameters(), "lr": 0.01}], 0.1)
    cosine = OmegaConf.load(Path(__file__).resolve().parent.parent / "configs" / "scheduler" / "cosine.yaml")
    schedule = build_schedule(cosine, optimizer, steps_per_epoch=2, epochs=3)
    assert [s.base_lrs for s in schedule.parts] == [[0.1, 0.01]]  # each group its own base
    set_optimizer_value(optimizer, schedule, "lr", 0.05, keep={1})
    assert [s.base_lrs for s in schedule.parts] == [[0.05, 0.01]]
    assert [g["lr"] for g in optimizer.param_groups] == [0.05, 0.01]
