"""The HTTP server on loopback: answers equal offline predict, requests batched across tasks,
bad requests get their 4xx while the server keeps serving, overload gets 429, shutdown drains."""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from predictor_factory import ITEMS, same_predictions, tiny_predictor
from tiny_models import tiny_t5

from promptmix.backbone import Backbone
from promptmix.inference.predictor import Prediction
from promptmix.prompts import METHODS
from promptmix.serving.app import ServeConfig, create_app
from promptmix.serving.batcher import BatcherConfig
from promptmix.serving.server import BackgroundServer

# ATTEMPT (when registered) for cb/stsb, so responses carry attention weights.
SECOND = "attempt" if "attempt" in METHODS else "prompt-tuning"


@pytest.fixture(scope="module")
def predictor(t5_tokenizer):
    return tiny_predictor(Backbone(tiny_t5(), t5_tokenizer, "tiny-t5"), SECOND)


@pytest.fixture(scope="module")
def expected(predictor):
    return predictor.predict(ITEMS)


def single_request(item):
    return {"task": item["task"], "inputs": [item.get("record") or item["text"]]}


def predictions(response) -> list[Prediction]:
    assert response.status_code == 200, response.text
    return [Prediction(**p) for p in response.json()["predictions"]]


def serve(predictor, max_batch_size=16, max_wait_ms=100.0, max_queue=64, **limits):
    return BackgroundServer(
        create_app(predictor, ServeConfig(BatcherConfig(max_batch_size, max_wait_ms, max_queue), **limits))
    )


def test_concurrent_mixed_task_requests_equal_offline_predict_and_share_batches(predictor, expected):
    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            calls = [client.post("/v1/predict", json=single_request(item)) for item in ITEMS]
            calls.append(client.post("/v1/predict", json={"inputs": ITEMS}))  # per-input tasks
            responses = await asyncio.gather(*calls)
            return responses, (await client.get("/metrics.json")).json()

    with serve(predictor) as server:
        responses, metrics = asyncio.run(main(server.url))
    same_predictions([predictions(r)[0] for r in responses[:-1]], expected)
    same_predictions(predictions(responses[-1]), expected)
    assert max(map(int, metrics["batch_sizes"])) > 1 and metrics["mixed_task_batches"] >= 1, metrics
    assert metrics["requests"] == len(ITEMS) + 1 and metrics["items"] == 2 * len(ITEMS)


BAD_REQUESTS = [  # (what is wrong, request kwargs, status, words the error must contain)
    (
        "malformed json",
        {"content": b'{"task": "rte", "inputs": [', "headers": {"content-type": "application/json"}},
        400,
        ["not valid JSON"],
    ),
    ("no inputs", {"json": {"task": "rte"}}, 422, ["missing field 'inputs'"]),
    ("empty inputs", {"json": {"task": "rte", "inputs": []}}, 422, ["inputs must be non-empty, got []"]),
    ("task not a string", {"json": {"task": 3, "inputs": ["x"]}}, 422, ["task: expected str | None, got 3"]),
    ("inputs not a list", {"json": {"task": "rte", "inputs": 3}}, 422, ["inputs"]),
    (
        "unknown task",
        {"json": {"task": "rtee", "inputs": ["x"]}},
        422,
        ["unknown_task", "'rtee'", "Did you mean 'rte'"],
    ),
    ("missing field", {"json": {"task": "rte", "inputs": [{"sentence1": "a"}]}}, 422, ["field 'sentence2'", "missing"]),
    ("no task anywhere", {"json": {"inputs": ["rte sentence1: a"]}}, 422, ["no task"]),
    (
        "input over the length limit",
        {"json": {"task": "rte", "inputs": ["word " * 400]}},
        413,
        ["too_long", "over the limit of 256"],
    ),
    ("too many inputs", {"json": {"task": "sst2", "inputs": ["sst2 sentence: a"] * 9}}, 413, ["9 inputs", "at most 8"]),
    ("body too large", {"json": {"task": "sst2", "inputs": ["a" * 70_000]}}, 413, ["body over 65536 bytes"]),
]


def test_each_bad_request_gets_its_4xx_and_the_server_keeps_serving(predictor, expected):
    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            out = []
            for name, kwargs, _, _ in BAD_REQUESTS:
                bad = await client.post("/v1/predict", **kwargs)
                good = await client.post("/v1/predict", json=single_request(ITEMS[0]))
                out.append((name, bad, good))
            return out, (await client.get("/health")).json()

    with serve(predictor, max_wait_ms=1, max_inputs_per_request=8, max_body_bytes=65536) as server:
        results, health = asyncio.run(main(server.url))
    for (name, _, status, words), (_, bad, good) in zip(BAD_REQUESTS, results):
        assert bad.status_code == status, (name, bad.text)
        for word in words:
            assert word in bad.text, (name, bad.text)
        same_predictions(predictions(good), expected[:1])
    assert health["status"] == "ok"


