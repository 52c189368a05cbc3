"""Leaked duplicates: samples whose inputs are the same bytes in two splits, so the validation or test figure counts
samples the model trained on. Every dataset kind's splits pass through `check` when they are built
(training/build.build_data): a table's encoded rows, an array's rows, images' decoded pixels (a streamed image folder's
files, by their bytes), each hashed whole.

    runner train dataset=csv dataset.path=t.csv dataset.target=y                          # counted and said (warn)
    runner train dataset=csv dataset.path=t.csv dataset.target=y dataset.duplicates=drop  # the val/test copies go
    runner train dataset=csv dataset.path=t.csv dataset.target=y dataset.duplicates=refuse
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from runner.data.splits import Split
from runner.io.errors import RunnerError

if TYPE_CHECKING:
    from runner.data.splits import Splits
    from runner.data.stream import FileSplit

MODES = ("warn", "drop", "refuse")
# the pairs of splits compared; in each, the second's copies are the ones dropped (never the training split's)
PAIRS = (("train", "val"), ("train", "test"), ("val", "test"))
# samples named in the log per pair
EXAMPLES = 3


def digests(split: Split | FileSplit) -> list[bytes]:
    """Each sample's BLAKE2b digest (16 bytes): of its input tensor's bytes (a Split), or of its file's bytes (a
    streamed FileSplit, whose pixels are decoded batch by batch)."""
    # no validation split (dataset.val_fraction=0): no sample to compare
    if not len(split):
        return []
    if isinstance(split, Split):
        rows = split.x.detach().cpu().contiguous().reshape(len(split), -1).numpy()
        # a row's bytes are its dtype's: features are float32, images uint8
        return [hashlib.blake2b(row.data, digest_size=16).digest() for row in rows]
    return [hashlib.blake2b(Path(path).read_bytes(), digest_size=16).digest() for path, _ in split.samples]


def split_digest(split: Split | FileSplit) -> str:
    """A split's samples as one 12-hex-digit BLAKE2b digest (of their sorted digests, so their order does not count):
    summary.json's `test_rows`, by which runner report tells runs tested on the same samples from runs tested on others
    (folds, a group, a validation fraction drawn first from a training file, dropped duplicates all move test rows)."""
    return hashlib.blake2b(b"".join(sorted(digests(split))), digest_size=6).hexdigest()


def find(splits: Splits) -> dict[str, list[tuple[int, int]]]:
    """{"train_val", "train_test", "val_test"}: for each pair of splits, the (position in the first, position in the
    second) of every sample of the second whose input equals one of the first's."""
    hashed = {name: digests(getattr(splits, name)) for name in ("train", "val", "test")}
    found = {}
    for first, second in PAIRS:
        where: dict[bytes, int] = {}
        for i, digest in enumerate(hashed[first]):
            where.setdefault(digest, i)
        found[f"{first}_{second}"] = [(where[d], j) for j, d in enumerate(hashed[second]) if d in where]
    return found


def name_of(split: Split | FileSplit, index: int) -> str:
    """A sample as predictions.csv names it: its CSV line, array row or file; else its position in the split."""
    if not isinstance(split, Split):
        return str(split.samples[index][0])
    return f"{split.id_name} {split.ids[index]}" if split.ids is not None else f"index {index}"


def check(splits: Splits, mode: str, where: str) -> Splits:
    """The splits, with summary.json's `duplicates` in splits.duplicates: the samples whose inputs two splits share,
    counted per pair and said in splits.notes with a few examples. dataset.duplicates (`mode`): warn keeps them; drop
    removes the validation and test copies (never the training split's; a test sample equal to a validation one goes
    from the test split), counted; refuse raises a RunnerError with the counts and the fix, before anything is
    written."""
    if mode not in MODES:
        raise RunnerError(
            f"dataset.duplicates={mode}: the samples two splits share are warned about (warn), dropped from the "
            f"validation and test splits (drop) or refused (refuse). Use one of {', '.join(MODES)}."
        )
    found = find(splits)
    splits.duplicates = {pair: len(matches) for pair, matches in found.items()}
    if not any(splits.duplicates.values()):
        return splits
    counts = ", ".join(f"{pair.replace('_', '/')} {n}" for pair, n in splits.duplicates.items())
    examples = "; ".join(
        f"{first} {name_of(getattr(splits, first), i)} = {second} {name_of(getattr(splits, second), j)}"
        for (first, second), matches in zip(PAIRS, found.values())
        for i, j in matches[:EXAMPLES]
    )
    if mode == "refuse":
        raise RunnerError(
            f"dataset {where}: samples whose inputs are the same bytes in two splits ({counts}; e.g. {examples}), "
            f"so the validation and test figures would count samples the model trained on (dataset.duplicates="
            f"refuse). Remove the copies from the data, or let runner drop the validation and test copies: "
            f"dataset.duplicates=drop."
        )
    if mode == "warn":
        splits.notes.append(
            f"duplicates: {counts} samples shared between splits (e.g. {examples}): the validation and test figures "
            f"count samples the model trained on. dataset.duplicates=drop removes the val/test copies, refuse stops "
            f"the run"
        )
        return splits
    dropped = {}
    for name in ("val", "test"):
        gone = {j for (_, second), matches in zip(PAIRS, found.values()) if second == name for _, j in matches}
        split = getattr(splits, name)
        if gone and len(gone) == len(split):
            raise RunnerError(
                f"dataset {where}: every one of the {len(split)} samples of its {name} split has its input in another "
                f"split ({counts}), so dataset.duplicates=drop would leave it empty. Give the {name} split samples "
                f"of its own."
            )
        if gone:
            kept = [i for i in range(len(split)) if i not in gone]
            setattr(splits, name, split.subset(torch.tensor(kept, dtype=torch.int64)))
        dropped[name] = len(gone)
    splits.duplicates["dropped"] = dropped
    splits.notes.append(
        f"duplicates: {counts} samples shared between splits (e.g. {examples}); dropped {dropped['val']} from val and "
        f"{dropped['test']} from test (dataset.duplicates=drop)"
    )
    return splits
