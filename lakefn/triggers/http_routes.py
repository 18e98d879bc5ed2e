"""HTTP triggers' routes: one FastAPI route per function, as declared in app.yaml (the kind
itself, its config model and checks, is `lakefn.triggers.http`)."""

from __future__ import annotations

import dataclasses
import datetime as dt
import enum
import json
import json.encoder as json_encoder
import logging
import uuid
from collections.abc import Callable, Coroutine, Sequence
from decimal import Decimal
from pathlib import PurePath
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.routing import APIRoute
from starlette.datastructures import Headers, QueryParams
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.types import Receive, Scope, Send

from .._exceptions import HttpError, Overloaded
from .._limits import MAX_HEADER_BYTES, MAX_HEADERS, answer, header_problem
from ..events import HttpEvent
from ..journal import Invocation
from .http import HttpTrigger

if TYPE_CHECKING:
    from ..config import FunctionConfig
    from ..invoker import Invoker


logger = logging.getLogger("lakefn.http")


def _json_default(value: Any) -> Any:
    """What a function may return besides JSON's own types. Deliberately not "any object's
    attributes": an object's `__dict__` is its insides (`_password` included), not an answer."""
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, (uuid.UUID, PurePath)):
        return str(value)
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (set, frozenset)):
        return list(value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: getattr(value, f.name) for f in dataclasses.fields(value)}
    dump = getattr(type(value), "model_dump", None)  # pydantic v2, without importing pydantic
    if dump is not None and hasattr(type(value), "model_fields"):
        return value.model_dump(mode="json")
    raise TypeError(
        f"a {type(value).__module__}.{type(value).__qualname__} is not JSON: return dicts, "
        "lists, str, numbers, bool, None, datetimes, UUIDs, Decimals, Enums, dataclasses or "
        "pydantic models"
    )


# Built once: json.dumps with any non-default option builds a new encoder on every call.
_JSON = json.JSONEncoder(
    ensure_ascii=False, allow_nan=False, separators=(",", ":"), default=_json_default
)
# And JSONEncoder.encode builds its C encoder on every call: this one is built once too, the
# same options, with no table of the containers being encoded (`markers`): a container that
# holds itself ends in a RecursionError rather than a ValueError, both "cannot be sent".
_MAKE_ENCODER = getattr(json_encoder, "c_make_encoder", None)  # None without the C accelerator
_C_ENCODE = (
    None
    if _MAKE_ENCODER is None
    else _MAKE_ENCODER(
        None, _json_default, json_encoder.encode_basestring, None, ":", ",", False, False, False
    )
)


class BodyTooLarge(Exception):
    pass


class NoBody(Exception):
    """The client went away before sending the body it announced: nobody to answer."""


