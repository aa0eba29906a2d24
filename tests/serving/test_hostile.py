"""The server on loopback against hostile and unlucky clients: every answer is the documented
error shape, slow or partial requests lose their slot at the read deadline (408), oversized
inputs are refused without tokenising, and good traffic stays correct and about as fast while
all of that goes on."""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import time

import httpx
import pytest
from predictor_factory import ITEMS, same_predictions, tiny_predictor
from test_server import predictions, single_request
from tiny_models import tiny_t5

from promptmix.backbone import Backbone
from promptmix.serving.app import ServeConfig, create_app
from promptmix.serving.batcher import BatcherConfig
from promptmix.serving.server import BackgroundServer

ERROR_KEYS = {"type", "message", "index"}


@pytest.fixture(scope="module")
def predictor(t5_tokenizer):
    # Named as load_backbone names a local model directory: an absolute path.
    return tiny_predictor(Backbone(tiny_t5(), t5_tokenizer, "/srv/models/tiny-t5"), "attempt")


@pytest.fixture(scope="module")
def expected(predictor):
    return predictor.predict(ITEMS)


def serve(predictor, read_timeout=10.0, max_connections=None, max_body_bytes=1 << 20):
    config = ServeConfig(BatcherConfig(16, 2.0, 256), max_body_bytes=max_body_bytes, read_timeout=read_timeout)
    return BackgroundServer(create_app(predictor, config), max_connections=max_connections, read_timeout=read_timeout)


def port_of(server) -> int:
    return int(server.url.rsplit(":", 1)[1])


