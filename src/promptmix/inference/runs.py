"""Loading what inference serves: trained runs and library prompts, onto one backbone.

A *run* is a training run directory (its best method in ``<run>/method``, see
:mod:`promptmix.training.runs`) or any directory written by
:func:`promptmix.prompts.checkpoint.save_method`. A *library prompt* is a named [m, d]
prompt in a :class:`~promptmix.prompts.library.PromptLibrary`, served as prompt tuning for
the task its record names. Any mix of them becomes one :class:`PromptRouter`; the backbone
is loaded once, from the name the first run (or prompt) recorded unless one is given, and
every method is checked against it (a prompt trained on another backbone is refused).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from promptmix._io import recover_directory
from promptmix.backbone import Backbone
from promptmix.prompts import PromptMethod, SoftPrompt, SoftPromptConfig
from promptmix.prompts.checkpoint import RECORD_FILE, load_method, read_method_record
from promptmix.prompts.library import PromptLibrary, default_library_root
from promptmix.prompts.router import PromptRouter

RUN_METHOD_DIR = "method"  # where a training run keeps its best prompt method
RUN_CONFIG = "config.yaml"  # the run's resolved TrainConfig


def find_methods(run: str | os.PathLike) -> list[tuple[Path, Path]]:
    """``(run directory, method directory)`` of every trained method ``run`` holds: its own
    (``<run>/method``, or ``run`` itself when save_method wrote it), or, for an experiment
    trained as one run per task (``<run>/<task>/method``), each task run's, in task order."""
    run = Path(run)
    for parent in [run] + (sorted(p for p in run.iterdir() if p.is_dir()) if run.is_dir() else []):
        recover_directory(parent / RUN_METHOD_DIR)  # a crash while training replaced it
    for candidate in (run, run / RUN_METHOD_DIR):
        if (candidate / RECORD_FILE).is_file():
            return [(run, candidate)]
    if not run.is_dir():
        raise FileNotFoundError(f"run directory {run} does not exist")
    children = sorted(p.parent.parent for p in run.glob(f"*/{RUN_METHOD_DIR}/{RECORD_FILE}"))
    if children:
        order = _run_tasks(run)
        children.sort(key=lambda c: order.index(c.name) if c.name in order else len(order))
        return [(child, child / RUN_METHOD_DIR) for child in children]
    if (run / "model").is_dir():
        raise ValueError(f"{run} is a baseline run that tuned the backbone itself ({run / 'model'}); it has no prompt to serve")
    raise FileNotFoundError(f"{run} holds no trained prompt method: expected {run / RUN_METHOD_DIR / RECORD_FILE} "
                            "(written when a run saves its best checkpoint) or a directory written by save_method")


def _run_tasks(run: Path) -> list[str]:
    """``data.tasks`` of the run's config.yaml, or [] without one."""
    import yaml

    path = run / RUN_CONFIG
    data = yaml.safe_load(path.read_text(encoding="utf-8")) if path.is_file() else None
    return list(((data or {}).get("data") or {}).get("tasks") or [])


def recorded_backbone(runs: Sequence[str | os.PathLike] = (), library: str | os.PathLike | None = None,
                      prompts: Sequence[str] = ()) -> str:
    """The backbone name the first run (else the first library prompt) was trained on."""
    if runs:
        return read_method_record(find_methods(runs[0])[0][1]).backbone["backbone"]
    if prompts:
        return _library(library).get(prompts[0]).backbone
    raise ValueError("nothing to load: give at least one run or library prompt")


def load_router(backbone: Backbone, runs: Sequence[str | os.PathLike] = (), *, library: str | os.PathLike | None = None,
                prompts: Sequence[str] = ()) -> PromptRouter:
    """One router over every run's method and every named library prompt, all checked
    against ``backbone``. Members are named by run directory / ``library:<name>``."""
    members: list[tuple[str, Any]] = [(str(run_dir), load_method(method_dir, backbone))
                                      for run in runs for run_dir, method_dir in find_methods(run)]
    lib = _library(library) if prompts else None
    for name in prompts:
        record, value = lib.get(name), lib.load(name, backbone)
        method = SoftPrompt(SoftPromptConfig(prompt_length=int(value.shape[0]), tasks=[record.task]), backbone.hidden_size)
        method.set_prompt(record.task, value)
        members.append((f"library:{name}", method))
    if not members:
        raise ValueError("nothing to load: give at least one run or library prompt")
    return PromptRouter(members)


def load_predictor(runs: Sequence[str | os.PathLike] = (), *, library: str | os.PathLike | None = None,
                   prompts: Sequence[str] = (), backbone: Backbone | str | None = None, **options: Any):
    """A :class:`~promptmix.inference.predictor.Predictor` over runs and library prompts.

    ``backbone``: a loaded :class:`Backbone`, a name for :func:`promptmix.loading.load_backbone`,
    or None for the one the first run recorded. ``options`` go to the Predictor.
    """
    from promptmix.inference.predictor import Predictor

    if not isinstance(backbone, Backbone):
        from promptmix.loading import load_backbone

        backbone = load_backbone(backbone or recorded_backbone(runs, library, prompts))
        backbone.model.eval()
    return Predictor(backbone, load_router(backbone, runs, library=library, prompts=prompts), **options)


@dataclass
class RunWithData:
    """A run loaded for scoring on its own data: its config (the data protocol and evaluation
    settings it was trained with), backbone, method and each task's splits."""

    config: Any  # promptmix.training.config.TrainConfig
    backbone: Backbone
    method: PromptMethod
    tasks: dict[str, Any]  # task name -> promptmix.training.data.TaskData

    def task_ids(self) -> dict[str, int]:
        return {name: self.method.task_id(name) for name in self.tasks}

    def max_source_length(self, name: str) -> int:
        return self.tasks[name].max_source_length(self.config.data)


def load_run_with_data(run: str | os.PathLike, *, data_dir: str | os.PathLike | None = None,
                       backbone: Backbone | str | None = None) -> RunWithData:
    """Load ``run`` with its tasks' splits under its own config (``config.yaml``; a bare
    save_method directory gets the default protocol for the method's tasks). A run trained
    per task loads every task run, behind one router. ``data_dir`` replaces the config's
    data directory; ``backbone`` its model."""
    from promptmix.training.config import load_config
    from promptmix.training.data import load_tasks

    overrides = {"data.data_dir": str(data_dir)} if data_dir is not None else {}
    found = []
    for run_dir, method_dir in find_methods(run):
        record = read_method_record(method_dir)
        if (run_dir / RUN_CONFIG).is_file():
            config, name = load_config(run_dir / RUN_CONFIG, overrides), None
        else:
            config = load_config(None, {**overrides, "data.tasks": list(record.config.get("tasks", []))})
            name = record.backbone["backbone"]
        found.append((run_dir, method_dir, config, name or config.model.name))
    if not isinstance(backbone, Backbone):
        from promptmix.loading import load_backbone

        backbone = load_backbone(backbone or found[0][3])
        backbone.model.eval()
    members, tasks = [], {}
    for run_dir, method_dir, config, _ in found:
        method = load_method(method_dir, backbone).eval()
        names = [t for t in config.data.tasks if t in method.task_names] or method.task_names
        members.append((str(run_dir), method))
        tasks.update(load_tasks(config.data, names))
    method = members[0][1] if len(members) == 1 else PromptRouter(members)
    return RunWithData(found[0][2], backbone, method, tasks)


def _library(root: str | os.PathLike | None) -> PromptLibrary:
    return PromptLibrary(root if root is not None else default_library_root())
