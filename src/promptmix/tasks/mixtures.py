"""Multi-task data: one index space over several tasks, and the samplers that mix them.

- :class:`MultiTaskDataset`: examples of several tasks, each with its task id.
- :class:`ProportionalSampler`: examples-proportional mixing with a cap and a temperature
  (T5 section 3.5.2: rate_t ∝ min(n_t, cap) ** (1 / T)); with neither it is ATTEMPT-m's
  concatenate-and-shuffle (:class:`ConcatShuffleSampler`).
- :class:`StochasticTaskBatchSampler`: MPT's stochastic task sampling: each batch draws
  K from [2, κ], then K distinct tasks, then the batch's examples from those tasks, split in
  proportion to the tasks' rates.
- :class:`LengthGroupedBatchSampler`: batches of similar input length, so that dynamic
  padding (training pads with :meth:`promptmix.backbone.Backbone.pad`) pads each batch only to its own maximum.

Every sampler is a function of ``(seed, epoch)`` alone: call ``set_epoch(e)`` before each
epoch, and a resumed run that skips the batches already seen sees the same data.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Protocol

import numpy as np
from torch.utils.data import Dataset, Sampler

from promptmix.tasks.example import Example


class MultiTaskDataset(Dataset):
    """Examples of several tasks in one index space; item ``i`` knows its task id.

    Args:
        examples: ``{task name: examples}``, or a flat sequence grouped by ``Example.task``.
        task_names: the task order that defines task ids (default: order of appearance).

    Indices run over tasks in ``task_names`` order: task ``t`` holds indices
    ``offsets[t] .. offsets[t] + sizes[t] - 1``, which is what the samplers assume.
    """

    def __init__(
        self, examples: Mapping[str, Sequence[Example]] | Sequence[Example], task_names: Sequence[str] | None = None
    ):
        by_task: dict[str, list[Example]] = {}
        if isinstance(examples, Mapping):
            by_task = {name: list(exs) for name, exs in examples.items()}
        else:
            for ex in examples:
                by_task.setdefault(ex.task, []).append(ex)
        self.task_names = list(task_names) if task_names is not None else list(by_task)
        unknown = sorted(set(by_task) - set(self.task_names))
        if unknown:
            raise ValueError(f"examples of task(s) {unknown} are not in task_names {self.task_names}")
        self.sizes = [len(by_task.get(name, [])) for name in self.task_names]
        self.offsets = offsets_of(self.sizes)
        self.examples = [ex for name in self.task_names for ex in by_task.get(name, [])]
        self.task_ids = [t for t, size in enumerate(self.sizes) for _ in range(size)]

    def __len__(self) -> int:
        return len(self.examples)

    def __getitem__(self, index: int) -> dict:
        ex = self.examples[index]
        return {
            "source": ex.source,
            "target": ex.target,
            "task": ex.task,
            "task_id": self.task_ids[index],
            "example": ex,
        }


def token_lengths(texts: Sequence[str], tokenizer, max_length: int | None = None) -> list[int]:
    """Token count of each text (with special tokens), truncated to ``max_length`` if given."""
    encoded = tokenizer(list(texts), truncation=max_length is not None, max_length=max_length)
    return [len(ids) for ids in encoded["input_ids"]]


def mixing_rates(sizes: Sequence[int], cap: int | None = None, temperature: float = 1.0) -> list[float]:
    """Sampling rate of each task: ``min(n, cap) ** (1 / temperature)``, normalised."""
    if temperature <= 0:
        raise ValueError(f"temperature must be positive, got {temperature}")
    weights: list[float] = [min(n, cap) if cap is not None else n for n in sizes]
    weights = [w ** (1.0 / temperature) if w > 0 else 0.0 for w in weights]
    total = math.fsum(weights)
    if total == 0:
        raise ValueError("every task is empty")
    return [w / total for w in weights]


def allocate(total: int, rates: Sequence[float]) -> list[int]:
    """Integer counts summing to ``total`` in proportion to ``rates`` (largest remainders)."""
    exact = [total * r for r in rates]
    counts = [math.floor(x) for x in exact]
    by_remainder = sorted(range(len(rates)), key=lambda i: exact[i] - counts[i], reverse=True)
    for i in by_remainder[: total - sum(counts)]:
        counts[i] += 1
    return counts


def split_batch(batch_size: int, rates: Sequence[float] | np.ndarray) -> list[int]:
    """``batch_size`` examples over tasks in proportion to ``rates`` (:func:`allocate`), each
    task at least one: a task rounded to zero takes one from the largest count."""
    total = math.fsum(rates)
    counts = allocate(batch_size, [r / total for r in rates])
    for i, count in enumerate(counts):
        if count == 0:
            counts[max(range(len(counts)), key=counts.__getitem__)] -= 1
            counts[i] = 1
    return counts


class _SizedSampler(Protocol):
    """An index sampler that knows its length (a torch ``Sampler`` with ``__len__``)."""

    def __iter__(self) -> Iterator[int]: ...

    def __len__(self) -> int: ...


class _EpochSampler:
    """Seed and epoch bookkeeping shared by the samplers."""

    def __init__(self, seed: int):
        self.seed, self.epoch = int(seed), 0

    def set_epoch(self, epoch: int) -> None:
        """Choose the epoch whose order the next iteration yields."""
        self.epoch = int(epoch)

    def _rng(self) -> np.random.Generator:
        return np.random.default_rng([self.seed, self.epoch])


def offsets_of(sizes: Sequence[int]) -> list[int]:
    """First dataset index of each task block."""
    return [0, *np.cumsum(sizes)[:-1].tolist()] if len(sizes) else []


class _TaskStreams:
    """Draws from each task without replacement, starting a fresh permutation when one runs out."""

    def __init__(self, sizes: Sequence[int], rng: np.random.Generator):
        self.sizes, self.rng, self.offsets = list(sizes), rng, offsets_of(sizes)
        self.orders: list[list[int]] = [[] for _ in sizes]
        self.positions = [0 for _ in sizes]

    def take(self, task: int, count: int) -> list[int]:
        """``count`` global indices of ``task``."""
        if count and not self.sizes[task]:
            raise ValueError(f"cannot draw {count} examples from empty task {task}")
        out: list[int] = []
        while len(out) < count:
            if self.positions[task] == len(self.orders[task]):
                self.orders[task], self.positions[task] = self.rng.permutation(self.sizes[task]).tolist(), 0
            start = self.positions[task]
            step = min(count - len(out), len(self.orders[task]) - start)
            out += self.orders[task][start : start + step]
            self.positions[task] += step
        return [self.offsets[task] + i for i in out]


class ProportionalSampler(_EpochSampler, Sampler[int]):
    """Indices of a mixture in which each task gets its share of ``num_samples``.

    Args:
        sizes: examples per task (``MultiTaskDataset.sizes``).
        cap: examples-proportional mixing limit K (T5); ``None`` for no limit.
        temperature: rates ∝ min(n, cap) ** (1 / temperature); 1 keeps proportions.
        num_samples: indices per epoch; default ``sum(min(n, cap))``.
        seed: the order is a function of (seed, epoch).

    Task counts are exact (largest-remainder rounding of rate × num_samples); a task draws
    without replacement and reshuffles only when it has given all its examples.
    """

    def __init__(
        self,
        sizes: Sequence[int],
        cap: int | None = None,
        temperature: float = 1.0,
        num_samples: int | None = None,
        seed: int = 0,
    ):
        super().__init__(seed)
        self.sizes = list(sizes)
        self.rates = mixing_rates(self.sizes, cap, temperature)
        default = sum(min(n, cap) if cap is not None else n for n in self.sizes)
        self.num_samples = int(num_samples if num_samples is not None else default)
        self.counts = allocate(self.num_samples, self.rates)

    def __len__(self) -> int:
        return self.num_samples

    def __iter__(self) -> Iterator[int]:
        rng = self._rng()
        streams = _TaskStreams(self.sizes, rng)
        indices = [i for task, count in enumerate(self.counts) for i in streams.take(task, count)]
        return iter(np.asarray(indices)[rng.permutation(len(indices))].tolist())


class ConcatShuffleSampler(ProportionalSampler):
    """ATTEMPT-m's mixture: every example once per epoch, all tasks shuffled together."""

    def __init__(self, sizes: Sequence[int], seed: int = 0):
        super().__init__(sizes, seed=seed)


