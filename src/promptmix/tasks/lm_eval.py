"""Task files written the way lm-evaluation-harness users write them, read as they are::

    task: boolq
    dataset_path: super_glue            # a hub id, or a local folder (parquet / save_to_disk)
    dataset_name: boolq
    output_type: multiple_choice
    training_split: train
    validation_split: validation
    doc_to_text: "{{passage}}\\nQuestion: {{question}}?\\nAnswer:"
    doc_to_target: label
    doc_to_choice: ["no", "yes"]
    metric_list:
      - metric: acc

A file holding any of lm-eval's keys (``task``, ``dataset_path``, ``doc_to_text``, ...) is read
this way by :func:`promptmix.tasks.declared.load_task_file`. As in lm-eval:

- ``doc_to_text`` / ``doc_to_target`` / ``doc_to_choice`` are a record field's name, a Jinja
  template over the record's fields (``doc_to_choice`` may render a list, ``"{{ [choice1,
  choice2] }}"``), a list (``doc_to_choice``) or ``!function module.name``: a Python function
  of the record in ``module.py`` beside the file (its code runs, as lm-eval runs it).
- ``output_type: multiple_choice`` with a fixed ``doc_to_choice`` list is a classification task
  over those words; per-record choices make a multiple-choice task (rank classification);
  ``generate_until`` generates the answer ``doc_to_target`` gives. The target is a choice's index
  or text; a rendered template that looks like a list (``"['Paris', 'paris']"``) is read as that
  list of answers (``ast.literal_eval``, as lm-eval does). ``loglikelihood`` tasks have no
  answer to train on and are refused.
- ``training_split`` (required: promptmix trains), ``validation_split`` and ``test_split`` name
  the dataset's splits; ``dataset_kwargs: {data_files: {split: file}}`` with ``dataset_path:
  json | csv | parquet`` reads local files (relative to the task file).
- ``include: other.yaml`` (relative to the file) is read first and this file's keys override it.
- ``description`` (text, or a Jinja template over the record) is put before every input;
  ``metric_list`` maps acc / acc_norm -> accuracy, f1, mcc -> matthews_correlation,
  exact_match -> squad_em, bleu. An entry's other keys are
  accepted where they leave the score as promptmix computes it (``aggregation: mean``,
  ``higher_is_better: true``, ``ignore_case: false``, ...); ``ignore_case: true``,
  ``regexes_to_ignore`` and any other key are refused by name.
- Keys about few-shot prompting, decontamination, grouping and bookkeeping (``tag``,
  ``group``, ``metadata``, ``num_fewshot``, ``fewshot_split``, ``fewshot_config``,
  ``target_delimiter``, ``fewshot_delimiter``, ``should_decontaminate``,
  ``doc_to_decontamination_query``, ``generation_kwargs``, ``repeats``) are accepted and do not
  change training; any other key (``process_docs``, ``filter_list``, ...) is refused by name.

lm-eval's task names are often promptmix's own (boolq, sst2, copa): such a file says so with a
clear error; add ``name: <another name>`` to register it beside the built-in task. Besides
``name``, promptmix reads its own ``max_source_length`` (default 256) in such a file.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, ClassVar

import yaml

from promptmix._yamlguard import YamlTooBigError, check_yaml
from promptmix.tasks import declared
from promptmix.tasks.base import Task
from promptmix.tasks.declared import NAME, AnswerTask, DeclaredTask, reader_for_files
from promptmix.tasks.example import DataError
from promptmix.tasks.kinds import ClassificationTask, MultipleChoiceTask
from promptmix.tasks.metrics import METRICS
from promptmix.tasks.sources import DataSource

KEYS = {
    "task",
    "dataset_path",
    "dataset_name",
    "dataset_kwargs",
    "output_type",
    "training_split",
    "validation_split",
    "test_split",
    "doc_to_text",
    "doc_to_target",
    "doc_to_choice",
    "metric_list",
    "description",
    "include",
    "name",
    "max_source_length",
}
IGNORED = {
    "tag",
    "group",
    "metadata",
    "num_fewshot",
    "fewshot_split",
    "fewshot_config",
    "target_delimiter",
    "fewshot_delimiter",
    "should_decontaminate",
    "doc_to_decontamination_query",
    "generation_kwargs",
    "repeats",
    "unsafe_code",
}
# Keys that mark a file as lm-eval's (promptmix's own files use name/data/input).
MARKERS = {"task", "dataset_path", "doc_to_text", "doc_to_target", "doc_to_choice", "output_type", "include"}
METRIC_NAMES = {
    "acc": "accuracy",
    "acc_norm": "accuracy",
    "f1": "f1",
    "mcc": "matthews_correlation",
    "exact_match": "squad_em",
    "bleu": "bleu",
}
# metric_list keys besides ``metric`` and the values that leave promptmix's scoring as it is.
METRIC_SETTINGS = {
    "aggregation": ("mean",),
    "higher_is_better": (True,),
    "ignore_case": (False,),
    "ignore_punctuation": (False,),
    "ignore_numbers": (False,),
    "regexes_to_ignore": (None, []),
}
LOCAL_BUILDERS = ("json", "csv", "parquet")  # dataset_path values whose data_files promptmix reads itself


class FunctionRef(str):
    """``!function module.name`` of an lm-eval task file, held as ``/absolute/dir/module.name``
    (so a run's copy of the definition finds the module wherever it is read from)."""

    def resolve(self) -> Callable[[Mapping[str, Any]], Any]:
        module, _, name = str(self).rpartition(".")
        path = Path(module + ".py")
        if not path.is_file():
            raise ValueError(f"!function {self}: no module file {path}")
        spec = importlib.util.spec_from_file_location(f"promptmix_lm_eval_{abs(hash(str(path)))}", path)
        assert spec is not None and spec.loader is not None  # a .py file has a source loader
        loaded = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(loaded)
        if not callable(getattr(loaded, name, None)):
            raise ValueError(f"!function {self}: {path} defines no function {name!r}")
        return getattr(loaded, name)


def loader_for(directory: Path) -> type[yaml.SafeLoader]:
    """A SafeLoader that reads lm-eval's ``!function module.name`` relative to ``directory``."""

    class Loader(yaml.SafeLoader):
        pass

    def function(loader: yaml.SafeLoader, node: yaml.ScalarNode) -> FunctionRef:
        value = loader.construct_scalar(node)
        module, dot, name = value.rpartition(".")
        if not dot or not module or not name:
            raise yaml.constructor.ConstructorError(
                None, None, f"!function wants module.function, got {value!r}", node.start_mark
            )
        return FunctionRef(f"{(directory / module).resolve()}.{name}" if not Path(module).is_absolute() else value)

    Loader.add_constructor("!function", function)
    return Loader


class _Dumper(yaml.SafeDumper):
    pass


_Dumper.add_representer(FunctionRef, lambda dumper, ref: dumper.represent_scalar("!function", str(ref)))


def dump(definition: Mapping[str, Any]) -> str:
    """``definition`` as YAML, ``!function`` references kept (absolute)."""
    return yaml.dump(dict(definition), Dumper=_Dumper, sort_keys=False, allow_unicode=True)


def is_lm_eval(data: Mapping[str, Any]) -> bool:
    return bool(MARKERS & set(data))


def _environment() -> Any:
    import jinja2.sandbox

    env = jinja2.sandbox.ImmutableSandboxedEnvironment(undefined=jinja2.StrictUndefined, keep_trailing_newline=True)
    env.filters["regex_replace"] = lambda text, pattern, repl, count=0: re.sub(pattern, repl, text, count=count)
    return env


class Renderer:
    """One of doc_to_text / doc_to_target / doc_to_choice: a field, a Jinja template, a list or a
    function, applied to a record as lm-eval applies it."""

    def __init__(self, key: str, value: Any, error: Callable[[tuple, str], DataError]) -> None:
        self.key, self.value = key, value
        self.function = self.template = None
        if isinstance(value, FunctionRef):
            try:
                self.function = value.resolve()
            except Exception as err:  # noqa: BLE001 - the module's own import errors, named
                raise error((key,), f"{type(err).__name__}: {err}") from None
        elif isinstance(value, str):
            import jinja2
            import jinja2.meta

            env = _environment()
            try:
                parsed = env.parse(value)
            except jinja2.TemplateSyntaxError as err:
                raise error((key,), f"not a valid Jinja template: {err.message} (template line {err.lineno})") from None
            self.names = jinja2.meta.find_undeclared_variables(parsed)
            self.template = env.from_string(value)
        elif not (
            key == "doc_to_choice" and isinstance(value, list) and value and all(isinstance(v, str) for v in value)
        ) and not (key == "doc_to_target" and isinstance(value, int)):
            raise error(
                (key,),
                f"expected a field name, a Jinja template{', a list of strings' if key == 'doc_to_choice' else ''} "
                f"or !function module.name, got {value!r}",
            )

    def __call__(self, record: Mapping[str, Any]) -> Any:
        import jinja2

        if self.function is not None:
            try:
                return self.function(dict(record))
            except Exception as err:  # noqa: BLE001 - the user's function failed on this record
                raise DataError(f"!function {self.value} failed: {type(err).__name__}: {err}", field=self.key) from None
        if self.template is None:
            return self.value
        if self.value in record:
            return record[self.value]  # lm-eval: a string naming a field is that field
        try:
            return self.template.render(**record)
        except jinja2.UndefinedError as err:
            raise DataError(
                f"{err.message} (the record's fields: {', '.join(map(str, record))})", field=self.key
            ) from None
        except Exception as err:  # noqa: BLE001 - a template error on this record
            raise DataError(f"{type(err).__name__}: {err}", field=self.key) from None

    def choices(self, record: Mapping[str, Any]) -> list[str]:
        """doc_to_choice's list for ``record`` (a rendered ``"[...]"`` is read as a Python literal)."""
        value = self(record)
        if isinstance(value, str) and self.template is not None:
            try:
                value = ast.literal_eval(value)
            except (ValueError, SyntaxError):
                raise DataError(f"rendered {value[:80]!r}, not a list of choices", field=self.key) from None
        if (
            not isinstance(value, (list, tuple))
            or not value
            or not all(isinstance(v, str) and v.strip() for v in value)
        ):
            raise DataError(f"expected a non-empty list of choice strings, got {value!r}", field=self.key)
        return [v.strip() for v in value]


class LmEvalTask:
    """What an lm-eval task file adds to its kind: its renderers. Mixed in before the kind."""

    # Declared here for the type checker, set by the kind and DeclaredTask it is mixed with:
    label_field: ClassVar[str]
    choices_per_example: ClassVar[bool]
    definition: dict[str, Any]

    text: Renderer
    target: Renderer
    choice: Renderer | None = None
    description: str | Renderer = ""
    answers_field: str | None = None

    def source_text(self, record: Mapping[str, Any]) -> str:
        text = self.text(record)
        if not isinstance(text, str):
            raise DataError(f"expected text, got {text!r}", field="doc_to_text")
        description = self.description(record) if callable(self.description) else self.description
        return (str(description) + text).strip()

    def choices_of(self, record: Mapping[str, Any]) -> list[str] | None:
        if self.choices_per_example:
            assert self.choice is not None  # a multiple-choice file has doc_to_choice
            return self.choice.choices(record)
        return None

    def target_and_label(self, record: Mapping[str, Any]) -> tuple[str, Any]:
        field = self.target.value
        if isinstance(field, str) and re.fullmatch(r"\w+", field) and field not in record:
            return "", None  # the label field is absent: an unlabelled record (a request to answer)
        raw = self.target(record)
        if isinstance(raw, str):
            raw = raw.strip()
            if (
                self.target.template is not None
                and field not in record
                and len(raw) >= 2
                and raw[0] == "["
                and raw[-1] == "]"
            ):
                try:  # lm-eval: a rendered target that looks like a list is that list (of answers)
                    raw = ast.literal_eval(raw)
                except (ValueError, SyntaxError, MemoryError, RecursionError):
                    pass  # not a literal: the text itself, as lm-eval keeps it
        if isinstance(raw, list) and self.answers_field is not None:
            raw = [str(a).strip() for a in raw]
        return super().target_and_label({**record, self.label_field: raw})  # type: ignore[misc]


def read_include(
    data: dict[str, Any], directory: Path, error: Callable[[tuple, str], DataError], depth: int = 0
) -> dict[str, Any]:
    """``data`` over the file its ``include`` names (recursively), as lm-eval merges them."""
    if "include" not in data:
        return data
    if depth > 8:
        raise error(("include",), "includes nest more than 8 deep")
    path = (directory / str(data["include"])).resolve()
    if not path.is_file():
        raise error(("include",), f"no file {path}")
    text = path.read_text(encoding="utf-8")
    try:
        check_yaml(text, str(path))  # alias bombs, self-containing aliases, deep nesting: before building
    except YamlTooBigError as err:
        raise error(("include",), str(err)) from None
    try:
        base = yaml.load(text, Loader=loader_for(path.parent))  # noqa: S506 - SafeLoader subclass
    except yaml.YAMLError as err:
        raise error(("include",), f"{path} is not valid YAML: {err}") from None
    if not isinstance(base, dict):
        raise error(("include",), f"{path} holds no mapping of keys")
    base = read_include(base, path.parent, error, depth + 1)
    return {**base, **{k: v for k, v in data.items() if k != "include"}}


def build_lm_eval_class(data: dict[str, Any], origin: Path, error: Callable[[tuple, str], DataError]) -> type[Task]:
    """The Task class an lm-eval task file declares (not yet registered)."""
    if isinstance(data.get("task"), list):
        raise error(
            ("task",), "this is an lm-eval group file (task: [...]); point promptmix at the task files it lists"
        )
    data = read_include(dict(data), origin.parent, error)
    unknown = sorted(set(data) - KEYS - IGNORED)
    if unknown:
        raise error(
            (unknown[0],),
            f"lm-eval key {unknown[0]!r} is not supported by promptmix (it reads: "
            f"{', '.join(sorted(KEYS))}; and ignores {', '.join(sorted(IGNORED))})",
        )
    name = data.get("name", data.get("task"))
    if not isinstance(name, str) or not re.fullmatch(NAME, name):
        raise error(
            ("name" if "name" in data else "task",),
            f"{name!r}: a task name of lower-case letters, digits, '.', '_' or '-' is needed",
        )
    for key in ("dataset_path", "training_split", "doc_to_text", "doc_to_target"):
        if key not in data:
            why = " (promptmix trains a prompt on it)" if key == "training_split" else ""
            raise error((key,), f"missing{why}")
    output_type = data.get("output_type", "generate_until")
    if output_type not in ("multiple_choice", "generate_until"):
        raise error(
            ("output_type",),
            f"{output_type!r} has no answer to train on; promptmix reads multiple_choice and generate_until tasks",
        )
    if output_type == "multiple_choice" and "doc_to_choice" not in data:
        raise error(("doc_to_choice",), "missing (multiple_choice needs the choices)")
    text = Renderer("doc_to_text", data["doc_to_text"], error)
    if text.template is not None and not text.names and data["doc_to_text"] not in ("",):
        # a plain string naming a field is that field (checked per record); a template needs one
        if not re.fullmatch(r"\w+", data["doc_to_text"]):
            raise error(
                ("doc_to_text",),
                f"{data['doc_to_text']!r} names no record field, so every example's input "
                'would be this same text; show the fields, e.g. "{{sentence}}"',
            )
    target = Renderer("doc_to_target", data["doc_to_target"], error)
    choice = Renderer("doc_to_choice", data["doc_to_choice"], error) if "doc_to_choice" in data else None
    fixed = choice is not None and isinstance(choice.value, list)

    metrics = []
    for i, entry in enumerate(
        data.get("metric_list") or [{"metric": "acc" if output_type == "multiple_choice" else "exact_match"}]
    ):
        metric = entry.get("metric") if isinstance(entry, dict) else None
        if metric not in METRIC_NAMES:
            raise error(("metric_list", i), f"metric {metric!r}: promptmix maps {', '.join(METRIC_NAMES)}")
        for key, value in entry.items():  # lm-eval's other keys: kept where they change nothing, else refused
            if key == "metric":
                continue
            if key not in METRIC_SETTINGS:
                raise error(
                    ("metric_list", i, key),
                    f"{key} is not supported by promptmix in a metric_list entry "
                    f"(it reads metric, {', '.join(METRIC_SETTINGS)})",
                )
            if value not in METRIC_SETTINGS[key]:
                raise error(
                    ("metric_list", i, key),
                    f"{key}: {value!r} changes how {metric} scores, which promptmix does "
                    f"not do (it accepts {key}: {METRIC_SETTINGS[key][0]!r} or no {key})",
                )
        mapped = METRIC_NAMES[metric]
        if mapped in ("f1", "matthews_correlation") and not fixed:
            raise error(("metric_list", i), f"{metric} needs a fixed doc_to_choice list")
        if mapped in ("squad_em", "bleu") and output_type != "generate_until":
            raise error(("metric_list", i), f"{metric} scores generated answers: output_type generate_until")
        if mapped not in METRICS:
            raise error(("metric_list", i), f"metric {mapped!r} is not available")
        metrics.append(mapped)
    metrics = list(dict.fromkeys(metrics))

    splits = {
        "train": data["training_split"],
        "validation": data.get("validation_split"),
        "test": data.get("test_split"),
    }
    splits = {ours: str(theirs) for ours, theirs in splits.items() if theirs is not None}
    path, config = str(data["dataset_path"]), data.get("dataset_name")
    kwargs = dict(data.get("dataset_kwargs") or {})
    files: dict[str, str] = {}
    hub_id: str | None = path
    if kwargs:
        data_files = kwargs.pop("data_files", None)
        if kwargs:
            raise error(("dataset_kwargs", next(iter(kwargs))), "not supported (promptmix reads data_files only)")
        if path not in LOCAL_BUILDERS or not isinstance(data_files, dict):
            raise error(("dataset_kwargs",), "data_files must be {split: file} with dataset_path json, csv or parquet")
        for ours, theirs in splits.items():
            if theirs not in data_files:
                raise error(("dataset_kwargs", "data_files"), f"no file for split {theirs!r} ({ours})")
            files[ours] = str((origin.parent / str(data_files[theirs])).resolve())
        hub_id, config = None, None
    elif (origin.parent / path).exists() or Path(path).is_absolute():
        hub_id = str((origin.parent / path).resolve())  # a local folder: read from disk, offline too
    source = DataSource(
        files=files,
        reader=reader_for_files(),
        release=f"data of lm-eval task file {origin}",
        hub_id=hub_id,
        hub_config=str(config) if config is not None else None,
        hub_splits=splits,
    )

    definition = dict(data)
    if hub_id is not None and hub_id != path:
        definition["dataset_path"] = hub_id
    if files:
        definition["dataset_kwargs"] = {"data_files": {theirs: files[ours] for ours, theirs in splits.items()}}
    label_field = (
        data["doc_to_target"]
        if isinstance(data["doc_to_target"], str) and re.fullmatch(r"\w+", data["doc_to_target"])
        else "doc_to_target"
    )
    # The fields a request must give: the ones doc_to_text shows (unknown for a function).
    input_fields = (
        tuple(sorted(text.names))
        if text.template is not None and text.names
        else ((data["doc_to_text"],) if text.template is not None else ())
    )
    attrs: dict[str, Any] = {
        "name": name,
        "aliases": (),
        "source": source,
        "input_fields": input_fields,
        "label_field": label_field,
        "metric_names": tuple(metrics),
        "max_source_length": int(data.get("max_source_length", 256)),
        "definition": definition,
        "origin": str(origin),
        "text": text,
        "target": target,
        "choice": choice,
        "description": (
            Renderer("description", data["description"], error)
            if "{{" in str(data.get("description") or "")
            else str(data.get("description") or "")
        ),
        "__doc__": f"lm-eval task {data.get('task')} ({origin})",
    }
    kind: type[Task]
    if output_type == "generate_until":
        kind, attrs["answers_field"] = AnswerTask, label_field
    elif fixed:
        assert choice is not None  # fixed: a doc_to_choice list
        kind = ClassificationTask
        words = [w.strip() for w in choice.value]
        if len(set(words)) != len(words):
            raise error(("doc_to_choice",), f"must be distinct choices, got {choice.value}")
        attrs["label_words"] = words
    else:
        kind = MultipleChoiceTask
    cls = type(f"TaskFile[{name}]", (LmEvalTask, DeclaredTask, kind), attrs)
    cls.__module__ = "promptmix.tasks.declared"
    return cls


class LmEvalDialect:
    """lm-evaluation-harness task files as :func:`promptmix.tasks.declared.load_task_file` reads
    them (registered in ``declared.DIALECTS`` below, when this module is imported)."""

    yaml_loader = staticmethod(loader_for)
    claims = staticmethod(is_lm_eval)
    build = staticmethod(build_lm_eval_class)

    @staticmethod
    def clash(data: Mapping[str, Any], cls: type[Task]) -> tuple[str, str]:
        """lm-eval's task names are often promptmix's own (boolq, sst2, copa): say how to keep both."""
        return (
            "name" if "name" in data else "task",
            f": add `name: {cls.name}-lm-eval` (or another free name) to this file to register it beside that task",
        )

    @staticmethod
    def dump(task: Task) -> str | None:
        return dump(task.definition) if isinstance(task, LmEvalTask) else None


declared.DIALECTS.append(LmEvalDialect)
