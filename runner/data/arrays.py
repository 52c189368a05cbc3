"""Arrays you already have: dataset=arrays reads x and y from a .npz, a .pt or two .npy files.

    data.npz / data.pt   x and y (split here like a table), or x_train, y_train and, where you have them,
                         x_val, y_val, x_test, y_test (a part that is missing is held out of the training part)
    x.npy + y.npy        dataset.path=x.npy dataset.target_path=y.npy

A .npz is read by numpy.load without pickles, a .pt by torch.load(weights_only=True) (a dict of tensors or
arrays). The samples' shape is x.shape[1:]; the task is read from y's dtype: integers and booleans are class
labels (classes: y's distinct values, sorted), floats a regression target (y of shape (N,) or (N, outputs),
standardised by the training part's mean and std and reported in its own units, as for a table). Class labels
that are indices 0..K-1 take their names from an array `classes` beside x and y (numpy.savez(path, x=x, y=y,
classes=["cat", "dog"])) or from dataset.class_names=[cat,dog], which wins: class i is named classes[i] in
predictions, the confusion matrix and reports. x stays uint8
when it is uint8 (images: the run's augmentation and normalisation apply as for any image dataset); anything
else becomes float32. Hold-outs are drawn as for dataset=csv (splits.folded_holdouts, train_holdouts), so the same
rows as arrays and as a CSV give the same training; so are dataset.folds' folds, and dataset.group names an array of
the file with one group per sample of x (numpy.savez(path, x=x, y=y, subject=subject); dataset.group=subject).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from runner.data.kinds import ARRAYS
from runner.data.splits import (
    Split,
    Splits,
    check_folds,
    class_index,
    class_order,
    folded_holdouts,
    group_codes,
    target_scale_of,
    train_holdouts,
    unknown_classes,
)
from runner.io.errors import RunnerError, one_line
from runner.io.files import check_data_sha256, data_sha256

if TYPE_CHECKING:
    from collections.abc import Sequence

    import torch

PARTS = ("train", "val", "test")
# read_arrays' key of the file's arrays other than x, y and classes
BESIDE = "arrays beside x and y"


def read_arrays(path: str | Path, target_path: str | Path | None = None) -> dict[str, np.ndarray]:
    """{name: numpy array} from a .npz, a .pt or a .npy (with `target_path`, the .npy of y): the names x, y or
    x_train, y_train, x_val, y_val, x_test, y_test. RunnerError naming the file for a missing or unreadable file,
    a name missing, arrays of different lengths, or values that are not numbers."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RunnerError(f"dataset.path={path} names no file. Give the path of a .npz, .pt or .npy file.")
    suffix = path.suffix.lower()
    if suffix == ".npy" or target_path:
        if suffix != ".npy" or not target_path or Path(target_path).suffix.lower() != ".npy":
            raise RunnerError(
                f"dataset.path={path}: a .npy file holds one array, so give the samples and the targets as two: "
                f"dataset.path=x.npy dataset.target_path=y.npy (or both in one .npz or .pt file, as x and y)."
            )
        target = Path(target_path).expanduser()
        if not target.is_file():
            raise RunnerError(f"dataset.target_path={target} names no file. Give the .npy file of the targets.")
        found = {"x": _npy(path, "dataset.path"), "y": _npy(target, "dataset.target_path")}
    elif suffix == ".npz":
        try:
            with np.load(path, allow_pickle=False) as archive:
                found = {name: archive[name] for name in archive.files}
        except (ValueError, OSError, zipfile.BadZipFile) as err:
            raise RunnerError(
                f"dataset.path={path} is not a readable .npz of number arrays ({one_line(err, 160)}). "
                f"Save it with numpy.savez(path, x=..., y=...)."
            ) from None
    elif suffix == ".pt":
        from runner.io.serialization import safe_load

        loaded = safe_load(path)
        if not isinstance(loaded, dict):
            raise RunnerError(
                f"dataset.path={path} holds a {type(loaded).__name__}, not a dict of arrays. Save it as "
                f"torch.save({{'x': x, 'y': y}}, '{path.name}')."
            )
        found = {str(k): _numpy(v) for k, v in loaded.items()}
    else:
        raise RunnerError(
            f"dataset.path={path}: dataset=arrays reads .npz, .pt and .npy files, not {suffix or 'extension-less'} "
            f"ones. For a table, use dataset=csv or dataset=parquet."
        )
    return _check(found, path)


def _numpy(value: Any) -> np.ndarray:
    """A tensor (any dtype, on any device, with or without grad) or array-like as a numpy array."""
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        return (value.float() if value.dtype == torch_bfloat16() else value).numpy()
    return np.asarray(value)


