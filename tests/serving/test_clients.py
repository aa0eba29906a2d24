"""Existing clients against the server on loopback: the official ``openai`` client on
/v1/completions and /v1/models, a browser on /docs with no network, and the HTTP edges
(500s that close, 413 then idle, bytes that are not HTTP, candidates without bound, clients
that leave) answered in the documented shape."""

from __future__ import annotations

import asyncio
import json
import math
import re
import socket
import time

import httpx
import pytest
from method_factories import make_method
from predictor_factory import ITEMS, same_predictions, tiny_predictor
from test_hostile import documented_error, port_of
from test_server import predictions, single_request
from tiny_models import tiny_t5

from promptmix.backbone import Backbone
from promptmix.inference.predictor import Predictor
from promptmix.prompts.router import PromptRouter
from promptmix.serving.app import ServeConfig, create_app
from promptmix.serving.batcher import BatcherConfig
from promptmix.serving.server import BackgroundServer

openai = pytest.importorskip("openai")


@pytest.fixture(scope="module")
def predictor(t5_tokenizer):
    return tiny_predictor(Backbone(tiny_t5(), t5_tokenizer, "tiny-t5"), "attempt")


@pytest.fixture(scope="module")
def expected(predictor):
    return predictor.predict(ITEMS)


def serve(predictor, read_timeout=10.0, max_body_bytes=1 << 20, max_wait_ms=2.0, max_inputs_per_request=64):
    config = ServeConfig(
        BatcherConfig(32, max_wait_ms, 256),
        max_body_bytes=max_body_bytes,
        read_timeout=read_timeout,
        max_inputs_per_request=max_inputs_per_request,
    )
    return BackgroundServer(create_app(predictor, config), host="127.0.0.1", read_timeout=read_timeout)


# -- issue 35 §1: OpenAI / vLLM clients -----------------------------------------------------------
def test_the_openai_client_lists_the_tasks_and_gets_the_offline_answers(predictor, expected):
    rte_record, rte_text, stsb_record = ITEMS[0], ITEMS[6], ITEMS[3]
    with serve(predictor) as server:
        client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0, timeout=60)
        models = client.models.list().data
        ranked = client.completions.create(model="rte", prompt=[rte_text["text"], rte_record["record"]])
        qualified = client.completions.create(model="runs/short:rte", prompt=rte_text["text"])
        generated = client.completions.create(model="stsb", prompt=stsb_record["record"])
        short = client.completions.create(model="STS-B", prompt=stsb_record["record"], max_tokens=1)
        # What LangChain's OpenAI wrapper sends besides: neutral settings, accepted.
        neutral = client.completions.create(
            model="rte",
            prompt=rte_text["text"],
            temperature=0.7,
            top_p=1,
            n=1,
            best_of=1,
            frequency_penalty=0,
            presence_penalty=0,
            seed=3,
            logprobs=1,
        )
        errors = {}
        for what, kwargs in {
            "unknown model": dict(model="rtx", prompt="x"),
            "wrong source": dict(model="runs/long:rte", prompt="x"),
            "unknown key": dict(model="rte", prompt="x", extra_body={"max_new_tokens": -5}),
            "max_tokens over the server's": dict(model="stsb", prompt="x", max_tokens=5),
            "token ids": dict(model="rte", prompt=[[1, 2, 3]]),
            "stop sequences": dict(model="stsb", prompt="x", stop=["."]),
            "two answers": dict(model="rte", prompt="x", n=2),
            "streaming": dict(model="rte", prompt="x", stream=True),
            "temperature over its bound": dict(model="rte", prompt="x", temperature=2.5),
            "no prompt": dict(model="rte", prompt=[]),
        }.items():
            with pytest.raises(openai.APIStatusError) as err:
                client.completions.create(**kwargs)
            errors[what] = (err.value.status_code, err.value.body)
    assert [(m.id, m.root, m.parent) for m in models] == [
        ("rte", "runs/short", "tiny-t5"),
        ("sst2", "runs/short", "tiny-t5"),
        ("cb", "runs/long", "tiny-t5"),
        ("stsb", "runs/long", "tiny-t5"),
    ]
    assert [c.text for c in ranked.choices] == [
        expected[6].text,
        expected[0].text,
    ] and ranked.object == "text_completion"
    for choice, offline in zip(ranked.choices, [expected[6], expected[0]]):
        scores = choice.logprobs.top_logprobs[0]
        assert list(scores) == ["entailment", "not_entailment"] and choice.logprobs.tokens == [choice.text]
        assert abs(sum(map(math.exp, scores.values())) - 1) < 1e-5
        assert abs(math.exp(choice.logprobs.token_logprobs[0]) - offline.score) < 1e-4
    assert qualified.choices[0].text == neutral.choices[0].text == expected[6].text
    assert all(errors[what][0] == 422 for what in ("stop sequences", "two answers", "streaming")), errors
    assert generated.choices[0].text == expected[3].text and generated.choices[0].logprobs is None
    assert short.choices[0].finish_reason == "length"
    assert errors["unknown model"][0] == 404 and "Did you mean 'rte'" in errors["unknown model"][1]["message"]
    assert errors["wrong source"][0] == 404 and "'runs/short', not 'runs/long'" in errors["wrong source"][1]["message"]
    assert errors["unknown key"][0] == 422 and "'max_new_tokens'" in errors["unknown key"][1]["message"]
    assert errors["max_tokens over the server's"][0] == 422
    assert "over the server's limit of 4 (--max-new-tokens)" in errors["max_tokens over the server's"][1]["message"]
    assert errors["token ids"][0] == 422
    # Bounds declared on the request's fields, worded as a config's: the field, the bound, the value sent.
    for what, message in {
        "two answers": "n must be <= 1, got 2",
        "temperature over its bound": "temperature must be <= 2, got 2.5",
        "no prompt": "prompt must be non-empty, got []",
    }.items():
        assert errors[what][0] == 422 and errors[what][1]["message"] == message, errors[what]


