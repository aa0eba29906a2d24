"""Config files into config dataclasses: YAML with ``include:`` merging, ``section.key=value``
overrides, a field with its help (:func:`option`) and the list of every key. Validation is
:func:`promptmix._validation.validate` (re-exported here), the one loader of every config and
record, whose errors name the file, the key and the value.

Shared by :mod:`promptmix.training.config` (one run), :mod:`promptmix.training.pipeline` (a
sequence of runs) and the reading of a saved run's config; it imports nothing of promptmix but
the YAML guard and the validation, so reading a run needs no training code. Numbers are read as
YAML 1.2 reads them: PyYAML follows YAML 1.1, where ``1e-5`` (no dot) is a string, which the
strict config types would then refuse.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from promptmix._validation import STRICT, field_types, type_text, validate
from promptmix._yamlguard import check_yaml

__all__ = [
    "STRICT",
    "ConfigKey",
    "ConfigLoader",
    "apply_overrides",
    "config_keys",
    "deep_merge",
    "load_yaml",
    "option",
    "parse_override",
    "read_yaml",
    "require",
    "validate",
]


def option(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A config dataclass field with its help text (what :func:`config_keys` lists)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"help": text})
    return dataclasses.field(default=default, metadata={"help": text})


def require(condition: bool, message: str) -> None:
    """A rule between a config's fields (in ``__post_init__``; choices and bounds are declared on
    the fields instead): ValueError(``message``) unless ``condition``."""
    if not condition:
        raise ValueError(message)


class ConfigLoader(yaml.SafeLoader):
    """``yaml.SafeLoader`` with YAML 1.2's floats (``1e-5``, ``3E2``) as floats."""


ConfigLoader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)


def load_yaml(text: str, source: str = "<yaml>") -> Any:
    """Parse ``text``, first refusing alias bombs, self-containing aliases and deep nesting
    (:func:`promptmix._yamlguard.check_yaml`), which would exhaust memory or the stack."""
    check_yaml(text, source)
    return yaml.load(text, Loader=ConfigLoader)  # noqa: S506 - a SafeLoader subclass


def read_yaml(path: str | Path, _seen: tuple[Path, ...] = ()) -> dict[str, Any]:
    """A YAML mapping with its ``include:`` files merged underneath (paths relative to the file)."""
    path = Path(path).resolve()
    if path in _seen:
        raise ValueError(f"{path}: include cycle through {[str(p) for p in _seen]}")
    if not path.is_file():
        raise FileNotFoundError(f"config file {path} does not exist")
    try:
        data = load_yaml(path.read_text(encoding="utf-8"), str(path)) or {}
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
        return key.strip(), load_yaml(raw, f"--set {text}")
    except yaml.YAMLError as err:
        raise ValueError(f"override {text!r}: value is not valid YAML: {err}") from None


@dataclass(frozen=True)
class ConfigKey:
    """One config key as ``promptmix train --help`` lists it."""

    key: str
    type: str
    default: Any
    help: str


def config_keys(kind: type, prefix: str = "") -> list[ConfigKey]:
    """Every key of ``kind`` and its sections, dotted (``method.attempt.attn_dim``), in order."""
    keys = []
    types = field_types(kind)
    for f in dataclasses.fields(kind):
        value = f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default
        if dataclasses.is_dataclass(value):
            keys += config_keys(type(value), f"{prefix}{f.name}.")
        else:
            keys.append(ConfigKey(prefix + f.name, type_text(types[f.name]), value, f.metadata.get("help", "")))
    return keys
