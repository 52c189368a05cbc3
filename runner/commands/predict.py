"""`runner predict ckpt=RUN input=PATH`: a run's model on new inputs, with the run's own preprocessing.

    runner predict ckpt=outputs/2026-11-22/10-31-07 input=photos/          # a folder of images, any size
    runner predict ckpt=outputs/2026-11-22/10-31-07 input=test topk=3      # the run's own test split

Writes outputs/predict/<date>/<time>/predictions.csv (a row per input) and predict.log. Every input
is read and checked before anything is written: a refused command leaves no directory.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig, OmegaConf
from rich.table import Table

from runner.data.inputs import Inputs
from runner.inference.predictor import load_predictor
from runner.inference.tta import tta_suffix, with_tta
from runner.io import signals
from runner.io.console import RunConsole
from runner.io.errors import RunnerError
from runner.io.files import atomic_write
from runner.training.device import resolve_device

if TYPE_CHECKING:
    from runner.data.splits import Split
    from runner.inference.card import ModelCard
    from runner.inference.predictor import Prediction, Predictor

# rows of predictions.csv shown on the console
SHOWN = 10


def predict_job(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    # predict.log is attached only once the predictions are made: a failure writes nothing
    console = RunConsole()
    for key, example in (("ckpt", "ckpt=outputs/2026-11-22/10-31-07"), ("input", "input=photos/ (or input=test)")):
        if OmegaConf.is_missing(cfg, key):
            raise RunnerError(
                f"runner predict needs {key}=: e.g. runner predict "
                f"{example if key == 'ckpt' else 'ckpt=RUN ' + example}."
            )
    if not isinstance(cfg.topk, int) or cfg.topk < 1:
        raise RunnerError(
            f"topk={cfg.topk} must be a whole number of 1 or more (the classes listed per input, most likely first)."
        )
    device = resolve_device(cfg.device.name)
    predictor = load_predictor(cfg.ckpt, device)
    card = predictor.card
    tta = cfg.get("tta")
    predictor.model = with_tta(predictor.model, tta, task=card.task, input_shape=card.input_shape)
    inputs, truth, no_truth = _inputs(cfg, predictor)
    with_flip = f", tta={tta}" if tta else ""
    console.print(f"[bold]runner predict[/]  {cfg.ckpt}  on {cfg.input} ({len(inputs.x)} samples, {device}{with_flip})")

    stop = signals.install()

    # after each batch: a safe point
    def advance(n: int) -> None:
        progress.advance(task, n)
        stop.check("before the predictions were written; nothing was written")

    with console.progress() as progress:
        task = progress.add_task("predict", total=len(inputs.x), status="")
        result = predictor.predict(inputs.x, cfg.batch_size, progress=advance)
    stop.check("before the predictions were written; nothing was written")
    header, rows = table(inputs, result, card, cfg.topk, truth)
    text = io.StringIO()
    csv.writer(text, lineterminator="\n").writerows([header, *rows])

    out = Path(out_dir)
    atomic_write(out / "predictions.csv", lambda f: f.write(text.getvalue().encode()))
    console.attach(out / "predict.log")
    console.print(preview(header, rows))
    # rows without a label (an empty cell) left out
    if truth is not None and card.task == "classification":
        assert result.indices is not None
        pairs = [(i, t) for i, t in zip(result.indices.tolist(), truth) if t is not None]
        correct = sum(int(i == t) for i, t in pairs)
        console.print(
            f"accuracy{tta_suffix(tta)} {correct / len(pairs):.4f} ({correct} / {len(pairs)} right, against "
            f"{_truth(cfg, card)})"
        )
    # regression against a table's target column; rows whose target is empty left out
    elif truth is not None:
        assert result.values is not None
        pairs = [(v, t) for v, t in zip(result.values[:, 0].tolist(), truth) if t == t]
        mae = sum(abs(v - t) for v, t in pairs) / len(pairs)
        console.print(
            f"mae{tta_suffix(tta)} {mae:.6g} (over {len(pairs)} of {len(truth)} rows, against {_truth(cfg, card)})"
        )
    elif no_truth:
        console.print(no_truth)
    console.print(f"predictions: {out / 'predictions.csv'}")
    console.close()
    return {"predictions": str(out / "predictions.csv"), "samples": len(inputs.x)}


def _inputs(cfg: DictConfig, predictor: Predictor) -> tuple[Inputs, list[Any] | None, str | None]:
    """(Inputs, true class indices or None, why there are none): the run's test split for input=test, else the files
    input= names. Images inside folders named after the run's classes are labelled by them, so the accuracy can be
    shown; images in folders named otherwise get a line that says why it is not."""
    card = predictor.card
    if str(cfg.input) == "test":
        from runner.inference.loading import load_test_split

        split = load_test_split(cfg.ckpt, root=cfg.dataset.root)
        if split is None:
            raise RunnerError(
                "input=test: this run streams its test split from files; point input= at its test images "
                "instead (the folder, or a glob of them)."
            )
        return Inputs(split.x, split.ids, name_column=split.id_name), _split_truth(split, card), None
    inputs = predictor.read(cfg.input)
    # a table with its target column
    if inputs.labels is not None:
        return inputs, inputs.labels, None
    classes = {name: i for i, name in enumerate(card.class_names)}
    if inputs.names and inputs.name_column == "filename" and classes:
        folders = [Path(n).parts[0] if len(Path(n).parts) > 1 else None for n in inputs.names]
        named = [f for f in folders if f is not None and f in classes]
        if len(named) == len(folders):
            return inputs, [classes[f] for f in named], None
        others = sorted({f for f in folders if f is not None and f not in classes})
        if others:
            return inputs, None, _unscored(others, card.class_names, loose=None in folders)
    return inputs, None, None


def _split_truth(split: Split, card: ModelCard) -> list[Any] | None:
    """The test split's own targets: class indices, or (regression, one output) values in the targets' own units."""
    if card.task == "classification":
        return split.y.tolist()
    if split.y.dim() != 2 or split.y.shape[1] != 1:
        return None
    values = split.y[:, 0].double()
    scale = card.preprocessing.get("target_scale")
    # the dataset standardised them (tables, arrays): back in their own units, as the predictions are
    if scale:
        values = values * scale["std"][0] + scale["mean"][0]
    return values.tolist()


def _truth(cfg: DictConfig, card: ModelCard) -> str:
    """What predict's accuracy was measured against."""
    if str(cfg.input) == "test":
        return "the test split"
    table = card.preprocessing.get("table")
    return f"the table's {table['target']} column" if table else "the class folders the images are in"


