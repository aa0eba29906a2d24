"""The task registry: names and aliases to task classes, with "did you mean" errors.

Names match ignoring case and the separators ``-``, ``_``, ``.`` and spaces, so ``"SST-2"``,
``"sst_2"`` and ``"sst2"`` are one name. Register a task from your own code::

    from promptmix.tasks import ClassificationTask, register_task

    @register_task
    class Sarcasm(ClassificationTask):
        name = "sarcasm"
        input_fields = ("headline",)
        label_words = ["literal", "sarcastic"]
        metric_names = ("accuracy", "f1")
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any, TypeVar

from promptmix.tasks.base import Task
from promptmix.tasks.metrics import METRICS

T = TypeVar("T", bound=type[Task])

_TASKS: dict[str, type[Task]] = {}  # canonical name -> class, in registration order
_KEYS: dict[str, str] = {}  # normalised name or alias -> canonical name

# The groups the papers average over (tables of ATTEMPT and MPT).
BENCHMARKS: dict[str, list[str]] = {
    "sources": ["mnli", "qnli", "qqp", "sst2", "squad", "record"],
    "glue": ["mnli", "qqp", "qnli", "sst2", "stsb", "mrpc", "rte", "cola"],
    "superglue": ["multirc", "boolq", "wic", "wsc", "cb"],
    "mrqa": ["nq", "hotpotqa", "searchqa", "newsqa"],
    "others": ["winogrande", "yelp_polarity", "scitail", "paws"],
    "nlg": ["e2e", "webnlg"],
}


class UnknownTaskError(KeyError):
    """An unregistered task name; the message lists the nearest registered names."""

    def __str__(self) -> str:
        return str(self.args[0])


def _normalise(name: str) -> str:
    return re.sub(r"[-_.\s]", "", name.strip().lower())


def register_task(task_cls: T | None = None, *, overwrite: bool = False) -> Any:
    """Register a Task subclass under its ``name`` and ``aliases``; usable as a decorator.

    Raises ValueError for a class without a lower-case name, with unknown metric names, or
    whose name collides with another task's (pass ``overwrite=True`` to replace that task).
    """
    if task_cls is None:
        return lambda cls: register_task(cls, overwrite=overwrite)
    _check_declaration(task_cls)
    existing = _TASKS.get(task_cls.name)
    if getattr(existing, "definition", None) and _same_class(existing, task_cls) and not overwrite:
        return existing  # the same task file again (a run's copy of it): the first registration stands
    keys = {_normalise(n) for n in (task_cls.name, *task_cls.aliases)}
    clashes = {_KEYS[k] for k in keys if k in _KEYS}
    if _same_class(_TASKS.get(task_cls.name), task_cls):
        clashes.discard(task_cls.name)  # registering the same class again changes nothing
    if clashes and not overwrite:
        raise ValueError(
            f"task '{task_cls.name}' clashes with registered task(s) "
            f"{sorted(clashes)}; pass overwrite=True to replace them"
        )
    for clash in clashes | {task_cls.name}:
        _unregister(clash)
    _TASKS[task_cls.name] = task_cls
    _KEYS.update(dict.fromkeys(keys, task_cls.name))
    return task_cls


def _same_class(a: type | None, b: type) -> bool:
    """The same task declared again: the same Python class, or a task file with the same
    definition (a run's copy of the file its task came from)."""
    if a is None:
        return False
    definition = getattr(b, "definition", None)
    if definition:
        return getattr(a, "definition", None) == definition
    return (a.__module__, a.__qualname__) == (b.__module__, b.__qualname__)


# Functions registering tasks from outside this package (entry points, task directories), run
# once before the first lookup: see promptmix.tasks.plugins.
_DISCOVERY: list[Any] = []
_discovered = False


def add_discovery(find: Any) -> None:
    """Run ``find()`` (which registers tasks) once, before the first name lookup."""
    _DISCOVERY.append(find)


def _discover() -> None:
    global _discovered
    if _discovered:
        return
    _discovered = True  # first: a discovery that looks a name up must not recurse
    for find in _DISCOVERY:
        find()


def _unregister(name: str) -> None:
    _TASKS.pop(name, None)
    for key in [k for k, v in _KEYS.items() if v == name]:
        del _KEYS[key]


def _check_declaration(task_cls: type) -> None:
    if not (inspect.isclass(task_cls) and issubclass(task_cls, Task)):
        raise ValueError(f"register_task expects a Task subclass, got {task_cls!r}")
    name = task_cls.name
    if not name or name != name.strip().lower():
        raise ValueError(f"{task_cls.__name__}.name must be a non-empty lower-case name, got {name!r}")
    if not task_cls.metric_names:
        raise ValueError(f"task '{name}' declares no metric_names")
    unknown = [m for m in task_cls.metric_names if m not in METRICS]
    if unknown:
        raise ValueError(f"task '{name}': unknown metric(s) {unknown}; known: {sorted(METRICS)}")
    if task_cls.main_metric not in (*task_cls.metric_names, "score"):
        raise ValueError(f"task '{name}': main_metric {task_cls.main_metric!r} is not one of its metrics")


def resolve_name(name: str) -> str:
    """The canonical name of a task name or alias; UnknownTaskError with near matches."""
    _discover()
    key = _normalise(name)
    if key in _KEYS:
        return _KEYS[key]
    near = difflib.get_close_matches(key, list(_KEYS), n=4, cutoff=0.6)
    suggestions = list(dict.fromkeys(_KEYS[k] for k in near))
    hint = f" Did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    raise UnknownTaskError(
        f"unknown task {name!r}.{hint} Registered tasks: {', '.join(_TASKS)}. A task of your own: "
        "declare it in a YAML file in a directory given with --tasks-dir or $PROMPTMIX_TASKS_DIR, "
        "or register it from Python (register_task, or the 'promptmix.tasks' entry-point group)"
    )


def get_task(name: str, **options: Any) -> Task:
    """A new task instance by name or alias (case-insensitive); ``options`` go to its constructor.

    Raises UnknownTaskError (a KeyError) with "did you mean" suggestions for an unknown
    name, and ValueError naming the accepted options for an unknown option.
    """
    cls = _TASKS[resolve_name(name)]
    accepted = task_options(cls)
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ValueError(f"task '{cls.name}' has no option(s) {unknown}; options: {accepted}")
    return cls(**options)


def task_options(cls: type[Task]) -> list[str]:
    """Keyword options of a task class: its constructor's, and its bases' where it passes
    ``**kwargs`` on."""
    names: list[str] = []
    for klass in cls.__mro__:
        if "__init__" not in vars(klass):
            continue
        params = list(inspect.signature(vars(klass)["__init__"]).parameters.values())[1:]
        names += [p.name for p in params if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name not in names]
        if not any(p.kind is p.VAR_KEYWORD for p in params):
            break
    return names


def list_tasks(benchmark: str | None = None) -> list[str]:
    """Canonical names of registered tasks, in registration order, or of one benchmark group."""
    _discover()
    if benchmark is None:
        return list(_TASKS)
    key = benchmark.strip().lower()
    if key not in BENCHMARKS:
        near = difflib.get_close_matches(key, list(BENCHMARKS), n=1)
        hint = f" Did you mean {near[0]!r}?" if near else ""
        raise ValueError(f"unknown benchmark {benchmark!r}.{hint} Known: {', '.join(BENCHMARKS)}")
    return list(BENCHMARKS[key])
