"""The FastAPI app: the project's HTTP routes, lakefn's own routes, and a lifespan that starts
and stops timers and table watchers."""

from __future__ import annotations

import hmac
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from starlette.responses import JSONResponse

from . import __version__
from ._exceptions import FunctionNotFound, LakefnError
from .config import TableTrigger
from .runtime import Runtime
from .triggers import http

LOOPBACK = {"127.0.0.1", "::1", "localhost"}
PROXY_HEADERS = {"forwarded", "x-real-ip", "via", "x-client-ip", "true-client-ip"}


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

    app = FastAPI(
        title=f"lakefn: {runtime.project.root.name}",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.runtime = runtime
    http.mount(app, runtime)
    _mount_admin(app, runtime)
    return app


def _mount_admin(app: FastAPI, runtime: Runtime) -> None:
    @app.get("/healthz", tags=["lakefn"])
    async def healthz() -> dict[str, Any]:
        return {"status": "ok", "functions": len(runtime.registry.names)}

    @app.get("/lakefn/functions", tags=["lakefn"])
    async def functions() -> list[dict[str, Any]]:
        described = runtime.describe()
        next_runs = runtime.timers.next_run_times()
        for item in described:
            if item["name"] in next_runs and next_runs[item["name"]] is not None:
                item["next_run_time"] = next_runs[item["name"]].isoformat()  # type: ignore[union-attr]
        return described

    @app.get("/lakefn/invocations", tags=["lakefn"])
    async def invocations(
        limit: int = Query(100, ge=1, le=10_000), function: str | None = None
    ) -> list[dict[str, Any]]:
        return [i.to_dict() for i in runtime.journal.entries(limit=limit, function=function)]

    @app.get("/lakefn/tables", tags=["lakefn"])
    async def tables() -> list[dict[str, Any]]:
        if not runtime.functions_of(TableTrigger):
            return []
        from .checkpoints.selection import with_state_warning

        return with_state_warning(runtime.project, runtime.watcher.status())

    @app.post("/lakefn/functions/{name}/invoke", tags=["lakefn"])
    async def invoke(name: str, request: Request) -> JSONResponse:
        if not _admin_allowed(request):
            return JSONResponse(
                {
                    "detail": "invoking functions by hand is allowed from loopback, or with "
                    "Authorization: Bearer $LAKEFN_ADMIN_TOKEN"
                },
                status_code=403,
            )
        body = await request.body()
        try:
            payload = json.loads(body) if body.strip() else None
        except ValueError as exc:
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
            encoded = jsonable_encoder(result)
        except Exception:  # noqa: BLE001 - a result that is not JSON is shown as text
            encoded = repr(result)
        status = 200 if invocation.ok else 500
        return JSONResponse(
            {"invocation": invocation.to_dict(), "result": encoded}, status_code=status
        )


def _admin_allowed(request: Request) -> bool:
    token = os.environ.get("LAKEFN_ADMIN_TOKEN")
    header = request.headers.get("authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].strip(), token):
        return True
    # Behind a proxy (Databricks Apps) every caller arrives from the proxy's address, which
    # may well be loopback: a forwarded request is never trusted as local.
    if any(name in PROXY_HEADERS or name.startswith("x-forwarded-") for name in request.headers):
        return False
    client = request.client
    return client is not None and client.host in LOOPBACK
