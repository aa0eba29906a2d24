"""Tasks from outside promptmix, found before the first task-name lookup.

- Task files (``declared.py``) in the directories ``$PROMPTMIX_TASKS_DIR`` names (several
  separated by ``os.pathsep``); the CLI's ``--tasks-dir`` loads more with :func:`load_task_dir`.
- Python plugins: an installed distribution declares entry points in the group
  ``promptmix.tasks``, each a Task subclass (registered) or a module (importing it registers
  its tasks with ``@register_task``)::

      # pyproject.toml of your package
      [project.entry-points."promptmix.tasks"]
      sarcasm = "mytasks.sarcasm:Sarcasm"

A plugin that fails to load is an error naming the entry point and its distribution.
"""

from __future__ import annotations

import inspect
import os
from importlib import metadata

from promptmix.tasks.base import Task
from promptmix.tasks.declared import load_task_dir
from promptmix.tasks.registry import add_discovery, register_task

ENTRY_POINT_GROUP = "promptmix.tasks"
TASKS_DIR_ENV = "PROMPTMIX_TASKS_DIR"


def load_entry_points() -> list[str]:
    """Load every ``promptmix.tasks`` entry point; returns the names of the Task classes registered."""
    names = []
    for point in metadata.entry_points(group=ENTRY_POINT_GROUP):
        where = f"entry point {point.name} = {point.value} (group {ENTRY_POINT_GROUP}" + (
            f", distribution {point.dist.name})" if point.dist is not None else ")"
        )
        try:
            loaded = point.load()
        except Exception as err:  # noqa: BLE001 - any import failure is the plugin's, named as such
            raise ImportError(f"{where} failed to load: {type(err).__name__}: {err}") from err
        if inspect.isclass(loaded) and issubclass(loaded, Task):
            names.append(register_task(loaded).name)
        elif not inspect.ismodule(loaded):
            raise TypeError(
                f"{where} is a {type(loaded).__name__}; it must name a Task subclass or a module that registers tasks"
            )
    return names


def load_env_dirs() -> list[str]:
    """Register the task files of every directory ``$PROMPTMIX_TASKS_DIR`` names."""
    dirs = [d for d in os.environ.get(TASKS_DIR_ENV, "").split(os.pathsep) if d.strip()]
    return [name for directory in dirs for name in load_task_dir(directory)]


def discover() -> None:
    load_entry_points()
    load_env_dirs()


add_discovery(discover)

__all__ = ["ENTRY_POINT_GROUP", "TASKS_DIR_ENV", "discover", "load_entry_points", "load_env_dirs", "load_task_dir"]
