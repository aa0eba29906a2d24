"""A real uvicorn server on 127.0.0.1 (free port) in a background thread."""

from __future__ import annotations

import contextlib
import threading
import time

import uvicorn


class LiveServer:
    def __init__(self, app, **config) -> None:
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", **config))
        self.thread = threading.Thread(target=self.server.run, name="test-uvicorn", daemon=True)

    @property
    def url(self) -> str:
        port = self.server.servers[0].sockets[0].getsockname()[1]
        return f"http://127.0.0.1:{port}"

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("test server did not start")
            time.sleep(0.02)
        return self

    def stop(self, timeout: float = 30) -> None:
        self.server.should_exit = True
        self.thread.join(timeout)
        assert not self.thread.is_alive(), "test server did not stop"


@contextlib.contextmanager
def live_server(app, **config):
    server = LiveServer(app, **config).start()
    try:
        yield server
    finally:
        if server.thread.is_alive():
            server.stop()