def torch_bfloat16() -> torch.dtype:
    import torch

    return torch.bfloat16


def _npy(path: Path, what: str) -> np.ndarray:
    try:
        return np.load(path, allow_pickle=False)
    except (ValueError, OSError) as err:
        raise RunnerError(
            f"{what}={path} is not a readable .npy array of numbers ({one_line(err, 160)}). Save it with numpy.save."
        ) from None


def _check(found: dict[str, Any], path: Path) -> dict[str, Any]:
    """The arrays a dataset uses (x, y; or x_train, y_train and the val and test pairs it has), checked: numbers,
    finite, one y per x, one sample shape; x of shape (N,) taken as (N, 1)."""
    single = "x" in found or "y" in found
    parts = [""] if single else [f"_{p}" for p in PARTS if f"x_{p}" in found or f"y_{p}" in found]
    if not parts:
        parts = [""]
    names = [f"{v}{suffix}" for suffix in parts for v in "xy"]
    missing = [n for n in names if n not in found]
    if missing or (not single and "_train" not in parts):
        raise RunnerError(
            f"{path} has no array named {', '.join(missing) or 'x_train, y_train'} (it has: "
            f"{', '.join(found) or 'none'}). Name the arrays x and y, or x_train and y_train (with x_val, y_val, "
            f"x_test, y_test where you have them)."
        )
    out: dict[str, Any] = {}
    if "classes" in found:
        out["classes"] = _class_names(found["classes"], f"{path}: its classes array")
    for name in names:
        a = found[name]
        if a.dtype.kind not in "biuf":
            raise RunnerError(f"{path}: {name} holds {a.dtype} values; dataset=arrays needs numbers.")
        if a.ndim == 0:
            raise RunnerError(f"{path}: {name} is a single number; it needs one entry per sample.")
        if a.dtype.kind == "f" and not np.isfinite(a).all():
            row = int(np.argwhere(~np.isfinite(a))[0][0])
            raise RunnerError(
                f"{path}: {name} holds NaN or infinity in sample {row}. Fill or drop it (dataset=csv imputes "
                f"missing values and flags them)."
            )
        if name.startswith("x") and a.ndim == 1:
            # one number per sample: one feature
            a = a[:, None]
        if name.startswith("x") and a.ndim == 4 and a.shape[-1] in (1, 3, 4) and a.shape[1] not in (1, 3, 4):
            raise RunnerError(
                f"{path}: {name} has shape {list(a.shape)}, images with their channels last (N, H, W, C); runner's "
                f"models take (N, C, H, W). Save x.transpose(0, 3, 1, 2) instead."
            )
        out[name] = a
    for suffix in parts:
        x, y = out[f"x{suffix}"], out[f"y{suffix}"]
        if len(x) != len(y):
            raise RunnerError(f"{path}: x{suffix} has {len(x)} samples and y{suffix} {len(y)}; give one y per x.")
    shapes = {a.shape[1:] for n, a in out.items() if n.startswith("x")}
    if len(shapes) > 1:
        raise RunnerError(f"{path}: the x arrays' samples differ in shape ({sorted(shapes)}); they must be one shape.")
    # the file's other arrays, unchecked: dataset.group may name one
    out[BESIDE] = {n: a for n, a in found.items() if n not in names and n != "classes"}
    return out


def _class_names(names: Any, what: str) -> list[str]:
    """Class names as a list of distinct texts (from a .npz's `classes` array or dataset.class_names)."""
    names = [str(n) for n in np.asarray(names).reshape(-1).tolist()]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if len(names) < 2 or repeated:
        problem = f"names {repeated[0]!r} twice" if repeated else f"holds {len(names)} name"
        raise RunnerError(
            f"{what} {problem}: class i is named by entry i, so it needs one distinct name per class, e.g. "
            f"dataset.class_names=[cat,dog]."
        )
    return names


@dataclass(frozen=True)
class Plan:
    """Arrays read and split: the task, the classes ([] for regression), and each part's (x, y, the rows of the
    file's array they are)."""

    task: str
    classes: list[str]
    # train, val, test -> (x, y, row indices) numpy arrays
    parts: dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]
    # y's values are indices into `classes` (names given), not labels to look up there
    by_index: bool = False

    def indices(self, labels: Any) -> np.ndarray | None:
        """The class indices of labels (None for regression, which is not stratified)."""
        if self.by_index:
            return np.asarray(labels).astype(np.int64)
        return class_index(labels, self.classes)


_PLANS: dict[tuple, Plan] = {}
_FILES: dict[tuple, dict[str, np.ndarray]] = {}


