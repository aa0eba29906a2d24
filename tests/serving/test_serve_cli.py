"""`promptmix serve` as a real process: it answers on loopback and, on SIGTERM, finishes the
requests it accepted before exiting."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest

from promptmix.inference.runs import load_predictor

from predictor_factory import ITEMS, same_predictions, write_tiny_runs
from tiny_models import REPO

CLI = "import sys; from promptmix.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, t5_tokenizer):
    runs = write_tiny_runs(tmp_path, t5_tokenizer, REPO / "tests" / "tasks" / "fixtures")
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", CLI, "serve", "--run", str(runs["pt"]), "--run", str(runs["attempt"]),
                             "--port", str(port), "--max-wait-ms", "1000", "--max-new-tokens", "4", "--log-level", "warning"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        assert proc.poll() is None, proc.stdout.read()
        assert time.monotonic() < deadline, "promptmix serve did not start"
        try:
            if httpx.get(url + "/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.2)
    try:
        yield url, proc, runs
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_answers_and_drains_accepted_requests_on_sigterm(server):
    url, proc, runs = server
    expected = load_predictor([runs["pt"], runs["attempt"]], backbone=runs["backbone"], max_new_tokens=4).predict(ITEMS)

    async def main():
        async with httpx.AsyncClient(base_url=url, timeout=60) as client:
            calls = asyncio.gather(*(client.post("/v1/predict", json={"inputs": [item]}) for item in ITEMS))
            deadline = time.monotonic() + 30
            while (await client.get("/health")).json()["queue_depth"] < len(ITEMS):
                assert time.monotonic() < deadline, "requests never queued"
                await asyncio.sleep(0.02)
            proc.send_signal(signal.SIGTERM)  # while every request waits in the queue
            return await calls

    responses = asyncio.run(main())
    assert [r.status_code for r in responses] == [200] * len(ITEMS)
    from promptmix.inference.predictor import Prediction

    same_predictions([Prediction(**r.json()["predictions"][0]) for r in responses], expected)
    # uvicorn re-raises the signal once drained, so the exit status says "ended by SIGTERM".
    assert proc.wait(30) in (0, -signal.SIGTERM)
