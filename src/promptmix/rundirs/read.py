"""Reading a saved run back: the methods it holds, its task files, its input limits, its data.

- :func:`find_methods`: every trained method a run holds, each record read once, with the
  tasks each answers (a per-task-selected run: each target from ``best-per-task/<task>``);
  what ``promptmix predict``, ``serve``, ``export`` and ``prompts add --from`` load;
- :func:`register_run_tasks`: the task files a run keeps in ``tasks/``, registered so its tasks
  resolve without ``--tasks-dir`` (``find_methods`` does it first);
- :func:`saved_source_lengths`: the input token limit each saved method was trained with;
- :func:`load_run_with_data`: a run with its config, backbone, method and data, for scoring it
  on its own data (``promptmix eval`` and ``attention``).

The files read are those of :mod:`promptmix.rundirs.layout`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from promptmix._io import recover_directory
from promptmix.backbone import Backbone
from promptmix.loading import load_backbone
from promptmix.prompts import PromptMethod
from promptmix.prompts.checkpoint import RECORD_FILE, SavedMethod
from promptmix.prompts.router import PromptRouter
from promptmix.rundirs.config import SavedConfig, saved_config
from promptmix.rundirs.data import TaskData, load_tasks, source_lengths
from promptmix.rundirs.layout import CONFIG, METHOD, MODEL, PER_TASK, TASKS
from promptmix.tasks import load_task_dir


def find_methods(run: str | os.PathLike) -> list[SavedMethod]:
    """Every trained method ``run`` holds, each named by where it came from: its own
    (``<run>/method``, or ``run`` itself when save_method wrote it; named ``run``), or, for an
    experiment trained as one run per task (``<run>/<task>/method``), each task run's (named
    ``<run>/<task>``), in task order. A multi-task run trained with ``eval.select: per-task``
    answers each task ``T`` that has a ``<run>/best-per-task/T`` with that method (named by that
    directory, restricted to ``T``: ``SavedMethod.tasks``), the one its test score came from, and
    the other tasks (none ever had a dev value) with ``<run>/method``, as training scored them.
    The task files the run keeps are registered first (:func:`register_run_tasks`)."""
    run = Path(run)
    register_run_tasks(run)
    for parent in [run] + (sorted(p for p in run.iterdir() if p.is_dir()) if run.is_dir() else []):
        recover_directory(parent / METHOD)  # a crash while training replaced it
    for candidate in (run, run / METHOD):
        if (candidate / RECORD_FILE).is_file():
            return _with_per_task(run, SavedMethod.read(candidate, str(run)))
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    children = sorted(p.parent.parent for p in run.glob(f"*/{METHOD}/{RECORD_FILE}"))
    if children:
        order = _configured_tasks(run)
        children.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
        return [SavedMethod.read(child / METHOD, str(child)) for child in children]
    if (run / MODEL).is_dir():
        raise ValueError(
            f"{run} is a baseline run that tuned the backbone itself ({run / MODEL}); it has no prompt to serve"
        )
    raise FileNotFoundError(
        f"{run} holds no trained prompt method: expected {run / METHOD / RECORD_FILE} "
        "(written when a run saves its best checkpoint) or a directory written by save_method"
    )


def _with_per_task(run: Path, whole: SavedMethod) -> list[SavedMethod]:
    """``whole`` (the run's method), or, where the run keeps ``best-per-task/<task>/`` methods
    (eval.select per-task), one per such task restricted to it, in the method's task order,
    then ``whole`` restricted to the tasks left (left out when none is)."""
    parent = run / PER_TASK
    if not parent.is_dir():
        return [whole]
    held = whole.task_names()
    for task in held:
        recover_directory(parent / task)  # a crash while training replaced it
    selected = [t for t in held if (parent / t / RECORD_FILE).is_file()]
    found = [SavedMethod.read(parent / t, str(parent / t), tasks=[t]) for t in selected]
    rest = [t for t in held if t not in selected]
    return found + ([dataclasses.replace(whole, tasks=tuple(rest))] if rest else [])


def run_directory(saved: SavedMethod) -> Path:
    """The run directory ``saved`` was found in by :func:`find_methods` (where its config.yaml is)."""
    directory = saved.directory
    return directory.parent.parent if directory.parent.name == PER_TASK else Path(saved.name)


def _configured_tasks(run: Path) -> list[str]:
    """``data.tasks`` of the run's config.yaml (read as every config is: validated), or [] without one."""
    return list(saved_config(run).data.tasks)


def register_run_tasks(run: str | os.PathLike) -> list[str]:
    """Register the task files a run (and each per-task run under it) keeps in ``tasks/``; a
    task already registered with the same definition is left as it is."""
    run = Path(run)
    found = [run / TASKS] + (sorted(run.glob(f"*/{TASKS}")) if run.is_dir() else [])
    return [name for directory in found if directory.is_dir() for name in load_task_dir(directory)]


def saved_source_lengths(methods: Sequence[SavedMethod]) -> dict[str, int]:
    """``{task: input token limit}`` the saved methods were trained with: what a training run
    records in ``method.json`` (``extra.max_source_length``), else, for runs saved before their
    records held it, the ``data.max_source_length`` of their config.yaml. A task with neither is
    left out: its own limit applies (:func:`~promptmix.rundirs.data.source_lengths`)."""
    lengths: dict[str, int] = {}
    for saved in methods:
        lengths.update(_configured_source_lengths(saved))
    for saved in methods:  # a recorded limit wins over a configured one
        recorded = saved.record.extra.get("max_source_length")
        if isinstance(recorded, dict):
            lengths.update({str(task): int(n) for task, n in recorded.items()})
    return lengths


def _configured_source_lengths(saved: SavedMethod) -> dict[str, int]:
    """``{task: data.max_source_length}`` from the config.yaml of the run ``saved`` came from
    (its directory is ``saved.name``); {} where the config sets none or there is no config."""
    run = run_directory(saved)
    if not (run / CONFIG).is_file():
        return {}
    limit = saved_config(run).data.max_source_length
    return {task: limit for task in saved.record.config.get("tasks", [])} if limit is not None else {}


@dataclass
class RunWithData:
    """A run loaded for scoring on its own data: the parts of its config it was trained with
    (the data protocol and evaluation settings), backbone, method and each task's splits."""

    config: SavedConfig
    backbone: Backbone
    method: PromptMethod
    tasks: dict[str, TaskData]
    sources: dict[str, str] = field(default_factory=dict)
    """``{task: where its method came from}`` (the names of :func:`find_methods`)."""

    def task_ids(self) -> dict[str, int]:
        return {name: self.method.task_id(name) for name in self.tasks}

    def source_lengths(self) -> dict[str, int]:
        """``{task: input token limit}`` as the run trained (:func:`~promptmix.rundirs.data.source_lengths`)."""
        return source_lengths(
            {name: data.task for name, data in self.tasks.items()}, self.config.data.max_source_length
        )


def load_run_with_data(
    run: str | os.PathLike, *, data_dir: str | os.PathLike | None = None, backbone: Backbone | str | None = None
) -> RunWithData:
    """Load ``run`` with its tasks' splits under its own config (``config.yaml``; a bare
    save_method directory gets the default protocol for the method's tasks). A run trained
    per task loads every task run, behind one router; a run selected per task
    (``best-per-task/``) answers each task with the method :func:`find_methods` gives it, as
    its test scores were computed. ``data_dir`` replaces the config's data directory;
    ``backbone`` its model (default: the one the run trained on)."""
    overrides = {"data.data_dir": str(data_dir)} if data_dir is not None else {}
    found = [
        (saved, saved_config(run_directory(saved), overrides, tasks=saved.record.config.get("tasks", [])))
        for saved in find_methods(run)
    ]
    if not isinstance(backbone, Backbone):
        backbone = _load_run_backbone(run, found[0], backbone)
    members: list[tuple[str, PromptMethod, list[str]]] = []
    tasks: dict[str, TaskData] = {}
    sources: dict[str, str] = {}
    for saved, config in found:
        method = saved.load(backbone).eval()
        answers = saved.task_names()
        names = [t for t in config.data.tasks if t in answers] or answers
        members.append((saved.name, method, answers))
        sources.update({name: saved.name for name in names})
        try:
            tasks.update(load_tasks(config.data, names))
        except FileNotFoundError as err:
            if data_dir is not None:
                raise
            raise FileNotFoundError(
                f"{err}\nThe run {run} recorded data.data_dir {config.data.data_dir!r} (a relative path "
                "there means the directory the run was trained from): pass --data-dir"
            ) from None
    whole = len(members) == 1 and members[0][2] == members[0][1].task_names
    method = members[0][1] if whole else PromptRouter(members)
    configured = [t for t in found[0][1].data.tasks if t in tasks]  # the run's task order
    order = configured + [t for t in tasks if t not in configured]
    return RunWithData(found[0][1], backbone, method, {t: tasks[t] for t in order}, sources)


def _load_run_backbone(run: str | os.PathLike, first: tuple[SavedMethod, SavedConfig], name: str | None) -> Backbone:
    """The backbone ``name`` names, else the one the run's config (or, without one, its first
    method's record) says it trained on, in eval mode."""
    saved, config = first
    default = config.backbone or saved.record.backbone["backbone"]
    try:
        backbone = load_backbone(name or default)
    except FileNotFoundError as err:
        if name is not None:
            raise
        raise FileNotFoundError(
            f"{err}; the run {run} recorded backbone {default!r} (a relative path there means "
            "the directory the run was trained from): pass --backbone"
        ) from None
    backbone.model.eval()
    return backbone
