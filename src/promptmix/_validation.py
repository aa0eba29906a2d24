"""One way to validate: every config, record and request promptmix reads is a pydantic-validated type.

A type declares what a value may be on its fields: enums as ``Literal[...]``, bounds in the
annotation (``PositiveInt``, ``Annotated[int, Field(ge=2)]``), so that a bare dataclass default
stays a plain value (``dataclasses.fields``, ``--help`` and subclasses see ``100``, not a
FieldInfo). Only rules between fields are written by hand, in ``__post_init__``.

- :func:`validated` makes a dataclass such a type (pydantic, :data:`STRICT`): building one in
  code checks it as loading does, and a violation raises a ValueError naming the field and value.
- :func:`validate` is the one function that turns data read from a file (a YAML config, a JSON
  record) into one, with errors naming the file, the dotted key and the value, unknown keys with
  their nearest valid names.
- :func:`explain` words a pydantic error that way; the HTTP layer words request errors with it too.

Strict: an int where a float is meant is fine; a string, a bool or a non-finite number is not.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import json
import types
import typing
from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, TypeVar

import pydantic
import pydantic.dataclasses
import typing_extensions
from pydantic import Field

STRICT = pydantic.ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)

# Bounds used across promptmix's types.
PositiveInt = Annotated[int, Field(ge=1)]
NonNegativeInt = Annotated[int, Field(ge=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, lt=1)]  # [0, 1): dropout, warm-up share
NonEmptyStr = Annotated[str, Field(min_length=1)]

T = TypeVar("T")


@dataclasses.dataclass(frozen=True)
class Hint:
    """``Annotated`` metadata: what to do about a value out of a field's bounds, added to the
    error (``Annotated[int, Field(le=1), Hint("written by a newer promptmix; upgrade it")]``)."""

    text: str


@typing.dataclass_transform(field_specifiers=(dataclasses.field,))
def validated(cls: type[T]) -> type[T]:
    """``cls`` as a pydantic dataclass under :data:`STRICT`, still a stdlib dataclass (``fields``,
    ``replace``, ``asdict``). A ValueError from ``__post_init__`` (a cross-field rule) reaches the
    caller as raised; any other violation as a ValueError naming the field and the value."""
    built = pydantic.dataclasses.dataclass(cls, config=STRICT)
    init = built.__init__

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except pydantic.ValidationError as err:
            raise _as_value_error(built, err) from None

    built.__init__ = __init__  # type: ignore[method-assign]
    return typing.cast("type[T]", built)


def _as_value_error(kind: Any, err: pydantic.ValidationError) -> Exception:
    first = err.errors()[0]
    if first["type"] == "value_error" and isinstance(first.get("ctx", {}).get("error"), Exception):
        return first["ctx"]["error"]  # the cross-field rule's own exception, its type kept
    return ValueError(explain(kind, err.errors()))


def validate(kind: type[T], data: Any, source: str) -> T:
    """``data`` (a mapping read from ``source``) as an instance of ``kind``; a problem raises a
    ValueError ``"<source>: <explanation>"``. A key set to null in a mapping of sections means
    the section's defaults (an empty YAML section)."""
    if isinstance(data, dict):
        data = {name: value for name, value in data.items() if value is not None or not _is_section(kind, name)}
    try:  # as JSON, so strict mode accepts mappings for nested dataclasses
        return _adapter(typing.cast(Any, kind)).validate_json(json.dumps(data, default=str))
    except pydantic.ValidationError as err:
        raise ValueError(f"{source}: {explain(kind, err.errors())}") from None


@functools.cache
def _adapter(kind: Any) -> pydantic.TypeAdapter:
    return pydantic.TypeAdapter(kind)


def _is_section(kind: type, name: str) -> bool:
    """Whether ``kind``'s field ``name`` is a section (a nested dataclass, such as ``optim``)."""
    field_type = (_field_types(kind) or {}).get(name)
    return field_type is not None and dataclasses.is_dataclass(_strip(field_type))


