"""``GET /metrics`` in the Prometheus text format, written by the ``prometheus-client`` library.

The batcher keeps its own counters (:class:`~promptmix.serving.batcher.BatcherMetrics`, also
served as JSON at ``/metrics.json``); :class:`BatcherCollector` is a prometheus-client custom
collector that reads them at each scrape, so nothing is counted twice. Each app gets its own
``CollectorRegistry`` (not the process-wide default), so several apps in one process (tests,
benchmarks) never clash over metric names.

    promptmix_requests_total, promptmix_inputs_total, promptmix_batches_total,
    promptmix_failed_batches_total, promptmix_mixed_task_batches_total  counters
    promptmix_rejected_total{reason="queue_full"|"shutting_down"}      counter
    promptmix_queue_depth, promptmix_queue_capacity                     gauges
    promptmix_batch_size, promptmix_tasks_per_batch                     histograms (per batch)
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.registry import Collector

from promptmix.serving.batcher import BatcherMetrics

__all__ = ["CONTENT_TYPE_LATEST", "BatcherCollector", "exposition"]


def histogram(name: str, documentation: str, counts: Counter, bounds: list[int]) -> HistogramMetricFamily:
    """A histogram family from ``{value: batches}``: cumulative counts at each bound, then +Inf."""
    buckets = [(str(float(b)), sum(n for v, n in counts.items() if v <= b)) for b in bounds]
    buckets.append(("+Inf", sum(counts.values())))
    return HistogramMetricFamily(name, documentation, buckets=buckets, sum_value=sum(v * n for v, n in counts.items()))


def powers_of_two(limit: int) -> list[int]:
    """1, 2, 4, ... up to and including ``limit`` (bucket bounds for batch sizes)."""
    bounds = [1]
    while bounds[-1] < limit:
        bounds.append(min(bounds[-1] * 2, limit))
    return bounds


class BatcherCollector(Collector):
    """Reads a live batcher's counters at scrape time.

    Args:
        state: returns ``(metrics, queue depth, queue capacity, max batch size)`` now.
    """

    def __init__(self, state: Callable[[], tuple[BatcherMetrics, int, int, int]]) -> None:
        self.state = state

    def collect(self) -> Iterator[Any]:
        metrics, depth, capacity, max_batch = self.state()
        for name, doc, value in (
            ("promptmix_requests", "Prediction requests accepted.", metrics.requests),
            ("promptmix_inputs", "Inputs accepted (a request carries one or more).", metrics.items),
            ("promptmix_batches", "Batches run through the model.", metrics.batches),
            (
                "promptmix_failed_batches",
                (
                    "Batches whose run raised (a batch of several requests is then run again "
                    "request by request; the failing request's inputs get a 500)."
                ),
                metrics.failed_batches,
            ),
            (
                "promptmix_abandoned_inputs",
                "Queued inputs dropped because their client disconnected.",
                metrics.abandoned,
            ),
            (
                "promptmix_mixed_task_batches",
                "Batches holding inputs of more than one task.",
                sum(n for k, n in metrics.tasks_per_batch.items() if k > 1),
            ),
        ):
            yield CounterMetricFamily(name, doc, value=value)
        rejected = CounterMetricFamily("promptmix_rejected", "Requests refused before any work.", labels=["reason"])
        rejected.add_metric(["queue_full"], metrics.rejected_full)
        rejected.add_metric(["shutting_down"], metrics.rejected_shutting_down)
        yield rejected
        yield GaugeMetricFamily("promptmix_queue_depth", "Inputs waiting for a batch now.", value=depth)
        yield GaugeMetricFamily(
            "promptmix_queue_capacity", "Most inputs that may wait (beyond it: 429).", value=capacity
        )
        yield histogram("promptmix_batch_size", "Inputs per batch.", metrics.batch_sizes, powers_of_two(max_batch))
        tasks = max(metrics.tasks_per_batch, default=1)
        yield histogram(
            "promptmix_tasks_per_batch", "Distinct tasks per batch.", metrics.tasks_per_batch, list(range(1, tasks + 1))
        )


def exposition(state: Callable[[], tuple[BatcherMetrics, int, int, int]]) -> Callable[[], bytes]:
    """A function rendering the batcher's metrics in the Prometheus text format, from a
    registry of its own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(BatcherCollector(state))
    return lambda: generate_latest(registry)
