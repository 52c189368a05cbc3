"""logger=tensorboard and logger=mlflow, read back with the tools' own readers (TensorBoard's EventAccumulator,
mlflow.MlflowClient): across a kill -9 and a resume, in a parallel sweep, and uploaded afterwards by runner report."""

import csv
import hashlib

import pytest
from conftest import SIGNAL_CNN, WITH_SIGNAL_MODEL, assert_clean_failure, digest, runner, signal_at, summary

pytest.importorskip("tensorboard", reason="the tensorboard extra (make installs it)")
pytest.importorskip("mlflow", reason="the mlflow extra (make installs it)")


def events(run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tensorboard"), size_guidance={"scalars": 0, "images": 0})
    acc.Reload()
    return acc


def test_tensorboard_logs_every_row_once_across_a_kill_and_a_resume_with_hparams_and_confusion(tmp_path):
    args = [*SIGNAL_CNN, "logger=[tensorboard,mlflow]", "logger.tensorboard.flush_secs=0.05", "hydra.run.dir=run"]
    # SIGKILL at the 35th forward pass: mid epoch 2, after step 30's loss was logged, with last.pt at step 20
    proc = runner("train", *args, cwd=tmp_path, check=False, env=signal_at("step:35", "SIGKILL"))
    run = tmp_path / "run"
    assert proc.returncode == -9
    dead = events(run)
    assert [e.step for e in dead.Scalars("train/loss_step")] == [10, 20, 30]  # step 30 was logged after last.pt (20)
    lost = {e.step: e.value for e in dead.Scalars("train/loss_step")}[30]
    (dead_run,) = mlflow_runs(tmp_path)
    assert dead_run.info.status == "RUNNING" and history(tmp_path, dead_run, "train_loss") == [
        1
    ]  # epoch 1, then killed

    runner("train", "resume=run", cwd=tmp_path, env=WITH_SIGNAL_MODEL)
    acc = events(run)
    steps = [e.step for e in acc.Scalars("train/loss_step")]
    assert steps == list(range(10, 81, 10))  # each step once: the dead process's step 30 was purged, not repeated
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    assert [(e.step, e.value) for e in acc.Scalars("val/accuracy")] == [
        (20 * int(r["epoch"]), pytest.approx(float(r["val_accuracy"]), abs=1e-7)) for r in rows
    ]
    assert [e.value for e in acc.Scalars("train/loss")] == [
        pytest.approx(float(r["train_loss"]), rel=1e-6) for r in rows
    ]
    redone = {e.step: e.value for e in acc.Scalars("train/loss_step")}[30]
    assert redone == pytest.approx(lost, rel=1e-6)  # the resumed run is exact, so step 30 came out the same again

    # the hyperparameters and final metrics, through the hparams plugin, in the run's own directory
    from tensorboard.plugins.hparams import plugin_data_pb2

    content = acc.PluginTagToContent("hparams")
    start = plugin_data_pb2.HParamsPluginData.FromString(content["_hparams_/session_start_info"]).session_start_info
    assert (
        start.hparams["optimizer.lr"].number_value == 0.001
        and start.hparams["model._target_"].string_value == "signal_model.cnn"
    )
    info = summary(run)
    assert acc.Scalars("hparam/test_accuracy")[-1].value == pytest.approx(info["test"]["test_accuracy"], abs=1e-7)
    assert acc.Images("test/confusion_matrix")  # the figure, once
    assert not [
        p for p in (run / "tensorboard").iterdir() if p.is_dir()
    ]  # no timestamped sub-run: `.` is the run's own
    (text,) = acc.Tensors("provenance/text_summary")  # the command and environment, in the Text tab
    assert "logger=[tensorboard,mlflow]" in text.tensor_proto.string_val[0].decode()

    # MLflow: the same run continued, each epoch once, then finished with the results and files
    (mirror,) = mlflow_runs(tmp_path)
    assert mirror.info.run_id == dead_run.info.run_id and mirror.info.status == "FINISHED"
    assert_mirrors(tmp_path, mirror, run)


def mlflow_client(cwd):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=f"sqlite:///{cwd / 'outputs' / 'mlflow.db'}")


def mlflow_runs(cwd, experiment="runner"):
    client = mlflow_client(cwd)
    exp = client.get_experiment_by_name(experiment)
    return client.search_runs([exp.experiment_id], order_by=["attributes.run_name"])


def history(cwd, mlflow_run, key):
    return [
        m.step for m in sorted(mlflow_client(cwd).get_metric_history(mlflow_run.info.run_id, key), key=lambda m: m.step)
    ]


def assert_mirrors(cwd, mirror, run):
    """The MLflow run holds exactly what the run directory does: config, every metrics.csv row once, results, files."""
    client = mlflow_client(cwd)
    info = summary(run)
    config = (run / ".hydra" / "config.yaml").read_text()
    assert mirror.data.tags["runner.run_dir"] == str(run.resolve())
    assert mirror.data.params["optimizer.lr"] == str(float(config.split("lr: ")[1].split()[0]))
    assert (
        mirror.data.tags["mlflow.source.name"] == info["command"]
        and mirror.data.tags["env.torch"] == info["environment"]["torch"]
    )
    with open(run / "metrics.csv") as f:
        rows = list(csv.DictReader(f))
    for column in ("train_loss", "val_loss", "lr"):
        points = sorted(client.get_metric_history(mirror.info.run_id, column), key=lambda m: m.step)
        assert [(m.step, m.value) for m in points] == [(int(r["epoch"]), float(r[column])) for r in rows]
    for key, value in info["test"].items():
        assert mirror.data.metrics[key] == value
    assert mirror.data.metrics[f"best_{info['monitor']}"] == info["best"][info["monitor"]]
    files = {a.path for a in client.list_artifacts(mirror.info.run_id)} | {
        a.path for a in client.list_artifacts(mirror.info.run_id, "checkpoints")
    }
    assert {"loss_curve.png", "summary.json", "metrics.csv", "checkpoints/best.pt"} <= files
    best = client.download_artifacts(mirror.info.run_id, "checkpoints/best.pt", str(cwd / "download"))
    assert sha(best) == sha(run / "checkpoints" / "best.pt")