@pytest.mark.parametrize(
    "path, body, key",
    [
        ("/v1/predict", {"task": "sst2", "inputs": ["sst2 sentence: a"], "max_new_tokens": -5}, "max_new_tokens"),
        ("/v1/predict", {"task": "sst2", "input": ["sst2 sentence: a"], "inputs": ["sst2 sentence: a"]}, "input"),
        ("/v1/completions", {"model": "sst2", "prompt": "sst2 sentence: a", "max_new_tokens": 200}, "max_new_tokens"),
        (
            "/v1/predict",
            {"inputs": [{"task": "sst2", "text": "sst2 sentence: a", "max_new_tokens": 5}]},
            "max_new_tokens",
        ),
    ],
)
def test_an_unknown_key_is_refused_naming_it_on_every_endpoint(predictor, path, body, key):
    """Issue 36.17: ``"max_new_tokens": -5`` was ignored and the request answered 200. A key
    of the body is the request's fault (index null), a key of one input that input's."""
    with serve(predictor) as server:
        response = httpx.post(server.url + path, json=body, timeout=60)
    in_input = "task" not in body and "model" not in body
    error = documented_error(response, 422, "invalid" if in_input else "invalid_request")
    assert f"unknown key(s) '{key}'" in error["message"] and "accepted:" in error["message"], error
    assert error["index"] == (0 if in_input else None)


@pytest.mark.parametrize(
    "method, path",
    [("POST", "/v1/predict?task=rte"), ("GET", "/v1/models?limit=1"), ("GET", "/health?verbose=1&verbose=2")],
)
def test_an_unknown_query_parameter_is_refused_naming_it(predictor, method, path):
    with serve(predictor) as server:
        response = httpx.request(
            method, server.url + path, json={"task": "sst2", "inputs": ["sst2 sentence: a"]}, timeout=60
        )
    error = documented_error(response, 422, "invalid_request")
    name = path.split("?")[1].split("=")[0]
    assert error["message"].startswith(f"unknown query parameter(s) '{name}':"), error


