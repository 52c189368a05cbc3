"""The README's "add your own dataset" example, run exactly as written."""

import re
from pathlib import Path

from conftest import run_dirs, runner, summary

README = Path(__file__).resolve().parent.parent / "README.md"


def code_block(first_line):
    """The fenced code block of README.md whose first line is `first_line`."""
    for block in re.findall(r"```\w*\n(.*?)```", README.read_text(), flags=re.S):
        if block.startswith(first_line + "\n"):
            return block
    raise AssertionError(f"README.md has no code block starting with {first_line!r}")


def test_readme_custom_dataset_example_trains(tmp_path):
    (tmp_path / "my_data.py").write_text(code_block("# my_data.py"))
    (tmp_path / "my_configs" / "dataset").mkdir(parents=True)
    (tmp_path / "my_configs" / "dataset" / "blobs.yaml").write_text(code_block("# my_configs/dataset/blobs.yaml"))
    runner("train", "--config-dir", "my_configs", "dataset=blobs", "model=mlp", "trainer.epochs=3",
           cwd=tmp_path, env={"PYTHONPATH": str(tmp_path)})
    (run_dir,) = run_dirs(tmp_path)
    info = summary(run_dir)
    assert info["samples"] == {"train": 2160, "val": 240, "test": 600}
    assert info["test"]["test_accuracy"] > 0.6  # three overlapping Gaussian blobs one unit apart
