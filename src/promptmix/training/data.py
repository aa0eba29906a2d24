"""Examples -> tokenised, padded batches with task ids, in an order that a resumed run repeats.

- Each task's train / dev / test examples come from :func:`promptmix.rundirs.data.load_tasks`
  (the protocol a saved run is read back with, too).
- :class:`TrainSet`: the training examples of every task in one index space
  (:class:`~promptmix.tasks.mixtures.MultiTaskDataset`), encoded lazily with
  :meth:`Backbone.encode` (a few dozen steps never tokenise all of SST-2).
- :class:`Collator`: :meth:`Backbone.pad` (dynamic padding, labels padded with -100, the
  padding scoring uses too) plus ``task_ids``.
- :func:`build_batch_sampler`: global batches from the mixtures' samplers
  (examples-proportional with cap and temperature, or MPT's stochastic task sampling;
  optionally length-grouped). Each is a function of (seed, epoch).
- :class:`BatchStream`: epochs of global batches from a (epoch, position) state, so a resumed
  run sees exactly the batches it would have seen.

A *global* batch is what one optimizer step consumes over every process and accumulation
micro-step; :func:`micro_batch` cuts out one process's share of one micro-step, so the data
order does not depend on the number of processes.
"""

from __future__ import annotations

import math
import warnings
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from promptmix.backbone import IGNORE_INDEX, Backbone
from promptmix.rundirs.config import DataConfig
from promptmix.rundirs.data import TaskData, source_lengths
from promptmix.rundirs.data import load_tasks as load_tasks  # re-exported: its old import path
from promptmix.tasks.kinds import ClassificationTask
from promptmix.tasks.mixtures import (
    LengthGroupedBatchSampler,
    MultiTaskDataset,
    ProportionalSampler,
    StochasticTaskBatchSampler,
    token_lengths,
)


class TrainSet:
    """Training examples of several tasks, each mapped to a prompt task id, encoded on demand.

    Args:
        tasks: ``{name: TaskData}``.
        task_ids: ``{task name: id in the prompt method}`` (several tasks may share an id,
            e.g. one SPoT-generic prompt for the whole mixture).
        backbone: encodes ``(source, target)`` pairs.
        config: lengths.
    """

    def __init__(
        self, tasks: dict[str, TaskData], task_ids: dict[str, int], backbone: Backbone, config: DataConfig
    ) -> None:
        self.dataset = MultiTaskDataset({name: data.train for name, data in tasks.items()}, list(tasks))
        empty = [name for name, size in zip(self.dataset.task_names, self.dataset.sizes) if size == 0]
        if empty:
            raise ValueError(f"no training examples for task(s) {empty}")
        self.tasks, self.task_ids, self.backbone, self.config = tasks, task_ids, backbone, config
        self.limits = source_lengths({name: data.task for name, data in tasks.items()}, config.max_source_length)
        self._cache: dict[int, dict[str, Any]] = {}

    @property
    def sizes(self) -> list[int]:
        return self.dataset.sizes

    def __len__(self) -> int:
        return len(self.dataset)

    def feature(self, index: int) -> dict[str, Any]:
        """Example ``index`` as ``{input_ids, labels, task_id}`` (cached)."""
        if index not in self._cache:
            ex = self.dataset.examples[index]
            encoded = self.backbone.encode(
                ex.source,
                ex.target,
                max_source_length=self.limits[ex.task],
                max_target_length=self.config.max_target_length,
            )
            self._cache[index] = {**encoded, "task_id": self.task_ids[ex.task]}
        return self._cache[index]

    def lengths(self) -> list[int]:
        """Input token counts of every example (one batched tokenizer call, for length grouping)."""
        limit = max(self.limits.values())
        return token_lengths([ex.source for ex in self.dataset.examples], self.backbone.tokenizer, limit)


class Collator:
    """Features -> padded tensors: :meth:`Backbone.pad` plus ``task_ids`` [B]."""

    def __init__(self, backbone: Backbone) -> None:
        self.backbone = backbone

    def __call__(self, features: Sequence[dict[str, Any]]) -> dict[str, Tensor]:
        batch = self.backbone.pad(features)
        batch["task_ids"] = torch.tensor([f["task_id"] for f in features], dtype=torch.long)
        return batch


def count_label_tokens(features: Sequence[dict[str, Any]]) -> int:
    """Label tokens of a global batch: the denominator of the token-mean loss."""
    return sum(sum(1 for t in f["labels"] if t != IGNORE_INDEX) for f in features)


# -- batch order ------------------------------------------------------------------------------
class ChunkedBatchSampler:
    """An index sampler's epoch order cut into batches of ``batch_size`` (every batch full: the
    index sampler is asked for a multiple of the batch size)."""

    def __init__(self, sampler: ProportionalSampler, batch_size: int) -> None:
        self.sampler, self.batch_size = sampler, batch_size

    def set_epoch(self, epoch: int) -> None:
        self.sampler.set_epoch(epoch)

    def __len__(self) -> int:
        return len(self.sampler) // self.batch_size

    def __iter__(self) -> Iterator[list[int]]:
        order = list(self.sampler)
        return iter(
            [order[i : i + self.batch_size] for i in range(0, len(order) - self.batch_size + 1, self.batch_size)]
        )


