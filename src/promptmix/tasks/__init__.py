"""Tasks of the ATTEMPT and MPT papers: loading, text-to-text formats, splits, metrics, mixtures.

    >>> from promptmix.tasks import get_task
    >>> rte = get_task("RTE")
    >>> splits = rte.load_splits("../shared/data", seed=42)   # {"train", "dev", "test"}
    >>> splits["train"][0].source[:24], splits["train"][0].target
    ('rte sentence1: No Weapon', 'not_entailment')
    >>> rte.compute_metrics(["entailment"], splits["dev"][:1])["score"]  # doctest: +SKIP

Modules: ``example`` (Example, DataError: the leaf the others build on), ``base`` (Task),
``kinds`` (classification, regression, QA, generation, multiple choice), ``registry``,
``declared`` (tasks declared in YAML files), ``plugins`` (task directories and the
``promptmix.tasks`` entry-point group), ``sources`` (local files / hub), ``readers`` (file
formats), ``splits`` (the papers' protocol), ``metrics``, ``fewshot``,
``mixtures`` (multi-task samplers), and one module per benchmark: ``glue``, ``superglue``,
``mrqa``, ``others``, ``nlg``.
"""

from promptmix.tasks.base import Task
from promptmix.tasks.example import DataError, Example
from promptmix.tasks.kinds import ClassificationTask, GenerationTask, MultipleChoiceTask, QATask, RegressionTask
from promptmix.tasks.registry import (
    BENCHMARKS,
    UnknownTaskError,
    get_task,
    list_tasks,
    register_task,
    resolve_name,
)
from promptmix.tasks.sources import DataSource, MissingDataError

# Importing the benchmark modules registers their tasks, in this order; plugins (task files,
# entry points) are found at the first lookup.
from promptmix.tasks import glue, superglue, mrqa, others, nlg  # noqa: E402,F401  isort: skip
from promptmix.tasks.plugins import TASKS_DIR_ENV, load_task_dir  # noqa: E402  isort: skip
from promptmix.tasks import lm_eval  # noqa: E402,F401  isort: skip  (registers lm-eval task files with declared.py)

__all__ = [
    "BENCHMARKS",
    "ClassificationTask",
    "DataError",
    "DataSource",
    "Example",
    "GenerationTask",
    "MissingDataError",
    "MultipleChoiceTask",
    "QATask",
    "RegressionTask",
    "TASKS_DIR_ENV",
    "Task",
    "UnknownTaskError",
    "get_task",
    "list_tasks",
    "load_task_dir",
    "register_task",
    "resolve_name",
]
