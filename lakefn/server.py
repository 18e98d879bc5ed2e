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

from . import __version__
from ._exceptions import FunctionNotFound, LakefnError
from ._limits import RequestGuard
from .access import AccessPolicy, Role, requires
from .config import TableTrigger
from .runtime import Runtime
from .triggers import http
from .triggers.http_dispatch import FunctionApp


def create_app(
    path: str | os.PathLike[str] | None = None, *, runtime: Runtime | None = None
) -> FastAPI:
    """The server for the project at `path` (default: app.yaml in the working directory)."""
    runtime = runtime or Runtime.from_path(path)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await runtime.start()
        try:
            yield
        finally:
            await runtime.stop()

    app = FunctionApp(  # FastAPI, with a fast path to function routes
        title=f"lakefn: {runtime.project.root.name}",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    app.add_middleware(RequestGuard)
    # lakefn's own routes first: routes match in order, and a project's catch-all
    # (`/{anything:path}`) must not shadow /healthz or /lakefn/*.
    _mount_admin(app, runtime, AccessPolicy(runtime.config.access))
    http.mount(app, runtime)
    return app


def _mount_admin(app: FastAPI, runtime: Runtime, policy: AccessPolicy) -> None:
    viewer = Depends(requires(policy, Role.VIEWER))
    admin = Depends(requires(policy, Role.ADMIN))

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
        described = runtime.describe()
        next_runs = runtime.timers.next_run_times()
        for item in described:
            if item["name"] in next_runs and next_runs[item["name"]] is not None:
                item["next_run_time"] = next_runs[item["name"]].isoformat()  # type: ignore[union-attr]
            if role < Role.ADMIN and item.get("last_invocation"):
                item["last_invocation"] = _without_error_text(item["last_invocation"])
        return described

    @app.get("/lakefn/invocations", tags=["lakefn"])
    async def invocations(
        limit: int = Query(100, ge=1, le=10_000),
        function: str | None = None,
        role: Role = viewer,
    ) -> list[dict[str, Any]]:
        entries = [i.to_dict() for i in runtime.journal.entries(limit=limit, function=function)]
        return entries if role >= Role.ADMIN else [_without_error_text(e) for e in entries]

    @app.get("/lakefn/tables", tags=["lakefn"])
    async def tables(role: Role = viewer) -> list[dict[str, Any]]:
        if not runtime.functions_of(TableTrigger):
            return []
        status = runtime.watcher.status()
        return status if role >= Role.ADMIN else [_without_error_text(s) for s in status]

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
        result = http.plain_result(invocation.result)
        try:
            encoded = json.loads(http.encode_json(result))
        except (TypeError, ValueError, RecursionError):
            encoded = repr(result)  # an admin sees what came back, even what HTTP cannot send
        status = 200 if invocation.ok else 500
        return JSONResponse(
            {"invocation": invocation.to_dict(), "result": encoded}, status_code=status
        )


def _without_error_text(entry: dict[str, Any]) -> dict[str, Any]:
    """What a viewer sees of an invocation or table status: that it failed and the error's
    type, not its message (which may carry a password, an email, a path)."""
    shown = dict(entry)
    for key in ("error", "last_error"):
        text = shown.get(key)
        if isinstance(text, str) and text:
            head = text.split(":", 1)[0].strip()
            shown[key] = head if head.isidentifier() else "(hidden)"
    return shown