class StochasticTaskBatchSampler(_EpochSampler, Sampler[list[int]]):
    """MPT's stochastic task sampling (section 3.2), as a batch sampler.

    For each batch: K is drawn uniformly from [2, min(κ, tasks, batch_size)], then K
    distinct tasks with probability ∝ their mixing rate (examples-proportional by
    default), then ``batch_size`` examples split across the K tasks in proportion to their
    rates (largest remainders; each chosen task gets at least one example, so K tasks are in
    the batch). The paper (MPT Sec. 3.2, App. A) combines examples-proportional mixing with
    the task sampling and states no equal split; an equal split would give CB (250 examples)
    as many of a batch's examples as BoolQ (9,427) whenever both are drawn.

    Args:
        task_sizes: examples per task (``MultiTaskDataset.sizes``); at least two non-empty.
        batch_size: examples per batch (at least 2).
        kappa: κ, the most tasks in one batch (at least 2).
        seed: batches are a function of (seed, epoch).
        num_batches: batches per epoch; default ``ceil(sum(min(n, cap)) / batch_size)``.
        cap, temperature: the task rates, as in :class:`ProportionalSampler`.
    """

    def __init__(
        self,
        task_sizes: Sequence[int],
        batch_size: int,
        kappa: int,
        seed: int = 0,
        *,
        num_batches: int | None = None,
        cap: int | None = None,
        temperature: float = 1.0,
    ):
        super().__init__(seed)
        self.sizes = list(task_sizes)
        self.active = [t for t, n in enumerate(self.sizes) if n > 0]
        if len(self.active) < 2 or kappa < 2 or batch_size < 2:
            raise ValueError(
                "stochastic task sampling needs >= 2 non-empty tasks, kappa >= 2 and "
                f"batch_size >= 2; got {len(self.active)} tasks, kappa={kappa}, "
                f"batch_size={batch_size}"
            )
        self.batch_size, self.kappa = int(batch_size), int(kappa)
        rates = mixing_rates(self.sizes, cap, temperature)
        self.rates = np.array([rates[t] for t in self.active]) / sum(rates[t] for t in self.active)
        total = sum(min(n, cap) if cap is not None else n for n in self.sizes)
        self.num_batches = int(num_batches if num_batches is not None else math.ceil(total / batch_size))
        self.max_k = min(self.kappa, len(self.active), self.batch_size)

    def __len__(self) -> int:
        return self.num_batches

    def __iter__(self) -> Iterator[list[int]]:
        rng = self._rng()
        streams = _TaskStreams(self.sizes, rng)
        for _ in range(self.num_batches):
            k = int(rng.integers(2, self.max_k + 1))
            chosen = rng.choice(len(self.active), size=k, replace=False, p=self.rates)
            tasks = [self.active[c] for c in chosen]
            counts = split_batch(self.batch_size, self.rates[chosen])
            yield [i for task, count in zip(tasks, counts) for i in streams.take(task, count)]


