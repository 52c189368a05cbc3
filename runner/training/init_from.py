"""`runner train init_from=SOURCE`: a new run whose model starts from weights that already learned.

    runner train init_from=outputs/2026-11-22/10-31-07      # a run: its checkpoints/best.pt
    runner train init_from=weights.pt                        # a state_dict (or a runner checkpoint holding one)
    runner train init_from=weights.safetensors               # safetensors (pip install runner[export])

Unlike resume=, the run is new: its own directory, optimizer, schedule and counters; only the weights come from
SOURCE, loaded into the freshly built model before the first step. The load is strict: every key of the model and of
SOURCE must match by name and shape, except the output layer when its number of outputs changed (a new
dataset.num_classes), which keeps its fresh initialisation. Any other difference is refused before anything is
written, naming the keys and shapes. What was kept and re-initialised is printed, logged and recorded in
summary.json (`init_from`, with the file's SHA-256), which `runner diff` shows.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

from runner.io.errors import RunnerError
from runner.io.files import sha256
from runner.models.weights import load_fitting

if TYPE_CHECKING:
    import numpy as np
    import torch

    from runner.inference.card import ModelCard


@dataclass
class Init:
    """What init_from loaded: summary.json's `init_from`."""

    source: str  # the file the weights came from
    sha256: str
    kept: list[str]  # model keys loaded from the source
    reinitialised: list[str]  # the output layer's keys, when its size changed

    def record(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "sha256": self.sha256,
            "kept": len(self.kept),
            "reinitialised": self.reinitialised,
        }

    def lines(self) -> list[str]:
        out = [f"init_from: {len(self.kept)} tensors loaded from {self.source} (sha256 {self.sha256[:12]})"]
        if self.reinitialised:
            out.append(f"init_from: re-initialised (the output layer's size changed): {', '.join(self.reinitialised)}")
        return out


def weights_file(source: str | Path, task: str) -> Path:
    """The file init_from=`source` names: a run directory's checkpoints/best.pt (its task must be `task` and the
    run must not be running), or the file itself."""
    from runner.run.records import read_summary, status_of

    path = Path(source).expanduser()
    if path.is_dir():
        summary = read_summary(path)
        if summary.get("kind") != "train":
            raise RunnerError(
                f"init_from={source} is a folder but not a runner training run (no summary.json of a runner train). "
                f"Give a run directory, a .pt state_dict or a .safetensors file."
            )
        status = status_of(path, summary)
        if status == "running":
            raise RunnerError(
                f"init_from={source} is still training (its process holds the run's lock): its best.pt may change "
                f"under this run. Wait for it to finish, or give a copy of its checkpoints/best.pt."
            )
        if summary.get("task") not in (None, task):
            raise RunnerError(
                f"init_from={source} is a {summary['task']} run, and this run is {task}: its output layer means "
                f"something else. Start from a {task} run, or give the weights file itself if you mean it."
            )
        path = path / "checkpoints" / "best.pt"
        if not path.is_file():
            raise RunnerError(
                f"init_from={source} has no checkpoints/best.pt (its run is {status}): nothing to start from. "
                f"Give a run that validated at least one epoch."
            )
    elif not path.is_file():
        raise RunnerError(
            f"init_from={source} names nothing: there is no such file or run directory. Give a run directory, a .pt "
            f"state_dict or a .safetensors file."
        )
    return path


def read_weights(path: Path) -> dict[str, torch.Tensor]:
    """{name: tensor} from a .pt state_dict (or a checkpoint holding one under "model", as last.pt) or a
    .safetensors file."""
    import torch

    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise RunnerError(
                f"init_from={path} is a safetensors file, and the safetensors package is not installed: "
                f"pip install 'runner[export]' (or pip install safetensors)."
            ) from None
        try:
            return load_file(str(path))
        except Exception as err:
            raise RunnerError(
                f"init_from={path} cannot be read as safetensors ({' '.join(str(err).split())[:160]}). Give another "
                f"file."
            ) from None
    from runner.io.serialization import safe_load

    loaded = safe_load(path)
    weights = loaded.get("model", loaded) if isinstance(loaded, dict) else None
    if not isinstance(weights, dict) or not all(isinstance(v, torch.Tensor) for v in weights.values()):
        raise RunnerError(
            f"init_from={path} holds no state_dict (a dict of tensors, or a checkpoint with one under 'model'). "
            f"Save one with torch.save(model.state_dict(), path)."
        )
    return weights