def test_flood_past_the_queue_bound_gets_429_and_every_accepted_request_is_right(predictor, expected):
    max_queue, flood = 6, 30

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=64)) as client:
            calls = [client.post("/v1/predict", json=single_request(ITEMS[i % len(ITEMS)])) for i in range(flood)]
            depths = [client.get("/health") for _ in range(5)]
            responses = await asyncio.gather(*calls, *depths)
            after = await client.post("/v1/predict", json={"inputs": ITEMS[:max_queue]})
            return responses[:flood], responses[flood:], after, (await client.get("/metrics.json")).json()

    with serve(predictor, max_batch_size=4, max_wait_ms=300, max_queue=max_queue, max_inputs_per_request=6) as server:
        responses, health, after, metrics = asyncio.run(main(server.url))
    statuses = [r.status_code for r in responses]
    assert set(statuses) <= {200, 429, 503} and statuses.count(429) > 0 and statuses.count(200) >= max_queue, statuses
    for i, r in enumerate(responses):
        if r.status_code == 200:
            same_predictions(predictions(r), [expected[i % len(ITEMS)]])
        else:
            assert r.headers["retry-after"] == "1" and "queue is full" in r.text
    assert all(h.json()["queue_depth"] <= max_queue for h in health)
    same_predictions(predictions(after), expected[:max_queue])  # still serving, and correctly
    assert metrics["rejected_full"] == statuses.count(429)


def test_shutdown_answers_requests_already_accepted(predictor, expected):
    async def main(server):
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            calls = asyncio.gather(*(client.post("/v1/predict", json=single_request(item)) for item in ITEMS))
            deadline = time.monotonic() + 20
            while (await client.get("/health")).json()["queue_depth"] < len(ITEMS):  # all queued, waiting
                assert time.monotonic() < deadline, "requests never queued"
                await asyncio.sleep(0.02)
            server.server.should_exit = True
            return await calls

    with serve(predictor, max_wait_ms=1000) as server:
        started = time.monotonic()
        responses = asyncio.run(main(server))
        server.thread.join(30)
        assert not server.thread.is_alive() and time.monotonic() - started < 20
    same_predictions([predictions(r)[0] for r in responses], expected)


def test_tasks_health_and_openapi(predictor):
    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return [await client.get(p) for p in ("/v1/tasks", "/health", "/openapi.json")]

    with serve(predictor) as server:
        tasks, health, schema = asyncio.run(main(server.url))
    listed = {t["name"]: t for t in tasks.json()}
    assert list(listed) == ["rte", "sst2", "cb", "stsb"]
    assert listed["cb"]["kind"] == "classification" and listed["cb"]["label_words"] == [
        "entailment",
        "contradiction",
        "neutral",
    ]
    assert listed["stsb"]["kind"] == "generation" and listed["rte"]["prompt_from"] == "runs/short"
    assert health.json()["status"] == "ok"
    paths = schema.json()["paths"]
    assert {"/v1/predict", "/v1/tasks", "/health", "/metrics"} <= set(paths)
    assert "PredictRequest" in schema.text


def test_metrics_speak_prometheus_and_the_openapi_document_carries_the_version(predictor):
    from prometheus_client.parser import text_string_to_metric_families

    from promptmix import __version__

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            await asyncio.gather(*[client.post("/v1/predict", json=single_request(item)) for item in ITEMS])
            await client.post("/v1/predict", json={"inputs": ITEMS[:4]})
            return [await client.get(p) for p in ("/metrics", "/metrics.json", "/openapi.json")]

    with serve(predictor, max_batch_size=4) as server:
        text, as_json, schema = asyncio.run(main(server.url))
    assert text.headers["content-type"].startswith("text/plain; version=")
    families = {f.name: f for f in text_string_to_metric_families(text.text)}  # prometheus-client's own parser
    value = {(s.name, tuple(sorted(s.labels.items()))): s.value for f in families.values() for s in f.samples}
    counts = as_json.json()
    assert value[("promptmix_requests_total", ())] == counts["requests"] == len(ITEMS) + 1
    assert value[("promptmix_inputs_total", ())] == counts["items"] == len(ITEMS) + 4
    assert value[("promptmix_batches_total", ())] == counts["batches"] >= 1
    assert value[("promptmix_rejected_total", (("reason", "queue_full"),))] == 0
    # The batch-size histogram: +Inf counts every batch, the sum every input, buckets are cumulative.
    assert value[("promptmix_batch_size_count", ())] == counts["batches"]
    assert value[("promptmix_batch_size_sum", ())] == counts["items"]
    assert value[("promptmix_batch_size_bucket", (("le", "4.0"),))] == counts["batches"]  # max_batch_size 4
    assert value[("promptmix_batch_size_bucket", (("le", "1.0"),))] == counts["batch_sizes"].get("1", 0)
    assert families["promptmix_queue_capacity"].samples[0].value == 64
    assert schema.json()["info"]["version"] == __version__


def test_tasks_report_the_input_limit_the_prompts_were_trained_with(t5_tokenizer):
    limited = tiny_predictor(Backbone(tiny_t5(), t5_tokenizer, "tiny-t5"), max_source_lengths={"rte": 96, "cb": 40})

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=30) as client:
            return (await client.get("/v1/tasks")).json(), await client.post(
                "/v1/predict", json={"task": "rte", "inputs": ["word " * 150]}
            )

    with serve(limited) as server:
        tasks, too_long = asyncio.run(main(server.url))
    assert {t["name"]: t["max_source_length"] for t in tasks} == {"rte": 96, "sst2": 256, "cb": 40, "stsb": 256}
    assert too_long.status_code == 413 and "over the limit of 96" in too_long.text  # and inputs are held to it
