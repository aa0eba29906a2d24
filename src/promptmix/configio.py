"""Config files into config dataclasses: YAML with ``include:`` merging, ``section.key=value``
overrides, validation by pydantic with errors that name the key, and the list of every key.

Shared by :mod:`promptmix.training.config` (one run), :mod:`promptmix.training.pipeline` (a
sequence of runs) and the reading of a saved run's config; it imports nothing of promptmix but
the YAML guard, so reading a run needs no training code. Numbers are read as YAML 1.2 reads
them: PyYAML follows YAML 1.1, where ``1e-5`` (no dot) is a string, which the strict config
types would then refuse.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pydantic
import yaml

from promptmix._yamlguard import check_yaml

if TYPE_CHECKING:
    from pydantic_core import ErrorDetails


# How config files are validated: an int where a float is meant is fine; a string, a bool, a
# non-finite number or an unknown key is not.
STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


def option(text: str, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING) -> Any:
    """A config dataclass field with its help text (what :func:`config_keys` lists)."""
    if factory is not dataclasses.MISSING:
        return dataclasses.field(default_factory=factory, metadata={"help": text})
    return dataclasses.field(default=default, metadata={"help": text})


def require(condition: bool, message: str) -> None:
    """A config section's check (in ``__post_init__``): ValueError(``message``) unless ``condition``."""
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


def validate(kind: type, data: dict[str, Any], source: str) -> Any:
    """``data`` as an instance of the config dataclass ``kind`` (its ``__pydantic_config__`` says
    how strict); a problem raises ValueError naming ``source`` and the dotted key."""
    data = {name: value for name, value in data.items() if value is not None}  # an empty section: defaults
    try:  # as JSON, so pydantic's strict mode accepts mappings for the section dataclasses
        return _validator(kind).validate_json(json.dumps(data, default=str))
    except pydantic.ValidationError as err:
        raise ValueError(f"{source}: {_explain(kind, err.errors()[0], err.errors())}") from None


@functools.cache
def _validator(kind: type) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(kind)


def _explain(root: type, error: ErrorDetails, errors: list[ErrorDetails]) -> str:
    """One pydantic error as a sentence naming the dotted key (all unknown keys of its section at once)."""
    loc = [str(part) for part in error["loc"]]
    path = ".".join(loc)
    if error["type"] == "unexpected_keyword_argument":
        section = loc[:-1]
        unknown = sorted(
            str(e["loc"][-1])
            for e in errors
            if e["type"] == error["type"] and [str(p) for p in e["loc"][:-1]] == section
        )
        kind = _field_at(root, section)[1]
        names = [f.name for f in dataclasses.fields(kind)]
        if not section:
            return f"unknown section(s) {unknown}{_near(unknown[0], names)}; sections: {', '.join(names)}"
        return (
            f"{'.'.join(section)}: unknown key(s) {unknown}{_near(unknown[0], _candidates(kind))}; "
            f"valid keys: {', '.join(names)}"
        )
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
        return message if not path or message.startswith(path) else f"{path}: {message}"
    if error["type"] == "dataclass_type":
        return f"{path}: must be a mapping of keys, got {error['input']!r}"
    if error["type"] == "finite_number":
        return f"{path}: expected a finite number, got {error['input']!r}"
    field_type, _ = _field_at(root, loc)
    if field_type is not None:
        return f"{path}: expected {field_type}, got {error['input']!r}"
    return f"{path}: {error['msg']}, got {error['input']!r}"  # inside a list or mapping value


def _field_at(root: type, loc: list[str]) -> tuple[str | None, type]:
    """The declared type of the key at ``loc`` in ``root`` (None when ``loc`` points inside a
    value) and the section dataclass it leads to (``["method", "attempt"]`` -> AttemptConfig)."""
    kind: type = root
    declared = None
    for name in loc:
        f = (
            next((f for f in dataclasses.fields(kind) if f.name == name), None)
            if dataclasses.is_dataclass(kind)
            else None
        )
        if f is None:
            return None, kind
        declared, kind = str(f.type), type(_default(f))
    return declared, kind


def _default(f: dataclasses.Field) -> Any:
    return f.default_factory() if f.default_factory is not dataclasses.MISSING else f.default


def _candidates(kind: type) -> list[str]:
    """A section's keys and its subsections' dotted keys, for "did you mean" (``attn_dim`` ->
    ``attempt.attn_dim``)."""
    names = []
    for f in dataclasses.fields(kind):
        value = _default(f)
        names += [f.name] + (
            [f"{f.name}.{g.name}" for g in dataclasses.fields(value)] if dataclasses.is_dataclass(value) else []
        )
    return names


def _near(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


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
    for f in dataclasses.fields(kind):
        value = _default(f)
        if dataclasses.is_dataclass(value):
            keys += config_keys(type(value), f"{prefix}{f.name}.")
        else:
            keys.append(ConfigKey(prefix + f.name, str(f.type), value, f.metadata.get("help", "")))
    return keys
