"""The console's routes: the page at `/`, the live fragment it polls, and its actions (run,
simulate, rewind a table's checkpoint).

Every route asks the one access policy (`lakefn.access`) who the caller is; the page reads the
same builders as the /lakefn/* JSON routes (`lakefn.console.data`). Actions are form POSTs
guarded against other sites' pages (`ActionGuard`); with JavaScript they run in place, without
it the browser posts the form and gets the page back with the result on top.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs

from fastapi import FastAPI, Request
from starlette.responses import RedirectResponse, Response

from .._exceptions import FunctionNotFound, LakefnError
from ..access import (
    COOKIE,
    TOKEN_ENV,
    AccessPolicy,
    ActionGuard,
    Grant,
    Role,
    bearer_token_matches,
    console_cookie,
)
from ..triggers import http_routes as http
from ..triggers import kind
from . import data
from .logs import InvocationLogs
from .render import render

if TYPE_CHECKING:
    from ..runtime import Runtime

#: invocations the page lists
SHOWN = 50
#: bytes a console form may send (a JSON payload typed in a text box)
MAX_FORM_BYTES = 1_000_000
#: operations offered when simulating a table change (any other may be typed)
OPERATIONS = ("WRITE", "MERGE", "UPDATE", "DELETE", "STREAMING UPDATE", "CREATE OR REPLACE TABLE")
FRAGMENT_HEADER = "x-lakefn-fragment"

logger = logging.getLogger("lakefn.console")

#: what an action does with its form: a result for result.html (`problem` when refused)
Action = Callable[[dict[str, str]], Awaitable[dict[str, Any]]]


class Console:
    """The console of one app: its routes, its CSRF guard and the log lines it shows."""

    def __init__(self, runtime: Runtime, policy: AccessPolicy) -> None:
        self.runtime = runtime
        self.policy = policy
        self.guard = ActionGuard()
        self.logs = InvocationLogs()
        self.started: float | None = None

    @asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """While the server runs: uptime counts and function log lines are kept."""
        import logging

        self.started = time.monotonic()
        logger = logging.getLogger("lakefn")
        logger.addHandler(self.logs)
        try:
            yield
        finally:
            logger.removeHandler(self.logs)

    # -- mounting ------------------------------------------------------------------------------

    def mount_routes(self, app: FastAPI) -> None:
        """/lakefn/console/*: before the project's routes, like the rest of /lakefn/*."""
        app.add_api_route("/lakefn/console/live", self.live, methods=["GET", "HEAD"])
        app.add_api_route("/lakefn/console/run", self.run, methods=["POST"])
        app.add_api_route("/lakefn/console/simulate", self.simulate, methods=["POST"])
        app.add_api_route("/lakefn/console/rewind", self.rewind, methods=["POST"])
        for route in app.router.routes[-4:]:
            route.include_in_schema = False  # type: ignore[attr-defined]

    def mount_page(self, app: FastAPI) -> None:
        """GET /: after the project's routes, so a function of its own at / keeps it."""
        app.add_api_route("/", self.page, methods=["GET", "HEAD"], include_in_schema=False)

    # -- who is asking ---------------------------------------------------------------------------

    def _grant(self, request: Request) -> Grant:
        return self.policy.grant_of(request)

    def _sign_in(self, request: Request, supplied: str) -> Response:
        """`/?token=$LAKEFN_ADMIN_TOKEN`: a browser cannot send a bearer token, so the
        console trades it for a cookie (behind a notebook's proxy, the only way in), then
        sends the browser on without the token in its address bar and history."""
        token = self.policy.environ.get(TOKEN_ENV)
        if not bearer_token_matches(f"Bearer {supplied}", token):
            grant = self._grant(request)
            if not (token or "").strip():
                return self._forbidden(request, grant, f"this server has no ${TOKEN_ENV} set")
            return self._forbidden(request, grant, f"that is not this server's ${TOKEN_ENV}")
        assert token is not None
        root = request.scope.get("root_path", "").rstrip("/")
        answer = RedirectResponse(f"{root}/", status_code=303)
        forwarded = request.headers.get("x-forwarded-proto", "")
        answer.set_cookie(
            COOKIE,
            console_cookie(token),
            path=f"{root}/",
            httponly=True,
            samesite="lax",
            secure=request.url.scheme == "https" or forwarded.lower() == "https",
        )
        return answer

    def _forbidden(self, request: Request, grant: Grant, message: str | None = None) -> Response:
        context = {
            "grant": grant,
            "message": message,
            "as_app": self.policy.running_as_app,
            "host": request.headers.get("host", ""),
        }
        return render(request, "forbidden.html", context, status_code=403)

    # -- pages -----------------------------------------------------------------------------------

    async def page(self, request: Request) -> Response:
        supplied = request.query_params.get("token")
        if supplied is not None:
            return self._sign_in(request, supplied)
        grant = self._grant(request)
        if grant.role < Role.VIEWER:
            return self._forbidden(request, grant)
        return self._page(request, grant)

    def _page(
        self,
        request: Request,
        grant: Grant,
        result: dict[str, Any] | None = None,
        form: dict[str, str] | None = None,
        status_code: int = 200,
    ) -> Response:
        context = self._live_context(request, grant)
        runnable: list[str] = []
        simulated: list[str] = []
        for fn in self.runtime.config.functions:
            # As its kind runs it by hand: with a simulated commit, or a payload (or none).
            (simulated if kind(fn.kind).hand_input == "commit" else runnable).append(fn.name)
        context.update(
            who=grant.who,
            runnable=runnable,
            simulated=simulated,
            operations=OPERATIONS,
            statuses=data.STATUSES,
            names=[fn.name for fn in self.runtime.config.functions],
            result=result,
            form=form or {},
        )
        return render(request, "console.html", context, status_code=status_code)

    def _live_context(self, request: Request, grant: Grant) -> dict[str, Any]:
        function = request.query_params.get("function") or None
        status = request.query_params.get("status") or None
        admin = grant.role >= Role.ADMIN
        return {
            # the tables' rewind forms live in the polled part: it needs the form token too
            "admin": admin,
            "csrf": self.guard.token(grant) if admin else "",
            "project": data.project(self.runtime, self.started),
            "functions": data.functions(self.runtime, grant.role),
            "tables": data.tables(self.runtime, grant.role),
            "invocations": data.invocations(
                self.runtime,
                grant.role,
                limit=SHOWN,
                function=function,
                status=status,
                logs=self.logs,
            ),
            "filters": {"function": function or "", "status": status or ""},
        }

    async def live(self, request: Request) -> Response:
        """The parts of the page that change, for the page's script to swap in."""
        grant = self._grant(request)
        if grant.role < Role.VIEWER:
            return self._forbidden(request, grant)
        context = {**self._live_context(request, grant), "fragment": True}
        return render(request, "live.html", context)

    # -- actions ---------------------------------------------------------------------------------

    async def run(self, request: Request) -> Response:
        """Run an HTTP function with a JSON body, or fire a timer function now."""

        async def act(form: dict[str, str]) -> dict[str, Any]:
            name = form.get("function", "")
            text = form.get("payload", "").strip()
            try:
                payload = json.loads(text) if text else None
            except (ValueError, RecursionError) as exc:
                return {"function": name, "problem": f"the payload is not valid JSON: {exc}"}
            if self._hand_input(name) in (None, "commit"):
                return {"function": name, "problem": f"{name!r} is not an HTTP or timer function"}
            return await self._invoke(name, self.runtime.invoke(name, payload))

        return await self._action(request, act)

    async def simulate(self, request: Request) -> Response:
        """Hand a table function a fabricated commit of the chosen operation."""

        async def act(form: dict[str, str]) -> dict[str, Any]:
            name = form.get("function", "")
            operation = form.get("operation", "").strip().upper() or "WRITE"
            if self._hand_input(name) != "commit":
                return {"function": name, "problem": f"{name!r} is not a unity_table function"}
            # Through the function's kind, as the panel and the admin route go.
            call = self.runtime.invoke(name, {"operation": operation})
            return {**await self._invoke(name, call), "operation": operation}

        return await self._action(request, act)

    async def rewind(self, request: Request) -> Response:
        """Move a watched table's checkpoint (rewind to deliver versions again, or skip
        ahead): in this server's running watcher when it holds the lease, otherwise refused
        while another process delivers the table unless `force` is ticked."""

        async def act(form: dict[str, str]) -> dict[str, Any]:
            name = form.get("function", "")
            text = form.get("version", "").strip()
            force = form.get("force", "") not in ("", "0", "off", "false")
            result: dict[str, Any] = {"action": "rewind", "function": name, "force": force}
            if self._hand_input(name) != "commit":
                return {**result, "problem": f"{name!r} is not a unity_table function"}
            try:
                version = int(text)
            except ValueError:
                problem = (
                    f"the version is a whole number (-1 delivers from version 0), not {text!r}"
                )
                return {**result, "problem": problem}
            try:
                moved = await self.runtime.watcher.set_checkpoint(
                    name, version, force=force, force_hint="tick force"
                )
            except LakefnError as exc:
                return {**result, "problem": str(exc)}
            grant = self._grant(request)
            who = grant.who or f"an admin ({grant.via})"
            # Said in the server's log: who moved what, for whoever wonders later.
            logger.warning("%s, from the console: %s", who, str(moved).replace("\n", ";"))
            return {**result, "moved": {**moved.__dict__, "summary": str(moved)}}

        return await self._action(request, act)

    def _hand_input(self, name: str) -> str | None:
        fn = self.runtime.config.function(name)
        return None if fn is None else kind(fn.kind).hand_input

    async def _invoke(self, name: str, call: Any) -> dict[str, Any]:
        try:
            invocation = await call
        except FunctionNotFound as exc:
            return {"function": name, "problem": str(exc)}
        except (LakefnError, TypeError) as exc:
            return {"function": name, "problem": str(exc)}
        shown = data.invocations_of([invocation], Role.ADMIN, self.logs)[0]
        return {"function": name, "invocation": shown, "result": data.result_of(invocation)}

    async def _action(self, request: Request, act: Action) -> Response:
        """Every console action goes through here: admins only, the CSRF guard, the form
        parsed, `act` run, its result shown. Another action is one more `act`, one route in
        `mount_routes`, and one form in console.html whose result renders in result.html."""
        grant = self._grant(request)
        if grant.role < Role.ADMIN:
            message = "only admins may run actions" if grant.role else None
            return self._forbidden(request, grant, message)
        try:
            body = await http.read_body(request, MAX_FORM_BYTES)
        except http.BodyTooLarge:
            return http.too_large(MAX_FORM_BYTES)
        except http.NoBody:
            return http.gone()
        form = {k: v[0] for k, v in parse_qs(body.decode("utf-8", "replace")).items()}
        problem = self.guard.refusal(request.headers, grant, form.get("csrf"))
        if problem:
            return self._forbidden(request, grant, problem)
        result = await act(form)
        status_code = 400 if "problem" in result else 200
        if request.headers.get(FRAGMENT_HEADER):
            return render(request, "result.html", {"result": result}, status_code=status_code)
        return self._page(request, grant, result, form, status_code)
