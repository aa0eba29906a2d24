"""Tasks declared in YAML, no Python needed (in the spirit of lm-eval-harness task files)::

    # tasks/headlines.yaml
    name: headlines                       # lower-case; the name runs, prompts and requests use
    data:
      files: {train: headlines/train.jsonl, validation: headlines/dev.jsonl}   # relative to this file
      format: jsonl                       # jsonl, json (a list of records), csv or tsv (with a header), parquet
      # or one file holding every split, with a column naming each row's split (SICK):
      # file: SICK.txt, split_field: SemEval_set, split_values: {train: TRAIN, validation: TRIAL, test: TEST}
      # hub: {id: user/headlines, config: null, splits: {train: train, validation: validation}}
      #   (hub.id may be a local folder, relative to this file: parquet files or a datasets
      #    save_to_disk directory, read from disk even with HF_HUB_OFFLINE=1)
    input: "headline: {headline}"          # the model's input, over the record's fields
    label_field: is_sarcastic
    label_words: [literal, sarcastic]      # a raw label is an index into them, a bool or the word itself
    metric: [accuracy, f1]

One of four ways to answer: ``label_words`` (classification), ``choices`` (templates, one per
candidate: ``["{option1}", "{option2}"]``) or ``choices_field`` (a field holding the list) for
per-example candidates, which rank classification scores, or ``answer_field`` (a string or a
list of acceptable strings) for generated answers. ``metric`` names one or more of
:data:`promptmix.tasks.metrics.METRICS` (default: accuracy; squad_em and squad_f1 for answers).
Splits follow the papers' protocol (``splits.py``): give ``test`` where the release labels one.
lm-evaluation-harness task files (``task``, ``dataset_path``, ``doc_to_text``, ...) are read as
they are: see :mod:`promptmix.tasks.lm_eval`.

:func:`load_task_file` reads one file into a registered Task class; a malformed file raises a
:class:`~promptmix.tasks.example.DataError` naming the file, the line and the field. Each class
keeps its validated ``definition`` (file paths made absolute) and the file it came from, so a
training run can keep a copy (:func:`definition_text`) that later loads it back.
"""

from __future__ import annotations

import functools
import re
import string
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Literal

import pydantic
import yaml

from promptmix._yamlguard import YamlTooBigError, check_yaml
from promptmix.tasks.base import Task, text_field
from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import ClassificationTask, MultipleChoiceTask, QATask
from promptmix.tasks.metrics import METRICS
from promptmix.tasks.readers import Row, read_csv, read_json, read_jsonl, read_parquet, read_tsv
from promptmix.tasks.registry import register_task
from promptmix.tasks.sources import DataSource

SPLITS = Literal["train", "validation", "test"]
FORMATS = {".jsonl": "jsonl", ".gz": "jsonl", ".json": "json", ".csv": "csv", ".tsv": "tsv", ".parquet": "parquet"}
NEEDS_LABEL_WORDS = {"f1", "macro_f1", "matthews_correlation", "group_em"}
NEEDS_ANSWERS = {"squad_em", "squad_f1", "bleu"}
NAME = r"[a-z0-9][a-z0-9._-]*"


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", strict=True)


class HubSpec(_Strict):
    id: str
    config: str | None = None
    splits: dict[SPLITS, str] = {"train": "train", "validation": "validation"}


class DataSpec(_Strict):
    files: dict[SPLITS, str] = {}
    file: str | None = None
    format: Literal["jsonl", "json", "csv", "tsv", "parquet"] | None = None
    hub: HubSpec | None = None
    split_field: str | None = None
    split_values: dict[SPLITS, str] = {}


class TaskSpec(_Strict):
    """The schema of a task file (see the module docstring)."""

    name: str
    aliases: list[str] = []
    description: str = ""
    data: DataSpec
    input: str
    label_field: str = "label"
    label_words: list[str] | None = None
    label_map: dict[str, str] = {}
    choices: list[str] | None = None
    choices_field: str | None = None
    label_base: int = 0
    answer_field: str | None = None
    metric: str | list[str] | None = None
    max_source_length: pydantic.PositiveInt = 256
    id_field: str = "idx"


