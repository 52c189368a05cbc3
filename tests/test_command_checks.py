"""The same key checks on every command and flag (cli.py, config/checks.check_keys), and a run's data location
that stays valid from any directory (task._absolute_root): each refusal names a fix the command accepts, and the
test runs that fix. A refusal before any job's work runs in this process (`refused_here`)."""

import shutil
import sys

import pytest
from conftest import FAST, assert_clean_failure, digest, runner, summary
from formats import write_image_folder
from helpers.in_process import runner_in_process

from runner.config.command_line import HeldStderr, hydra_problem


def refused_here(*args, cwd):
    """`runner ARGS` in `cwd`, called in this process (helpers/in_process.py), for a refusal before any job's work
    (an argv or config check): it exits 1, shows no traceback, and what it printed on stderr is returned."""
    proc = runner_in_process(*args, cwd=cwd)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr, (proc.returncode, proc.stderr)
    return proc.stderr


@pytest.mark.parametrize(
    "command, bad, fix",
    [
        ("eval", "+trainer.eval_batchsize=8", "trainer.eval_batch_size=8"),
        ("eval", "trainer.eval_batchsize=8", "trainer.eval_batch_size=8"),
        ("predict", "+topK=3", "topk=3"),
        ("predict", "topK=3", "topk=3"),
        ("export", "+fromat=safetensors", "format=safetensors"),
        ("export", "fromat=safetensors", "format=safetensors"),
    ],
)
def test_every_command_refuses_a_key_it_does_not_read_and_says_the_near_one(tmp_path, digits_run, command, bad, fix):
    _, run_dir, _ = digits_run
    extra = {"eval": [], "predict": ["input=test"], "export": []}[command]
    before = digest(run_dir)
    # refused once the config composed, before the job: in this process
    err = refused_here(command, f"ckpt={run_dir}", *extra, bad, cwd=tmp_path)
    key = fix.split("=")[0]
    assert f"Did you mean {key}?" in err
    assert "Could not override" not in err and "not in struct" not in err
    assert digest(run_dir) == before and not (tmp_path / "outputs").exists()
    runner(command, f"ckpt={run_dir}", *extra, fix, cwd=tmp_path)  # the fix it named is accepted


def test_a_misspelt_training_key_gets_the_near_one_and_the_fix_trains(tmp_path):
    # the config's refusals, in this process: runner's check of trainer's keys, Hydra's of a model's
    err = refused_here("train", "trainer.epoch=1", cwd=tmp_path)
    assert "trainer.epoch is not a key runner reads" in err and "Did you mean trainer.epochs?" in err
    assert not (tmp_path / "outputs").exists()
    assert "Did you mean model.hidden?" in refused_here("train", "model=mlp", "model.hiden=[8]", cwd=tmp_path)
    proc = runner("train", "dataset=imagefolder", "dataset.root=nowhere", cwd=tmp_path, check=False)
    assert_clean_failure(proc, "dataset.root=")  # refused in setup: the folders Hydra made for it are gone again
    assert not (tmp_path / "outputs").exists()
    runner("train", "model=mlp", "model.hidden=[8]", "trainer.epochs=1", cwd=tmp_path)


def test_cfg_job_refuses_a_user_config_that_shadows_a_built_in(tmp_path):
    (tmp_path / "mine" / "model").mkdir(parents=True)
    (tmp_path / "mine" / "model" / "cnn.yaml").write_text("_target_: runner.models.MLP\n")
    for flags in ([], ["--cfg", "job"]):
        err = refused_here("train", "--config-dir", "mine", *flags, cwd=tmp_path)
        assert "has the name of runner's built-in config model/cnn.yaml" in err and "model=my_cnn" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine"]