# -- /docs offline, and a schema that says what is sent -------------------------------------------
def test_docs_load_every_asset_from_promptmix_itself(predictor):
    with serve(predictor) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        page = client.get("/docs")
        assert page.status_code == 200 and "SwaggerUIBundle" in page.text
        # Whatever the page loads: src/href attributes, and the schema URL the script fetches.
        assets = re.findall(r'(?:src|href)="([^"]+)"', page.text) + re.findall(r"url: '([^']+)'", page.text)
        assert "https://" not in page.text and "http://" not in page.text, page.text
        fetched = {url: client.get(url) for url in assets}
    assert len(assets) >= 4 and all(url.startswith("/") for url in assets), assets  # same origin: promptmix
    assert all(r.status_code == 200 and len(r.content) > 1000 for r in fetched.values()), {
        u: r.status_code for u, r in fetched.items()
    }
    assert any(url.endswith(".js") for url in assets) and any(url.endswith(".css") for url in assets)


def test_the_schema_documents_the_error_shape_that_is_sent(predictor):
    with serve(predictor) as server, httpx.Client(base_url=server.url, timeout=60) as client:
        spec = client.get("/openapi.json").json()
        sent = client.post("/v1/predict", json={"task": "sst2", "inputs": []}).json()
    assert "HTTPValidationError" not in json.dumps(spec)
    error_schema = spec["components"]["schemas"]["ErrorResponse"]
    detail = spec["components"]["schemas"]["ErrorDetail"]
    for path in ("/v1/predict", "/v1/completions"):
        responses = spec["paths"][path]["post"]["responses"]
        for status in ("400", "413", "422", "429", "500", "503"):
            assert responses[status]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
    assert list(sent) == list(error_schema["properties"]) and set(sent["error"]) == set(detail["properties"])


# -- issue 36.4: a 500 says it closes the connection ----------------------------------------------
def test_a_500_says_connection_close_and_the_clients_next_request_is_answered(predictor, expected, monkeypatch):
    original = predictor.run

    def crash_on_cb(prepared):
        if any(p.task == "cb" for p in prepared):
            raise RuntimeError("a bug in the model code")
        return original(prepared)

    monkeypatch.setattr(predictor, "run", crash_on_cb)
    with serve(predictor) as server:
        with httpx.Client(base_url=server.url, timeout=60) as client:  # one keep-alive connection pool
            answers = [client.post("/v1/predict", json=single_request(ITEMS[i])) for i in (1, 2, 1, 2)]
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as raw:
            body = json.dumps(single_request(ITEMS[1])).encode()
            raw.sendall(
                b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: %d\r\n\r\n%s" % (len(body), body)
            )
            received = _read_until_closed(raw)
    for crashed in answers[0::2]:
        documented_error(crashed, 500, "internal_error")
        assert crashed.headers["connection"] == "close"
    for good in answers[1::2]:
        same_predictions(predictions(good), expected[2:3])
    head = received.split(b"\r\n\r\n")[0].lower()
    assert head.startswith(b"http/1.1 500") and b"connection: close" in head


def _read_until_closed(raw: socket.socket) -> bytes:
    chunks = []
    while chunk := raw.recv(65536):
        chunks.append(chunk)
    return b"".join(chunks)