class FunctionRoute(APIRoute):
    """A function's route: in OpenAPI like any FastAPI route, but a request goes straight to
    the function's handler, past FastAPI's parameter solving, which a function that takes the
    whole request as its event has no use for (and which costs a few percent of throughput).
    A route without path parameters is usually not reached through it at all: `FunctionApp`
    answers those by a dict lookup in front of the whole Starlette stack."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        return self.endpoint


def mount(app: FastAPI, functions: Sequence[FunctionConfig], invoker: Invoker, limit: int) -> None:
    for fn in functions:
        if isinstance(fn.trigger, HttpTrigger):
            endpoint = _endpoint(FunctionHandler(invoker, fn.name, limit))
            app.router.add_api_route(
                fn.trigger.endpoint,
                endpoint,
                methods=[fn.trigger.method],
                name=fn.name,
                summary=fn.name,
                description=fn.description or f"lakefn function `{fn.name}`",
                tags=["functions"],
                response_model=None,
                route_class_override=FunctionRoute,
            )
            if fn.trigger.method == "GET":
                # A server that answers GET answers HEAD (RFC 9110 9.3.2); uvicorn drops the
                # body. Kept out of OpenAPI, where it would repeat the GET.
                app.router.add_api_route(
                    fn.trigger.endpoint,
                    endpoint,
                    methods=["HEAD"],
                    name=f"{fn.name}_head",
                    include_in_schema=False,
                    response_model=None,
                    route_class_override=FunctionRoute,
                )


class FunctionHandler:
    """One HTTP function: read the body, run the function, answer. Called as an ASGI app by
    `FunctionApp`'s fast path, which skips RequestGuard and so checks the header limits here,
    and through `respond` by the router (for a route with path parameters)."""

    __slots__ = ("invoker", "limit", "name")

    def __init__(self, invoker: Invoker, name: str, limit: int) -> None:
        self.invoker, self.name, self.limit = invoker, name, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        headers = scope["headers"]
        size, declared, chunked, user = _read_headers(headers)
        if size > MAX_HEADER_BYTES or len(headers) > MAX_HEADERS:
            await answer(send, 431, header_problem(headers) or "")
            return
        response = await self._respond(scope, receive, declared, chunked, user)
        if type(response) is _JsonAnswer:  # almost every answer: sent as Response would
            await send(
                {"type": "http.response.start", "status": 200, "headers": response.raw_headers}
            )
            await send({"type": "http.response.body", "body": response.body})
        else:
            await response(scope, receive, send)

    async def respond(self, scope: Scope, receive: Receive) -> Response:
        _, declared, chunked, user = _read_headers(scope["headers"])
        return await self._respond(scope, receive, declared, chunked, user)

    async def _respond(
        self, scope: Scope, receive: Receive, declared: bytes | None, chunked: bool, user: Any
    ) -> Response:
        try:
            body = await receive_body(receive, self.limit, declared, chunked)
        except BodyTooLarge:
            return too_large(self.limit)
        except NoBody:
            return gone()
        name = self.name
        query = scope["query_string"]

        def make_event() -> HttpEvent:
            return HttpEvent(
                function_name=name,
                method=scope["method"],
                path=scope["path"],
                # Starlette's own mappings: read-only, and headers match case-insensitively.
                headers=Headers(raw=scope["headers"]),
                query=QueryParams(query) if query else _NO_QUERY,
                path_params=scope.get("path_params") or {},
                body=body,
                user=user,
            )

        invocation = await self.invoker.invoke(name, make_event, answer=to_response)
        response: Response | None = invocation.answer
        invocation.answer = None  # the journal keeps the entry, not the body sent
        # None: the answer itself failed, and the invocation says so (a 500 that names it)
        return response if response is not None else to_response(invocation)


#: immutable, so one serves every request without a query string
_NO_QUERY = QueryParams()


def _read_headers(headers: list[tuple[bytes, bytes]]) -> tuple[int, bytes | None, bool, Any]:
    """In one pass over the raw headers (Starlette's Headers.get scans once per name, and
    raises a KeyError for each one missing): their size, the first Content-Length, whether there
    is a Transfer-Encoding, and the user the proxy names (X-Forwarded-Email, else -User)."""
    size = 0
    declared = email = forwarded_user = None
    chunked = False
    for key, value in headers:
        size += len(key) + len(value) + 4
        if key == b"content-length":
            if declared is None:
                declared = value
        elif key == b"transfer-encoding":
            chunked = True
        elif key == b"x-forwarded-email":
            if email is None:
                email = value.decode("latin-1")
        elif key == b"x-forwarded-user" and forwarded_user is None:
            forwarded_user = value.decode("latin-1")
    return size, declared, chunked, email or forwarded_user


def _endpoint(handler: FunctionHandler) -> Any:
    """The route's endpoint, as FastAPI sees it (its name and signature make the OpenAPI
    operation); it serves the requests the router dispatches (routes with path parameters)."""

    async def endpoint(request: Request) -> Response:
        return await handler.respond(request.scope, request.receive)

    endpoint.__name__ = handler.name
    endpoint.handler = handler  # type: ignore[attr-defined]
    return endpoint


def too_large(limit: int) -> Response:
    return JSONResponse(
        {"detail": f"request body is larger than the limit of {limit} bytes"}, status_code=413
    )


def gone() -> Response:
    return JSONResponse({"detail": "the request body was cut short"}, status_code=400)


async def read_body(request: Request, limit: int) -> bytes:
    """The request's body, or BodyTooLarge past `limit` bytes, read no further than that."""
    headers = request.headers
    declared = headers.get("content-length")
    chunked = "transfer-encoding" in headers
    return await receive_body(
        request.receive, limit, None if declared is None else declared.encode(), chunked
    )


