"""Paths with the characters Hydra's grammar refuses bare (= , ~ and any non-ASCII letter) or takes bare (a space,
@, %), quoted as Hydra requires, work in every argument that names a path: hydra.run.dir, resume=, ckpt=, input=,
out=, dataset.root=, hydra.sweep.dir. One run per character set, which every command then uses.
"""

import random

import numpy as np
import pytest
from conftest import runner, summary
from formats import write_image_folder
from omegaconf import OmegaConf

MLP = ["model=mlp", "trainer.epochs=1"]

# (where the paths start, a folder name with the characters): ~ is the user's home, set to a folder of the test
CHARACTERS = {
    "equals comma": ("runs", "lr=0.001,b=2"),
    "space at percent": ("runs", "a b@c%d"),
    "unicode": ("runs", "ü 数据"),
    "home": ("~/runs", "x=1"),
}


class Place:
    """Where one character set's paths are: `text(kind)` as the command line gives them, `real(kind)` the folder."""

    def __init__(self, cwd, start, name):
        self.cwd, self.start, self.name = cwd, start, name
        self.env = {"HOME": str(cwd / "home")} if start.startswith("~") else None

    def text(self, kind):
        return f"{self.start}/{kind} {self.name}"

    def real(self, kind):
        home = self.text(kind).startswith("~")
        return self.cwd / "home" / self.text(kind)[2:] if home else self.cwd / self.text(kind)

    def arg(self, key, kind):
        return f'{key}="{self.text(kind)}"'  # quoted for Hydra, as a user writes it (the shell's quotes are gone)

    def runner(self, *args):
        return runner(*args, cwd=self.cwd, env=self.env)


@pytest.fixture(scope="module", params=list(CHARACTERS), ids=list(CHARACTERS))
def place(request, tmp_path_factory):
    """A run trained into hydra.run.dir="START/run NAME"."""
    place = Place(tmp_path_factory.mktemp("paths"), *CHARACTERS[request.param])
    (place.cwd / "home").mkdir()
    place.runner("train", *MLP, place.arg("hydra.run.dir", "run"))
    return place


@pytest.mark.slow
@pytest.mark.parametrize("command", ["train", "resume", "eval", "predict", "export", "dataset.root", "sweep"])
def test_path_with_characters(place, command):
    run = place.real("run")
    if command == "train":
        assert summary(run)["status"] == "completed"
    elif command == "resume":
        place.runner("train", place.arg("resume", "run"), "trainer.epochs=2")
        assert len((run / "metrics.csv").read_text().splitlines()) == 3  # the header and two epochs
    elif command == "eval":
        assert "test_accuracy" in place.runner("eval", place.arg("ckpt", "run")).stdout
    elif command == "predict":
        np.save(f"{place.real('in')}.npy", np.zeros((3, 1, 8, 8), dtype=np.float32))
        inputs = f'input="{place.text("in")}.npy"'
        place.runner("predict", place.arg("ckpt", "run"), inputs, place.arg("out", "predicted"))
        assert len((place.real("predicted") / "predictions.csv").read_text().splitlines()) == 4
    elif command == "export":
        place.runner("export", place.arg("ckpt", "run"), "format=safetensors", place.arg("out", "exported"))
        assert (place.real("exported") / "model.safetensors").is_file()
    elif command == "dataset.root":
        write_image_folder(place.real("pets"))
        folder = ["dataset=imagefolder", "dataset.input_shape=[3,8,8]", "dataset.workers=0", "trainer.batch_size=8"]
        place.runner("train", *MLP, *folder, place.arg("dataset.root", "pets"), place.arg("hydra.run.dir", "on pets"))
        saved = OmegaConf.load(place.real("on pets") / ".hydra" / "config.yaml")
        assert saved.dataset.root == str(place.real("pets"))
    else:
        place.runner("train", "-m", *MLP, place.arg("hydra.sweep.dir", "sweep"))
        assert summary(place.real("sweep") / "0")["status"] == "completed"
    assert not (place.cwd / "~").exists()  # a leading ~ is the home folder, never a folder named ~


def test_quoted_values_read_back():
    """quote_value and override give Hydra, then OmegaConf, exactly the path; command_arg is that, shell-quoted."""
    import shlex

    from hydra.core.override_parser.overrides_parser import OverridesParser

    from runner.config.command_line import command_arg, override, override_value, quote_value

    rng = random.Random(0)
    alphabet = ["a", "/", '"', "'", "\\", "$", "{", "}", "=", ",", " ", "~", "ü", "[", ":", "@", "%"]
    paths = ["runs/lr=0.001", "a\\", 'a\\"b', "${x}", "a\\${x}", "null", "1", " a ", "outputs/2026-11-22/10-31-07"]
    paths += ["".join(rng.choice(alphabet) for _ in range(rng.randint(1, 8))) for _ in range(300)]
    parser = OverridesParser.create()
    for path in paths:
        pasted = f"./{path}" if path.startswith("~") else path  # runner would expand a leading ~
        typed = shlex.split(command_arg("k", path))
        assert len(typed) == 1, typed
        for text, expected in ((f"k={quote_value(path)}", path), (override("k", path), path), (typed[0], pasted)):
            hydra_value = parser.parse_override(text).value()
            assert OmegaConf.create({"k": hydra_value}).k == expected, text
            assert override_value(text) == expected, text
    assert override("resume", "outputs/2026-11-22/10-31-07") == "resume=outputs/2026-11-22/10-31-07"  # bare if it can
    assert command_arg("resume", "runs/lr=0.001") == "'resume=\"runs/lr=0.001\"'"


def test_a_path_hydra_would_refuse_or_misread_is_quoted_for_it(tmp_path):
    # bare, as a user pastes the directory runner printed: = and unicode refused by Hydra's grammar, a comma misread
    # as a list when the folder exists (a sweep job named from its overrides)
    runner("train", *MLP, "hydra.run.dir=runs/lr=0.1,seed=0 ü", cwd=tmp_path)
    run = tmp_path / "runs" / "lr=0.1,seed=0 ü"
    assert summary(run)["status"] == "completed"
    runner("train", "resume=runs/lr=0.1,seed=0 ü", "trainer.epochs=2", cwd=tmp_path)
    assert summary(run)["epochs"] == 2
    proc = runner("eval", "ckpt=runs/lr=0.1,seed=0 ü", cwd=tmp_path)
    assert "test_accuracy" in proc.stdout
    # a comma in a path that does not exist stays Hydra's: without -m it says how to quote it
    proc = runner("train", *MLP, "hydra.run.dir=runs/a,b", cwd=tmp_path, check=False)
    assert proc.returncode != 0 and "quote the value" in proc.stderr and not (tmp_path / "runs" / "a,b").exists()