# -- issue 36.16: HTTP edges ------------------------------------------------------------------------
NOT_HTTP = [  # (what, bytes, status)
    (
        "Content-Length beside chunked",
        b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-length: 5\r\ntransfer-encoding: chunked\r\n\r\n0\r\n\r\n",
        400,
    ),
    ("negative Content-Length", b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-length: -5\r\n\r\n", 400),
    ("1 MB header", b"GET /health HTTP/1.1\r\nhost: x\r\nx-big: " + b"a" * (1 << 20) + b"\r\n\r\n", 431),
    ("HTTP/2 preface", b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", 505),
    ("a request line of garbage", b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03\r\n\r\n", 400),
]


@pytest.mark.parametrize("what, payload, status", NOT_HTTP, ids=[w for w, _, _ in NOT_HTTP])
def test_bytes_that_are_not_http_get_the_json_error_shape(predictor, what, payload, status):
    with serve(predictor) as server, socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as raw:
        try:
            raw.sendall(payload)
        except (BrokenPipeError, ConnectionResetError):  # the server may answer and close before all is sent
            pass
        received = _read_until_closed(raw)
    head, _, body = received.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d" % status), (what, received[:300])
    assert b"content-type: application/json" in head.lower() and b"connection: close" in head.lower()
    error = json.loads(body)["error"]
    assert error["type"] == "bad_http_request" and error["message"].startswith("the request is not valid HTTP/1.1"), (
        error
    )


def test_after_a_413_an_idle_connection_gets_no_unsolicited_408(predictor):
    """The refused body keeps arriving after the 413; it once counted as a new request begun,
    so the idle connection got a 408 nobody asked for at the read deadline."""
    timeout = 0.5
    with serve(predictor, read_timeout=timeout, max_body_bytes=1024) as server:
        with socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as raw:
            raw.sendall(
                b"POST /v1/predict HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\n"
                b"content-length: 2000\r\n\r\n"
            )
            first = b""
            while b"}}" not in first:  # the 413's headers and body, refused on the declared length
                first += raw.recv(65536)
            raw.sendall(b"x" * 2000)  # the client sends its body all the same, then waits
            start = time.monotonic()
            rest = _read_until_closed(raw)  # closed, silently, at the deadline
            waited = time.monotonic() - start
    assert first.startswith(b"HTTP/1.1 413") and b"body_too_large" in first, first
    assert rest == b"" and waited >= timeout * 0.8, (rest, waited)


# -- issue 36.1: candidates without bound, clients that leave ----------------------------------------
def _rss_kib() -> int:
    with open("/proc/self/status") as status:
        return int(next(line for line in status if line.startswith("VmRSS:")).split()[1])


def test_good_requests_batched_with_a_20000_choice_request_all_get_200_and_memory_stays_bounded(t5_tokenizer):
    backbone = Backbone(tiny_t5(), t5_tokenizer, "tiny-t5")
    method = make_method("prompt-tuning", ["copa-choices", "sst2"], backbone.hidden_size, prompt_length=3, seed=5)
    predictor = Predictor(backbone, PromptRouter({"runs/mc": method}))
    text = "copa-choices premise: The man broke his toe. question: cause"
    good = [
        {
            "task": "copa-choices",
            "inputs": [{"premise": "It rained.", "question": "effect", "choice1": f"Puddles {i}.", "choice2": "Sun."}],
        }
        if i % 2
        else {"task": "sst2", "inputs": [f"sst2 sentence: film number {i}"]}
        for i in range(25)
    ]
    offline = predictor.predict(
        [{"task": r["task"], "record" if isinstance(r["inputs"][0], dict) else "text": r["inputs"][0]} for r in good]
    )
    hostile = {"inputs": [{"task": "copa-choices", "text": text, "choices": [f"choice {i}" for i in range(20_000)]}]}

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            calls = [client.post("/v1/predict", json=body) for body in good]
            calls.insert(12, client.post("/v1/predict", json=hostile))
            return await asyncio.gather(*calls)

    before = _rss_kib()
    with serve(predictor, max_wait_ms=200.0) as server:
        answers = asyncio.run(main(server.url))
    grown_mib = (_rss_kib() - before) / 1024
    refused = documented_error(answers.pop(12), 413, "too_many_choices")
    assert (
        "20000 choices; at most 256 per input (max_choices, --max-choices)" in refused["message"]
        and refused["index"] == 0
    )
    for response, want in zip(answers, offline):
        same_predictions(predictions(response), [want])
    assert grown_mib < 300, grown_mib  # 20,000 candidate rows at once asked for gigabytes


def test_a_request_whose_client_left_is_not_run(predictor, monkeypatch):
    import threading

    release, seen = threading.Event(), []
    original = predictor.run

    def held(prepared):
        seen.append([p.task for p in prepared])
        release.wait(30)
        return original(prepared)

    monkeypatch.setattr(predictor, "run", held)

    async def main(url):
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            first = asyncio.ensure_future(client.post("/v1/predict", json=single_request(ITEMS[2])))  # holds the model
            await asyncio.sleep(0.3)
            with pytest.raises(httpx.ReadTimeout):  # the client gives up and closes its connection
                await client.post("/v1/predict", json=single_request(ITEMS[0]), timeout=0.5)
            await asyncio.sleep(0.3)
            release.set()
            await first
            for _ in range(50):  # the batcher reaches the left request's item after the first batch
                metrics = (await client.get("/metrics.json")).json()
                if metrics["abandoned"] or metrics["batches"] > 1:
                    break
                await asyncio.sleep(0.1)
            return metrics, (await client.get("/metrics")).text

    with serve(predictor) as server:
        metrics, scrape = asyncio.run(main(server.url))
    assert seen == [["sst2"]] and metrics["abandoned"] == 1, (seen, metrics)
    assert "promptmix_abandoned_inputs_total 1.0" in scrape


@pytest.mark.parametrize(
    "record, words",
    [
        ({"sentence1": ["A cat."], "sentence2": "A cat sits."}, "field 'sentence1': expected text, got list"),
        ({"sentence1": {"text": "A cat."}, "sentence2": "A cat sits."}, "field 'sentence1': expected text, got dict"),
    ],
)
def test_a_record_field_of_the_wrong_type_is_a_422_naming_it(predictor, record, words):
    """Issue 36.5: a list where text belongs was rendered as Python syntax, or raised a 500."""
    with serve(predictor) as server:
        response = httpx.post(server.url + "/v1/predict", json={"task": "rte", "inputs": [record]}, timeout=60)
    error = documented_error(response, 422, "invalid")
    assert words in error["message"] and error["index"] == 0, error


def test_a_task_that_checks_no_types_still_answers_422_not_500(predictor, monkeypatch):
    def unchecked(record, **kwargs):  # as a plugin task might: joins whatever it is given
        return " ".join(record["words"])

    monkeypatch.setattr(predictor.tasks["sst2"], "format", unchecked)
    with serve(predictor) as server:
        response = httpx.post(
            server.url + "/v1/predict", json={"task": "sst2", "inputs": [{"words": [1, 2]}]}, timeout=60
        )
    error = documented_error(response, 422, "invalid")
    assert "a record field has the wrong type (TypeError" in error["message"], error


def test_the_server_stops_cleanly_while_it_lingers_after_bytes_that_are_not_http(predictor, monkeypatch):
    import threading

    crashes: list = []
    monkeypatch.setattr(threading, "excepthook", crashes.append)  # an exception that ends the server thread
    server = serve(predictor).start()
    with socket.create_connection(("127.0.0.1", port_of(server)), timeout=30) as raw:
        raw.sendall(b"\x16\x03\x01 garbage\r\n\r\n")
        assert raw.recv(65536).startswith(b"HTTP/1.1 400")
        # The server now reads and drops what follows for LINGER_SECONDS: stopping it meanwhile
        # must neither wait for that nor fail on a connection h11 has marked as broken.
        start = time.monotonic()
        server.stop()
    assert time.monotonic() - start < 1.5 and not server.thread.is_alive()
    assert not crashes, crashes[0].exc_value
