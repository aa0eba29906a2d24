"""YAML files and overrides for configs: ``include:`` merging and ``section.key=value`` overrides.

Shared by :mod:`promptmix.training.config` (one run) and :mod:`promptmix.training.pipeline`
(a sequence of runs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping with its ``include:`` files merged underneath (paths relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: include cycle through {[str(p) for p in _seen]}")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as err:
        raise ValueError(f"{path} is not valid YAML: {err}") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a mapping, found {type(data).__name__}")
    includes = data.pop("include", None) or []
    merged: dict[str, Any] = {}
    for inc in [includes] if isinstance(includes, str) else includes:
        merged = deep_merge(merged, read_yaml(path.parent / inc, (*_seen, path)))
    return deep_merge(merged, data)


def deep_merge(base: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
    """``update`` over ``base``, recursing into mappings; lists, scalars and an explicit empty
    mapping (``group_lr: {}``) replace what ``base`` had."""
    out = dict(base)
    for key, value in update.items():
        merge = isinstance(value, dict) and value and isinstance(out.get(key), dict)
        out[key] = deep_merge(out[key], value) if merge else value
    return out


def apply_overrides(data: dict[str, Any], overrides: list[str] | dict[str, Any]) -> dict[str, Any]:
    """Apply ``["optim.lr=0.1", "data.tasks=[rte, cb]"]`` (values parsed as YAML) or a
    ``{"optim.lr": 0.1}`` mapping to a config dict."""
    items = overrides.items() if isinstance(overrides, dict) else [parse_override(o) for o in overrides]
    out = dict(data)
    for dotted, value in items:
        keys = dotted.split(".")
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            node[key] = dict(child) if isinstance(child, dict) else {}
            node = node[key]
        node[keys[-1]] = value
    return out


def parse_override(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key.strip():
        raise ValueError(f"override {text!r} must look like section.key=value, e.g. optim.lr=0.1")
    try:
        return key.strip(), yaml.safe_load(raw)
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: value is not valid YAML: {err}") from None
