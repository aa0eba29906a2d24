"""Readers for the original release file formats: TSV, CSV, JSONL (optionally gzipped), JSON.

Every reader yields ``(where, item)`` pairs: ``where`` places the row in its file ("line 12")
and ``item`` is either the record (a dict with the hub's field names) or a
:class:`~promptmix.tasks.example.DataError` for a row that is malformed. Yielding the error
instead of raising it lets the loader either stop (the default) or skip and log the row.
Dataset-specific readers (MultiRC, SQuAD, MRQA, ...) sit beside their tasks and build on these.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import itertools
import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from promptmix.tasks.example import DataError

Row = tuple[str, "dict[str, Any] | DataError"]

csv.field_size_limit(sys.maxsize)


def open_text(path: Path) -> io.TextIOBase:
    """Open a text file, gunzipping ``*.gz``; a UTF-8 byte-order mark is dropped."""
    if path.suffix == ".gz":
        return io.TextIOWrapper(gzip.open(path, "rb"), encoding="utf-8-sig", newline="")
    return open(path, encoding="utf-8-sig", newline="")


@contextlib.contextmanager
def utf8_errors(path: Path) -> Iterator[None]:
    """Turn a UnicodeDecodeError while reading ``path`` into a DataError naming the file and
    the exact line (text is decoded in chunks, so the error itself cannot say where)."""
    try:
        yield
    except UnicodeDecodeError as err:
        found = _first_undecodable(path)
        if found is None:
            raise DataError(f"not valid UTF-8 ({err.reason}); save the file as UTF-8", file=path) from None
        line, column, byte = found
        raise DataError(
            f"not valid UTF-8 (byte {byte:#04x} at byte {column} of the line: {err.reason}); save the file as UTF-8",
            file=path,
            where=f"line {line}",
        ) from None


def _first_undecodable(path: Path) -> tuple[int, int, int] | None:
    """(line number, 1-based byte position in it, the byte) of the first byte that is not UTF-8."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as err:
                return number, err.start + 1, raw[err.start]
    return None


_SURROGATE = re.compile("[\ud800-\udfff]")


def lone_surrogate(value: Any, path: str = "") -> tuple[str, str] | None:
    """``(dotted field, text)`` of the first string in a parsed JSON value holding a lone UTF-16
    surrogate (JSON's ``"\\ud800"`` escape decodes to one; no UTF-8 text can hold it, so the
    tokenizer fails on it mid-training), else None."""
    if isinstance(value, str):
        return (path or "(the value)", value) if _SURROGATE.search(value) else None
    items: Iterable[tuple[Any, Any]]
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, child in items:
        if isinstance(key, str) and _SURROGATE.search(key):
            return (f"{path}.{key}" if path else key).encode("utf-8", "backslashreplace").decode(), key
        sub = f"{path}[{key}]" if isinstance(key, int) else (f"{path}.{key}" if path else str(key))
        found = lone_surrogate(child, sub)
        if found is not None:
            return found
    return None


def _surrogate_error(found: tuple[str, str]) -> DataError:
    field, text = found
    shown = text.encode("utf-8", "backslashreplace").decode("ascii", "backslashreplace")[:60]
    return DataError(
        f"holds a lone UTF-16 surrogate ({shown!r}), which is no character: fix the \\u escape "
        "(a surrogate pair must be written whole)",
        field=field,
    )


def _delimited(path: Path, delimiter: str, quoting: Literal[0, 1, 2, 3]) -> Iterator[tuple[int, list[str]]]:
    """``(line number, fields)`` of a delimited file; blank lines are skipped."""
    with open_text(path) as handle, utf8_errors(path):
        reader = csv.reader(handle, delimiter=delimiter, quoting=quoting)
        for fields in reader:
            if fields and any(f.strip() for f in fields):
                yield reader.line_num, fields


def _rows_to_records(
    rows: Iterator[tuple[int, list[str]]],
    names: Sequence[str] | None,
    columns: Sequence[str],
    rename: Mapping[str, str],
) -> Iterator[Row]:
    """Map rows to records by header (when the first row names ``columns``) or by position."""
    first = next(rows, None)
    if first is None:
        return
    header = [h.strip() for h in first[1]]
    if set(columns) <= set(header):
        layout = header
    elif names is not None:
        layout, rows = list(names), itertools.chain([first], rows)
    else:
        yield (
            f"line {first[0]}",
            DataError(f"expected a header naming {', '.join(columns)}; found {first[1][: len(columns) + 2]}"),
        )
        return
    keys = [rename.get(name, name) for name in layout]
    for line, fields in rows:
        if len(fields) == len(layout):
            yield f"line {line}", dict(zip(keys, fields))
        elif len(fields) < len(layout):
            yield (
                f"line {line}",
                DataError(
                    f"missing: the row has {len(fields)} of {len(layout)} fields ({', '.join(layout)})",
                    field=layout[len(fields)],
                ),
            )
        else:
            yield (
                f"line {line}",
                DataError(f"the row has {len(fields)} fields, expected {len(layout)} ({', '.join(layout)})"),
            )


