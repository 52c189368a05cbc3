"""The command line as Hydra reads it: path values quoted for its grammar and read back, and Hydra's errors about a
command line told as runner tells bad input: the problem and a fix the command accepts.

    runner train 'hydra.run.dir="runs/lr=0.001"'   # quoted for Hydra (its grammar refuses = , ~ unquoted), then
                                                   # for the shell: override_value reads runs/lr=0.001 back

    runner train trainer.epoch=3         # Hydra: "Could not override 'trainer.epoch' ... not in struct"
    error: trainer.epoch is not a key runner reads ... Did you mean trainer.epochs? The keys of trainer are: ...

Hydra prints these itself (hydra._internal.utils.run_and_report) and exits. cli.main holds stderr back while
Hydra composes (`held_stderr`): until the job starts only Hydra writes there; if it then exits, what it wrote
is read here, and either told in runner's words (`hydra_problem`) or printed as it was.
"""

from __future__ import annotations

import re
import shlex
import sys
from functools import cache
from pathlib import Path
from typing import Any, TextIO

from runner.data.kinds import data_file_keys

# a dataset's own files (dataset.path, ... of dataset=csv, parquet, arrays: their declarations, data/kinds.py):
# recorded absolute, as dataset.root is
DATA_FILE_KEYS = data_file_keys()
# the arguments that name a path: Hydra reads them quoted ('resume="runs/lr=0.001"'), runner expands a leading ~
PATH_KEYS = (
    "resume",
    "init_from",
    "ckpt",
    "input",
    "out",
    "dataset.root",
    *DATA_FILE_KEYS,
    "model.pretrained_path",
    "hydra.run.dir",
    "hydra.sweep.dir",
)
# a backslash before `${` escapes OmegaConf's interpolation (`\${` is a literal `${`), and backslashes before it
# then come in pairs; every other backslash is literal
_INTERPOLATION = re.compile(r"(\\*)\$\{")


class HeldStderr:
    """sys.stderr held back between `install()` and `release()`; a plain pass-through afterwards (a logging
    handler created meanwhile may keep a reference to this object)."""

    def __init__(self) -> None:
        # the stream held back from, once installed
        self.real: TextIO = sys.stderr
        self.text = ""
        self.holding = False

    def install(self) -> None:
        self.real, self.text, self.holding = sys.stderr, "", True
        sys.stderr = self

    def release(self, write: bool = True) -> str | None:
        """Stop holding. Returns what was held (None when nothing was being held), after writing it to the real
        stderr when `write`."""
        if not self.holding:
            return None
        text, self.text, self.holding = self.text, "", False
        if sys.stderr is self:
            sys.stderr = self.real
        if write and text:
            self.real.write(text)
        return text

    def write(self, text: str) -> int:
        if self.holding:
            self.text += text
            return len(text)
        return self.real.write(text)

    # isatty, fileno, flush, encoding: the real stream's
    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


held_stderr = HeldStderr()


