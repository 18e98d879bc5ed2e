"""The http trigger kind: a function answers requests to its endpoint.

The routes themselves (FastAPI, the fast path, turning results into responses) live in
`http_routes` and `http_dispatch`, imported only when a server is built: this module is read
by every app.yaml load, and loading a project must not import FastAPI.
"""

from __future__ import annotations

import json
import re
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from .._model import ConfigModel
from ..abc import Problem, TriggerKind
from ..events import HttpEvent

if TYPE_CHECKING:
    from fastapi import FastAPI

    from ..config import FunctionConfig
    from ..journal import Invocation

#: routes the server serves itself (FastAPI's docs and lakefn's own)
RESERVED_ENDPOINTS = (
    "/lakefn",
    "/healthz",
    "/docs",
    "/docs/oauth2-redirect",
    "/redoc",
    "/openapi.json",
)
HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS")
#: routes lakefn serves itself, by method: a catch-all function route may shadow them
LAKEFN_ROUTES = (
    ("GET", "/"),
    ("GET", "/healthz"),
    ("GET", "/lakefn/functions"),
    ("GET", "/lakefn/invocations"),
    ("GET", "/lakefn/tables"),
    ("POST", "/lakefn/functions/name/invoke"),
    ("GET", "/docs"),
    ("GET", "/docs/oauth2-redirect"),
    ("GET", "/redoc"),
    ("GET", "/openapi.json"),
)


class HttpTrigger(ConfigModel):
    type: Literal["http"]
    method: str = "POST"
    endpoint: str

    @field_validator("method")
    @classmethod
    def _method(cls, value: str) -> str:
        method = value.upper()
        if method not in HTTP_METHODS:
            raise ValueError(f"unknown HTTP method {value!r}; use one of {', '.join(HTTP_METHODS)}")
        return method

    @field_validator("endpoint")
    @classmethod
    def _endpoint(cls, value: str) -> str:
        if not value.startswith("/"):
            raise ValueError(f"endpoint {value!r} must start with '/', for example '/{value}'")
        if value.startswith("/lakefn/") or value.rstrip("/") in RESERVED_ENDPOINTS:
            raise ValueError(
                f"endpoint {value!r} is served by lakefn itself (its own routes, the API docs)"
            )
        if value.count("{") != value.count("}") or re.search(r"\{[^}/]*(\{|/|$)", value):
            raise ValueError(
                f"endpoint {value!r} has an unclosed path parameter, e.g. /items/{{id}}"
            )
        if re.search(r"\{(?![A-Za-z_][A-Za-z0-9_]*(:path)?\})", value):
            raise ValueError(
                f"endpoint {value!r}: path parameters are names, e.g. /items/{{item_id}}"
            )
        _reachable(value)
        return value


def _reachable(endpoint: str) -> None:
    # A request can never arrive at these paths: clients cut `?` and `#` off as query and
    # fragment, and collapse `.`/`..` segments; `//` is a URL's authority marker to many.
    bad = next((c for c in endpoint if ord(c) < 33 or ord(c) == 127), None)
    if bad is not None:
        raise ValueError(f"endpoint {endpoint!r} contains a space or control character")
    for part, why in (("?", "starts the query string"), ("#", "starts a fragment")):
        if part in endpoint:
            raise ValueError(f"endpoint {endpoint!r}: {part!r} {why}, so no request reaches it")
    if "//" in endpoint:
        raise ValueError(f"endpoint {endpoint!r} has an empty segment ('//')")
    if any(segment in (".", "..") for segment in endpoint.split("/")):
        raise ValueError(
            f"endpoint {endpoint!r} has a '.' or '..' segment, which clients resolve away"
        )


class HttpKind(TriggerKind):
    """Routes on the server's app; run by hand with a JSON body."""

    type: ClassVar[str] = "http"
    config_model = HttpTrigger
    runs_as_job = False
    not_a_job_because = "a job has no endpoint to call"

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        trigger = function.trigger
        assert isinstance(trigger, HttpTrigger)
        return f"{trigger.method} {trigger.endpoint}"

    @classmethod
    def check_functions(cls, functions: list[tuple[int, dict[str, Any]]]) -> list[Problem]:
        """Two functions on one route: the second would never be called."""
        problems = []
        routes: dict[tuple[str, str], str] = {}
        for index, fn in functions:
            trigger = fn["trigger"]
            endpoint, method = trigger.get("endpoint"), str(trigger.get("method", "POST")).upper()
            if not isinstance(endpoint, str):
                continue
            key = (method, _route_shape(endpoint))
            if key in routes:
                message = f"{method} {endpoint} is already served by function {routes[key]!r}"
                problems.append(Problem(("functions", index, "trigger", "endpoint"), message))
            else:
                routes[key] = fn["name"]
        return problems

    @classmethod
    def warnings(cls, functions: list[tuple[int, FunctionConfig]]) -> list[Problem]:
        """Function routes that also match lakefn's own routes (lakefn's own answer those
        paths, so the function never sees them)."""
        warnings = []
        for index, fn in functions:
            trigger = fn.trigger
            assert isinstance(trigger, HttpTrigger)
            pattern = _route_regex(trigger.endpoint)
            shadowed = [
                path
                for method, path in LAKEFN_ROUTES
                if method == trigger.method and pattern.fullmatch(path)
            ]
            if shadowed:
                paths = ", ".join(p.replace("/name/", "/{name}/") for p in shadowed)
                message = (
                    f"{trigger.method} {trigger.endpoint} also matches lakefn's own {paths}; "
                    "lakefn answers those itself, so this function is not called for them"
                )
                warnings.append(Problem(("functions", index, "trigger", "endpoint"), message))
        return warnings

    def mount(self, app: FastAPI) -> None:
        from .http_routes import mount

        limit = self.context.config.http.max_body_bytes
        mount(app, self.context.functions, self.context.invoker, limit)

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        """`payload` is the request's JSON body (None: no body)."""
        trigger = self.config_of(name).trigger
        assert isinstance(trigger, HttpTrigger)
        body = b"" if payload is None else json.dumps(payload).encode()

        def make_event() -> HttpEvent:
            return HttpEvent(
                function_name=name,
                method=trigger.method,
                path=trigger.endpoint,
                headers={"content-type": "application/json"} if body else {},
                body=body,
            )

        return await self.context.invoker.invoke(name, make_event, detail={"manual": True})


def _route_shape(endpoint: str) -> str:
    # /items/{id} and /items/{item} are the same route to Starlette.
    return re.sub(r"\{[^}/]*\}", "{}", endpoint.rstrip("/") or "/")


def _route_regex(endpoint: str) -> re.Pattern[str]:
    # As Starlette compiles paths: {x} is one segment, {x:path} any rest, trailing / optional.
    out, last = "", 0
    for match in re.finditer(r"\{[A-Za-z_][A-Za-z0-9_]*(:path)?\}", endpoint):
        out += re.escape(endpoint[last : match.start()])
        out += ".*" if match.group(1) else "[^/]+"
        last = match.end()
    out += re.escape(endpoint[last:])
    return re.compile(out.rstrip("/") + "/?" if out != "/" else "/")