def _unscored(others: list[str], class_names: list[str], loose: bool) -> str:
    """Why a folder of class folders gets no accuracy: its folders are not the run's class names."""
    few = lambda names: ", ".join(repr(n) for n in names[:4]) + (", ..." if len(names) > 4 else "")  # noqa: E731
    loose_too = " and some images are in no folder" if loose else ""
    return (
        f"no accuracy: the images are labelled by their folders, but the folders {few(others)} are not among this "
        f"run's class names ({few(list(class_names))}){loose_too}. Name each folder after its class, exactly, to "
        f"score them."
    )


def table(
    inputs: Inputs, result: Prediction, card: ModelCard, topk: int, truth: list[Any] | None
) -> tuple[list[str], list[list[Any]]]:
    """predictions.csv: (header, rows), a row per input."""
    first = inputs.name_column if inputs.names else "index"
    names = inputs.names or list(range(len(inputs.x)))
    if card.task != "classification":
        values = result.values
        assert values is not None
        columns = ["value"] if values.shape[1] == 1 else [f"value_{j}" for j in range(values.shape[1])]
        rows = [[n, *(f"{v:.6g}" for v in row)] for n, row in zip(names, values.tolist())]
        # a table's own target column: one value per row (empty where the cell was)
        if truth is not None:
            return [first, *columns, "true_value"], [[*row, _number(t)] for row, t in zip(rows, truth)]
        return [first, *columns], rows
    class_names = card.labels()
    assert result.probs is not None and result.indices is not None and result.labels is not None
    k = min(topk, result.probs.shape[1])
    probs, indices = result.probs.topk(k, dim=1)
    header = [first, "label", "class_index", *(["true_label"] if truth is not None else [])]
    header += [c for j in range(1, k + 1) for c in (f"top{j}_label", f"top{j}_prob")]
    rows = []
    for n, (label, index, p, i) in enumerate(
        zip(result.labels, result.indices.tolist(), probs.tolist(), indices.tolist())
    ):
        true = [] if truth is None else ["" if truth[n] is None else class_names[truth[n]]]
        row = [names[n], label, index, *true]
        rows.append(row + [c for pj, ij in zip(p, i) for c in (class_names[ij], f"{pj:.6f}")])
    return header, rows


def _number(value: float) -> str:
    """A true value for predictions.csv: '' for a missing one (NaN)."""
    return "" if value != value else f"{value:.6g}"


def preview(header: list[str], rows: list[list[Any]]) -> Table:
    """The first rows on the console: the name, the label (and the true one), then the top-k (top1_label is the
    label)."""
    keep = [i for i, c in enumerate(header) if c not in ("class_index", "top1_label")][:8]
    shown = Table(title=f"predictions (first {min(SHOWN, len(rows))} of {len(rows)})", title_justify="left")
    for i in keep:
        shown.add_column(header[i], justify="left" if "label" in header[i] or header[i] == "filename" else "right")
    for row in rows[:SHOWN]:
        shown.add_row(*(str(row[i]) for i in keep))
    return shown
