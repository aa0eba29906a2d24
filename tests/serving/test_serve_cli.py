"""`promptmix serve` as a real process: it answers on loopback and, on SIGTERM, finishes the
requests it accepted before exiting."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time

import httpx
import pytest
from predictor_factory import ITEMS, same_predictions, write_tiny_runs
from tiny_models import REPO

from promptmix.inference.loader import load_predictor
from promptmix.rundirs.read import find_methods

CLI = "import sys; from promptmix.cli import main; sys.exit(main())"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path, t5_tokenizer):
    runs = write_tiny_runs(tmp_path, t5_tokenizer, REPO / "tests" / "tasks" / "fixtures")
    port = free_port()
    proc = subprocess.Popen(
        [
            sys.executable,
            "-c",
            CLI,
            "serve",
            "--run",
            str(runs["pt"]),
            "--run",
            str(runs["attempt"]),
            "--port",
            str(port),
            "--max-wait-ms",
            "1000",
            "--max-new-tokens",
            "4",
            "--log-level",
            "warning",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
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
    expected = load_predictor(
        [*find_methods(runs["pt"]), *find_methods(runs["attempt"])], backbone=runs["backbone"], max_new_tokens=4
    ).predict(ITEMS)

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


@pytest.mark.parametrize(
    "flag, value, words",
    [
        ("--max-body-bytes", "-1", "argument --max-body-bytes: must be >= 1024, got -1"),
        ("--max-connections", "0", "argument --max-connections: must be >= 1, got 0"),
        ("--max-new-tokens", "0", "argument --max-new-tokens: must be in 1..1024, got 0"),
        (
            "--max-new-tokens",
            "100000000000000000000",
            "argument --max-new-tokens: must be in 1..1024, got 100000000000000000000",
        ),
        ("--max-new-tokens", "1e20", "argument --max-new-tokens: expected an integer, got '1e20'"),
        ("--max-choices", "0", "argument --max-choices: must be >= 1, got 0"),
        ("--max-choice-tokens", "-3", "argument --max-choice-tokens: must be >= 1, got -3"),
        ("--port", "70000", "argument --port: must be in 0..65535, got 70000"),
        ("--max-queue", "0", "argument --max-queue: must be >= 1, got 0"),
        ("--max-wait-ms", "-5", "argument --max-wait-ms: must be a finite number >= 0, got -5"),
        ("--read-timeout", "nan", "argument --read-timeout: must be a finite number > 0, got nan"),
        ("--threads", "0", "argument --threads: must be >= 1, got 0"),
        ("--batch-size", "many", "argument --batch-size: expected an integer, got 'many'"),
        ("--max-inputs-per-request", "300", "max_inputs_per_request must lie in [1, max_queue=256], got 300"),
    ],
)
def test_a_flag_that_would_break_the_server_is_refused_before_anything_loads(tmp_path, capsys, flag, value, words):
    """The run given does not exist: had the flag been accepted, the error would be about the run."""
    from promptmix.cli import main

    try:
        code = main(["serve", "--run", str(tmp_path / "no-run"), flag, value])
    except SystemExit as exit_:  # argparse's own refusal
        code = exit_.code
    err = capsys.readouterr().err
    assert code == 2 and words in err and "no-run" not in err, err


def test_a_port_in_use_is_refused_before_anything_loads(tmp_path, capsys):
    from promptmix.cli import main

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code = main(["serve", "--run", str(tmp_path / "no-run"), "--port", str(port)])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot listen on 127.0.0.1:{port}" in err and "no-run" not in err, err


@pytest.mark.parametrize(
    "cpus, env, flag, threads",
    [
        (2, None, None, 1),  # this machine's case: one core left for the event loop and the tokenizer
        (8, None, None, 6),
        (8, "3", None, 3),  # an operator's OMP_NUM_THREADS is kept
        (8, "3", "5", 5),  # --threads wins
    ],
)
def test_serve_sets_the_model_threads_before_loading(
    tmp_path, t5_tokenizer, monkeypatch, capsys, cpus, env, flag, threads
):
    import torch

    from promptmix.cli import main
    from promptmix.serving import server as server_module

    runs = write_tiny_runs(tmp_path, t5_tokenizer, REPO / "tests" / "tasks" / "fixtures")
    seen = {}

    class NotServing:  # records what run() would have served with, instead of listening
        def __init__(self, *args, **kwargs):
            seen["threads"] = torch.get_num_threads()

        def run(self):
            pass

    monkeypatch.setattr(server_module, "make_server", NotServing)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: set(range(cpus)))
    if env is None:
        monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    else:
        monkeypatch.setenv("OMP_NUM_THREADS", env)
    before = torch.get_num_threads()
    try:
        code = main(["serve", "--run", str(runs["pt"]), "--port", "0"] + (["--threads", flag] if flag else []))
    finally:
        torch.set_num_threads(before)
    assert code == 0 and seen["threads"] == threads
    assert f"with {threads} model thread(s)" in capsys.readouterr().out
