"""The `runner` command itself: help, Hydra's flags, and the installed (non-editable) package."""

import subprocess
import sys

import pytest
from conftest import run_dirs, runner, summary


def test_runner_help_does_not_import_torch():
    code = (
        "import sys; from runner.cli import main; main(['--help']); assert 'torch' not in sys.modules, 'torch imported'"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert "runner train" in proc.stdout and "runner eval" in proc.stdout


def test_train_help_lists_every_group_and_option(tmp_path):
    out = runner("train", "--help", cwd=tmp_path).stdout
    for line in (
        "dataset: arrays, cifar10, csv, digits, fake, fashion_mnist, imagefolder, mnist, mnist1d, parquet, sum_pairs",
        "device: auto, cpu, cuda, mps",
        "model: cnn, fastnet, lenet, mlp, mlp_table, resnet18, resnet18_cifar, timm, torchvision",
        "experiment: cifar10_fast, cifar10_resnet, cifar10_tutorial, digits_cnn, finetune_imagefolder, mnist1d_cnn, "
        "mnist1d_mlp, mnist_lenet",
        "optimizer: adam, adamw, sgd",
        "scheduler: cosine, linear, none, onecycle, step",
        "trainer: default, table",
    ):
        assert line in out
    assert "eval_batch_size: 512" in out
    assert not (tmp_path / "outputs").exists()


def test_cfg_job_prints_the_composed_config_and_runs_nothing(tmp_path):
    out = runner("train", "model=mlp", "optimizer.lr=0.05", "--cfg", "job", cwd=tmp_path).stdout
    assert "_target_: runner.models.MLP" in out and "lr: 0.05" in out
    assert not (tmp_path / "outputs").exists()


def test_unknown_command(tmp_path):
    from helpers.in_process import runner_in_process

    proc = runner_in_process("trian", cwd=tmp_path)
    assert proc.returncode == 2 and proc.stderr == (
        "runner: unknown command 'trian'. Use one of: train, eval, predict, export, lr-find, report, diff (see "
        "runner --help).\n"
    )
    assert list(tmp_path.iterdir()) == []


def test_config_dir_adds_a_users_own_model(tmp_path):
    """A user's model is one Python file and one YAML file, without touching the package."""
    (tmp_path / "my_models.py").write_text(
        "import torch\n"
        "class Linear(torch.nn.Module):\n"
        "    def __init__(self, input_shape, num_classes):\n"
        "        super().__init__()\n"
        "        self.fc = torch.nn.Linear(input_shape[0] * input_shape[1] * input_shape[2], num_classes)\n"
        "    def forward(self, x):\n"
        "        return self.fc(x.flatten(1))\n"
    )
    (tmp_path / "my_configs" / "model").mkdir(parents=True)
    (tmp_path / "my_configs" / "model" / "linear.yaml").write_text(
        "_target_: my_models.Linear\ninput_shape: ${dataset.input_shape}\nnum_classes: ${dataset.num_classes}\n"
    )
    runner(
        "train",
        "--config-dir",
        "my_configs",
        "model=linear",
        "optimizer.lr=0.01",
        "trainer.epochs=5",
        cwd=tmp_path,
        env={"PYTHONPATH": str(tmp_path)},
    )
    (run_dir,) = run_dirs(tmp_path)
    info = summary(run_dir)
    assert info["params"] == 64 * 10 + 10 and info["test"]["test_accuracy"] > 0.85


@pytest.mark.slow
def test_installed_package_runs_from_another_directory(tmp_path):
    """`pip install .` (not editable) ships the configs inside the package."""
    from pathlib import Path

    repo = Path(__file__).resolve().parent.parent
    target = tmp_path / "site"
    # --no-build-isolation --no-index: the build uses this environment's setuptools, and pip asks no index
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(repo),
        ],
        check=True,
        capture_output=True,
    )
    assert (target / "runner" / "configs" / "model" / "cnn.yaml").is_file()
    work = tmp_path / "elsewhere"
    work.mkdir()
    env = {"PYTHONPATH": str(target)}
    proc = runner("train", "trainer.epochs=1", cwd=work, env=env)
    assert (
        str(target)
        in subprocess.run(
            [sys.executable, "-c", "import runner; print(runner.__file__)"],
            cwd=work,
            env={**env},
            capture_output=True,
            text=True,
        ).stdout
    )
    (run_dir,) = run_dirs(work)
    assert summary(run_dir)["status"] == "completed" and "digits" in proc.stdout