def hydra_problem(text: str, command: str, overrides: list[str]) -> str | None:
    """Hydra's error `text` about the user's `overrides` of `runner COMMAND`, in runner's words with a fix; None
    for anything else (Hydra's own --help, a job's error), which is then printed as it was."""
    import re

    lexer = re.search(r"LexerNoViableAltException: (\S+)", text)
    if lexer:
        # runner may have passed it on under another key (out=: hydra.run.dir)
        value = lexer.group(1).partition("=")[2]
        bad = next((o for o in overrides if o.partition("=")[2] == value), None)
        key, _, value = (bad or "").partition("=")
        if not value.startswith("~"):
            return None
        # runner expands their leading ~ itself
        path = key in PATH_KEYS
        quoted = f"'{key}=\"{value}\"' (runner expands the ~ of {key}), or " if path else ""
        return (
            f"'{bad}' cannot be read by Hydra's override grammar, where a leading '~' deletes a key. Write it as "
            f"{quoted}{key}={value.replace('~', '$HOME', 1)} (the shell expands $HOME)."
        )
    present = re.search(r"Could not append to config. An item is already at '([^']+)'", text)
    if present:
        key = present.group(1)
        return (
            f"+{key}=... adds a key, and {key} is already in the config: set it without the + ({key}=VALUE). "
            f"Nothing was changed."
        )
    missing = re.search(r"Could not find '([^']+)'", text)
    if missing:
        return unknown_option(missing.group(1), text, overrides)
    merging = re.search(r"Error merging override (.+)\n\s*Cannot merge \w+ with \w+", text)
    if merging:
        full_key = re.search(r"full_key: (\S+)", text)
        key = full_key.group(1) if full_key else merging.group(1).partition("=")[0]
        return wrong_shape(merging.group(1), key, command, group_choices(overrides))
    found = re.search(r"Could not override '([^']+)'", text)
    if not found:
        return None
    # imports torch: only for this message
    from runner.config.checks import unknown_key

    key = found.group(1)
    parent = key.rpartition(".")[0]
    allowed = config_keys(command, overrides, parent)
    return None if allowed is None else unknown_key(key, allowed)


def unknown_option(wanted: str, text: str, overrides: list[str]) -> str | None:
    """Hydra's "Could not find 'model/resnet'" (its `text` lists the group's options) in runner's words: the option
    nearest to the one asked for, the options there are, and where a user's own goes. None when `text` lists none."""
    import difflib

    listed = re.search(r"Available options in '([^']+)':\n((?:[ \t]+\S+\n?)*)", text)
    if not listed:
        return None
    group, options = listed.group(1), listed.group(2).split()
    name = wanted[len(group) + 1 :] if wanted.startswith(group + "/") else wanted
    near = difflib.get_close_matches(name, options, n=1)
    near = near or [o for o in options if o.startswith(name) or name.startswith(o)][:1]
    typed = any(o.lstrip("+~").removeprefix("override ") == f"{group}={name}" for o in overrides)
    where = text.partition(": Could not find")[0].removeprefix("In ").strip("'")
    head = f"{group}={name} is" if typed else f"{group}={name}, named in {where}, is"
    hint = f"Did you mean {group}={near[0]}? " if near else ""
    own = (
        ""
        if group.startswith("hydra/")
        else f" Your own {group} is a YAML file in a folder given with --config-dir: DIR/{group}/NAME.yaml, then "
        f"{group}=NAME."
    )
    return f"{head} not an option of {group}. {hint}The options are: {', '.join(options)}.{own}"


def wrong_shape(given: str, key: str, command: str, groups: list[str]) -> str:
    """Hydra's "Cannot merge DictConfig with ListConfig" for the override `given` of `key` in runner's words: the
    form `key` takes (its keys one by one for a mapping; a list like its default for a list), as the config
    composed with the command line's group choices `groups` holds it."""
    from runner.config.checks import typed

    node = _composed(command, groups, key)
    if isinstance(node, dict):
        first, value = next(iter(node.items()), ("KEY", "VALUE"))
        example = f"{key}.{first}={typed(value) if not isinstance(value, bool) else str(value).lower()}"
        return (
            f"'{given}' gives {key} a value of another shape: {key} is a mapping of settings, each set by its own "
            f"key, e.g. {example}. Its keys are: {', '.join(map(str, node))}."
        )
    if isinstance(node, list):
        return (
            f"'{given}' gives {key} a value of another shape: {key} is a list, given in brackets, e.g. "
            f"{key}={typed(node)}."
        )
    return f"'{given}' gives {key} a value of another shape than the config's: set {key}=VALUE with a plain value."


def _composed(command: str, overrides: list[str], path: str) -> object:
    """The value at `path` (a plain dict, list or value) of the config `runner COMMAND` composes with `overrides`;
    None when it does not compose or has no such key."""
    from hydra import compose, initialize_config_module
    from hydra.core.global_hydra import GlobalHydra
    from omegaconf import OmegaConf

    GlobalHydra.instance().clear()
    try:
        with initialize_config_module("runner.configs", version_base="1.3"):
            cfg = compose(command, overrides=overrides)
        node = OmegaConf.select(cfg, path) if path else cfg
        return OmegaConf.to_container(node, resolve=False) if OmegaConf.is_config(node) else node
    except Exception:
        return None
    finally:
        GlobalHydra.instance().clear()