def build_batch_sampler(config: DataConfig, train: TrainSet, batch_size: int, seed: int) -> Any:
    """Global batches of ``batch_size`` indices for ``config.mixing``; see the module docstring.

    Proportional mixing draws ``ceil(N / batch) * batch`` indices per epoch (without
    replacement, reshuffling a task only when it is used up), so every batch is full even for
    a 4-shot training set smaller than one batch.
    """
    sizes = train.sizes
    if config.mixing == "stochastic":
        kappa = config.kappa or len(sizes)
        return StochasticTaskBatchSampler(
            sizes, batch_size, kappa, seed, cap=config.mixing_cap, temperature=config.mixing_temperature
        )
    total = sum(min(n, config.mixing_cap) if config.mixing_cap else n for n in sizes)
    sampler = ProportionalSampler(
        sizes,
        cap=config.mixing_cap,
        temperature=config.mixing_temperature,
        num_samples=math.ceil(total / batch_size) * batch_size,
        seed=seed,
    )
    if config.length_grouped:
        return LengthGroupedBatchSampler(train.lengths(), batch_size, seed, sampler=sampler)
    return ChunkedBatchSampler(sampler, batch_size)


@dataclass
class StreamState:
    """Where the data order stands: the epoch and the batches of it already consumed."""

    epoch: int = 0
    position: int = 0


class BatchStream:
    """Global batches over epochs, resumable from a :class:`StreamState`."""

    def __init__(self, batch_sampler: Any) -> None:
        self.batch_sampler = batch_sampler
        self.state = StreamState()
        if len(batch_sampler) == 0:
            raise ValueError("the training data gives no batch; lower optim.batch_size")

    @property
    def batches_per_epoch(self) -> int:
        return len(self.batch_sampler)

    def __iter__(self) -> Iterator[list[int]]:
        while True:
            self.batch_sampler.set_epoch(self.state.epoch)
            for position, batch in enumerate(self.batch_sampler):
                if position < self.state.position:
                    continue  # consumed before a resume: the sampler is a function of (seed, epoch)
                self.state.position = position + 1
                yield list(batch)
            self.state = StreamState(self.state.epoch + 1, 0)


def micro_batch(indices: Sequence[int], micro_step: int, rank: int, world: int, accumulation: int) -> list[int]:
    """Process ``rank``'s share of accumulation step ``micro_step`` of a global batch."""
    size = len(indices) // (world * accumulation)
    start = (micro_step * world + rank) * size
    return list(indices[start : start + size])


# -- the constant answers a trained prompt must beat (run cards, source cards, the studies) ---------
def constant_score(data: TaskData, answer: str, split: str = "dev") -> float | None:
    """The main metric on ``split`` of answering ``answer`` to every example; None where that is
    undefined (a constant answer has no correlation) or the split is empty."""
    examples = getattr(data, split)
    if not examples:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns on a constant input
        value = data.task.compute_metrics([answer] * len(examples), examples).get(data.task.main_metric)
    return float(value) if value is not None and math.isfinite(value) else None


def majority_score(data: TaskData, split: str = "dev") -> float | None:
    """The main metric on ``split`` of always answering the most frequent training target (the
    "majority class" row of a results table); None where that is undefined. On accuracy it is
    the best constant answer; on F1-based metrics a rarer answer can beat it (see
    :func:`best_constant_score`)."""
    targets = Counter(ex.target for ex in data.train)
    return constant_score(data, targets.most_common(1)[0][0], split) if targets else None


def best_constant_score(data: TaskData, split: str = "dev") -> tuple[str, float] | None:
    """The best of the task's constant answers on ``split``, as ``(answer, score)``: the floor a
    prompt must clear to have learned anything. It differs from the majority class where the
    metric rewards the rarer class: MultiRC's mean of F1 and group exact match on 100 dev
    examples is 27.6 answering "False" (the majority) and 46.4 answering "True". The
    candidates are the task's label words, else the training targets (at most 100 distinct
    ones: a generation task's constant answers are not a floor worth computing)."""
    candidates = list(data.task.label_words or [])
    if isinstance(data.task, ClassificationTask):
        candidates = data.task.target_words()  # "0", "1", ... under data.label_format: index
    if not candidates:
        targets = Counter(ex.target for ex in data.train)
        candidates = [t for t, _ in targets.most_common()] if len(targets) <= 100 else []
    scores = {answer: score for answer in candidates if (score := constant_score(data, answer, split)) is not None}
    if not scores:
        return None
    answer = max(scores, key=scores.__getitem__)
    return answer, scores[answer]