def _read(path: str, target_path: str | None) -> dict[str, Any]:
    """read_arrays, once per process for the same files."""
    key = (path, target_path)
    if key not in _FILES:
        _FILES[key] = read_arrays(path, target_path)
    return _FILES[key]


def _infer(found: dict[str, Any]) -> str:
    """classification or regression from the training targets: integers and booleans are class labels, and so are
    floats that are whole numbers with few distinct values (table.infer_task's rule, so the same column as CSV and
    as arrays is the same task); other floats and y of several columns a regression target."""
    import pandas as pd

    from runner.data.table import infer_task

    y = found["y"] if "y" in found else found["y_train"]
    if y.ndim > 1:
        return "regression"
    if y.dtype.kind in "biu":
        return "classification"
    return infer_task(pd.Series(y))


def plan(
    path: str | None,
    target_path: str | None = None,
    task: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    seed: int = 0,
    class_names: Sequence[str] | None = None,
    folds: int | None = None,
    fold: int | None = None,
    group: str | None = None,
) -> Plan:
    """The Plan of dataset=arrays' keys, computed once per process (the resolvers and the dataset function share
    it); `task` None is read from y (_infer) first, so the resolvers' plan and the dataset function's are one."""
    if not path:
        raise RunnerError("dataset.path must be set: a .npz or .pt file of x and y, e.g. dataset.path=data.npz.")
    task = task or _infer(_read(path, target_path))
    names = None if class_names is None else tuple(str(n) for n in class_names)
    check_folds(folds, fold)
    key = (path, target_path, task, val_fraction, test_fraction, seed, names, folds, fold, group)
    if key not in _PLANS:
        _PLANS[key] = _plan(*key)
    return _PLANS[key]


def _named(found: dict[str, Any], names: Sequence[str] | None, path: str) -> tuple[list[str], bool]:
    """(class names, whether y's values are their indices): the names dataset.class_names or the file's `classes`
    array give, y's values being indices into them; else y's distinct values, sorted (class_order)."""
    given = names if names is not None else found.get("classes")
    if given is None:
        return class_order(found.get("y", found.get("y_train"))), False
    what = "dataset.class_names" if names is not None else f"{path}: its classes array"
    classes = _class_names(given, what)
    for name in [n for n in found if n.startswith("y")]:
        labels = found[name]
        if (labels.dtype.kind == "f" and not (labels == labels.round()).all()) or labels.min() < 0:
            raise RunnerError(f"{what} names classes by index, and {name} holds {labels.min()!r}, not an index.")
        if labels.max() >= len(classes):
            raise RunnerError(
                f"{what} has {len(classes)} names (class 0 to {len(classes) - 1}), and {name} holds the class "
                f"{int(labels.max())}. Give one name per class, in the order of y's values: "
                f"dataset.class_names=[{','.join([*classes, '...'])}]."
            )
    return classes, True


def _plan(
    path: str,
    target_path: str | None,
    task: str,
    val_fraction: float,
    test_fraction: float,
    seed: int,
    names: Sequence[str] | None,
    folds: int | None,
    fold: int | None,
    group: str | None,
) -> Plan:
    if task not in ("classification", "regression"):
        raise RunnerError(f"dataset.task={task}: use classification or regression.")
    found = _read(path, target_path)
    single = "x" in found
    where = f"dataset.path={path}"
    train_y = found["y"] if single else found["y_train"]
    classes: list[str] = []
    by_index = False
    if task == "classification":
        if train_y.ndim != 1:
            raise RunnerError(f"{path}: class labels y must be one per sample (shape (N,)), not {list(train_y.shape)}.")
        classes, by_index = _named(found, names, path)
        if len(classes) < 2:
            raise RunnerError(f"{path}: y has one class only ({classes[0]}); classification needs two.")
        for part in ("val", "test"):
            unknown = [] if by_index else unknown_classes(found.get(f"y_{part}", []), classes)
            if unknown:
                raise RunnerError(f"{path}: y_{part} has classes y_train lacks: {', '.join(unknown[:5])}.")
    elif names is not None:
        raise RunnerError(
            "dataset.class_names names classes, and this is a regression (y of floats): leave it out, or set "
            "dataset.task=classification for y of class indices."
        )
    index = Plan(task, classes, {}, by_index).indices
    folding: dict[str, Any] = dict(folds=folds, fold=fold, groups=_groups(found, group, path, single), where=where)
    if single:
        x, y = found["x"], found["y"]
        drawn = folded_holdouts(index(y), len(y), val_fraction, test_fraction, seed, classes=classes, **folding)
        return Plan(task, classes, {name: (x[rows], y[rows], rows) for name, rows in drawn.items()}, by_index)
    x, y = found["x_train"], found["y_train"]
    given = [name for name in ("val", "test") if f"x_{name}" in found]
    drawn = train_holdouts(index(y), len(y), val_fraction, test_fraction, seed, given=given, classes=classes, **folding)
    parts = {name: (x[rows], y[rows], rows) for name, rows in drawn.items()}
    for name in given:
        parts[name] = (found[f"x_{name}"], found[f"y_{name}"], np.arange(len(found[f"y_{name}"])))
    return Plan(task, classes, parts, by_index)


