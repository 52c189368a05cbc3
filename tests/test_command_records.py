"""Each command declared once (runner/commands/__init__.py) and the command line's checks before Hydra reads it
(runner/config/arguments.py): pure functions of the arguments and the environment, tested in-process. The process
itself (exit codes through the front door, nothing written) is tested in test_cli.py and test_command_checks.py."""

from importlib.resources import files
from pathlib import Path

import pytest

from runner import cli
from runner.commands import COMMANDS, Command, checked_arguments, resume_argument
from runner.config.arguments import (
    Refusal,
    launcher_arguments,
    one_mode,
    one_process,
    out_argument,
    torchrun_arguments,
    writable_output,
)
from runner.task import Invocation, _clean_up

NO_ENV: dict[str, str] = {}


def test_every_command_is_one_record_the_cli_lists_dispatches_and_finds_the_job_of():
    assert list(COMMANDS) == ["train", "eval", "predict", "export", "lr-find", "report", "diff"]
    for name, command in COMMANDS.items():
        assert command.name == name
        assert command.usage() in cli.USAGE.splitlines()
        assert callable(command.job_function()), command.job
        if command.config is not None:
            assert files("runner.configs").joinpath(f"{command.config}.yaml").is_file()
            # every Hydra command checks its paths first and what Hydra would tell with a traceback
            assert command.checks[0].__name__ == "user_paths"
            assert {"one_mode", "writable_output"} <= {check.__name__ for check in command.checks}


def test_lr_find_is_a_record_and_its_module():
    # the proof: a command is one record (its config, its job, its checks) and its module, nothing in cli.py
    lr_find = COMMANDS["lr-find"]
    assert lr_find.config == "lr_find" and lr_find.job == "runner.commands.lr_find:lr_find_job"
    assert one_process in lr_find.checks and lr_find.data_paths and not lr_find.trains
    # the CLI and Hydra's task compare no command's name or config: they read the records
    from runner import task

    for source in (Path(cli.__file__).read_text(), Path(task.__file__).read_text()):
        for name in {*COMMANDS, *(c.config for c in COMMANDS.values() if c.config)}:
            assert f'"{name}"' not in source and f"'{name}'" not in source, name


def test_a_new_command_needs_no_change_in_the_cli(tmp_path, monkeypatch):
    from helpers.in_process import runner_in_process

    # a record of a made-up command: its refusal is the cli's, with its exit code and words, and nothing is written
    hello = Command("hello", "say hello:", "runner hello", job="builtins:print", config="train", checks=(one_process,))
    monkeypatch.setitem(COMMANDS, "hello", hello)
    proc = runner_in_process("hello", cwd=tmp_path, env={"WORLD_SIZE": "2"})
    assert proc.returncode == 2 and "runs one range test in one process" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_lr_find_runs_in_one_process_only():
    said = "error: runner lr-find runs one range test in one process: start it without torchrun and without -m"
    for args, env in ((["-m", "lr_find.num_training=20"], NO_ENV), (["--multirun"], NO_ENV), ([], {"WORLD_SIZE": "2"})):
        refused = one_process(args, env)
        assert isinstance(refused, Refusal) and refused.exit_code == 2 and refused.text.startswith(said)
    assert one_process(["model=mlp"], {"WORLD_SIZE": "1"}) == ["model=mlp"]


def test_torchrun_gives_rank_0_alone_a_run_directory_and_refuses_a_sweep_and_restarts_without_a_directory():
    rank_1 = {"WORLD_SIZE": "2", "RANK": "1"}
    assert launcher_arguments(["model=mlp"], {"WORLD_SIZE": "2", "RANK": "0"}) == ["model=mlp"]
    assert launcher_arguments(["model=mlp"], rank_1) == ["model=mlp", "hydra.run.dir=.", "hydra.output_subdir=null"]
    sweep = torchrun_arguments(["-m", "seed=0,1"], {"RANK": "0"})
    assert sweep == Refusal(
        "runner: -m/--multirun cannot run under torchrun; launch one torchrun per configuration.", 2
    )
    # every process starts here; rank 0 alone says why
    assert launcher_arguments(["-m"], rank_1) == Refusal("", 2)
    restarts = {"WORLD_SIZE": "2", "RANK": "0", "TORCHELASTIC_MAX_RESTARTS": "1"}
    refused = launcher_arguments(["model=mlp"], restarts)
    assert isinstance(refused, Refusal) and refused.exit_code == 2
    assert "name it with hydra.run.dir=DIR (or resume=DIR). Nothing was changed." in refused.text
    assert launcher_arguments(["hydra.run.dir=r"], restarts) == ["hydra.run.dir=r"]
    assert launcher_arguments(["resume=r"], restarts) == ["resume=r"]