async def receive_body(
    receive: Receive, limit: int, declared: bytes | None, chunked: bool
) -> bytes:
    """The body from ASGI `receive`, given the request's Content-Length and whether it has a
    Transfer-Encoding: BodyTooLarge past `limit` bytes (read no further), NoBody if the client
    went away first."""
    if declared is None and not chunked:
        return b""  # HTTP/1.1: without either header a request has no body
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise NoBody
        chunk = message.get("body", b"")
        if chunk:
            size += len(chunk)
            if size > limit:
                raise BodyTooLarge
            chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def plain_result(result: Any) -> Any:
    """What a function returned, for showing outside HTTP (CLI, admin route): a Response is
    shown as what a client would get, not as the object's insides."""
    if isinstance(result, Response):
        body = bytes(result.body).decode("utf-8", errors="replace")
        return {"status_code": result.status_code, "media_type": result.media_type, "body": body}
    return result


def to_response(invocation: Invocation) -> Response:
    """Map what the function returned (or raised) to an HTTP answer, per the contract."""
    exc = invocation.exception
    if isinstance(exc, HttpError):
        return _http_error(exc, invocation)
    if isinstance(exc, Overloaded):
        return JSONResponse(
            {"error": str(exc), "invocation_id": invocation.id},
            status_code=503,
            headers={"Retry-After": str(exc.retry_after)},
        )
    if invocation.status == "timeout":
        return JSONResponse(
            {
                "error": f"function {invocation.function!r} timed out",
                "invocation_id": invocation.id,
            },
            status_code=504,
        )
    if invocation.status != "ok":
        return JSONResponse(
            {
                "error": f"function {invocation.function!r} failed; see its invocation in the log",
                "invocation_id": invocation.id,
            },
            status_code=500,
        )
    return _result_response(invocation.result, invocation)


def _http_error(exc: HttpError, invocation: Invocation) -> Response:
    try:
        body = encode_json({"detail": exc.detail})
    except Exception as error:  # noqa: BLE001 - see _result_response
        return _unsendable(invocation, exc.detail, error)
    return Response(body, status_code=exc.status, media_type="application/json")


class _JsonAnswer(Response):
    """`Response(body, media_type="application/json")`, the same bytes on the wire, built
    without Response's general-purpose header assembly: the answer of almost every call."""

    media_type = "application/json"

    def __init__(self, body: bytes) -> None:
        self.status_code, self.body, self.background = 200, body, None
        self.raw_headers = [
            (b"content-length", b"%d" % len(body)),
            (b"content-type", b"application/json"),
        ]


def _result_response(result: Any, invocation: Invocation) -> Response:
    if type(result) is dict or type(result) is list:  # the usual answer: no isinstance chain
        try:
            return _JsonAnswer(encode_json(result))
        # Not only TypeError and ValueError: encoding runs the result's own code (a
        # dataclass's fields, a model's model_dump), which may raise anything.
        except Exception as exc:  # noqa: BLE001
            return _unsendable(invocation, result, exc)
    if isinstance(result, Response):
        return result
    if result is None:
        return Response(status_code=204)
    if isinstance(result, (bytes, bytearray)):
        return Response(bytes(result), media_type="application/octet-stream")
    try:
        if isinstance(result, str):
            return PlainTextResponse(result.encode("utf-8"))
        return _JsonAnswer(encode_json(result))
    except Exception as exc:  # noqa: BLE001 - as above; UnicodeEncodeError is a ValueError
        return _unsendable(invocation, result, exc)


def encode_json(result: Any) -> bytes:
    """`result` as JSON, or TypeError / ValueError / RecursionError naming what cannot be
    sent."""
    if _C_ENCODE is None:
        return _JSON.encode(result).encode("utf-8")
    return "".join(_C_ENCODE(result, 0)).encode("utf-8")


def _unsendable(invocation: Invocation, result: Any, exc: BaseException) -> Response:
    """The function ran, but what it returned cannot go out as JSON (NaN, a lone surrogate,
    an object that is not data): that is the function's failure, recorded as such."""
    reason = f"returned a {type(result).__name__} that cannot be sent as JSON: {exc}"
    invocation.status, invocation.error = "error", reason
    if "http_status" in invocation.detail:  # an HttpError's, not what went out
        invocation.detail = {**invocation.detail, "http_status": 500}
    logger.error("[%s] %s %s", invocation.id, invocation.function, reason)
    return JSONResponse(
        {"error": f"function {invocation.function!r} {reason}", "invocation_id": invocation.id},
        status_code=500,
    )
