"""DynamicBatcher without a model: batching across callers, the queue bound, draining."""

from __future__ import annotations

import asyncio
import threading
from types import SimpleNamespace

import pytest

from promptmix.serving.batcher import BatcherConfig, DynamicBatcher, QueueFull, ShuttingDown


def item(task, value):
    return SimpleNamespace(task=task, value=value)


def recorder(release: threading.Event | None = None):
    """A run_batch that doubles values and remembers each batch's tasks."""
    batches = []

    def run(items):
        if release is not None:
            release.wait(10)
        batches.append([i.task for i in items])
        return [2 * i.value for i in items]

    return run, batches


def test_concurrent_requests_share_mixed_task_batches():
    async def main():
        run, batches = recorder()
        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=4, max_wait_ms=200, max_queue=64))
        await batcher.start()
        requests = [batcher.submit([item(t, v)]) for v, t in enumerate(["rte", "cb", "sst2", "rte", "cb", "stsb"])]
        results = await asyncio.wait_for(asyncio.gather(*requests), 10)
        await batcher.close()
        return results, batches, batcher.metrics.to_dict(0)

    results, batches, metrics = asyncio.run(main())
    assert results == [[0], [2], [4], [6], [8], [10]]
    assert batches == [["rte", "cb", "sst2", "rte"], ["cb", "stsb"]]
    assert metrics["batch_sizes"] == {"2": 1, "4": 1} and metrics["tasks_per_batch"] == {"2": 1, "3": 1}
    assert metrics["mixed_task_batches"] == 2 and metrics["requests"] == 6


def test_full_queue_refuses_whole_requests_and_answers_the_accepted():
    async def main():
        release = threading.Event()
        run, _ = recorder(release)
        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=2, max_wait_ms=0, max_queue=3))
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit([item("a", 1), item("a", 2)]))
        await asyncio.sleep(0.05)  # the worker holds the first batch, stuck until released
        queued = asyncio.ensure_future(batcher.submit([item("b", 3), item("b", 4), item("b", 5)]))
        await asyncio.sleep(0)
        with pytest.raises(QueueFull, match="3 of 3"):
            await batcher.submit([item("c", 6)])
        release.set()
        results = await asyncio.wait_for(asyncio.gather(first, queued), 10)
        await batcher.close()
        return results, batcher.metrics

    results, metrics = asyncio.run(main())
    assert results == [[2, 4], [6, 8, 10]] and metrics.rejected_full == 1


def test_close_drains_queued_work_then_refuses_new():
    async def main():
        run, batches = recorder()
        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=8, max_wait_ms=10_000, max_queue=8))
        await batcher.start()
        pending = [asyncio.ensure_future(batcher.submit([item("rte", v)])) for v in range(3)]
        await asyncio.sleep(0.05)  # queued, waiting for a fuller batch
        await asyncio.wait_for(batcher.close(), 10)  # does not wait out the 10 s
        with pytest.raises(ShuttingDown):
            await batcher.submit([item("rte", 9)])
        return [p.result() for p in pending], batches

    results, batches = asyncio.run(main())
    assert results == [[0], [2], [4]] and batches == [["rte"] * 3]


def test_a_failing_batch_fails_only_its_requests():
    async def main():
        def run(items):
            if any(i.value < 0 for i in items):
                raise RuntimeError("boom")
            return [i.value for i in items]

        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=1, max_wait_ms=0))
        await batcher.start()
        bad = await asyncio.gather(batcher.submit([item("a", -1)]), return_exceptions=True)
        good = await batcher.submit([item("a", 5)])
        await batcher.close()
        return bad, good, batcher.metrics.failed_batches

    bad, good, failed = asyncio.run(main())
    assert isinstance(bad[0], RuntimeError) and good == [5] and failed == 1


def test_a_request_that_fails_its_batch_fails_alone_and_its_batch_mates_are_answered():
    """Issue 36.1: one request's item made the whole batch raise, and its 24 batch-mates got
    500s with it. Now the batch is run again request by request; only the culprit fails."""

    async def main():
        def run(items):
            if any(i.value < 0 for i in items):
                raise MemoryError("one input asked for 15 GB")
            return [i.value for i in items]

        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=32, max_wait_ms=200))
        await batcher.start()
        calls = [batcher.submit([item("a", v), item("b", v + 100)]) for v in range(12)]
        calls.insert(5, batcher.submit([item("c", -1)]))
        answers = await asyncio.gather(*calls, return_exceptions=True)
        await batcher.close()
        return answers, batcher.metrics

    answers, metrics = asyncio.run(main())
    assert isinstance(answers[5], MemoryError)
    assert [a for i, a in enumerate(answers) if i != 5] == [[v, v + 100] for v in range(12)]
    assert metrics.batch_sizes[25] == 1 and metrics.failed_batches == 2  # the mixed batch, then the culprit alone


def test_items_of_a_caller_that_went_away_are_not_run():
    async def main():
        release = threading.Event()
        run, batches = recorder(release)
        batcher = DynamicBatcher(run, BatcherConfig(max_batch_size=1, max_wait_ms=0))
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit([item("a", 1)]))
        await asyncio.sleep(0.05)  # the first item is running (held by release)
        gone = asyncio.ensure_future(batcher.submit([item("gone", 2), item("gone", 3)]))
        await asyncio.sleep(0.05)
        gone.cancel()  # what the server does when the client disconnects
        release.set()
        assert await first == [2]
        await batcher.close()
        return batches, batcher.metrics

    batches, metrics = asyncio.run(main())
    assert batches == [["a"]] and metrics.abandoned == 2