def load_init(model: torch.nn.Module, source: str | Path, *, task: str, num_classes: int) -> Init:
    """Load init_from=`source` into `model` (strict, but for a resized output layer); returns the Init.
    Raises RunnerError, naming keys and shapes, for any other mismatch. Changes nothing in the model then."""
    path = weights_file(source, task)
    weights = read_weights(path)

    def refuse(problems: str) -> NoReturn:
        raise RunnerError(
            f"init_from={source} does not fit this model ({problems}): it was saved from another architecture or "
            f"configuration. Give the model it was trained with (its run's model=... and model.* settings); only the "
            f"output layer may change size, with dataset.num_classes."
        )

    fitted = load_fitting(model, weights, num_classes, refuse)
    return Init(source=str(path.absolute()), sha256=sha256(path), kept=fitted.kept, reinitialised=fitted.reinitialised)


def preprocessing_note(init: Init, card: ModelCard) -> str | None:
    """A line when init_from's source run read its inputs otherwise than this run will: another input shape or
    resize, or statistics a quarter of a standard deviation or more apart (another subset of the same data differs by
    less; ImageNet's against a folder's own, by more): its weights would see inputs unlike those they learned on. The
    line ends with the overrides that read them as the source did (keys every dataset config declares, so the command
    accepts them as typed). None when they agree, or when the source is not a run (a bare weights file says nothing of
    its inputs)."""
    import json

    import numpy as np

    source = Path(init.source).parent / "model.json"  # a run's checkpoints/best.pt has its card beside it
    if not source.is_file():
        return None
    theirs, ours = json.loads(source.read_text()), card.to_dict()
    before, now = theirs.get("preprocessing") or {}, ours["preprocessing"]
    differ, fixes = [], []
    # only images read from files can be read at another size: a dataset of tensors has the one its files have
    files = now["image"] is not None
    if theirs.get("input_shape") != ours["input_shape"]:
        differ.append(f"input_shape {theirs.get('input_shape')} -> {ours['input_shape']}")
        fixes += [f"dataset.input_shape=[{','.join(map(str, theirs.get('input_shape') or []))}]"] * files
    resize = (before.get("image") or {}).get("shorter_side")
    if resize != (now["image"] or {}).get("shorter_side"):
        differ.append("the image resize")
        fixes += [f"dataset.resize={'null' if resize is None else resize}"] * files
    try:
        mean, std = np.asarray(before["mean"], float), np.asarray(before["std"], float)
        shift = np.abs(np.asarray(now["mean"], float) - mean) / std
        scale = np.abs(np.log(np.asarray(now["std"], float) / std))
        if shift.max() >= 0.25 or scale.max() >= np.log(1.25):
            differ.append("the mean and std")
            fixes.append(_normalize_override(mean, std, theirs.get("input_dtype")))
    except (KeyError, TypeError, ValueError):  # shapes that do not broadcast: the input shapes differ, said above
        pass
    if not differ:
        return None
    return (
        f"init_from: the source run read its inputs otherwise ({'; '.join(differ)}: see its checkpoints/model.json), "
        f"so its weights now see inputs unlike those they learned on. "
        + (f"To read them as it did, add: {' '.join(fixes)}" if fixes else "Give this run the source's dataset.")
    )


def _normalize_override(mean: np.ndarray, std: np.ndarray, input_dtype: object) -> str:
    """dataset.normalize as the command line takes it, from a model card's statistics: per channel, on the 0..1 scale
    of uint8 pixels (training.build.fixed_normalizer's), to 6 significant digits."""
    scale = 255.0 if input_dtype == "uint8" else 1.0
    values = lambda a: ",".join(f"{v / scale:.6g}" for v in a.reshape(-1).tolist())  # noqa: E731
    return f"'dataset.normalize={{mean:[{values(mean)}],std:[{values(std)}]}}'"