def read_tsv(
    path: Path, *, columns: Sequence[str], names: Sequence[str] | None = None, rename: Mapping[str, str] | None = None
) -> Iterator[Row]:
    """Records of a GLUE-style TSV, read without quote handling (as GLUE's own readers do).

    Args:
        columns: original column names the task needs; a first row holding all of them is
            taken as the header, and rows are mapped by it.
        names: the column layout of header-less files (CoLA, the QQP subset), by position.
        rename: original column name -> record field (e.g. MRPC's "#1 String" -> "sentence1").
    """
    rows = _delimited(path, "\t", csv.QUOTE_NONE)
    yield from _rows_to_records(rows, names, columns, rename or {})


def read_csv(
    path: Path, *, columns: Sequence[str], names: Sequence[str] | None = None, rename: Mapping[str, str] | None = None
) -> Iterator[Row]:
    """Records of a quoted CSV file (Yelp, E2E); arguments as for :func:`read_tsv`."""
    rows = _delimited(path, ",", csv.QUOTE_MINIMAL)
    yield from _rows_to_records(rows, names, columns, rename or {})


def read_jsonl(path: Path) -> Iterator[Row]:
    """Records of a JSON-lines file (``.jsonl`` or ``.jsonl.gz``), one object per line."""
    with open_text(path) as handle, utf8_errors(path):
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            where = f"line {number}"
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                yield where, DataError(f"invalid JSON ({err.msg}, column {err.colno})")
                continue
            if not isinstance(record, dict):
                yield where, DataError(f"expected a JSON object, got {type(record).__name__}")
                continue
            found = lone_surrogate(record)
            if found is not None:
                yield where, _surrogate_error(found)
                continue
            yield where, record


def read_nested_jsonl(path: Path, expand: Callable[[dict], Iterable[tuple[str, dict]]]) -> Iterator[Row]:
    """Flat records of a JSONL file whose lines nest several records (MultiRC, ReCoRD, MRQA).

    ``expand(line_record)`` yields ``(place within the line, flat record)``; a DataError it
    raises is yielded for that line.
    """
    for where, item in read_jsonl(path):
        if isinstance(item, DataError):
            yield where, item
            continue
        try:
            for suffix, flat in expand(item):
                yield (f"{where}, {suffix}" if suffix else where), flat
        except DataError as err:
            yield where, err


def read_json(path: Path) -> Any:
    """The parsed content of a JSON file; a parse or decoding error names the file and line."""
    with open_text(path) as handle, utf8_errors(path):
        try:
            content = json.load(handle)
        except json.JSONDecodeError as err:
            raise DataError(
                f"invalid JSON ({err.msg}, column {err.colno})", file=path, where=f"line {err.lineno}"
            ) from None
    found = lone_surrogate(content)
    if found is not None:
        raise _surrogate_error(found).located(path, _line_of(path, found[1]))
    return content


def _line_of(path: Path, text: str) -> str | None:
    """ "line N" of the first line whose JSON escapes decode to a string containing ``text``'s
    first surrogate (the parser's result no longer knows its lines)."""
    match = _SURROGATE.search(text)
    assert match is not None  # text is what lone_surrogate found
    surrogate = match[0]
    escape = f"\\u{ord(surrogate):04x}"
    with open_text(path) as handle:
        for number, line in enumerate(handle, start=1):
            if escape in line.lower():
                return f"line {number}"
    return None


def nested(record: Mapping[str, Any], *keys: str) -> Any:
    """``record[k1][k2]...``; a missing key raises a DataError naming the dotted field."""
    value: Any = record
    for depth, key in enumerate(keys):
        if not isinstance(value, Mapping) or key not in value:
            raise DataError("missing", field=".".join(keys[: depth + 1]))
        value = value[key]
    return value


def read_json_records(path: Path, *, rename: Mapping[str, str] | None = None) -> Iterator[Row]:
    """Records of a JSON file holding one object of records keyed by id,
    ``{"0": {"text_a": ..., "text_b": ..., "label": ...}, ...}`` (the layout of the MNLI and QNLI
    training subsets in ``more/``); the key becomes ``idx`` and ``rename`` maps field names."""
    content = read_json(path)
    if not isinstance(content, dict):
        yield "line 1", DataError(f"expected a JSON object of records keyed by id, got {type(content).__name__}")
        return
    rename = rename or {}
    for key, record in content.items():
        where = f"record {key!r}"
        if not isinstance(record, dict):
            yield where, DataError(f"expected a JSON object, got {type(record).__name__}")
            continue
        yield where, {"idx": key, **{rename.get(name, name): value for name, value in record.items()}}


def drop_unlabelled(rows: Iterable[Row], field: str = "label", marks: Sequence[str] = ("-",)) -> Iterator[Row]:
    """``rows`` without the records whose ``field`` is one of ``marks``: MultiNLI's dev files
    keep the pairs whose annotators did not agree, with gold label "-" (GLUE drops them)."""
    for where, item in rows:
        if isinstance(item, dict) and str(item.get(field, "")).strip() in marks:
            continue
        yield where, item


def read_parquet(path: Path) -> Iterator[Row]:
    """Records of a Parquet file (pyarrow, which ``datasets`` brings), one per row."""
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as err:  # noqa: BLE001 - pyarrow's errors name no file
        yield "file", DataError(f"not a readable Parquet file: {type(err).__name__}: {err}")
        return
    for number, record in enumerate(table.to_pylist()):
        yield f"row {number}", record