def sha(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.mark.slow  # a 4-job sweep
def test_mlflow_parallel_sweep_writes_every_job_once_to_one_sqlite_store(tmp_path):
    # two jobs at a time in separate processes (joblib), all four writing to outputs/mlflow.db: MLflow #4123's race
    runner(
        "train",
        "-m",
        "hydra/launcher=parallel",
        "optimizer.lr=0.003,0.001",
        "seed=0,1",
        "logger=mlflow",
        "trainer.epochs=2",
        "model.channels=[8,16]",
        cwd=tmp_path,
    )
    (sweep,) = tmp_path.glob("outputs/multirun/*/*")
    jobs = sorted(p.parent for p in sweep.glob("*/summary.json"))
    spans = [
        (
            s["timings"]["first_step_at"] - s["timings"]["setup_s"],
            s["timings"]["first_step_at"] + s["timings"]["train_s"],
        )
        for s in map(summary, jobs)
    ]
    assert any(
        a[0] < b[1] and b[0] < a[1] for a in spans for b in spans if a != b
    )  # the precondition: jobs really overlapped
    assert len({summary(j)["pid"] for j in jobs}) >= 2
    mirrors = {m.info.run_name: m for m in mlflow_runs(tmp_path)}
    assert sorted(mirrors) == [
        f"optimizer.lr={lr},seed={seed},trainer.epochs=2,model.channels=[8,16]"  # logger= left out
        for lr in ("0.001", "0.003")
        for seed in (0, 1)
    ]
    for job in jobs:
        mirror = next(m for m in mirrors.values() if m.data.tags["runner.run_dir"] == str(job.resolve()))
        assert mirror.info.status == "FINISHED" and mirror.data.tags["runner.sweep"] == str(sweep.resolve())
        assert (
            mirror.data.params["seed"] == (job / ".hydra" / "config.yaml").read_text().split("\nseed: ")[1].split()[0]
        )
        assert_mirrors(tmp_path, mirror, job)


def report_to_mlflow(run, cwd):
    """`runner report RUN --to mlflow` in cwd, called in this process (helpers/in_process.py): MLflow is imported once,
    not by a command each time; test_mlflow_refuses_... runs the command in a process of its own."""
    from helpers.in_process import runner_in_process

    proc = runner_in_process("report", str(run), "--to", "mlflow", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_report_to_mlflow_uploads_old_runs_and_rebuilds_a_mirror_that_disagrees(tmp_path, digits_run):
    import shutil

    run = tmp_path / "outputs" / "old"
    shutil.copytree(digits_run[1], run)
    report_to_mlflow(run, tmp_path)
    report_to_mlflow(run, tmp_path)  # again: brought up to date, nothing doubled
    (first,) = mlflow_runs(tmp_path)
    assert (
        first.info.status == "FINISHED" and first.info.run_name == "outputs/old"
    )  # no overrides: named by its directory
    assert_mirrors(tmp_path, first, run)

    # the directory now says something else about epoch 2 (as a run re-trained after a crash on a GPU would)
    lines = (run / "metrics.csv").read_text().splitlines()
    cells = lines[2].split(",")
    cells[1] = "0.5"
    lines[2] = ",".join(cells)
    (run / "metrics.csv").write_text("\n".join(lines) + "\n")
    report_to_mlflow(run, tmp_path)
    (second,) = mlflow_runs(tmp_path)
    assert second.info.run_id != first.info.run_id  # made anew from the directory; the old mirror is in MLflow's trash
    assert mlflow_client(tmp_path).get_run(first.info.run_id).info.lifecycle_stage == "deleted"
    assert_mirrors(tmp_path, second, run)


def test_mlflow_refuses_an_unknown_option_or_a_bad_store_before_writing(tmp_path, digits_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(digits_run[1], run)
    before = digest(run)
    proc = runner(
        "train",
        f"resume={run}",
        "trainer.epochs=11",
        "logger=mlflow",
        "+logger.mlflow.tracking=x",
        cwd=tmp_path,
        check=False,
    )
    assert_clean_failure(proc, "logger.mlflow.tracking is not an option of logger=mlflow", "tracking_uri")
    (tmp_path / "a_file").write_text("")
    proc = runner(
        "train",
        f"resume={run}",
        "trainer.epochs=11",
        "logger=mlflow",
        f"logger.mlflow.tracking_uri=sqlite:///{tmp_path}/a_file/m.db",
        cwd=tmp_path,
        check=False,
    )
    assert_clean_failure(proc, "cannot open the MLflow store", "Nothing in")
    assert digest(run) == before  # the store is opened before the run is touched
    proc = runner(
        "report",
        str(run),
        "--to",
        "mlflow",
        "--tracking-uri",
        f"sqlite:///{tmp_path}/a_file/m.db",
        cwd=tmp_path,
        check=False,
    )
    assert proc.returncode == 1 and "cannot open the MLflow store" in proc.stderr and "Traceback" not in proc.stderr
    assert digest(run) == before
