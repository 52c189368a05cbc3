"""logger=tensorboard, read back with TensorBoard's own reader (EventAccumulator), across a kill -9 and a resume."""

import csv

import pytest

from conftest import SIGNAL_CNN, WITH_SIGNAL_MODEL, runner, signal_at, summary

pytest.importorskip("tensorboard", reason="the tensorboard extra (make installs it)")


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_every_row_once_across_a_kill_and_a_resume_with_hparams_and_confusion(tmp_path):
    args = [*SIGNAL_CNN, "logger=tensorboard", "logger.tensorboard.flush_secs=0.05", "hydra.run.dir=run"]
    # SIGKILL at the 35th forward pass: mid epoch 2, after step 30's loss was logged, with last.pt at step 20
    proc = runner("train", *args, cwd=tmp_path, check=False, env=signal_at("step:35", "SIGKILL"))
    run = tmp_path / "run"
    assert proc.returncode == -9
    dead = events(run)
    assert [e.step for e in dead.Scalars("train/loss_step")] == [10, 20, 30]  # step 30 was logged after last.pt (20)
    lost = {e.step: e.value for e in dead.Scalars("train/loss_step")}[30]

    runner("train", "resume=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    acc = events(run)
    steps = [e.step for e in acc.Scalars("train/loss_step")]
    assert steps == list(range(10, 81, 10))  # each step once: the dead process's step 30 was purged, not repeated
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(e.step, e.value) for e in acc.Scalars("val/accuracy")] == \
        [(20 * int(r["epoch"]), pytest.approx(float(r["val_accuracy"]), abs=1e-7)) for r in rows]
    assert [e.value for e in acc.Scalars("train/loss")] == [pytest.approx(float(r["train_loss"]), rel=1e-6) for r in rows]
    redone = {e.step: e.value for e in acc.Scalars("train/loss_step")}[30]
    assert redone == pytest.approx(lost, rel=1e-6)  # the resumed run is exact, so step 30 came out the same again

    # the hyperparameters and final metrics, through the hparams plugin, in the run's own directory
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert start.hparams["optimizer.lr"].number_value == 0.001 and start.hparams["model._target_"].string_value == "signal_model.cnn"
    info = summary(run)
    assert acc.Scalars("hparam/test_accuracy")[-1].value == pytest.approx(info["test"]["test_accuracy"], abs=1e-7)
    assert acc.Images("test/confusion_matrix")  # the figure, once
    assert not [p for p in (run / "tensorboard").iterdir() if p.is_dir()]  # no timestamped sub-run: `.` is the run's own
