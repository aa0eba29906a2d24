"""Each task's data under a run's protocol, and the input limit its examples are encoded with.

- :func:`load_tasks`: each task's train / dev / test examples under the papers' protocol, with
  a run's caps, few-shot draw and label format applied (its ``data`` section,
  :class:`~promptmix.rundirs.config.DataConfig`): what a run trains and is scored on, and what
  ``promptmix eval`` scores it on again.
- :func:`source_lengths`: the one rule for the input token limit of each task, wherever text
  is encoded: for training, dev and test scoring, ``promptmix eval`` and ``attention``,
  ``predict`` and ``serve``.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from promptmix.rundirs.config import DataConfig
from promptmix.tasks import Example, Task, get_task
from promptmix.tasks.fewshot import sample_few_shot
from promptmix.tasks.kinds import ClassificationTask


@dataclass
class TaskData:
    """One task and its splits."""

    task: Task
    train: list[Example]
    dev: list[Example]
    test: list[Example]


def _subset(examples: list[Example], cap: int | None, seed: int) -> list[Example]:
    """A seeded sample of ``cap`` examples, kept in their original order."""
    if cap is None or len(examples) <= cap:
        return list(examples)
    keep = sorted(random.Random(seed).sample(range(len(examples)), cap))
    return [examples[i] for i in keep]


def load_tasks(config: DataConfig, names: Sequence[str]) -> dict[str, TaskData]:
    """``{name: TaskData}`` for ``names`` (canonical task names as keys)."""
    out: dict[str, TaskData] = {}
    for name in names:
        options = dict(config.task_options.get(name, {}))
        if config.max_train_examples is not None:
            options.setdefault("max_train_examples", config.max_train_examples)
        task = get_task(name, **options)
        if isinstance(task, ClassificationTask):
            task.label_format = config.label_format  # before the splits are formatted: the targets take it
        splits = task.load_splits(config.data_dir, seed=config.split_seed)
        train = splits["train"]
        if config.few_shot_k is not None:
            draw_seed = config.split_seed if config.few_shot_seed is None else config.few_shot_seed
            train = sample_few_shot(train, config.few_shot_k, draw_seed, task, short=config.few_shot_short_class)
        out[task.name] = TaskData(
            task,
            train,
            _subset(splits["dev"], config.max_dev_examples, config.split_seed),
            _subset(splits["test"], config.max_test_examples, config.split_seed),
        )
    return out


def source_lengths(
    tasks: Mapping[str, Task], limit: int | None = None, per_task: Mapping[str, int] | None = None
) -> dict[str, int]:
    """``{name: input token limit}`` for each of ``tasks``: ``per_task[name]`` where given (the
    limit a saved method recorded it was trained with), else ``limit`` (a run's
    ``data.max_source_length``) where set, else the task's own ``Task.max_source_length`` (the
    papers' budget: 256; MultiRC 348; MRQA 512). Longer inputs are truncated to it (or refused)."""
    given = per_task or {}
    return {name: int(given.get(name) or limit or task.max_source_length) for name, task in tasks.items()}