def test_a_slurm_job_of_several_tasks_is_refused_without_a_sweep():
    refused = launcher_arguments(["model=mlp"], {"SLURM_NTASKS": "2"})
    assert isinstance(refused, Refusal) and refused.exit_code == 2
    assert (
        "this is a SLURM job of 2 tasks (SLURM_NTASKS=2), and runner would train in each of them alone" in refused.text
    )
    assert "srun --ntasks-per-node=1 torchrun" in refused.text and refused.text.endswith("Nothing was changed.")
    assert launcher_arguments(["-m", "hydra/launcher=slurm"], {"SLURM_NTASKS": "2"}) == ["-m", "hydra/launcher=slurm"]
    assert launcher_arguments(["model=mlp"], {"SLURM_NTASKS": "1"}) == ["model=mlp"]


@pytest.mark.parametrize("flags", [["-m", "--cfg", "job"], ["--multirun", "--info"], ["--cfg", "job", "--info"]])
def test_hydras_modes_are_one_at_a_time(flags):
    refused = one_mode(["model=mlp", *flags], NO_ENV)
    assert isinstance(refused, Refusal) and refused.exit_code == 2
    modes = " and ".join(f for f in flags if f.startswith("-"))
    assert refused.text.startswith(f"error: {modes} cannot be combined: Hydra prints the config (--cfg, --info) of one")
    assert one_mode(["-m", "--multirun", "seed=0,1"], NO_ENV) == ["-m", "--multirun", "seed=0,1"]


def test_an_output_folder_that_cannot_be_made_is_refused_with_the_key_that_points_elsewhere(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "a_file").write_text("")
    for key, fix in (
        ("hydra.run.dir", "Point hydra.run.dir= at a folder you can create and write to."),
        ("out", "Point out= at a folder you can create and write to."),
    ):
        refused = writable_output([f"{key}=a_file/run"], NO_ENV)
        assert isinstance(refused, Refusal) and refused.exit_code == 1
        assert "cannot be created" in refused.text and "is a file, not a folder" in refused.text
        assert refused.text.startswith("error: ") and refused.text.endswith(fix)
    # a flag that only prints writes nothing: not refused
    assert writable_output(["hydra.run.dir=a_file/run", "--cfg", "job"], NO_ENV) == [
        "hydra.run.dir=a_file/run",
        "--cfg",
        "job",
    ]
    assert writable_output(["hydra.run.dir=run"], NO_ENV) == ["hydra.run.dir=run"]


def test_a_user_config_that_shadows_a_built_in_is_refused_for_every_flag(tmp_path):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "cnn.yaml").write_text("_target_: runner.models.MLP\n")
    for flags in ([], ["--cfg", "job"]):
        refused = writable_output(["--config-dir", str(tmp_path / "mine"), *flags], NO_ENV)
        assert isinstance(refused, Refusal) and refused.exit_code == 1
        assert (
            "has the name of runner's built-in config model/cnn.yaml" in refused.text and "model=my_cnn" in refused.text
        )
    (tmp_path / "mine" / "model" / "cnn.yaml").rename(tmp_path / "mine" / "model" / "bad.yaml")
    (tmp_path / "mine" / "model" / "bad.yaml").write_text("a: [\n")
    refused = writable_output([f"--config-dir={tmp_path / 'mine'}", "--cfg", "job"], NO_ENV)
    assert isinstance(refused, Refusal) and "bad.yaml is not valid YAML at line 2" in refused.text


def test_out_names_the_folder_hydra_makes():
    assert out_argument(["ckpt=r", "out=p"], NO_ENV) == ["hydra.run.dir=p", "ckpt=r", "out=p"]
    assert out_argument(["ckpt=r", "out=null"], NO_ENV) == ["ckpt=r", "out=null"]
    assert out_argument(["ckpt=r"], NO_ENV) == ["ckpt=r"]


def test_resume_goes_to_the_runs_own_directory_and_a_missing_one_is_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "run").mkdir()
    assert resume_argument(["resume=run", "trainer.epochs=3"], NO_ENV) == [
        "hydra.run.dir=run",
        "resume=run",
        "trainer.epochs=3",
    ]
    assert resume_argument(["resume=nowhere"], NO_ENV) == Refusal(
        "error: resume=nowhere names nothing: there is no such directory, so there is nothing to resume. Pass the "
        "directory of a runner training run, e.g. resume=outputs/2026-11-22/10-31-07.",
        1,
    )
    refused = resume_argument(["-m", "resume=run"], NO_ENV)
    assert isinstance(refused, Refusal) and refused.exit_code == 1
    assert "resume=run with -m names no sweep: there is no run/multirun.yaml" in refused.text
    assert resume_argument(["model=mlp"], NO_ENV) == ["model=mlp"]


