"""Running the app: in the foreground (``promptmix serve``) or on a background thread (tests,
benchmarks), always through ``uvicorn.Server`` so shutdown drains in-flight requests."""

from __future__ import annotations

import functools
import os
import socket
import threading
import time
from typing import Any

import uvicorn

from promptmix.serving.limits import DEFAULT_READ_TIMEOUT, GuardedH11Protocol


def default_threads() -> int:
    """Model threads for serving: ``$OMP_NUM_THREADS`` when set, else the CPUs this process
    may use less two, at least one.

    Why: the server runs three busy threads besides the model's (event loop, the request
    preparation thread, and the model worker), and torch's OpenMP threads spin while they
    wait for work. With one intra-op thread per core they take the cores from the event loop
    and the tokenizer: on 2 cores ``promptmix serve`` did 4–18 requests/s (p99 3.4–7.8 s)
    with torch's default of 2 threads and 42–79 requests/s (p99 0.3–0.7 s) with 1.
    """
    configured = os.environ.get("OMP_NUM_THREADS", "").strip()
    if configured.isdigit() and int(configured) > 0:
        return int(configured)
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cpus - 2)


def check_address(host: str, port: int) -> None:
    """Raise ValueError now if the server could not listen on ``host:port`` (unknown address,
    port taken or not allowed), rather than after the model has loaded."""
    try:
        family, kind, proto, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)[0]
        with socket.socket(family, kind, proto) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
            probe.bind(address)
    except OSError as err:
        raise ValueError(f"cannot listen on {host}:{port}: {err.strerror or err}") from None


def make_server(
    app: Any,
    host: str = "127.0.0.1",
    port: int = 8000,
    *,
    max_connections: int | None = None,
    read_timeout: float = DEFAULT_READ_TIMEOUT,
    log_level: str = "info",
) -> uvicorn.Server:
    """A uvicorn server for ``app``. ``max_connections`` bounds concurrent connections
    (503 beyond it), so open sockets cannot grow memory without limit; a connection whose
    request headers take longer than ``read_timeout`` seconds is answered 408 and closed
    (:class:`~promptmix.serving.limits.GuardedH11Protocol`), so slow clients cannot keep
    those slots. Give the app the same ``read_timeout`` (``ServeConfig``) for the body."""
    if not 0 <= port <= 65535:
        raise ValueError(f"port must lie in 0..65535 (0: any free port), got {port}")
    if max_connections is not None and max_connections < 1:
        raise ValueError(f"max_connections must be >= 1, got {max_connections}")
    if not read_timeout > 0:
        raise ValueError(f"read_timeout must be > 0 seconds, got {read_timeout}")
    config = uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        limit_concurrency=max_connections,
        # uvicorn only calls ``http`` to make each connection's protocol; its annotation asks for
        # a class, so a factory binding read_timeout does not match it.
        http=functools.partial(GuardedH11Protocol, read_timeout=read_timeout),  # type: ignore[arg-type]
        timeout_graceful_shutdown=None,
    )
    return uvicorn.Server(config)


class BackgroundServer:
    """``make_server(...)`` run on a daemon thread; a context manager that starts it (waiting
    until it listens) and stops it (draining in-flight requests). Port 0 picks a free port.

    Example::

        with BackgroundServer(create_app(predictor), port=0) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(
        self, app: Any, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 60, **options: Any
    ) -> None:
        options.setdefault("log_level", "warning")
        self.server = make_server(app, host, port, **options)
        self.thread = threading.Thread(target=self.server.run, name="promptmix-server", daemon=True)
        self.start_timeout = start_timeout

    @property
    def url(self) -> str:
        host, port = self.server.servers[0].sockets[0].getsockname()[:2]
        return f"http://{host}:{port}"

    def start(self) -> BackgroundServer:
        self.thread.start()
        deadline = time.monotonic() + self.start_timeout
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("server did not start (see its log above)")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 60) -> None:
        """Ask the server to exit (it finishes in-flight requests first) and wait for it."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            raise RuntimeError(f"server did not stop within {timeout} s")

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        if self.thread.is_alive():
            self.stop()