def documented_error(response, status: int, kind: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert list(body) == ["error"] and set(body["error"]) == ERROR_KEYS and body["error"]["type"] == kind, body
    return body["error"]


# -- defect 1: nothing outside the documented shape ---------------------------------------------
RAW_BAD = [  # (what, body bytes, status, type)
    ("lone surrogate in a text", b'{"task": "sst2", "inputs": ["a \\ud800 b"]}', 422, "invalid"),
    (
        "lone surrogate in a record",
        b'{"inputs": [{"task": "rte", "record": {"sentence1": "\\udfff", "sentence2": "b"}}]}',
        422,
        "invalid",
    ),
    ("body not UTF-8", b'{"task": "sst2", "inputs": ["caf\xe9"]}', 400, "malformed_json"),
    ("nested 200,000 deep", b"[" * 200_000 + b"]" * 200_000, 400, "malformed_json"),
]


def test_every_answer_is_the_documented_error_shape(predictor, expected, monkeypatch):
    def crash(prepared):
        raise RuntimeError("a bug in the model code")

    with serve(predictor) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        for what, body, status, kind in RAW_BAD:
            response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
            error = documented_error(response, status, kind)
            assert (error["index"] == 0) == (status == 422), (what, error)
            same_predictions(predictions(client.post("/v1/predict", json=single_request(ITEMS[0]))), expected[:1])
        documented_error(client.get("/v2/nothing"), 404, "not_found")
        documented_error(client.delete("/v1/predict"), 405, "method_not_allowed")
        health = client.get("/health").json()
    monkeypatch.setattr(predictor, "run", crash)  # the batcher takes predictor.run when the app starts
    crashing = serve(predictor)  # uvicorn configures its loggers here: listen after that
    uvicorn_log: list[logging.LogRecord] = []
    handler = logging.Handler()
    handler.emit = uvicorn_log.append
    logging.getLogger("uvicorn.error").addHandler(handler)
    try:
        with crashing as server, httpx.Client(base_url=server.url, timeout=60) as client:
            error = documented_error(client.post("/v1/predict", json=single_request(ITEMS[0])), 500, "internal_error")
    finally:
        logging.getLogger("uvicorn.error").removeHandler(handler)
    assert "RuntimeError" in error["message"] and "a bug in the model code" not in error["message"]
    assert any(r.exc_info and r.exc_info[0] is RuntimeError for r in uvicorn_log)  # logged with its traceback
    assert health["backbone"] == "tiny-t5"  # defect 8: the model's name, not where it lives on disk


def test_an_unknown_task_is_not_echoed_back(predictor):
    with serve(predictor) as server:
        response = httpx.post(
            server.url + "/v1/predict", json={"task": "sst" + "2" * 100_000, "inputs": ["a"]}, timeout=60
        )
    error = documented_error(response, 422, "unknown_task")
    assert len(response.content) < 1000 and "(100005 characters)" in error["message"]


# -- defect 2: slow and partial requests lose their slot ----------------------------------------
async def _hold(
    port: int, payload: bytes, drip: bytes = b"", drip_for: float = 0, deadline: float = 60
) -> tuple[bytes, float]:
    """Send ``payload``, then ``drip`` a byte every 0.05 s for ``drip_for`` seconds, and wait
    until the server closes the connection: (everything received, seconds until then).

    The drip stops before the server's deadline: a byte sent after the server closed would
    be answered with a reset, which discards the 408 not yet read."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    start = time.monotonic()
    writer.write(payload)

    async def dripping():
        for byte in drip:
            await asyncio.sleep(0.05)
            if time.monotonic() - start > drip_for:
                return
            writer.write(bytes([byte]))

    task = asyncio.create_task(dripping())
    try:
        received = await asyncio.wait_for(reader.read(), deadline)  # read() returns at EOF: the server closed
    finally:
        task.cancel()
        writer.close()
    return received, time.monotonic() - start


def _parse(raw: bytes) -> tuple[int, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return int(head.split(b" ", 2)[1]), json.loads(body)


def test_slow_and_partial_requests_are_answered_408_and_free_their_slots(predictor, expected):
    """8 connections allowed, 8 held by slow clients: the next request gets a 503 (JSON) until
    the read deadline frees them all with 408s, then the server answers again. The drippers
    send a byte every 0.05 s until 0.75 of the deadline: a deadline that each byte restarted
    would close them 1.75 deadlines after they connected, not 1."""
    timeout = 2.0
    body_head = b'{"task": "sst2", "inputs": ["a'
    slow = [  # (what, payload, drip)
        *[
            (
                f"partial body {i}",
                b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 1000\r\n\r\n" + body_head,
                b"",
            )
            for i in range(5)
        ],
        ("body a byte at a time", b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 1000\r\n\r\n", b"a" * 1000),
        ("partial headers", b"POST /v1/predict HTTP/1.1\r\nhost: x\r\n", b""),
        ("headers a byte at a time", b"P", b"OST /v1/predict HTTP/1.1\r\nhost: x\r\nx-slow: " + b"y" * 1000),
    ]

    async def main(server):
        held = [asyncio.create_task(_hold(port_of(server), payload, drip, 0.75 * timeout)) for _, payload, drip in slow]
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:
            await asyncio.sleep(timeout / 4)  # all eight connected (drips keep them busy)
            refused = await client.get("/health")
            answers = await asyncio.gather(*held)
            after = await client.post("/v1/predict", json=single_request(ITEMS[2]))
            return refused, answers, after

    with serve(predictor, read_timeout=timeout, max_connections=len(slow)) as server:
        refused, answers, after = asyncio.run(main(server))
    documented_error(refused, 503, "over_capacity")
    for (what, _, _), (raw, seconds) in zip(slow, answers):
        status, body = _parse(raw)
        assert status == 408 and body["error"]["type"] == "request_timeout", (what, raw)
        part = "headers" if "headers" in what else "body"
        assert body["error"]["message"] == f"the request's {part} did not arrive within {timeout:g} s", what
        assert timeout * 0.9 <= seconds < timeout * 1.6, (what, seconds)  # at the deadline, not restarted by bytes
    same_predictions(predictions(after), expected[2:3])


def test_an_idle_connection_is_closed_silently_at_the_deadline(predictor):
    async def main(server):
        return await _hold(port_of(server), b"", deadline=15)

    with serve(predictor, read_timeout=1.0) as server:
        received, seconds = asyncio.run(main(server))
    assert received == b"" and seconds >= 0.9


# -- defect 5 and the mix: hostile clients beside good traffic ----------------------------------
# Good requests' p99 with the hostile clients running, at most this times without. Measured
# 1.45-1.50x on the shared 2-core machine, but 10.3x once when three training processes ran
# beside the suite: p99 over ~130 requests is close to the slowest one, which a CPU burst from
# elsewhere sets. What this guards against (a held slot, a request tokenising 1 MB first) costs
# seconds per request, i.e. 20-100x; slots freed and every 4xx are asserted exactly above.
P99_FACTOR = 20.0
HOSTILE_PAUSE = 0.02  # seconds between one hostile poster's requests


def _p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[round(0.99 * (len(ordered) - 1))]


async def _good_traffic(url: str, expected, count: int, concurrency: int) -> list[float]:
    """``count`` one-input requests from ``concurrency`` closed-loop clients, every answer
    checked against the offline prediction; returns the latencies."""
    latencies: list[float] = []
    numbers = iter(range(count))
    async with httpx.AsyncClient(base_url=url, timeout=60, limits=httpx.Limits(max_connections=concurrency)) as client:

        async def loop():
            for i in numbers:
                start = time.perf_counter()
                response = await client.post("/v1/predict", json=single_request(ITEMS[i % len(ITEMS)]))
                latencies.append(time.perf_counter() - start)
                same_predictions(predictions(response), [expected[i % len(ITEMS)]])

        await asyncio.gather(*(loop() for _ in range(concurrency)))
    return latencies


async def _hostile_traffic(
    url: str, port: int, timeout: float, stop: asyncio.Event, seen: dict[str, list[int]]
) -> None:
    """Until ``stop``: oversized inputs (~1 MB, under the body limit), lone surrogates, bodies
    over the limit (2 MB), each posted every HOSTILE_PAUSE s, and partial and slow bodies held
    by eight connections; records the statuses. (Paced because these clients share the
    process, and so the GIL, with the server: flooding would measure the test's own client.)"""
    huge = json.dumps({"task": "sst2", "inputs": ["word " * 200_000]}).encode()
    surrogate = b'{"task": "rte", "inputs": ["a \\ud800 b"]}'
    over_limit = b'{"task": "sst2", "inputs": ["' + b"a" * (2 << 20) + b'"]}'

    async def posting(kind: str, body: bytes):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            while not stop.is_set():
                response = await client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
                seen[kind].append(response.status_code)
                await asyncio.sleep(HOSTILE_PAUSE)

    async def holding(kind: str, payload: bytes, drip: bytes):
        while not stop.is_set():
            raw, _ = await _hold(port, payload, drip, 0.75 * timeout)
            seen[kind].append(_parse(raw)[0])

    partial = b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 500\r\n\r\n" + b'{"task": "sst2"'
    slow = b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 400\r\n\r\n"
    await asyncio.gather(
        posting("huge", huge),
        posting("surrogate", surrogate),
        posting("over_limit", over_limit),
        *[holding("partial", partial, b"") for _ in range(4)],
        *[holding("slow", slow, b"x" * 400) for _ in range(4)],
    )


def test_hostile_clients_leave_good_traffic_correct_and_about_as_fast(predictor, expected):
    """Rounds of the same good load (4 closed-loop clients, 42 requests) alternate without and
    with hostile clients (three posting bad requests back to back, eight holding slow or
    partial requests), so background load falls on both alike; good answers must all equal
    offline predict, every hostile request must get its 4xx, and the good requests' p99 with
    hostile clients must stay within P99_FACTOR of the p99 without."""
    timeout, rounds, count = 0.5, 3, 6 * len(ITEMS)

    async def main(server):
        calm, stormy = [], []
        seen: dict[str, list[int]] = {k: [] for k in ("huge", "surrogate", "over_limit", "partial", "slow")}
        await _good_traffic(server.url, expected, len(ITEMS), 2)  # warm-up
        for _ in range(rounds):
            calm += await _good_traffic(server.url, expected, count, 4)
            stop = asyncio.Event()
            storm = asyncio.create_task(_hostile_traffic(server.url, port_of(server), timeout, stop, seen))
            await asyncio.sleep(timeout)  # the slow clients hold their connections by now
            stormy += await _good_traffic(server.url, expected, count, 4)
            stop.set()
            await storm
        return calm, stormy, seen

    with serve(predictor, read_timeout=timeout, max_connections=64) as server:
        calm, stormy, seen = asyncio.run(main(server))
    assert {kind: set(statuses) for kind, statuses in seen.items()} == {
        "huge": {413},
        "surrogate": {422},
        "over_limit": {413},
        "partial": {408},
        "slow": {408},
    }, seen
    assert len(seen["huge"]) >= rounds and len(seen["partial"]) >= 4 * rounds
    ratio = _p99(stormy) / _p99(calm)
    print(
        f"good p99 {1000 * _p99(calm):.0f} ms calm, {1000 * _p99(stormy):.0f} ms with hostile clients: x{ratio:.2f}; "
        f"medians {1000 * statistics.median(calm):.0f} / {1000 * statistics.median(stormy):.0f} ms; hostile requests "
        + ", ".join(f"{k} {len(v)}" for k, v in seen.items())
    )
    assert ratio <= P99_FACTOR, (ratio, _p99(calm), _p99(stormy))
