"""Dynamic batching across requests and tasks.

A request is one call, :meth:`DynamicBatcher.submit`: the batcher refuses it if the queue
cannot take it, has its items prepared on a preparation thread by the ``prepare`` function it
was given (the server's validates and tokenises them; the batcher only calls it),
queues them and waits for their results.

Requests put their items on one bounded queue; a single worker coroutine gathers up to
``max_batch_size`` items, waiting at most ``max_wait_ms`` after the first for more to
arrive, and hands them to ``run_batch`` in a single worker thread (the model is never run
twice at once, and the event loop keeps accepting requests meanwhile). Items of different
tasks share a batch: the predictor routes each to its own prompt.

The batcher only gathers: how gathered items become forward passes is the inference
engine's one batching policy (:class:`promptmix.inference.engine.Engine`, its item cap and
token budget). The server gathers up to the engine's ``max_batch_size`` unless told otherwise,
so a gathered group is one engine batch when the token budget allows.

Back-pressure instead of memory growth: a request whose items do not fit in the queue is
refused whole with :class:`QueueFull` (HTTP 429), before ``prepare`` is spent on it; once
:meth:`DynamicBatcher.close` has been called new requests get :class:`ShuttingDown` (HTTP
503) while everything already accepted is still answered.

One request cannot fail another: when a batch holding several requests' items raises, each
request's items are run again on their own, and only the request whose items still fail gets
the error. Items whose caller has gone (its future was cancelled) are dropped before a batch
is run (``abandoned`` in the metrics).
"""

from __future__ import annotations

import asyncio
import functools
from collections import Counter, deque
from collections.abc import Callable, Sequence
from concurrent.futures import Executor, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from promptmix._validation import NonNegativeFloat, PositiveInt, validated


class QueueFull(RuntimeError):
    """The queue cannot take a request's items now; retry later (HTTP 429)."""


class ShuttingDown(RuntimeError):
    """The batcher is draining and takes no new work (HTTP 503)."""


@validated
class BatcherConfig:
    """How requests are grouped into batches."""

    max_batch_size: PositiveInt | None = None
    """Most items gathered for one ``run_batch`` call; None: the engine's ``max_batch_size``
    (:func:`promptmix.serving.app.create_app` fills it in), or every queued item where the
    batcher is used on its own."""
    max_wait_ms: NonNegativeFloat = 10.0
    """Longest wait after a batch's first item for more to arrive."""
    max_queue: PositiveInt = 256
    """Most items waiting at once; beyond it requests are refused with 429."""


@dataclass
class BatcherMetrics:
    """Counters since start. ``batch_sizes`` and ``tasks_per_batch`` are histograms
    (value -> number of batches)."""

    requests: int = 0
    items: int = 0
    batches: int = 0
    rejected_full: int = 0
    rejected_shutting_down: int = 0
    failed_batches: int = 0
    abandoned: int = 0
    batch_sizes: Counter = field(default_factory=Counter)
    tasks_per_batch: Counter = field(default_factory=Counter)

    def to_dict(self, queue_depth: int) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "items": self.items,
            "batches": self.batches,
            "rejected_full": self.rejected_full,
            "rejected_shutting_down": self.rejected_shutting_down,
            "failed_batches": self.failed_batches,
            "abandoned": self.abandoned,
            "queue_depth": queue_depth,
            "mixed_task_batches": sum(n for k, n in self.tasks_per_batch.items() if k > 1),
            "batch_sizes": {str(k): n for k, n in sorted(self.batch_sizes.items())},
            "tasks_per_batch": {str(k): n for k, n in sorted(self.tasks_per_batch.items())},
        }


