"""The resume table: what `runner train resume=RUN KEY=VALUE` does with each key, applied or refused, and why.

    runner train resume=outputs/2026-11-22/10-31-07 optimizer.lr=1e-4   # applied: optimizer.*
    runner train resume=outputs/2026-11-22/10-31-07 model=mlp           # refused: model

The first pattern that matches a key decides (`resume_rule`), so no row may sit behind an earlier one that matches
every key it does (`shadowed`, tested): such a row can never decide, and its words are never read. The `trainer.*`
rows come from the knobs' declarations (training/recipe.py), a table's or arrays' file keys from
config/command_line.py's DATA_FILE_KEYS. docs/resume.md shows the table (tested).
"""

from __future__ import annotations

from fnmatch import fnmatchcase
from typing import NamedTuple

from runner.config.command_line import DATA_FILE_KEYS
from runner.training.recipe import KNOBS


class Row(NamedTuple):
    """One row of the resume table: the keys it matches (fnmatch), whether an override of them is applied, and what
    it does when applied or why it is refused."""

    pattern: str
    applied: bool
    text: str


def trainer_rules() -> list[Row]:
    """The resume table's trainer rows, from the knobs' declarations (training/recipe.py): each key, and each
    group of keys (trainer.ema) as a whole, applied only when every key in it is."""
    rows = [Row(k.path, k.resume is not None, k.resume or k.refuse or "") for k in KNOBS]
    for group in dict.fromkeys(k.key.split(".")[0] for k in KNOBS if "." in k.key):
        inner = [row for row in rows if row.pattern.startswith(f"trainer.{group}.")]
        refused = next((row for row in inner if not row.applied), None)
        rows.append(Row(f"trainer.{group}", refused is None, (refused or inner[0]).text))
    return rows


TRACKERS = "the trackers from here on (metrics.csv holds the whole run either way)"
MOVED = "where the run continues: its weights and optimizer state are moved there"
STREAMED = "decoded into memory, or streamed"
OWN_OPTIMIZER = "last.pt holds the state of the run's own optimizer, which another cannot take over"
OWN_SCHEDULE = "last.pt holds the run's schedule, which another schedule cannot continue"
OWN_MODEL = "a resumed run keeps its model: last.pt holds that architecture's weights"
OWN_DATA = "it would change the data the run trains on"
OPTIMIZER_VALUE = (
    "set on the restored optimizer (lr, momentum, weight_decay, betas...), in every parameter group but those "
    "optimizer.param_groups gives that option of their own; with a scheduler, a new lr becomes its base from here on"
)

# What `resume=RUN KEY=VALUE` does with each key; the first pattern that matches decides. A key no pattern matches
# is refused (NOT_A_SETTING).
RESUME_OVERRIDES: list[Row] = [
    *trainer_rules(),
    Row("logger", True, TRACKERS),
    Row("logger.*", True, TRACKERS),
    Row("device", True, MOVED),
    Row("device.*", True, MOVED),
    Row("dataset.root", True, "where the same data is read from"),
    # a table's or arrays' own files, moved: their SHA-256 (dataset.sha256) is checked, so they are the same files
    *(Row(key, True, "where the same file is read from (its SHA-256 is checked)") for key in DATA_FILE_KEYS),
    Row("dataset.download", True, "whether missing files may be downloaded"),
    Row("dataset.workers", True, "decoding processes"),
    Row("dataset.in_memory", True, STREAMED),
    Row("dataset.memory_limit_gb", True, STREAMED),
    Row("dataset.cache_dir", True, "where the decoded tensors are cached"),
    Row("optimizer", False, OWN_OPTIMIZER),
    Row("optimizer._*", False, OWN_OPTIMIZER),
    Row("optimizer.param_groups", False, "last.pt holds the state of the optimizer's own parameter groups"),
    Row("optimizer.*", True, OPTIMIZER_VALUE),
    Row("scheduler", False, OWN_SCHEDULE),
    Row("scheduler.*", False, OWN_SCHEDULE),
    Row("model", False, OWN_MODEL),
    Row("model.*", False, OWN_MODEL),
    Row("dataset", False, OWN_DATA),
    Row("dataset.*", False, OWN_DATA),
    Row("seed", False, "every RNG state is restored from last.pt, so a seed would change nothing"),
    Row("init_from", False, "a resumed run's weights are last.pt's: where it started from is part of its history"),
]

NOT_A_SETTING = "it is not a setting a resumed run can change"


def resume_rule(key: str) -> tuple[bool, str]:
    """(applied, text) for an override of `key` on a resumed run."""
    for row in RESUME_OVERRIDES:
        if fnmatchcase(key, row.pattern):
            return row.applied, row.text
    return False, NOT_A_SETTING


def covers(earlier: str, later: str) -> bool:
    """Whether the pattern `earlier` matches every key the pattern `later` does. Both hold only literal characters
    and `*`: `earlier` matching `later`'s own text, its `*` read as a character, means each `*` of `later` falls
    inside one of `earlier`'s, which then takes whatever `later`'s takes."""
    return fnmatchcase(later, earlier)


def shadowed(rows: list[Row] | None = None) -> list[tuple[str, str]]:
    """(row, earlier row) for each row of the table (RESUME_OVERRIDES by default) that an earlier row matches
    wholly: it never decides anything."""
    table = RESUME_OVERRIDES if rows is None else rows
    found = []
    for i, row in enumerate(table):
        earlier = next((e for e in table[:i] if covers(e.pattern, row.pattern)), None)
        if earlier is not None:
            found.append((row.pattern, earlier.pattern))
    return found
