"""The fast path to HTTP functions: a function's route without path parameters is found by one
dict lookup on (method, path) before FastAPI's own `__call__` and the whole Starlette stack.

Through FastAPI a request passes seven middleware layers (each wrapping `send`) and a router that
tries every route in turn, which together cost more than the function call itself. For a route
that Starlette would pick by its exact path anyway, `FunctionApp` answers directly and keeps what
the layers it skips would have done for it: the header limits and the shutdown answer of
`RequestGuard`, and `ServerErrorMiddleware`'s bare 500 if something escapes. Everything else
(lakefn's own routes, the docs, routes with path parameters, a miss, a 405) goes the usual way.

The fast table is built with the middleware stack (at startup, or on the first request) and
only when skipping the stack cannot be seen: no middleware or error handler of the project's
own, no debug mode, no FastAPI body limit; a request is taken past the stack only when no
telemetry is recording it. A static route is in it only if no route before it would match its
method and path (the router takes the first match: lakefn's own routes and earlier catch-alls
keep winning).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

from fastapi import FastAPI
from starlette.responses import PlainTextResponse
from starlette.routing import BaseRoute, Host, Match
from starlette.types import ASGIApp, Receive, Scope, Send

from .._limits import RequestGuard, cut_off
from .http_routes import FunctionHandler, FunctionRoute

Table = dict[tuple[str, str], FunctionHandler]

#: seconds between two looks at whether telemetry is on (a provider set later is seen by then)
TELEMETRY_RECHECK = 1.0


class FunctionApp(FastAPI):
    """lakefn's server: FastAPI, with static function routes dispatched by a dict lookup
    before anything else (FastAPI's and Starlette's own `__call__` included)."""

    #: (method, path) -> handler; empty until the middleware stack is built (first request)
    fast_routes: Table = {}

    def build_middleware_stack(self) -> ASGIApp:
        stack = super().build_middleware_stack()
        self.fast_routes = static_routes(self.router.routes) if self._stack_is_lakefns() else {}
        return stack

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self.fast_routes:
            if self.root_path:
                scope["root_path"] = self.root_path  # as FastAPI's __call__ would
            handler = self.fast_routes.get((scope["method"], _route_path(scope)))
            if handler is not None and self._nothing_to_wrap(scope):
                scope["app"] = self
                await _serve(handler, scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    def _nothing_to_wrap(self, scope: Scope) -> bool:
        """Telemetry (FastAPI's own, or a parent app's) or a parent's body limit: layers the
        fast path would skip have work to do on this request."""
        if "fastapi.telemetry" in scope or "starlette.max_body_size" in scope:
            return False
        return not self._telemetry_on()

    _telemetry_checked_at = -TELEMETRY_RECHECK
    _telemetry_was_on = False

    def _telemetry_on(self) -> bool:
        """Whether FastAPI's telemetry records requests (an OpenTelemetry provider is set),
        asked at most once per `TELEMETRY_RECHECK` seconds: FastAPI asks on every request,
        and the answer reads environment variables, a quarter of a fast request's time."""
        now = time.monotonic()
        if now - self._telemetry_checked_at >= TELEMETRY_RECHECK:
            telemetry = getattr(self, "_native_telemetry", None)  # FastAPI 0.130+
            self._telemetry_was_on = telemetry is not None and bool(telemetry.enabled())
            self._telemetry_checked_at = now
        return self._telemetry_was_on

    def _stack_is_lakefns(self) -> bool:
        """Nothing in the stack a fast path would skip was put there by the project."""
        # Starlette types `cls` as a factory generic in a ParamSpec nothing binds, which mypy
        # --strict finds never equal to a class; as objects, they compare.
        added: list[object] = [m.cls for m in self.user_middleware]
        return (
            not self.debug
            and added == [RequestGuard]
            and not any(key in (500, Exception) for key in self.exception_handlers)
            and getattr(self, "max_body_size", None) is None
            # router-level middleware (an APIRouter's own): not ours to skip
            and getattr(self.router, "middleware_stack", self.router.app) == self.router.app
        )


def static_routes(routes: list[BaseRoute]) -> Table:
    """(method, path) -> handler, for each function route without path parameters that the
    router would choose for exactly that method and path."""
    table: Table = {}
    for index, route in enumerate(routes):
        if isinstance(route, Host):
            break  # matched by the Host header too: from here on the router decides
        if not isinstance(route, FunctionRoute) or "{" in route.path:
            continue
        handler = getattr(route.endpoint, "handler", None)
        if handler is None:
            continue
        for method in route.methods or ():
            key = (method, route.path)
            if key not in table and _first_match(routes[:index], method, route.path) is None:
                table[key] = handler
    return table


def _first_match(routes: list[BaseRoute], method: str, path: str) -> BaseRoute | None:
    scope = {"type": "http", "method": method, "path": path, "root_path": "", "headers": []}
    for route in routes:
        try:
            match, _ = route.matches(dict(scope))
        except Exception:  # noqa: BLE001 - a route we cannot ask keeps its requests
            return route
        if match == Match.FULL:
            return route
    return None


async def _serve(handler: FunctionHandler, scope: Scope, receive: Receive, send: Send) -> None:
    try:  # the handler checks the header limits (in the pass it makes over them anyway)
        await handler(scope, receive, send)
    except asyncio.CancelledError:
        await cut_off(scope, send)
    except Exception:
        # What ServerErrorMiddleware does: a bare 500 if the answer has not begun, and the
        # error on to uvicorn, which logs it.
        with contextlib.suppress(RuntimeError):
            await PlainTextResponse("Internal Server Error", status_code=500)(scope, receive, send)
        raise


def _route_path(scope: Scope) -> Any:
    """The path the router matches: without the root path a proxy prefix put in front
    (Starlette's `get_route_path`, which is private)."""
    path = scope["path"]
    root_path = scope.get("root_path")
    if not root_path or not path.startswith(root_path):
        return path
    if path == root_path:
        return ""
    return path[len(root_path) :] if path[len(root_path)] == "/" else path