# -- reading, with the line of every key -------------------------------------------------------
def _lines(node: yaml.Node, path: tuple = ()) -> Iterator[tuple[tuple, int]]:
    """(key path, 1-based line) of every mapping key and list item under ``node``."""
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            yield (*path, key.value), key.start_mark.line + 1
            yield from _lines(value, (*path, key.value))
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            yield (*path, i), item.start_mark.line + 1
            yield from _lines(item, (*path, i))


class _Located:
    """Raises DataErrors at the line of a key path (the nearest enclosing key that exists)."""

    def __init__(self, file: Path, lines: dict[tuple, int]) -> None:
        self.file, self.lines = file, lines

    def error(self, path: tuple, reason: str) -> DataError:
        for end in range(len(path), 0, -1):
            if path[:end] in self.lines:
                return DataError(
                    reason, field=".".join(map(str, path)), file=self.file, where=f"line {self.lines[path[:end]]}"
                )
        return DataError(reason, field=".".join(map(str, path)) or None, file=self.file, where="line 1")


# Task-file dialects besides promptmix's own, each appended by its module when imported
# (lm_eval.py: lm-evaluation-harness's; ``promptmix.tasks`` imports it), so that this module,
# which they build on, imports none of them. A dialect has ``yaml_loader(directory)`` (a
# SafeLoader with its tags), ``claims(data)``, ``build(data, file, error)`` (the Task class),
# ``clash(data, cls)`` (the key and the hint of a name clash) and ``dump(task)`` (its definition
# as a task file, or None for another dialect's task).
DIALECTS: list[Any] = []