def test_a_commands_checks_run_in_order_and_the_first_refusal_ends_them(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    train = COMMANDS["train"]
    # the SLURM refusal comes before the -m/--cfg one, as the checks are declared
    refused = checked_arguments(train, ["--cfg", "job", "--info"], {"SLURM_NTASKS": "2"})
    assert isinstance(refused, Refusal) and "SLURM job of 2 tasks" in refused.text
    assert checked_arguments(COMMANDS["predict"], ["ckpt=~/r", "out=p"], {}) == [
        "hydra.run.dir=p",
        f"ckpt={Path.home() / 'r'}",
        "out=p",
    ]


def test_what_the_invocation_hands_the_task(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "outputs" / "eval").mkdir(parents=True)
    assert cli.invocation(COMMANDS["eval"], ["ckpt=r"]).missing == []
    assert cli.invocation(COMMANDS["predict"], ["ckpt=r"]).missing == [Path("outputs/predict")]
    made = cli.invocation(COMMANDS["predict"], ["hydra.run.dir=p", "ckpt=r", "out=p"])
    assert made.out_existed is False and made.missing == []
    (tmp_path / "p").mkdir()
    assert cli.invocation(COMMANDS["export"], ["hydra.run.dir=p", "out=p"]).out_existed is True
    assert cli.invocation(COMMANDS["train"], ["hydra.run.dir=r"]).missing == []
    # only a training run's own folder counts: another command's outputs/<command> is still made for it, and removed
    # if it fails (as before the records)
    assert cli.invocation(COMMANDS["lr-find"], ["hydra.run.dir=mine"]).missing == [Path("outputs/lr_find")]
    assert cli.invocation(COMMANDS["predict"], ["hydra.run.dir=mine", "ckpt=r"]).missing == [Path("outputs/predict")]
    assert cli.invocation(COMMANDS["train"], []).missing == [
        Path("outputs/multirun"),
        Path("outputs/fast_dev_run/multirun"),
        Path("outputs/fast_dev_run"),
    ]


def test_a_run_names_its_own_groups_first(tmp_path):
    hydra = tmp_path / "run" / ".hydra"
    hydra.mkdir(parents=True)
    (hydra / "hydra.yaml").write_text(
        "hydra:\n  runtime:\n    choices:\n      dataset: digits\n      model: mlp\n      optimizer: sgd\n"
        "      scheduler: mine\n"
    )
    run = tmp_path / "run"
    train, eval_ = COMMANDS["train"], COMMANDS["eval"]
    # scheduler=mine is no config of runner's (a user's --config-dir): left out
    assert cli.invocation(train, [f"resume={run}"]).selected == ["dataset=digits", "model=mlp", "optimizer=sgd"]
    assert cli.invocation(eval_, [f"ckpt={run / 'checkpoints' / 'best.pt'}"]).selected == [
        "dataset=digits",
        "model=mlp",
    ]
    assert cli.invocation(train, [f"ckpt={run}"]).selected == []
    assert cli.invocation(eval_, [f"ckpt={tmp_path}"]).selected == []


def test_the_failure_funnel_removes_only_what_the_command_made(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    predict = COMMANDS["predict"]
    # Hydra's DATE/TIME folders of a command refused before it wrote: both go, and outputs/ Hydra made
    folder = tmp_path / "outputs" / "eval" / "2026-12-07" / "10-00-00"
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text("")
    missing = [Path("outputs/eval"), Path("outputs")]
    _clean_up(Invocation(COMMANDS["eval"], missing=missing), folder, ValueError(), False, None)
    assert list(tmp_path.iterdir()) == []
    # out= that existed before the command stays, empty or not; one the command made goes, not its parent
    (tmp_path / "kept").mkdir()
    _clean_up(Invocation(predict, out_existed=True), tmp_path / "kept", ValueError(), False, None)
    (tmp_path / "parent" / "new").mkdir(parents=True)
    _clean_up(Invocation(predict, out_existed=False), tmp_path / "parent" / "new", ValueError(), False, None)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["kept", "parent"]
    assert list((tmp_path / "parent").iterdir()) == []
    # a folder holding the command's own file stays
    (tmp_path / "parent" / "done").mkdir()
    (tmp_path / "parent" / "done" / "predictions.csv").write_text("")
    _clean_up(Invocation(predict), tmp_path / "parent" / "done", ValueError(), False, None)
    assert (tmp_path / "parent" / "done" / "predictions.csv").is_file()


def test_hydras_functions_are_wrapped_for_the_command_alone():
    import hydra._internal.utils as hydra_utils
    import hydra.core.utils as hydra_core

    own = hydra_utils.run_and_report, hydra_core._save_config
    inv = cli.invocation(COMMANDS["eval"], ["ckpt=r"])
    # wrapped while the command runs (Hydra looks them up by module when it calls them), Hydra's own again after it,
    # also after a command that raised: the next command of the same process (a test's) wraps Hydra's, not a wrapper
    for raising in (False, True):
        try:
            with cli._hydra_storage_errors(inv):
                assert (hydra_utils.run_and_report, hydra_core._save_config) != own
                assert hydra_utils.run_and_report is not own[0] and hydra_core._save_config is not own[1]
                if raising:
                    raise KeyError("the command failed")
        except KeyError:
            assert raising
        assert (hydra_utils.run_and_report, hydra_core._save_config) == own