class DynamicBatcher:
    """Collect items from concurrent callers into batches for ``run_batch``.

    Args:
        run_batch: called in the worker thread with a list of items; returns one result per
            item, in order. An exception fails the items of the request it comes from: a batch
            of several requests that raises is run again request by request.
        config: batch size, wait and queue bound.
        task_of: an item's task name, for the task-mix metrics.
        prepare: ``prepare(items, **options)`` turns a request's items into what ``run_batch``
            takes, one for one (its exceptions reach the caller of :meth:`submit`); None: items
            are queued as given.
        prepare_executor: where ``prepare`` runs, off the event loop (a one-thread pool: a
            tokenizer must not be used by two threads at once); None: a one-thread pool of the
            batcher's own, shut down by :meth:`close`.

    Use inside a running event loop: ``await start()``, ``await submit(items)`` from request
    handlers, ``await close()`` at shutdown.
    """

    def __init__(
        self,
        run_batch: Callable[[list[Any]], Sequence[Any]],
        config: BatcherConfig | None = None,
        task_of: Callable[[Any], str] = lambda item: getattr(item, "task", ""),
        *,
        prepare: Callable[..., Sequence[Any]] | None = None,
        prepare_executor: Executor | None = None,
    ) -> None:
        self.config = config or BatcherConfig()
        self._gather = self.config.max_batch_size or self.config.max_queue
        self.metrics = BatcherMetrics()
        self._run_batch, self._task_of, self._prepare = run_batch, task_of, prepare
        self._own_prepare_pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptmix-prepare")
            if prepare is not None and prepare_executor is None
            else None
        )
        self._prepare_executor = prepare_executor or self._own_prepare_pool
        self._queue: deque[tuple[Any, asyncio.Future, int]] = deque()  # (item, its future, its request's number)
        self._wakeup = asyncio.Event()
        self._closing = False
        self._worker: asyncio.Task | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="promptmix-worker")

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def closing(self) -> bool:
        return self._closing

    async def start(self) -> None:
        if self._worker is None:
            self._worker = asyncio.get_running_loop().create_task(self._loop(), name="promptmix-batcher")

    def _check_capacity(self, count: int) -> None:
        """Raise :class:`ShuttingDown` or :class:`QueueFull` if ``count`` items would be refused
        now (a cheap early answer under overload, before any work is spent on a request)."""
        if self._closing:
            self.metrics.rejected_shutting_down += 1
            raise ShuttingDown("the server is shutting down and takes no new requests")
        if len(self._queue) + count > self.config.max_queue:
            self.metrics.rejected_full += 1
            raise QueueFull(f"queue is full ({len(self._queue)} of {self.config.max_queue} items waiting); retry later")

    async def submit(self, items: Sequence[Any], **options: Any) -> list[Any]:
        """Queue ``items`` together and wait for their results (in order).

        Refused whole (:class:`ShuttingDown`, :class:`QueueFull`) before anything is spent on
        them; then, given ``prepare``, prepared as ``prepare(items, **options)`` on the
        preparation thread, and checked again (the queue may have filled meanwhile). Cancel the
        call when its caller goes: its items are then not queued, or dropped unrun if they were."""
        self._check_capacity(len(items))
        loop = asyncio.get_running_loop()
        if self._prepare is not None:
            prepare = functools.partial(self._prepare, items, **options)
            items = await loop.run_in_executor(self._prepare_executor, prepare)
            self._check_capacity(len(items))
        elif options:
            raise TypeError(f"submit options {sorted(options)} without a prepare function to take them")
        futures = [loop.create_future() for _ in items]
        self.metrics.requests += 1
        self._queue.extend((item, future, self.metrics.requests) for item, future in zip(items, futures))
        self.metrics.items += len(items)
        self._wakeup.set()
        return list(await asyncio.gather(*futures))

    async def close(self) -> None:
        """Refuse new work, answer everything already queued, then stop the worker."""
        self._closing = True
        self._wakeup.set()
        if self._worker is not None:
            await self._worker
        self._executor.shutdown(wait=True)
        if self._own_prepare_pool is not None:  # a request still being prepared is refused once it is
            self._own_prepare_pool.shutdown(wait=False)

    # -- the worker ---------------------------------------------------------------------------
    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            while not self._queue:
                if self._closing:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            await self._fill(loop)
            batch = [self._queue.popleft() for _ in range(min(self._gather, len(self._queue)))]
            waiting = [entry for entry in batch if not entry[1].done()]  # callers that went away are cancelled
            self.metrics.abandoned += len(batch) - len(waiting)
            batch = waiting
            if batch:
                await self._run(loop, batch)

    async def _fill(self, loop: asyncio.AbstractEventLoop) -> None:
        """Wait until the batch is full, ``max_wait_ms`` has passed, or shutdown began."""
        deadline = loop.time() + self.config.max_wait_ms / 1000
        while len(self._queue) < self._gather and not self._closing:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            self._wakeup.clear()
            try:
                await asyncio.wait_for(self._wakeup.wait(), remaining)
            except TimeoutError:
                return

    async def _run(self, loop: asyncio.AbstractEventLoop, batch: list[tuple[Any, asyncio.Future, int]]) -> None:
        if not batch:
            return
        items = [item for item, _, _ in batch]
        self.metrics.batches += 1
        self.metrics.batch_sizes[len(items)] += 1
        self.metrics.tasks_per_batch[len({self._task_of(i) for i in items})] += 1
        try:
            results = await loop.run_in_executor(self._executor, self._run_batch, items)
        except Exception as err:  # one bad batch must not take the server down
            self.metrics.failed_batches += 1
            requests: dict[int, list[tuple[Any, asyncio.Future, int]]] = {}
            for entry in batch:
                requests.setdefault(entry[2], []).append(entry)
            if len(requests) > 1:  # whose items failed it is unknown: each request alone, so only that one fails
                for entries in requests.values():
                    await self._run(loop, [entry for entry in entries if not entry[1].done()])
                return
            for _, fut, _ in batch:
                if not fut.done():
                    fut.set_exception(err)
            return
        for (_, fut, _), result in zip(batch, results):
            if not fut.done():
                fut.set_result(result)