# -- errors as sentences ----------------------------------------------------------------------
UNKNOWN = ("unexpected_keyword_argument", "extra_forbidden")
MISSING = ("missing", "missing_argument", "missing_keyword_only_argument")
EXPECTED = {  # how an error of each type says what was expected
    "int_type": "an integer",
    "int_parsing": "an integer",
    "int_from_float": "an integer",
    "float_type": "a number",
    "float_parsing": "a number",
    "finite_number": "a finite number",
    "string_type": "a string",
    "bool_type": "true or false",
    "list_type": "a list",
    "dict_type": "a mapping",
    "dataclass_type": "a mapping of keys",
    "model_type": "a mapping of keys",
    "none_required": "null",
}
BOUNDS = {  # error type: (its key in the error's ctx, the sign)
    "greater_than_equal": ("ge", ">="),
    "greater_than": ("gt", ">"),
    "less_than_equal": ("le", "<="),
    "less_than": ("lt", "<"),
}
SIZES = ("too_short", "string_too_short", "string_pattern_mismatch")
SPELLED = ("literal_error", *SIZES)  # worded "must be ..."


def explain(root: Any, errors: Sequence[Mapping[str, Any]]) -> str:
    """The first of pydantic's ``errors`` validating ``root`` as one sentence naming the dotted key
    and the value: all unknown keys of its section at once (with the nearest valid names), and the
    alternatives of a union together. A misspelt key comes first: it explains a missing one."""
    error = next((e for e in errors if e["type"] in UNKNOWN), errors[0])
    loc = [str(part) for part in error["loc"]]
    if error["type"] in UNKNOWN:
        return _unknown(root, loc[:-1], errors)
    if error["type"] == "value_error":
        message = str(error["ctx"]["error"])
        path = ".".join(loc)
        return message if not path or message.startswith(path) else f"{path}: {message}"
    if error["type"] in MISSING:
        return f"missing field {'.'.join(loc)!r}"
    field_type, info, used = _walk(root, loc)
    path, value = ".".join(loc[:used]) or "the value", error["input"]
    alternatives = [e for e in errors if [str(p) for p in e["loc"][:used]] == loc[:used]]
    if used < len(loc) and len(alternatives) > 1:  # the members of a union, each refused
        # A value of a member's type out of its bounds: the bounds are the news, not the other types.
        alternatives = [e for e in alternatives if e["type"] in BOUNDS or e["type"] in SIZES] or alternatives
        return f"{path} must be {' or '.join(dict.fromkeys(map(_expected, alternatives)))}, got {value!r}"
    if error["type"] in BOUNDS or error["type"] in SPELLED:
        hints = [m.text for m in (info.metadata if info is not None else []) if isinstance(m, Hint)]
        return f"{path} must be {_expected(error)}, got {value!r}" + "".join(f" ({h})" for h in hints)
    if error["type"] in ("finite_number", "dataclass_type", "model_type"):
        return f"{path}: expected {_expected(error)}, got {value!r}"
    return f"{path}: expected {type_text(field_type)}, got {value!r}"


def _expected(error: Mapping[str, Any]) -> str:
    kind, ctx = error["type"], error.get("ctx", {})
    if kind in BOUNDS:
        key, sign = BOUNDS[kind]
        limit = ctx[key]  # a float bound of a whole number (gt=0 on a float reads 0.0) as the number
        return f"{sign} {int(limit) if isinstance(limit, float) and limit.is_integer() else limit}"
    if kind == "literal_error":
        return f"one of {ctx['expected']}" if " or " in ctx["expected"] else ctx["expected"]
    if kind in ("too_short", "string_too_short"):
        return "non-empty" if ctx["min_length"] == 1 else f"at least {ctx['min_length']} long"
    if kind == "string_pattern_mismatch":
        return f"a string matching {ctx['pattern']!r}"
    return EXPECTED.get(kind, error["msg"].removeprefix("Input should be ").lower())


def _unknown(root: Any, section: list[str], errors: Sequence[Mapping[str, Any]]) -> str:
    """Every unknown key of ``section`` (a dotted location) in one sentence, with near matches."""
    unknown = sorted(
        str(e["loc"][-1]) for e in errors if e["type"] in UNKNOWN and [str(p) for p in e["loc"][:-1]] == section
    )
    kind = _strip(_walk(root, section)[0] if section else root)
    names = list(_field_types(kind) or {})
    if not section and any(_is_section(kind, name) for name in names):
        return f"unknown section(s) {unknown}{_near(unknown[0], names)}; sections: {', '.join(names)}"
    where = f"{'.'.join(section)}: " if section else ""
    return f"{where}unknown key(s) {unknown}{_near(unknown[0], _candidates(kind))}; valid keys: {', '.join(names)}"