def test_a_run_records_where_its_data_is_so_every_command_finds_it_from_anywhere(tmp_path):
    work, elsewhere = tmp_path / "work", tmp_path / "elsewhere"
    elsewhere.mkdir()
    write_image_folder(work / "pets", per_class=10, size=(12, 12))
    shape = "dataset.input_shape=[3,12,12]", "trainer.batch_size=8"
    runner("train", "dataset=imagefolder", "dataset.root=pets", *shape, *FAST, "hydra.run.dir=run", cwd=work)
    run = work / "run"
    assert summary(run)["status"] == "completed"
    assert (run / ".hydra" / "config.yaml").read_text().count(f"root: {work / 'pets'}") == 1
    runner("eval", f"ckpt={run}", cwd=elsewhere)
    runner("predict", f"ckpt={run}", "input=test", cwd=elsewhere)

    shutil.move(work / "pets", tmp_path / "moved")  # the data moved: each command that reads it takes the new place
    proc = runner("eval", f"ckpt={run}", cwd=elsewhere, check=False)
    assert_clean_failure(proc, "dataset.root")
    for command, extra in (("eval", []), ("predict", ["input=test"]), ("export", ["format=safetensors"])):
        done = runner(command, f"ckpt={run}", *extra, f"dataset.root={tmp_path / 'moved'}", cwd=elsewhere)
        assert "random inputs" not in done.stdout + done.stderr  # export verified on the run's own test split


def test_a_home_relative_root_works_bare_and_quoted(tmp_path, monkeypatch):
    from hydra import compose, initialize_config_module

    from runner.config.arguments import path_arguments

    write_image_folder(tmp_path / "pets", per_class=10, size=(12, 12))
    args = ["dataset=imagefolder", "dataset.input_shape=[3,12,12]", "trainer.batch_size=8", *FAST]
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    # Hydra refuses a bare ~: both forms compose to the home folder's pets, in this process
    for root in ("dataset.root=~/pets", 'dataset.root="~/pets"'):
        with initialize_config_module("runner.configs", version_base="1.3"):
            cfg = compose("train", overrides=path_arguments([*args, root]))
        assert cfg.dataset.root == str(tmp_path / "pets"), root
    # and a run trains from it, recording where its data is
    runner("train", *args, "dataset.root=~/pets", "hydra.run.dir=bare", cwd=tmp_path, env={"HOME": str(tmp_path)})
    assert f"root: {tmp_path / 'pets'}" in (tmp_path / "bare" / ".hydra" / "config.yaml").read_text()
    # not a path: told as Hydra's grammar refuses it
    err = refused_here("train", *args, "dataset.root=~/pets", "trainer.monitor=~val_loss", cwd=tmp_path)
    assert "'trainer.monitor=~val_loss' cannot be read by Hydra's override grammar" in err


def test_hydra_errors_about_the_command_line_are_told_with_a_fix_and_others_are_left_as_they_are():
    lexer = "LexerNoViableAltException: {}\n                ^\nSee https://hydra.cc/docs/1.2/advanced/override_grammar"
    told = hydra_problem(lexer.format("dataset.root=~/pets"), "train", ["dataset.root=~/pets"])
    assert """'dataset.root="~/pets"'""" in told and "dataset.root=$HOME/pets" in told
    # out= reaches Hydra as hydra.run.dir=: the user's own override is named, and its quoted form (runner expands ~)
    told = hydra_problem(lexer.format("hydra.run.dir=~/p"), "predict", ["ckpt=r", "out=~/p"])
    assert "'out=~/p'" in told and "out=$HOME/p" in told and """'out="~/p"'""" in told
    struct = (
        "Could not override 'model.hiden'.\nTo append to your config use +model.hiden=3\nKey 'hiden' is not in struct"
    )
    assert "Did you mean model.hidden?" in hydra_problem(struct, "train", ["model=mlp", "model.hiden=3"])
    assert hydra_problem(struct, "train", ["model=my_own", "model.hiden=3"]) is None  # a --config-dir option
    assert hydra_problem("Could not find 'model/cnnn'", "train", ["model=cnnn"]) is None
    append = "Could not append to config. An item is already at 'trainer.epochs'.\nEither remove + prefix"
    assert "set it without the + (trainer.epochs=VALUE)" in hydra_problem(append, "train", ["+trainer.epochs=3"])


def test_stderr_is_held_while_hydra_composes_and_passes_through_after(capsys):
    held = HeldStderr()
    held.install()
    print("a warning of Hydra's", file=sys.stderr)
    assert held.release(write=False) == "a warning of Hydra's\n" and held.release() is None
    print("the job's", file=sys.stderr)
    held.write("a logging handler's\n")  # one that kept a reference to the holder
    assert capsys.readouterr().err == "the job's\na logging handler's\n"