def read_yaml(path: str | Path) -> tuple[dict[str, Any], _Located]:
    """A task file's mapping (a dialect's tags read, e.g. lm-eval's ``!function``) and the line
    of every key; YAML errors name the file and line."""
    path_dir = Path(path).resolve().parent
    loader = next((dialect.yaml_loader(path_dir) for dialect in DIALECTS), yaml.SafeLoader)
    path = Path(path).resolve()
    text = path.read_text(encoding="utf-8")
    try:
        check_yaml(text, str(path))  # alias bombs, self-containing aliases, deep nesting: before building
    except YamlTooBigError as err:
        raise DataError(err.reason, file=path, where=f"line {err.line}" if err.line else None) from None
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
        data = yaml.load(text, Loader=loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        raise DataError(
            f"not valid YAML: {getattr(err, 'problem', err)}",
            file=path,
            where=f"line {mark.line + 1}" if mark else None,
        ) from None
    where = _Located(path, dict(_lines(node)) if node is not None else {})
    if not isinstance(data, dict):
        raise DataError(
            f"a task file holds a mapping of keys (name, data, input, ...), got {type(data).__name__}",
            file=path,
            where="line 1",
        )
    return data, where


def read_task_file(path: str | Path) -> tuple[TaskSpec, _Located]:
    """A task file validated against :class:`TaskSpec`; errors name file, line and field."""
    data, where = read_yaml(path)
    return validate(data, where), where


def validate(data: dict[str, Any], where: _Located) -> TaskSpec:
    """``data`` validated against :class:`TaskSpec`; errors name file, line and field."""
    try:
        spec = TaskSpec.model_validate(data)
    except pydantic.ValidationError as err:
        first = err.errors()[0]
        reason = (
            "unknown key (valid keys: " + ", ".join(_valid_keys(first["loc"])) + ")"
            if first["type"] == "extra_forbidden"
            else f"{first['msg']}, got {first['input']!r}"
            if first["type"] != "missing"
            else "missing"
        )
        raise where.error(tuple(first["loc"]), reason) from None
    return spec


def _valid_keys(loc: tuple) -> list[str]:
    model: Any = TaskSpec
    for part in loc[:-1]:
        field = model.model_fields.get(part) if isinstance(part, str) else None
        kind = getattr(field, "annotation", None)
        kind = next(
            (
                a
                for a in getattr(kind, "__args__", (kind,))
                if isinstance(a, type) and issubclass(a, pydantic.BaseModel)
            ),
            None,
        )
        if kind is None:
            break
        model = kind
    return list(model.model_fields)


# -- checks beyond the schema ------------------------------------------------------------------
ANSWER_KEYS = ("label_words", "choices", "choices_field", "answer_field")


def template_fields(template: str, where: _Located, path: tuple) -> list[str]:
    """The record fields ``template`` names (``"{headline}"`` -> ``["headline"]``), checked."""
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as err:
        raise where.error(
            path, f"not a valid template ({err}); write a field as {{name}} and a brace as {{{{ or }}}}"
        ) from None
    fields = []
    for _, name, spec, conversion in parsed:
        if name is None:
            continue
        if not name.strip() or spec or conversion or re.search(r"[.\[\]]", name):
            raise where.error(
                path,
                f"placeholder {{{name}{'!' + conversion if conversion else ''}{':' + spec if spec else ''}}} "
                "must name one record field, e.g. {sentence}",
            )
        fields.append(name)
    jinja = re.search(r"\{\{-?\s*([A-Za-z_][\w.\[\]'\"]*)\s*-?\}\}", template)
    if jinja:
        raise where.error(
            path,
            f"{jinja.group(0)} is Jinja (lm-eval) syntax, which this key reads as the literal text "
            f"{{{jinja.group(1).strip()}}}; write {{{jinja.group(1).strip()}}}, or give the template as "
            "doc_to_text (lm-eval's keys, rendered with Jinja)",
        )
    return fields


def render(template: str, record: Mapping[str, Any]) -> str:
    """``template`` with each ``{field}`` replaced by the record's text (a missing field is a
    DataError naming it)."""
    return "".join(
        literal + (text_field(record, name) if name is not None else "")
        for literal, name, _, _ in string.Formatter().parse(template)
    )


def check(spec: TaskSpec, where: _Located) -> None:
    """What the schema cannot say: one way to answer, known metrics that fit it, a data source."""
    if not re.fullmatch(NAME, spec.name):
        raise where.error(("name",), f"{spec.name!r}: use lower-case letters, digits, '.', '_' or '-'")
    given = [key for key in ANSWER_KEYS if getattr(spec, key)]
    if len(given) != 1:
        raise where.error(
            (given[1],) if given else ("name",),
            f"give exactly one of {', '.join(ANSWER_KEYS)} (found: {', '.join(given) or 'none'})",
        )
    if spec.label_words is not None and (not spec.label_words or len(set(spec.label_words)) != len(spec.label_words)):
        raise where.error(("label_words",), f"must be distinct words, got {spec.label_words}")
    unknown = {raw: word for raw, word in spec.label_map.items() if word not in (spec.label_words or [])}
    if unknown:
        raise where.error(
            ("label_map", next(iter(unknown))), f"maps to {next(iter(unknown.values()))!r}, no label word"
        )
    data = spec.data
    if data.file is not None and (data.files or data.split_field is None):
        raise where.error(
            ("data", "file"),
            "one file holding every split needs split_field and split_values (and no files)"
            if not data.files
            else "give file or files, not both",
        )
    if (data.split_field is None) != (not data.split_values):
        raise where.error(
            ("data", "split_field" if data.split_field is None else "split_values"),
            "give split_field (the column naming each row's split) with split_values "
            "({train: <value>, validation: <value>, test: <value>})",
        )
    if data.split_field is not None and "train" not in data.split_values:
        raise where.error(("data", "split_values"), "needs the train value")
    if data.split_field is not None and data.hub is not None and set(data.split_values) - set(data.hub.splits):
        missing = sorted(set(data.split_values) - set(data.hub.splits))
        raise where.error(
            ("data", "hub", "splits"),
            f"name the hub split holding {', '.join(missing)} (the rows are then picked by split_field)",
        )
    if not spec.data.files and spec.data.file is None and spec.data.hub is None:
        raise where.error(("data",), "give files (relative to this file) or a hub dataset")
    if "train" not in spec.data.files and spec.data.files:
        raise where.error(("data", "files"), "needs a train file")
    for i, name in enumerate(metric_names(spec)):
        path = ("metric", i) if isinstance(spec.metric, list) else ("metric",)
        if name not in METRICS:
            raise where.error(path, f"unknown metric {name!r}; known: {', '.join(sorted(METRICS))}")
        if name in NEEDS_LABEL_WORDS and spec.label_words is None:
            raise where.error(path, f"{name} needs label_words")
        if name in NEEDS_ANSWERS and spec.answer_field is None:
            raise where.error(path, f"{name} scores generated answers: it needs answer_field")


def metric_names(spec: TaskSpec) -> list[str]:
    if spec.metric is not None:
        return [spec.metric] if isinstance(spec.metric, str) else list(spec.metric)
    return ["squad_em", "squad_f1"] if spec.answer_field else ["accuracy"]


def file_format(spec: TaskSpec, where: _Located) -> str:
    if spec.data.format is not None or not (spec.data.files or spec.data.file):
        return spec.data.format or "jsonl"
    suffix = Path(spec.data.file or spec.data.files["train"]).suffix.lower()
    if suffix not in FORMATS:
        raise where.error(
            ("data", "file") if spec.data.file else ("data", "files", "train"),
            f"cannot tell the format from {suffix or 'no suffix'!r}; add data.format: jsonl, json, csv, tsv or parquet",
        )
    return FORMATS[suffix]


# -- the task class ------------------------------------------------------------------------------
class DeclaredTask:
    """What a task file adds to its kind: the input template, choice templates, its origin."""

    definition: dict[str, Any] = {}
    origin: str = ""
    template: str = ""
    choice_templates: tuple[str, ...] = ()

    def source_text(self, record: Mapping[str, Any]) -> str:
        return render(self.template, record)

    def choices_of(self, record: Mapping[str, Any]) -> list[str] | None:
        if self.choice_templates:
            return [render(t, record) for t in self.choice_templates]
        return super().choices_of(record)  # type: ignore[misc]


class AnswerTask(QATask):
    """Free-text answers: the answer field holds one string or a list of acceptable ones."""

    def answers(self, record: Mapping[str, Any]) -> list[str]:
        value = record.get(self.answers_field)
        return [value.strip()] if isinstance(value, str) and value.strip() else super().answers(record)


def read_json_records(path: Path) -> Iterator[Row]:
    """A JSON file holding a list of records (or ``{"data": [...]}``)."""
    data = read_json(path)
    records = data.get("data") if isinstance(data, dict) else data
    if not isinstance(records, list):
        yield "top level", DataError('expected a list of records (or {"data": [...]})')
        return
    for i, record in enumerate(records):
        yield (
            f"record {i}",
            record if isinstance(record, dict) else DataError(f"expected an object, got {type(record).__name__}"),
        )


def read_any(path: Path) -> Iterator[Row]:
    """Records of a data file of any format promptmix reads, told by its suffix: ``.jsonl``
    (``.gz``), ``.json`` (JSON lines, or a list of records), ``.csv``/``.tsv`` (with a
    header) or ``.parquet``."""
    suffix = path.suffix.lower()
    if suffix == ".parquet":
        return read_parquet(path)
    if suffix in (".csv", ".tsv"):
        return (read_csv if suffix == ".csv" else read_tsv)(path, columns=())
    if suffix == ".json":
        with open(path, encoding="utf-8-sig") as handle:
            head = handle.read(4096).lstrip()
        if head.startswith("[") or head.startswith('{"data"'):
            return read_json_records(path)
    return read_jsonl(path)


def reader_for_files() -> Any:
    """The reader of an lm-eval task's local files (its ``data_files``, or a ``files`` option),
    whose format only their suffixes tell."""
    return read_any


def _reader(kind: str, columns: list[str]) -> Any:
    if kind in ("csv", "tsv"):
        return functools.partial(read_csv if kind == "csv" else read_tsv, columns=tuple(dict.fromkeys(columns)))
    return {"jsonl": read_jsonl, "json": read_json_records, "parquet": read_parquet}[kind]


def build_task_class(spec: TaskSpec, where: _Located) -> type[Task]:
    """The Task class a validated task file declares (not yet registered)."""
    check(spec, where)
    origin = where.file
    fields = template_fields(spec.input, where, ("input",))
    if not fields:
        raise where.error(
            ("input",),
            f"{spec.input!r} names no record field, so every example's input would be "
            'this same text; name the fields it shows, e.g. "headline: {headline}"',
        )
    choice_templates = tuple(spec.choices or ())
    columns = fields + [f for i, t in enumerate(choice_templates) for f in template_fields(t, where, ("choices", i))]
    columns += [spec.answer_field or spec.choices_field or spec.label_field]
    columns += [spec.data.split_field] if spec.data.split_field else []
    files: dict[str, str] = {split: str((origin.parent / rel).resolve()) for split, rel in spec.data.files.items()}
    if spec.data.file is not None:
        files = dict.fromkeys(spec.data.split_values, str((origin.parent / spec.data.file).resolve()))
    hub = spec.data.hub
    hub_id = hub.id if hub else None
    if hub_id is not None and (Path(hub_id).is_absolute() or (origin.parent / hub_id).exists()):
        hub_id = str((origin.parent / hub_id).resolve())  # a local folder: read from disk, offline too
    source = DataSource(
        files=files,
        reader=_reader(file_format(spec, where), [c for c in columns if c]),
        release=f"data of task file {origin}",
        hub_id=hub_id,
        hub_config=hub.config if hub else None,
        hub_splits=(
            {k: v for k, v in hub.splits.items() if not spec.data.split_values or k in spec.data.split_values}
            if hub
            else {"train": "train", "validation": "validation"}
        ),
        split_field=spec.data.split_field,
        split_values={split: value for split, value in spec.data.split_values.items()},  # keys: str
    )
    definition = spec.model_dump(exclude_defaults=True)
    if spec.data.file is not None:
        definition["data"]["file"] = files["train"]
    else:
        definition["data"] = {**definition.get("data", {}), **({"files": files} if files else {})}
    if hub is not None and hub_id is not None and hub_id != hub.id:
        definition["data"]["hub"] = {**definition["data"]["hub"], "id": hub_id}
    kind = ClassificationTask if spec.label_words else AnswerTask if spec.answer_field else MultipleChoiceTask
    attrs = {
        "name": spec.name,
        "aliases": tuple(spec.aliases),
        "source": source,
        "input_fields": tuple(fields),
        "label_field": spec.answer_field or spec.label_field,
        "metric_names": tuple(metric_names(spec)),
        "max_source_length": spec.max_source_length,
        "id_field": spec.id_field,
        "definition": definition,
        "origin": str(origin),
        "template": spec.input,
        "choice_templates": choice_templates,
        "__doc__": spec.description,
    }
    if spec.label_words:
        attrs.update(
            label_words=list(spec.label_words),
            raw_labels={raw: spec.label_words.index(word) for raw, word in spec.label_map.items()},
        )
    elif spec.answer_field:
        attrs["answers_field"] = spec.answer_field
    else:
        attrs.update(choices_field=spec.choices_field, label_base=spec.label_base)
    cls = type(f"TaskFile[{spec.name}]", (DeclaredTask, kind), attrs)
    cls.__module__ = __name__
    return cls


def load_task_file(path: str | Path) -> type[Task]:
    """Read, check and register the task a YAML file declares; returns its class. A task of the
    same name from a file with the same definition is the same task (registering it again changes
    nothing); any other clash is an error naming the file."""
    data, where = read_yaml(path)
    dialect = next((d for d in DIALECTS if d.claims(data)), None)
    cls = dialect.build(data, where.file, where.error) if dialect else build_task_class(validate(data, where), where)
    try:
        return register_task(cls)
    except ValueError as err:
        if dialect:
            key, hint = dialect.clash(data, cls)
            raise where.error((key,), str(err).replace("; pass overwrite=True to replace them", "") + hint) from None
        raise where.error(
            ("name",),
            str(err).replace("; pass overwrite=True to replace them", "")
            + ": rename this task (a task file cannot replace a registered task)",
        ) from None


def load_task_dir(directory: str | Path) -> list[str]:
    """Register every ``*.yaml`` / ``*.yml`` task file in ``directory``; returns their names."""
    directory = Path(directory).expanduser()
    if not directory.is_dir():
        raise FileNotFoundError(f"task directory {directory} ({directory.resolve()}) does not exist")
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    return [load_task_file(path).name for path in files]


def definition_text(task: Task) -> str | None:
    """A declared task's definition as a task file (file paths absolute), for a training run to
    keep in ``<run>/tasks/<name>.yaml`` so it can be evaluated and served without the original
    file; None for a task declared in Python."""
    if not isinstance(task, DeclaredTask):
        return None
    header = f"# The task definition this run trained with, copied from {task.origin}; file paths are absolute.\n"
    for dialect in DIALECTS:
        text = dialect.dump(task)
        if text is not None:
            return header + text
    return header + yaml.safe_dump(task.definition, sort_keys=False, allow_unicode=True)


def task_origin(task: Task | type[Task]) -> str:
    """Where a task is defined: its task file, or its Python class."""
    cls = task if isinstance(task, type) else type(task)
    if issubclass(cls, DeclaredTask):
        return f"task file {cls.origin}"
    return f"Python class {cls.__module__}.{cls.__qualname__}"
