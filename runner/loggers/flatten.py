"""A nested config or record as {dotted key: leaf}: what `runner diff` compares and what trackers take as params."""

from __future__ import annotations

from typing import Any


def flatten(tree: object, prefix: str = "") -> dict[str, Any]:
    """{"a.b": leaf} of nested dicts; lists stay leaves (model.channels=[8, 16] is one setting). {} for a non-dict."""
    if not isinstance(tree, dict):
        return {}
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def scalars(tree: object) -> dict[str, bool | int | float | str]:
    """flatten(tree) with each leaf an int, float, str or bool (lists and nulls as their text), as TensorBoard's
    hparams take them."""
    return {k: v if isinstance(v, (bool, int, float, str)) else str(v) for k, v in flatten(tree).items()}