class LengthGroupedBatchSampler(_EpochSampler, Sampler[list[int]]):
    """Batches of similar length: the epoch's order is cut into mega-batches of
    ``batch_size * mega_batch_mult`` indices, each sorted by length and cut into batches;
    the batches are shuffled, and the one holding the longest input goes first so that an
    out-of-memory error shows at the first step, not hours in.

    Args:
        lengths: input length (tokens) of each dataset index.
        batch_size: indices per batch.
        seed: batches are a function of (seed, epoch).
        sampler: an index sampler giving the epoch's order (e.g. a ProportionalSampler for
            a mixture); its ``set_epoch`` is kept in step. Default: a seeded permutation.
        mega_batch_mult: mega-batch size in batches; larger groups tighter, shuffles less.
        drop_last: drop a last batch smaller than ``batch_size``.
    """

    def __init__(
        self,
        lengths: Sequence[int],
        batch_size: int,
        seed: int = 0,
        *,
        sampler: _SizedSampler | None = None,
        mega_batch_mult: int = 50,
        drop_last: bool = False,
    ):
        super().__init__(seed)
        if batch_size < 1 or mega_batch_mult < 1:
            raise ValueError(f"batch_size and mega_batch_mult must be positive, got {batch_size}, {mega_batch_mult}")
        self.lengths = np.asarray(lengths)
        self.batch_size, self.mega = int(batch_size), int(batch_size) * int(mega_batch_mult)
        self.sampler, self.drop_last = sampler, drop_last

    def set_epoch(self, epoch: int) -> None:
        super().set_epoch(epoch)
        set_sampler_epoch = getattr(self.sampler, "set_epoch", None)
        if set_sampler_epoch is not None:
            set_sampler_epoch(epoch)

    def __len__(self) -> int:
        n = len(self.sampler) if self.sampler is not None else len(self.lengths)
        return n // self.batch_size if self.drop_last else math.ceil(n / self.batch_size)

    def __iter__(self) -> Iterator[list[int]]:
        rng = self._rng()
        order = (
            np.fromiter(self.sampler, dtype=np.int64)
            if self.sampler is not None
            else rng.permutation(len(self.lengths))
        )
        batches = []
        for start in range(0, len(order), self.mega):
            mega = order[start : start + self.mega]
            mega = mega[np.argsort(-self.lengths[mega], kind="stable")]
            batches += [mega[i : i + self.batch_size].tolist() for i in range(0, len(mega), self.batch_size)]
        if self.drop_last and batches and len(batches[-1]) < self.batch_size:
            batches.pop()
        if not batches:
            return iter([])
        batches = [batches[i] for i in rng.permutation(len(batches))]
        longest = max(range(len(batches)), key=lambda b: self.lengths[batches[b]].max())
        batches.insert(0, batches.pop(longest))
        return iter(batches)
