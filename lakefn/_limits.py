"""Bounds on what a request may cost before any function sees it, and answers in JSON when the
server itself has to refuse.

Header limits are enforced twice. The app (RequestGuard) checks every request's parsed
headers: past 64 KB or 100 lines, 431. That alone does not bound memory: uvicorn's httptools
protocol, which has no header limit of its own, reads a 200 MB header whole before the app
sees it. So `lakefn serve`, the notebook's server and the pytest harness run a protocol that
counts header bytes as they arrive and refuses a request within one read past 320 KB. Under a
plain `uvicorn app:app`, `--http h11 --h11-max-incomplete-event-size 65536` bounds it (h11
answers 400 there).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import logging
from collections.abc import MutableMapping
from typing import Any

logger = logging.getLogger("lakefn.http")

#: bytes of request line and headers, together
MAX_HEADER_BYTES = 64 * 1024
#: header lines in one request
MAX_HEADERS = 100

#: seconds a refused connection is read (and dropped) before it is closed
_LINGER_SECONDS = 2.0
#: the most asyncio hands over in one read
_READ_SLACK = 256 * 1024

Scope = MutableMapping[str, Any]
Message = dict[str, Any]


def _json_bytes(detail: str) -> bytes:
    return json.dumps({"detail": detail}).encode()


def _too_many() -> str:
    return f"request has more than {MAX_HEADERS} headers"


def _too_big() -> str:
    return f"request headers are larger than the limit of {MAX_HEADER_BYTES} bytes"


def header_problem(headers: list[tuple[bytes, bytes]]) -> str | None:
    """Why a request's headers are refused (431), or None."""
    if len(headers) > MAX_HEADERS:
        return _too_many()
    if sum(len(n) + len(v) + 4 for n, v in headers) > MAX_HEADER_BYTES:
        return _too_big()
    return None


class RequestGuard:
    """ASGI middleware around the app: refuse oversized headers (431), and answer a request cut off
    by the server's shutdown with a JSON 503 instead of uvicorn's logged traceback and bare
    text 500. (A function's route without path parameters is guarded the same way by
    `FunctionApp`'s dispatch, which answers it before this middleware.)"""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        problem = header_problem(scope["headers"])
        if problem:
            await answer(send, 431, problem)
            return
        try:
            await self.app(scope, receive, send)
        except asyncio.CancelledError:
            await cut_off(scope, send)


async def cut_off(scope: Scope, send: Any) -> None:
    """uvicorn cancels the requests still running when its graceful shutdown ends: log it and,
    if the answer has not begun, say so in JSON."""
    logger.warning("%s %s cut off: the server is stopping", scope["method"], scope["path"])
    # Not tracked per request (that would tax every call): if the answer had begun,
    # uvicorn refuses a second start and the connection just closes.
    with contextlib.suppress(RuntimeError):
        await answer(send, 503, "the server is stopping; try again", close=True)


async def answer(send: Any, status: int, detail: str, close: bool = False) -> None:
    body = _json_bytes(detail)
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if close:
        headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


@functools.cache
def header_limited_protocol() -> type[asyncio.Protocol]:
    """uvicorn's httptools protocol, counting the bytes of a request's headers as they arrive:
    far past the limit it answers 431 and closes, having held at most one read more. (The exact
    limits, and the header count, are RequestGuard's: this bounds memory, per read, not per
    header, so the common request pays almost nothing.)"""
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    class HeaderLimitedProtocol(HttpToolsProtocol):
        _reading_headers = True
        _header_bytes = 0
        _refusal: str | None = None

        def data_received(self, data: bytes) -> None:
            if self._refusal is not None:
                return  # answered and closing: what still arrives is dropped, not kept
            super().data_received(data)
            if self._reading_headers:
                # Still inside a request's headers after this read: httptools holds them all.
                # Counting whole reads may overcount by one read (a pipelined request that
                # began in it), hence the slack.
                self._header_bytes += len(data)
                if self._header_bytes > MAX_HEADER_BYTES + _READ_SLACK:
                    self._refusal = _too_big()
                    self.send_400_response("")

        def on_headers_complete(self) -> None:
            self._reading_headers = False
            self._header_bytes = 0
            super().on_headers_complete()

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._reading_headers = True

        def send_400_response(self, msg: str) -> None:
            _send_refusal(self.transport, self._refusal, msg)

    return HeaderLimitedProtocol


def _send_refusal(transport: asyncio.WriteTransport, refusal: str | None, msg: str) -> None:
    """uvicorn's own refusal (a malformed request, `msg`) in text; ours and its, in JSON."""
    if refusal:
        logger.warning("refused a request: %s", refusal)
    body = _json_bytes(refusal or msg or "invalid HTTP request")
    status = b"431 Request Header Fields Too Large" if refusal else b"400 Bad Request"
    transport.write(
        b"HTTP/1.1 %s\r\ncontent-type: application/json\r\ncontent-length: %d\r\n"
        b"connection: close\r\n\r\n%s" % (status, len(body), body)
    )
    if refusal is None:
        transport.close()
        return
    # A lingering close: closing now, with the client's bytes unread, would reset the
    # connection and could destroy the answer before the client reads it. Send it and our
    # end-of-stream; drop what still comes; close when the client does, or soon.
    transport.write_eof()
    asyncio.get_running_loop().call_later(_LINGER_SECONDS, transport.close)


#: the import string uvicorn takes as `http=` (a reloading server rebuilds it in a child)
PROTOCOL = "lakefn._limits:HeaderLimitedProtocol"


def __getattr__(name: str) -> Any:
    # HeaderLimitedProtocol imports uvicorn: built when first asked for, not on import.
    if name == "HeaderLimitedProtocol":
        return header_limited_protocol()
    raise AttributeError(name)