def config_keys(command: str, overrides: list[str], path: str) -> list[str] | None:
    """The keys at `path` of the config `runner COMMAND` composes with the group choices among `overrides`
    (dataset=X: the key that failed may be one of the others); None when that does not compose (a group of a
    user's --config-dir)."""
    node = _composed(command, group_choices(overrides), path)
    return [str(k) for k in node] if isinstance(node, dict) else None


def group_choices(overrides: list[str]) -> list[str]:
    """The overrides among `overrides` that choose an option of one of runner's config groups (dataset=csv)."""
    from importlib.resources import files

    from hydra.core.override_parser.overrides_parser import OverridesParser

    groups_here = {p.name for p in files("runner.configs").iterdir() if p.is_dir() and not p.name.startswith("_")}
    groups = []
    for text in overrides:
        try:
            (override,) = OverridesParser.create().parse_overrides([text])
        except Exception:
            continue
        if override.key_or_group in groups_here and not override.is_add() and override.package is None:
            groups.append(text)
    return groups


@cache
def _parser() -> Any:
    from hydra.core.override_parser.overrides_parser import OverridesParser

    return OverridesParser.create()


def grammar_refuses(text: str) -> bool:
    """True when Hydra's override grammar cannot read `text` (KEY=VALUE) at all (`out=runs/a=b`, `out=ü`)."""
    try:
        _parser().parse_override(text)
    except Exception:
        return True
    return False


def override_value(text: str) -> str:
    """The value Hydra gives the config for the override `text` (KEY=VALUE): quotes removed, escapes undone.

    The text after `=` as it is where the parser refuses the override (Hydra then reports the grammar error itself)
    and where the value is not one string (null, 3, a sweep a,b). An interpolation stays in the value, to be resolved
    by Hydra; an escaped one (`\\${`) is given as the text `${` it stands for."""
    raw = text.split("=", 1)[1]
    try:
        value = _parser().parse_override(text).value()
    except Exception:
        return raw
    if not isinstance(value, str):
        return raw
    runs = [len(m.group(1)) for m in _INTERPOLATION.finditer(value)]
    if any(n % 2 == 0 for n in runs):
        return value
    return _INTERPOLATION.sub(lambda m: "\\" * (len(m.group(1)) // 2) + "${", value)


def quote_value(text: str) -> str:
    """`text` as a quoted value of Hydra's grammar that Hydra and OmegaConf read back as exactly `text`.

    In a quoted value a backslash escapes only the quote after it (and the closing quote), so runs of backslashes
    there are doubled; `${` inside quotes is still an interpolation, so it becomes `\\${`."""
    text = _INTERPOLATION.sub(lambda m: m.group(1) * 2 + "\\${", text)
    text = re.sub(r'(\\*)("|$)', lambda m: m.group(1) * 2 + ("\\" if m.group(2) else "") + m.group(2), text)
    return f'"{text}"'


def override(key: str, path: str | Path) -> str:
    """`key=path` that Hydra reads back as exactly `path`: as it is when Hydra's grammar takes it unquoted
    (outputs/2026-11-22/10-31-07), else quoted (quote_value)."""
    path = str(path)
    text = f"{key}={path}"
    try:
        plain = "${" not in path and _parser().parse_override(text).value() == path
    except Exception:
        plain = False
    return text if plain else f"{key}={quote_value(path)}"


def command_arg(key: str, path: object) -> str:
    """The `key=path` argument to print in a command a user pastes into a shell: quoted for Hydra (override), then
    for the shell. A relative path starting with ~ becomes ./~..., since runner expands a leading ~."""
    path = str(path)
    return shlex.quote(override(key, f"./{path}" if path.startswith("~") else path))
