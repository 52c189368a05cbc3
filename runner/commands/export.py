"""`runner export ckpt=RUN format=...`: a run's best.pt as safetensors, torch.export or ONNX, verified.

    runner export ckpt=outputs/2026-11-22/10-31-07 format=onnx
    runner export ckpt=outputs/2026-11-22/10-31-07 format=[safetensors,pt2,onnx] out=deploy/digits

Writes outputs/export/<date>/<time>/ (or out=): the model files, config.json (architecture,
input shape, preprocessing, class names, task) and export_manifest.json (each file's sha256, the
versions, each format's verified difference). Every format is written and verified in a
temporary folder first; files are moved into place only when all of them passed.
"""

from __future__ import annotations

import os
import platform
import shutil
import tempfile
import warnings
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from omegaconf import OmegaConf
from rich.table import Table

from runner.inference.formats import TOLERANCE, check_formats, export
from runner.inference.predictor import load_predictor
from runner.io import signals
from runner.io.console import RunConsole
from runner.io.errors import RunnerError, RunnerWarning, StorageError, storage_error
from runner.io.files import sha256, umask, write_json

if TYPE_CHECKING:
    from omegaconf import DictConfig

    from runner.inference.formats import Exported
    from runner.inference.predictor import Predictor

VERIFY_SAMPLES = 64


def export_job(cfg: DictConfig, out_dir: str | Path) -> dict[str, Any]:
    # export.log is attached once every file is in place
    console = RunConsole()
    if OmegaConf.is_missing(cfg, "ckpt"):
        raise RunnerError(
            "runner export needs ckpt=: the run whose best.pt to export, e.g. "
            "runner export ckpt=outputs/2026-11-22/10-31-07 format=onnx."
        )
    formats = check_formats(list(cfg.format) if OmegaConf.is_list(cfg.format) else cfg.format)
    out = Path(out_dir)
    if any(out.iterdir()):
        raise RunnerError(
            f"export: {out} already holds files; an export never writes over another. Pick an empty or "
            f"new folder with out=, or leave out= unset for a new outputs/export/<date>/<time>/."
        )
    # the card's checks, and the model as runner runs it
    predictor = load_predictor(cfg.ckpt, "cpu")
    card = predictor.card.for_export()
    model = predictor.model.to(memory_format=torch.contiguous_format).eval()
    with console.relay_warnings():
        example, source = verification_batch(cfg.ckpt, predictor, root=cfg.dataset.root)
    console.print(
        f"[bold]runner export[/]  {cfg.ckpt}  to {', '.join(formats)}, verified on {len(example)} samples of {source}"
    )

    try:
        staging = Path(tempfile.mkdtemp(prefix=".export-", dir=out))
    except OSError as err:
        raise StorageError.of(out, err) from None
    # the files already in `out`: they go again when a later one cannot be written
    moved = []
    try:
        done = [export(model, fmt, example, staging, card) for fmt in formats]
        write_json(staging / "config.json", card.to_dict())
        files = [e.file for e in done] + ["config.json"]
        manifest = {
            "checkpoint": str(Path(str(predictor.weights)).resolve()),
            "formats": formats,
            "files": {f: {"sha256": sha256(staging / f), "bytes": (staging / f).stat().st_size} for f in files},
            "input": {
                "name": "x",
                "shape": ["batch", *card.input_shape],
                "dtype": "float32",
                "preprocessing": "config.json's preprocessing block (docs/predict-export.md)",
            },
            "verified": {e.format: {"max_abs_diff": e.max_abs_diff, **e.details} for e in done},
            "verified_on": source,
            "tolerance": TOLERANCE,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "onnx_opset": next((e.details["opset"] for e in done if e.format == "onnx"), None),
        }
        write_json(staging / "export_manifest.json", manifest)
        signals.install().check("before the export was written; nothing was written")
        for f in [*files, "export_manifest.json"]:
            # ordinary files, whatever mode the writer gave them
            os.chmod(staging / f, 0o666 & ~umask())
            (staging / f).rename(out / f)
            moved.append(out / f)
    except Exception as err:
        # a format's writer (safetensors' is Rust: its OSError is text, "os error 28") refused by the storage: the
        # folder it was writing is named, and nothing of the export is left in `out`
        told = storage_error(err, where=out)
        if told is None:
            raise
        for path in moved:
            path.unlink(missing_ok=True)
        raise told from None
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    console.attach(out / "export.log")
    console.print(verified_table(done, source))
    console.print(f"export directory: {out}", soft_wrap=True)
    console.close()
    return {"out": str(out), "formats": formats, "verified": manifest["verified"]}


def verified_table(done: Iterable[Exported], source: str) -> Table:
    table = Table(title=f"exported, and verified against the runner model on {source}", title_justify="left")
    for column in ("format", "file", "largest |difference|", "loaded back with"):
        table.add_column(column, justify="right" if "difference" in column else "left")
    loaders = {"safetensors": "safetensors.torch.load_file", "pt2": "torch.export.load", "onnx": "onnxruntime"}
    for e in done:
        table.add_row(e.format, e.file, f"{e.max_abs_diff:.2g}", loaders[e.format])
    return table


def verification_batch(
    ckpt: str | Path, predictor: Predictor, root: str | Path | None = None
) -> tuple[torch.Tensor, str]:
    """(the first samples of the run's test split, normalised as the model takes them, and where they came from).
    Without the run's data (moved, another machine) random inputs of the right shape, with a warning."""
    from runner.inference.loading import load_test_split

    try:
        split = load_test_split(ckpt, root=root)
        if split is not None:
            x = predictor.normalize(split.x[:VERIFY_SAMPLES])
            return x.contiguous(), "the run's test split"
        reason = "its test split is streamed from files"
    except RunnerError as err:
        reason = str(err).split(". ")[0]
        if "dataset.root" in str(err):
            reason += "; give dataset.root=DIR, where the run's data is now, to verify on it"
    warnings.warn(
        f"export: verifying on random inputs, not the run's test data ({reason})", RunnerWarning, stacklevel=2
    )
    generator = torch.Generator().manual_seed(0)
    return torch.randn(VERIFY_SAMPLES, *predictor.input_shape, generator=generator), "random inputs"
