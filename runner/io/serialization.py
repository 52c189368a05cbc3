"""torch.save and torch.load for runner's files: written atomically, read with weights_only=True.

Every load uses weights_only=True: a file can carry tensors and plain data, never code, and
nothing falls back to weights_only=False.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import torch

from runner.io.errors import RunnerError
from runner.io.files import atomic_write


def save(obj: object, path: str | Path) -> None:
    atomic_write(path, lambda f: torch.save(obj, f))


def safe_load(path: str | Path) -> Any:
    """torch.load(path, weights_only=True), with each way it can fail told as a RunnerError."""
    path = Path(path)
    if not path.is_file():
        raise RunnerError(f"checkpoint {path} does not exist. Point ckpt= at a run directory or a .pt file it holds.")
    import zipfile

    # torch's legacy format is no zip archive, and a file cut short is none either: torch.load tells them apart
    damaged = damaged_member(path) if zipfile.is_zipfile(path) else None
    if damaged:
        raise CorruptCheckpoint(
            f"checkpoint {path} is corrupted: {damaged}, so its bytes are not the ones written (a bit flipped on the "
            f"disk or in a copy). runner refuses it rather than compute with wrong weights. Use another checkpoint "
            f"(checkpoints/best.pt or last.pt of the run, or a copy of this file) or retrain.",
            path,
        )
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    # torch.load fails in many ways on a bad file; each says one of two things
    except Exception as err:
        # torch names a forbidden global further down
        detail = _first_line(err) + " " + " ".join(str(err).split())
    forbidden = re.search(r"GLOBAL ([\w.]+)", detail, flags=re.IGNORECASE)
    if forbidden:
        raise RunnerError(
            f"checkpoint {path} was refused: it holds Python objects other than tensors and plain data "
            f"(it names {forbidden.group(1)}), "
            f"and loading those could run code. runner only loads with weights_only=True. "
            f"If the file is yours, re-save it as torch.save(model.state_dict(), path)."
        )
    raise RunnerError(
        f"checkpoint {path} cannot be read: it is truncated, corrupted or not a PyTorch checkpoint ({detail[:160]}). "
        f"Use another checkpoint (checkpoints/best.pt or last.pt of a completed run) or retrain."
    )


class CorruptCheckpoint(RunnerError):
    """A checkpoint whose zip archive fails its own CRC-32 checks (damaged_member): `path` names it, for a caller that
    says which other file to use (a resume: run/resume/advice.py)."""

    def __init__(self, message: str, path: Path | None = None) -> None:
        super().__init__(message)
        self.path = path


def damaged_member(path: Path) -> str | None:
    """Why the checkpoint `path` is not the file torch.save wrote, from its zip archive's own CRC-32s (torch.load
    does not check them: one flipped bit in a tensor loads as a wrong number); None when every member checks out,
    Reads the whole file once (zipfile's testzip). A file that is no zip archive (cut short, or no checkpoint
    torch.save wrote) is damaged too: a caller that also takes torch's legacy format asks zipfile.is_zipfile first."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as archive:
            bad = archive.testzip()
    except zipfile.BadZipFile:
        return "it is no zip archive (cut short, or not a file torch.save wrote)"
    # an entry zipfile cannot read
    except (OSError, EOFError, ValueError, RuntimeError, NotImplementedError) as err:
        return f"its zip archive cannot be read ({type(err).__name__}: {err})"
    return bad and f"the CRC-32 of its member {bad} does not match the bytes stored"


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0]}" if text else type(err).__name__