def test_without_a_size_the_batcher_gathers_every_queued_item():
    """The server's batcher only gathers; the engine cuts batches (create_app gives the
    batcher the engine's max_batch_size, which here is left unset)."""

    async def main():
        run, batches = recorder()
        batcher = DynamicBatcher(run, BatcherConfig(max_wait_ms=200, max_queue=64))
        await batcher.start()
        results = await asyncio.wait_for(asyncio.gather(*(batcher.submit([item("rte", v)]) for v in range(40))), 10)
        await batcher.close()
        return results, batches

    results, batches = asyncio.run(main())
    assert results == [[2 * v] for v in range(40)] and [len(b) for b in batches] == [40]


def preparer(calls: list, release: threading.Event | None = None):
    """A prepare function that records its calls and its thread, and turns values into items."""

    def prepare(values, task="t", scale=1):
        calls.append((list(values), threading.current_thread().name))
        if release is not None:
            release.wait(10)
        if any(v < 0 for v in values):
            raise ValueError(f"bad value at index {[v < 0 for v in values].index(True)}")
        return [item(task, scale * v) for v in values]

    return prepare


def test_submit_prepares_off_the_event_loop_with_its_options_then_queues():
    async def main():
        calls: list = []
        run, batches = recorder()
        batcher = DynamicBatcher(run, BatcherConfig(max_wait_ms=0), prepare=preparer(calls))
        await batcher.start()
        results = [await batcher.submit([1, 2], task="rte", scale=10), await batcher.submit([3])]
        await batcher.close()
        return results, batches, calls

    results, batches, calls = asyncio.run(main())
    assert results == [[20, 40], [6]] and batches == [["rte", "rte"], ["t"]]
    assert [values for values, _ in calls] == [[1, 2], [3]]
    assert all(thread.startswith("promptmix-prepare") for _, thread in calls)  # not the event loop's


def test_a_full_or_closing_batcher_refuses_before_preparing():
    """Under overload a request is refused before anything is spent on it: prepare (the
    server's tokenising) is never called for it."""

    async def main():
        calls: list = []
        release = threading.Event()
        run, _ = recorder(release)
        batcher = DynamicBatcher(
            run, BatcherConfig(max_batch_size=1, max_wait_ms=0, max_queue=2), prepare=preparer(calls)
        )
        await batcher.start()
        first = asyncio.ensure_future(batcher.submit([1]))
        await asyncio.sleep(0.05)  # the worker holds it, stuck until released
        queued = asyncio.ensure_future(batcher.submit([2, 3]))
        await asyncio.sleep(0.05)  # prepared and queued: the queue is full
        with pytest.raises(QueueFull, match="2 of 2"):
            await batcher.submit([4])
        refused_full = len(calls)
        release.set()
        answers = await asyncio.wait_for(asyncio.gather(first, queued), 10)
        await batcher.close()
        with pytest.raises(ShuttingDown):
            await batcher.submit([5])
        return answers, calls, refused_full, batcher.metrics

    answers, calls, refused_full, metrics = asyncio.run(main())
    assert answers == [[2], [4, 6]]
    assert refused_full == 2 and [values for values, _ in calls] == [[1], [2, 3]]  # never [4] nor [5]
    assert metrics.rejected_full == 1 and metrics.rejected_shutting_down == 1 and metrics.requests == 2


def test_a_request_refused_while_it_was_prepared_and_one_whose_prepare_fails_are_not_queued():
    async def main():
        calls: list = []
        release = threading.Event()
        batcher = DynamicBatcher(
            recorder()[0], BatcherConfig(max_wait_ms=10_000, max_queue=2), prepare=preparer(calls, release)
        )
        await batcher.start()
        slow = asyncio.ensure_future(batcher.submit([1, 2]))  # held in prepare
        await asyncio.sleep(0.05)
        batcher._queue.append((item("x", 0), asyncio.get_running_loop().create_future(), 0))  # the queue fills
        release.set()
        with pytest.raises(QueueFull, match="1 of 2"):  # checked again once prepared
            await slow
        batcher._queue.clear()
        with pytest.raises(ValueError, match="index 1"):  # prepare's own error reaches the caller
            await batcher.submit([3, -1])
        depth = batcher.queue_depth
        await batcher.close()
        return depth, batcher.metrics

    depth, metrics = asyncio.run(main())
    assert depth == 0 and metrics.requests == 0 and metrics.rejected_full == 1


def test_a_caller_that_goes_while_its_items_are_prepared_queues_nothing():
    async def main():
        calls: list = []
        release = threading.Event()
        run, batches = recorder()
        batcher = DynamicBatcher(run, BatcherConfig(max_wait_ms=0), prepare=preparer(calls, release))
        await batcher.start()
        gone = asyncio.ensure_future(batcher.submit([1, 2]))
        await asyncio.sleep(0.05)  # being prepared
        gone.cancel()  # what the server does when the client disconnects
        release.set()
        await asyncio.sleep(0.05)
        depth = batcher.queue_depth
        answer = await batcher.submit([3])
        await batcher.close()
        return depth, answer, batches, batcher.metrics

    depth, answer, batches, metrics = asyncio.run(main())
    assert depth == 0 and answer == [6] and batches == [["t"]] and metrics.requests == 1