def _groups(found: dict[str, Any], group: str | None, path: str, single: bool) -> np.ndarray | None:
    """The group code of each sample of x (or x_train): dataset.group names an array of the file beside x and y, one
    group per sample; None without dataset.group."""
    if group is None:
        return None
    x, beside = "x" if single else "x_train", found.get(BESIDE, {})
    if group not in beside:
        others = ", ".join(sorted(beside))
        raise RunnerError(
            f"dataset.group={group}: {path} has no array of that name beside {x}. dataset.group names an array of one "
            f"group per sample of {x} (numpy.savez(path, x=x, y=y, subject=subject); dataset.group=subject)"
            f"{'; its other arrays: ' + others if others else ''}."
        )
    return group_codes(beside[group], path, f"dataset.group={group}", len(found[x]))


def _keys(dataset: Any, task: str | None = None) -> dict[str, Any]:
    """plan()'s keywords from a dataset config node."""
    get = dataset.get
    names = get("class_names")
    return {
        "path": get("path"),
        "target_path": get("target_path"),
        "task": task,
        "val_fraction": get("val_fraction", 0.1),
        "test_fraction": get("test_fraction", 0.2),
        "seed": get("split_seed", 0),
        "class_names": None if names is None else tuple(names),
        "folds": get("folds"),
        "fold": get("fold"),
        "group": get("group"),
    }


def arrays_info(what: str, dataset: Any) -> Any:
    """OmegaConf resolver behind dataset=arrays' task (`${arrays:task}`: read from y), input_shape
    (`${arrays:input_shape}`, a list) and num_classes (`${arrays:num_classes}`: the classes of y, or its outputs for
    regression), with the task the config ends up with (dataset.task, which the user may set)."""
    from omegaconf import OmegaConf

    if OmegaConf.is_config(dataset) and OmegaConf.is_missing(dataset, "path"):
        raise RunnerError("dataset.path must be set: a .npz or .pt file of x and y, e.g. dataset.path=data.npz.")
    if what == "task":
        return plan(**_keys(dataset)).task
    if what == "sha256":
        return data_sha256(*ARRAYS.files(dataset))
    found = plan(**_keys(dataset, dataset.task))
    x, y, _ = found.parts["train"]
    if what == "input_shape":
        return list(x.shape[1:])
    if what == "num_classes":
        if found.task == "classification":
            return len(found.classes)
        return 1 if y.ndim == 1 else int(y.shape[1])
    raise ValueError(f"arrays resolver: unknown field {what}")


def arrays(
    *,
    name: str,
    task: str,
    input_shape: list[int],
    num_classes: int,
    path: str,
    target_path: str | None = None,
    val_fraction: float = 0.1,
    test_fraction: float = 0.2,
    split_seed: int = 0,
    sha256: str | None = None,
    class_names: list[str] | None = None,
    folds: int | None = None,
    fold: int | None = None,
    group: str | None = None,
) -> Splits:
    """dataset=arrays as Splits: x as uint8 (when stored so) or float32 of shape (N, *input_shape), y as int64 class
    indices (in the sorted order of class_names) or float32 (N, outputs) standardised by the training part.
    `sha256`: the files' as the run recorded them (dataset.sha256), refused when they differ now."""
    import torch

    check_data_sha256(sha256, *ARRAYS.files({"path": path, "target_path": target_path}))
    found = plan(path, target_path, task, val_fraction, test_fraction, split_seed, class_names, folds, fold, group)
    scale = target_scale_of(found.parts["train"][1]) if task == "regression" else None
    splits = {}
    for part, (x, y, rows) in found.parts.items():
        samples = torch.from_numpy(np.ascontiguousarray(x if x.dtype == np.uint8 else x.astype(np.float32)))
        if task == "classification":
            targets = torch.from_numpy(found.indices(y))
        else:
            assert scale is not None
            y = y.astype(np.float64).reshape(len(y), -1)
            targets = torch.from_numpy(((y - scale["mean"]) / scale["std"]).astype(np.float32))
        # named in predictions.csv by their row in the file's array (x, or x_test where the file has one), from 0
        splits[part] = Split(samples, targets, rows.tolist(), "index")
    return Splits(splits["train"], splits["val"], splits["test"], class_names=found.classes, target_scale=scale)