def _candidates(kind: type) -> list[str]:
    """A section's keys and its subsections' dotted keys, for "did you mean" (``attn_dim`` ->
    ``attempt.attn_dim``)."""
    names = []
    for name, field_type in (_field_types(kind) or {}).items():
        names += [name] + [f"{name}.{sub}" for sub in _field_types(_strip(field_type)) or {}]
    return names


def _near(name: str, names: list[str]) -> str:
    close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
    return f" (did you mean {', '.join(close)}?)" if close else ""


# -- the declared types -----------------------------------------------------------------------
def _walk(root: type, loc: list[str]) -> tuple[Any, Any, int]:
    """Follow ``loc`` through fields, list items and mapping values from ``root``: the declared
    type where it ends, that field's FieldInfo (None inside a value) and how many parts of ``loc``
    were keys (the rest names a union member)."""
    current: Any = root
    info = None
    for used, part in enumerate(loc):
        kind = _strip(current)
        fields, origin, args = _field_types(kind), typing.get_origin(kind), typing.get_args(kind)
        if fields is not None and part in fields:
            current, info = fields[part], getattr(kind, "__pydantic_fields__", {}).get(part)
        elif origin in (list, tuple) and part.isdigit() and args:
            current, info = args[0], None
        elif origin is dict and len(args) == 2:
            current, info = args[1], None
        else:
            return current, info, used
    return current, info, len(loc)


def _field_types(kind: Any) -> dict[str, Any] | None:
    """``{name: declared type}`` of a dataclass, pydantic model or TypedDict; None for others."""
    if dataclasses.is_dataclass(kind) and isinstance(kind, type):
        hints = _hints(kind)
        return {f.name: hints[f.name] for f in dataclasses.fields(kind)}
    if isinstance(kind, type) and issubclass(kind, pydantic.BaseModel):
        return {name: info.annotation for name, info in kind.model_fields.items()}
    if typing_extensions.is_typeddict(kind):
        return _hints(kind)
    return None


@functools.cache
def _hints(kind: type) -> dict[str, Any]:
    return typing.get_type_hints(kind, include_extras=True)


def _strip(kind: Any) -> Any:
    """``kind`` without its bounds (``Annotated``) and, for an optional section, without None."""
    if typing.get_origin(kind) is Annotated:
        return _strip(typing.get_args(kind)[0])
    if typing.get_origin(kind) in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(kind) if a is not type(None)]
        if len(members) == 1:
            return _strip(members[0])
    return kind


def type_text(kind: Any) -> str:
    """A declared type as ``--help`` and errors show it: bounds left out (the help says them)
    and a ``Literal`` of strings shown as ``str`` (YAML writes either the same way)."""
    origin, args = typing.get_origin(kind), typing.get_args(kind)
    if origin is Annotated:
        return type_text(args[0])
    if origin is Literal:
        return " | ".join(dict.fromkeys(type(a).__name__ for a in args))
    if origin in (typing.Union, types.UnionType):
        return " | ".join(dict.fromkeys(type_text(a) for a in args))
    if origin is not None:
        return f"{getattr(origin, '__name__', str(origin))}[{', '.join(type_text(a) for a in args)}]"
    if kind is type(None):
        return "None"
    if kind is Any:
        return "Any"
    return getattr(kind, "__name__", str(kind))


def field_types(kind: type) -> dict[str, Any]:
    """``{name: declared type}`` of the dataclass ``kind``, string annotations resolved."""
    return _field_types(kind) or {}


__all__ = [
    "STRICT",
    "Hint",
    "Fraction",
    "NonEmptyStr",
    "NonNegativeFloat",
    "NonNegativeInt",
    "PositiveFloat",
    "PositiveInt",
    "explain",
    "field_types",
    "type_text",
    "validate",
    "validated",
]