def hydra_says(*overrides, command="train"):
    """What Hydra prints when `runner COMMAND OVERRIDES` does not compose (hydra._internal.utils.run_and_report: the
    error, its OmegaConf cause, and its hint), composed in-process."""
    import os

    from hydra import compose, initialize_config_module

    try:
        with initialize_config_module("runner.configs", version_base="1.3"):
            compose(command, overrides=list(overrides), return_hydra_config=True)
    except Exception as err:
        cause = f"{err.__cause__}{os.linesep}" if err.__cause__ else ""
        return (
            f"{err}{os.linesep}{cause}\nSet the environment variable HYDRA_FULL_ERROR=1 for a complete stack trace.\n"
        )
    raise AssertionError(f"{overrides} composed")


@pytest.mark.parametrize(
    ("override", "told"),
    [
        ("model=resnet", "model=resnet is not an option of model. Did you mean model=resnet18? The options are: cnn,"),
        ("dataset=text", "dataset=text is not an option of dataset. The options are: arrays, cifar10, csv, digits,"),
        ("logger=wandb", "logger=wandb is not an option of logger. The options are: mlflow, tensorboard. Your own"),
        ("hydra/launcher=paralel", "Did you mean hydra/launcher=parallel? The options are: basic, joblib, local,"),
        (
            "dataset.augment=[crop,flip]",
            "'dataset.augment=[crop,flip]' gives dataset.augment a value of another shape: dataset.augment is a "
            "mapping of settings, each set by its own key, e.g. dataset.augment.crop_padding=0. Its keys are: "
            "crop_padding, flip.",
        ),
        ("model.channels={a:1}", "model.channels is a list, given in brackets, e.g. model.channels=[32,64]."),
    ],
)
def test_hydras_unknown_option_and_wrong_shape_are_told_in_runners_words(override, told):
    from runner.config.command_line import hydra_problem

    said = hydra_says(override)
    assert "Could not find" in said or "Cannot merge" in said  # Hydra's raw words, which users saw before
    message = hydra_problem(said, "train", [override])
    assert told in message
    assert "HYDRA_FULL_ERROR" not in message and "search path" not in message and "Cannot merge" not in message


def test_an_option_named_inside_a_config_is_told_where_it_is_named(tmp_path):
    from runner.config.command_line import hydra_problem

    # an experiment's defaults list naming a model that is not there: the user did not type model=resnet
    said = "In 'experiment/mine': Could not find 'model/resnet'\n\nAvailable options in 'model':\n\tcnn\n\tresnet18\n"
    told = hydra_problem(said, "train", ["experiment=mine"])
    assert told.startswith("model=resnet, named in experiment/mine, is not an option of model. Did you mean")


def test_an_unknown_option_exits_1_with_the_nearest_one_and_no_hydra_hint(tmp_path):
    proc = runner("train", "model=resnet", cwd=tmp_path, check=False)
    assert proc.returncode == 1 and proc.stderr.startswith("error: model=resnet is not an option of model."), (
        proc.stderr
    )
    assert "HYDRA_FULL_ERROR" not in proc.stderr and "Traceback" not in proc.stderr
    assert not (tmp_path / "outputs").exists()


def test_the_results_tables_time_says_what_it_counts_and_summary_json_holds_the_whole_commands(tmp_path):
    # the table's `time` (5.1 s beside a 13.5 s command) counted the run from its directory's claim only
    proc = runner("train", "trainer.fast_dev_run=true", "hydra.run.dir=r", cwd=tmp_path)
    timings = summary(tmp_path / "r")["timings"]
    # the process started before the run claimed its directory: its imports and Hydra's composing came first
    assert timings["process_s"] > timings["total_s"] > 0
    shown = (
        f"time: setup, training, test │ {timings['total_s']:.1f} s (the command so far: {timings['process_s']:.1f} s)"
    )
    assert shown in " ".join(proc.stdout.split()), proc.stdout
