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
