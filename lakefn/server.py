"""The FastAPI app: the project's HTTP routes, lakefn's own routes, and a lifespan that starts
and stops timers and table watchers."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Query, Request
from starlette.responses import JSONResponse

from . import __version__, console
from ._exceptions import FunctionNotFound, LakefnError
from ._limits import RequestGuard
from .access import AccessPolicy, Role, requires
from .console import data
from .runtime import Runtime
from .triggers import http_routes as http
from .triggers.http_dispatch import FunctionApp


def create_app(
    path: str | os.PathLike[str] | None = None, *, runtime: Runtime | None = None
) -> FastAPI:
    """The server for the project at `path` (default: app.yaml in the working directory)."""
    runtime = runtime or Runtime.from_path(path)
    policy = AccessPolicy(runtime.config.access)
    the_console = console.Console(runtime, policy)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            async with the_console.running():
                yield
        finally:
            await runtime.stop()

    app = FunctionApp(  # FastAPI, with a fast path to function routes
        title=f"lakefn: {runtime.project.root.name}",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.state.console = the_console
    app.add_middleware(RequestGuard)
    # lakefn's own routes first: routes match in order, and a project's catch-all
    # (`/{anything:path}`) must not shadow /healthz or /lakefn/*.
    _mount_admin(app, runtime, policy, the_console)
    the_console.mount_routes(app)
    runtime.mount(app)  # each trigger kind's routes: the http functions'
    the_console.mount_page(app)  # last: a project's own function at / keeps it
    return app


def _mount_admin(
    app: FastAPI, runtime: Runtime, policy: AccessPolicy, the_console: console.Console
) -> None:
    viewer = Depends(requires(policy, Role.VIEWER))

    @app.get("/healthz", tags=["lakefn"])
    async def healthz() -> JSONResponse:
        # 503 when table triggers cannot run (their state store is unusable): a load balancer
        # or the Databricks Apps health check sees it, and the body says why.
        problems = runtime.health()
        if problems:
            body = {"status": "degraded", "problems": problems}
            return JSONResponse({**body, "functions": len(runtime.registry.names)}, 503)
        return JSONResponse({"status": "ok", "functions": len(runtime.registry.names)})

    app.add_api_route("/healthz", healthz, methods=["HEAD"], include_in_schema=False)

    @app.get("/lakefn/functions", tags=["lakefn"])
    async def functions(role: Role = viewer) -> list[dict[str, Any]]:
        return data.functions(runtime, role)

    @app.get("/lakefn/invocations", tags=["lakefn"])
    async def invocations(
        limit: int = Query(100, ge=1, le=10_000),
        function: str | None = None,
        status: str | None = None,
        role: Role = viewer,
    ) -> list[dict[str, Any]]:
        return data.invocations(
            runtime, role, limit=limit, function=function, status=status, logs=the_console.logs
        )

    @app.get("/lakefn/tables", tags=["lakefn"])
    async def tables(role: Role = viewer) -> list[dict[str, Any]]:
        return data.tables(runtime, role)

    _mount_invoke(app, runtime, policy)


def _mount_invoke(app: FastAPI, runtime: Runtime, policy: AccessPolicy) -> None:
    """POST /lakefn/functions/{name}/invoke: run a function by hand, as its kind does."""
    admin = Depends(requires(policy, Role.ADMIN))
    limit = runtime.config.http.max_body_bytes

    @app.post("/lakefn/functions/{name}/invoke", tags=["lakefn"], dependencies=[admin])
    async def invoke(name: str, request: Request) -> JSONResponse:
        try:
            body = await http.read_body(request, limit)
        except http.BodyTooLarge:
            return http.too_large(limit)  # type: ignore[return-value]
        except http.NoBody:
            return http.gone()  # type: ignore[return-value]
        try:
            payload = json.loads(body) if body.strip() else None
        except (ValueError, RecursionError) as exc:
            return JSONResponse(
                {"detail": f"request body is not valid JSON: {exc}"}, status_code=400
            )
        try:
            invocation = await runtime.invoke(name, payload)
        except FunctionNotFound as exc:
            return JSONResponse({"detail": str(exc)}, status_code=404)
        except (LakefnError, TypeError) as exc:
            return JSONResponse({"detail": str(exc)}, status_code=400)
        status = 200 if invocation.ok else 500
        return JSONResponse(
            {"invocation": invocation.to_dict(), "result": data.result_of(invocation)},
            status_code=status,
        )
