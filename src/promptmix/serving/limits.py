"""What one client may hold: the size of a request body, and how long its headers and body
may take to arrive.

uvicorn bounds the number of connections (``limit_concurrency``) but gives a request no
deadline: a socket that connects and sends nothing, sends its headers a byte at a time, or
declares a Content-Length and sends less, keeps its slot for ever, and a handful of them lock
everyone else out. Two deadlines of ``read_timeout`` seconds each free the slot:

- headers: :class:`GuardedH11Protocol`, uvicorn's h11 protocol with a timer from the moment
  the connection opens (or the previous response ends) until a request's headers are
  complete. It then answers 408 and closes the connection, or just closes it if nothing was
  sent (an idle keep-alive connection, or one still sending the body of a request already
  refused with 413). It also answers uvicorn's connection-limit 503, and what is not valid
  HTTP/1.1 (Content-Length beside chunked encoding, a negative Content-Length, headers over
  uvicorn's limit, HTTP/2's preface), in the API's shape: uvicorn's own are plain text.
- body: :class:`BodyLimit`, ASGI middleware that reads the body within ``read_timeout``
  seconds of the headers (408 and close beyond) and refuses it once it is over
  ``max_bytes`` (413), before anything parses it.

Every answer is the API's error shape ``{"error": {"type", "message", "index"}}``.
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Any

import h11
from fastapi.responses import JSONResponse
from uvicorn.protocols.http.h11_impl import H11Protocol

MAX_MESSAGE_CHARS = 2000  # an error message never carries more of what a client sent
DEFAULT_READ_TIMEOUT = 10.0  # seconds for a request's headers, and again for its body: 1 MiB at 100 KB/s
MIN_BODY_BYTES = 1024  # a body limit below this refuses every useful request
LINGER_SECONDS = 2.0  # after answering bytes that are not HTTP: how long the rest the client sends is read and dropped


def error(status: int, kind: str, message: str, index: int | None = None, headers: dict | None = None) -> JSONResponse:
    """The API's error response: ``{"error": {"type", "message", "index"}}``."""
    if len(message) > MAX_MESSAGE_CHARS:
        message = message[:MAX_MESSAGE_CHARS] + "…"
    return JSONResponse(
        {"error": {"type": kind, "message": message, "index": index}}, status_code=status, headers=headers
    )


def timeout_message(read_timeout: float, part: str) -> str:
    return f"the request's {part} did not arrive within {read_timeout:g} s"


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol, closing a connection whose request headers are not complete
    ``read_timeout`` seconds after it opened or after its previous response ended, and
    answering requests beyond ``limit_concurrency`` with a 503 in the API's error shape.
    Give it to uvicorn as ``uvicorn.Config(http=functools.partial(GuardedH11Protocol,
    read_timeout=...))``."""

    def __init__(self, *args: Any, read_timeout: float, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout = read_timeout
        self._timer: asyncio.TimerHandle | None = None
        self._bytes_since_armed = False
        self._lingering = False
        # The parent would answer over-limit requests in plain text; _bounded does it in JSON.
        # It serves at most limit_concurrency connections and requests, this one included.
        self.max_connections, self.limit_concurrency = self.limit_concurrency, None
        self._app, self.app = self.app, self._bounded

    async def _bounded(self, scope: dict, receive: Any, send: Any) -> None:
        limit = self.max_connections
        if limit is not None and (len(self.connections) > limit or len(self.tasks) > limit):
            response = error(
                503,
                "over_capacity",
                f"the server holds its limit of {limit} connections; retry later",
                headers={"Retry-After": "1", "connection": "close"},
            )
            return await response(scope, receive, send)
        return await self._app(scope, receive, send)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to bytes h11 cannot parse (called inside its ``except
        h11.RemoteProtocolError``), in the API's shape and with h11's reason and status hint
        (431: headers too large, 501: a transfer coding it does not know)."""
        exc = sys.exc_info()[1]
        status = getattr(exc, "error_status_hint", 400)
        reason = str(exc) if isinstance(exc, h11.RemoteProtocolError) and str(exc) else msg
        body = json.dumps(
            {
                "error": {
                    "type": "bad_http_request",
                    "index": None,
                    "message": f"the request is not valid HTTP/1.1: {reason[:200]}",
                }
            }
        ).encode()
        phrases = {400: b"Bad Request", 431: b"Request Header Fields Too Large", 501: b"Not Implemented"}
        status = status if status in phrases else 400
        phrase = phrases[status]
        # h11 is in its error state and sends nothing more: write the response raw, then close.
        self.transport.write(
            b"HTTP/1.1 %d %s\r\ncontent-type: application/json\r\nconnection: close\r\n"
            b"content-length: %d\r\n\r\n%s" % (status, phrase, len(body), body)
        )
        self._linger()

    def _linger(self) -> None:
        """Close once the client stops sending, at most LINGER_SECONDS from now, reading and
        dropping what it still sends meanwhile: closing a socket with unread bytes makes the
        kernel answer with a reset, which can destroy this answer before the client reads it
        (a 1 MB header is refused after its first 16 KB)."""
        self._disarm()
        self._lingering = True
        if self.transport.can_write_eof():
            self.transport.write_eof()  # the client reads the answer, then end of stream
        self.transport.resume_reading()
        self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def connection_made(self, transport: Any) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        if self._lingering:
            return  # the rest of what was refused
        self._bytes_since_armed = True
        super().data_received(data)

    def on_response_complete(self) -> None:
        # Armed before the parent handles a pipelined next request, which replaces self.cycle:
        # the timer then sees a new cycle and lets it be.
        self._arm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self._bytes_since_armed = False
        self._timer = self.loop.call_later(self.read_timeout, self._expire, self.cycle)

    def _disarm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _expire(self, cycle_when_armed: Any) -> None:
        self._timer = None
        if self.transport.is_closing() or self.cycle is not cycle_when_armed:
            return  # closed already, or a request's headers arrived in time
        # A request was begun: bytes of a new request wait in h11's buffer, its headers incomplete.
        # (Bytes alone do not say so: the rest of a body refused with 413 keeps arriving after
        # the 413, and a 408 then would answer no request.) h11 cannot send a response before a
        # request, so raw.
        if (
            self._bytes_since_armed
            and self.conn.our_state is h11.IDLE
            and self.conn.their_state is h11.IDLE
            and self.conn.trailing_data[0]
        ):
            body = json.dumps(
                {
                    "error": {
                        "type": "request_timeout",
                        "index": None,
                        "message": timeout_message(self.read_timeout, "headers"),
                    }
                }
            ).encode()
            self.transport.write(
                b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\n"
                b"connection: close\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)
            )
        self.transport.close()


