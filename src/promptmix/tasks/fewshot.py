"""Few-shot training sets: k examples per class (classification) or k in total (otherwise).

The official ATTEMPT code drew k examples in total even for classification, so a class
could be missing from a 4-shot set; here a classification task gets k of each label word.

A class with fewer than k training examples (CB has 16 "neutral" in all) is refused, naming
the class, unless ``short="all"``: then that class gives all it has in every draw, and the
others still give k each.

Seeds: :func:`sample_few_shot` draws each class from its own seeded permutation, so two
seeds give independent samples that may overlap. :func:`disjoint_few_shot` gives several
runs that share no example: run r takes the r-th block of k from one seeded permutation.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from promptmix.tasks.base import Task
from promptmix.tasks.example import Example
from promptmix.tasks.registry import get_task
from promptmix.tasks.splits import permutation

ShortClass = Literal["error", "all"]


def _resolve(task: Task | str | None, examples: Sequence[Example]) -> Task:
    if isinstance(task, Task):
        return task
    if task is None:
        if not examples:
            raise ValueError("no examples to sample from")
        task = examples[0].task
    return get_task(task)


def _pools(examples: Sequence[Example], task: Task) -> dict[str, list[int]]:
    """Indices to draw from: one pool per label word (classification), else one pool."""
    if not task.label_words:
        return {"all": list(range(len(examples)))}
    pools: dict[str, list[int]] = {word: [] for word in task.label_words}
    for i, ex in enumerate(examples):
        if ex.label not in pools:
            raise ValueError(f"example {i} has label {ex.label!r}, not a label word of '{task.name}'")
        pools[ex.label].append(i)
    return pools


def disjoint_few_shot(
    examples: Sequence[Example],
    k: int,
    seed: int,
    task: Task | str | None = None,
    runs: int = 3,
    short: ShortClass = "error",
) -> list[list[Example]]:
    """``runs`` few-shot sets with no example in common (see the module docstring).

    Raises ValueError naming the class when it has fewer than ``k * runs`` examples, unless
    ``short="all"`` with one run: that class then gives all of its examples.
    """
    if k < 1 or runs < 1:
        raise ValueError(f"k and runs must be positive, got k={k}, runs={runs}")
    if short not in ("error", "all"):
        raise ValueError(f"short must be 'error' or 'all', got {short!r}")
    if short == "all" and runs != 1:
        raise ValueError("short='all' needs runs=1: a short class cannot be split into disjoint runs")
    task = _resolve(task, examples)
    chosen: list[list[int]] = [[] for _ in range(runs)]
    for offset, (label, pool) in enumerate(_pools(examples, task).items()):
        if len(pool) < k * runs and not (short == "all" and task.label_words and pool):
            what = f"class {label!r}" if task.label_words else "the split"
            hint = " (data.few_shot_short_class: all takes all of them)" if task.label_words and runs == 1 else ""
            raise ValueError(f"{task.name}: {what} has {len(pool)} examples, fewer than k * runs = {k} * {runs}{hint}")
        order = permutation(len(pool), seed + 7919 * offset)  # one stream per class
        for run in range(runs):
            chosen[run] += [pool[j] for j in order[run * k : (run + 1) * k]]
    return [[examples[i] for i in _shuffled(ids, seed + run)] for run, ids in enumerate(chosen)]


def sample_few_shot(
    examples: Sequence[Example], k: int, seed: int, task: Task | str | None = None, short: ShortClass = "error"
) -> list[Example]:
    """k examples per label word for classification, k in total otherwise, in seeded order.

    Args:
        examples: the full training split.
        k: examples per class (classification) or in total (regression, QA, generation).
        seed: the draw; see the module docstring for how seeds relate.
        task: the task (or its name); by default the task of the first example.
        short: a class with fewer than k examples: "error" refuses the draw, "all" takes all of them.
    """
    return disjoint_few_shot(examples, k, seed, task, runs=1, short=short)[0]


def _shuffled(indices: list[int], seed: int) -> list[int]:
    """``indices`` in a seeded order, so classes are interleaved rather than in blocks."""
    return [indices[j] for j in permutation(len(indices), seed)]
