"""Running the app: in the foreground (``promptmix serve``) or on a background thread (tests,
benchmarks), always through ``uvicorn.Server`` so shutdown drains in-flight requests."""

from __future__ import annotations

import threading
import time
from typing import Any

import uvicorn


def make_server(app: Any, host: str = "127.0.0.1", port: int = 8000, *, max_connections: int | None = None,
                log_level: str = "info") -> uvicorn.Server:
    """A uvicorn server for ``app``. ``max_connections`` bounds concurrent connections
    (uvicorn answers 503 beyond it), so open sockets cannot grow memory without limit."""
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, limit_concurrency=max_connections,
                            timeout_graceful_shutdown=None)
    return uvicorn.Server(config)


class BackgroundServer:
    """``make_server(...)`` run on a daemon thread; a context manager that starts it (waiting
    until it listens) and stops it (draining in-flight requests). Port 0 picks a free port.

    Example::

        with BackgroundServer(create_app(predictor), port=0) as server:
            httpx.get(server.url + "/health")
    """

    def __init__(self, app: Any, host: str = "127.0.0.1", port: int = 0, *, start_timeout: float = 60, **options: Any) -> None:
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