class BodyLimit:
    """ASGI middleware: the request body within ``read_timeout`` seconds (else 408 and the
    connection closed) and at most ``max_bytes`` (else 413, declared or streamed), read here
    in full before the app sees it, so a huge or endless body cannot grow memory or hold a slot."""

    def __init__(self, app: Any, max_bytes: int, read_timeout: float) -> None:
        self.app, self.max_bytes, self.read_timeout = app, max_bytes, read_timeout

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        refusal = None
        if scope.get("http_version") not in ("1.0", "1.1"):  # h11 parses HTTP/2's preface "PRI * HTTP/2.0" as a request
            refusal = error(
                505,
                "bad_http_request",
                f"the request is not valid HTTP/1.1: HTTP/{scope.get('http_version')} "
                "is not served here (HTTP/1.1 only)",
                headers={"connection": "close"},
            )
        elif b"content-length" in headers and b"transfer-encoding" in headers:
            # RFC 9112 section 6.3: the mark of request smuggling; refused rather than guessed at.
            refusal = error(
                400,
                "bad_http_request",
                "the request is not valid HTTP/1.1: it gives both Content-Length and Transfer-Encoding",
                headers={"connection": "close"},
            )
        if refusal is not None:
            return await refusal(scope, receive, send)
        declared = headers.get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.max_bytes:
            return await self._refuse(scope, receive, send)
        try:
            async with asyncio.timeout(self.read_timeout):
                body = await self._read(receive)
        except TimeoutError:
            response = error(
                408, "request_timeout", timeout_message(self.read_timeout, "body"), headers={"connection": "close"}
            )
            return await response(scope, receive, send)
        if body is None:
            return await self._refuse(scope, receive, send)
        if body is False:
            return  # the client went away
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)

    async def _read(self, receive: Any) -> bytes | None | bool:
        """The whole body; None once it is over ``max_bytes``; False if the client disconnected."""
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return False
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            if size > self.max_bytes:
                return None
            more = message.get("more_body", False)
        return b"".join(chunks)

    async def _refuse(self, scope: dict, receive: Any, send: Any) -> None:
        # The connection stays open: closing it with the rest of the body unread would make the
        # kernel answer with a reset, which can reach the client before this 413 does.
        response = error(413, "body_too_large", f"request body over {self.max_bytes} bytes")
        await response(scope, receive, send)
