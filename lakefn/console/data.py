"""What the console and the /lakefn/* JSON routes show, built in one place so the two can
never disagree: each builder returns plain JSON-ready dicts, already cut down for the role
(viewers see that something failed and the error's type, never its message or logs)."""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit, urlunsplit

from .. import __version__
from ..access import APP_NAME_ENV, Role

if TYPE_CHECKING:
    from ..journal import Invocation
    from ..runtime import Runtime
    from .logs import InvocationLogs

#: what "recent" means for a function's call and failure counts
WINDOW = timedelta(hours=1)
FAILED = frozenset({"error", "timeout"})
STATUSES = ("ok", "error", "timeout", "skipped", "running")


def functions(runtime: Runtime, role: Role) -> list[dict[str, Any]]:
    """/lakefn/functions: each function with its trigger, what its kind adds (a timer's next
    fire), last invocation and its calls and failures over the last hour (as far back as the
    journal reaches)."""
    described = runtime.describe()
    counts = _recent_counts(runtime)
    for item in described:
        item.update(runtime.kind_of(item["name"]).function_status(item["name"]))
        item["last_hour"] = counts.get(item["name"], {"calls": 0, "failures": 0})
        if role < Role.ADMIN and item.get("last_invocation"):
            item["last_invocation"] = without_error_text(item["last_invocation"])
    return described


def _recent_counts(runtime: Runtime) -> dict[str, dict[str, int]]:
    since = datetime.now(timezone.utc) - WINDOW
    counts: dict[str, dict[str, int]] = {}
    for entry in runtime.journal.entries():  # newest first: stop at the window's start
        if entry.started_at < since:
            break
        count = counts.setdefault(entry.function, {"calls": 0, "failures": 0})
        count["calls"] += 1
        count["failures"] += entry.status in FAILED
    return counts


def invocations(
    runtime: Runtime,
    role: Role,
    *,
    limit: int = 100,
    function: str | None = None,
    status: str | None = None,
    logs: InvocationLogs | None = None,
) -> list[dict[str, Any]]:
    """/lakefn/invocations: newest first; for admins with the lines each one logged."""
    entries = runtime.journal.entries(limit=None if status else limit, function=function)
    if status:
        entries = [e for e in entries if e.status == status][:limit]
    return invocations_of(entries, role, logs)


def invocations_of(
    entries: list[Invocation], role: Role, logs: InvocationLogs | None = None
) -> list[dict[str, Any]]:
    out = []
    for entry in entries:
        item = entry.to_dict()
        if role < Role.ADMIN:
            item = without_error_text(item)
        elif logs is not None:
            lines = logs.for_invocation(entry.id)
            if lines:
                item["logs"] = lines
        out.append(item)
    return out


def result_of(invocation: Invocation) -> Any:
    """What a function returned, as JSON shows it; repr() of what JSON cannot (an admin sees
    what came back, even what HTTP could not send)."""
    from ..triggers import http_routes as http

    result = http.plain_result(invocation.result)
    try:
        return json.loads(http.encode_json(result))
    except (TypeError, ValueError, RecursionError):
        return repr(result)


def tables(runtime: Runtime, role: Role) -> list[dict[str, Any]]:
    """/lakefn/tables: each watched (function, table) with its progress and a one-word state."""
    statuses = runtime.table_status()
    if not statuses:
        return []
    from ..checkpoints.selection import with_state_warning
    from ..watching.state import next_check_in

    out = []
    for item in with_state_warning(runtime.project, statuses):
        config = runtime.registry.config(item["function"])
        failures = item["consecutive_failures"]
        item["run_on"] = config.run_on
        item["state"] = table_state(item, config.run_on)
        item["next_check_in"] = next_check_in(item["check_interval"], failures)
        out.append(item if role >= Role.ADMIN else without_error_text(item))
    return out


def table_state(item: dict[str, Any], run_on: str = "app") -> str:
    """healthy | lagging | failing | backing off | waiting | job.

    failing: the last check or delivery ended in an error (shown with it); backing off:
    deliveries keep failing and the next try waits longer than the interval, with no error
    left to show (the table read fine since); lagging: versions wait longer than two check
    intervals; waiting: not checked yet; job: a Databricks Job watches it, not this server."""
    if run_on == "job":
        return "job"
    if item.get("last_error"):
        return "failing"
    if item.get("consecutive_failures"):
        return "backing off"
    if item.get("last_check") is None:
        return "waiting"
    if item.get("lag_versions") and item.get("lag_seconds", 0) > 2 * item["check_interval"]:
        return "lagging"
    return "healthy"


def project(runtime: Runtime, started: float | None) -> dict[str, Any]:
    """The console's header: which project, how long up, where state lives and what reads
    tables."""
    from ..checkpoints.selection import project_state, state_kind

    state = project_state(runtime.project)
    local_file = state_kind(state) == "sqlite"
    as_app = bool(os.environ.get(APP_NAME_ENV))
    info: dict[str, Any] = {
        "name": runtime.project.root.name,
        "app_yaml": str(runtime.project.path),
        "version": __version__,
        "uptime_seconds": None if started is None else round(time.monotonic() - started, 1),
        "running_as_app": as_app,
        "state": str(runtime.project.state_path) if local_file else _without_password(state),
        "state_warning": None,
        "table_source": runtime.config.tables.source,
        "functions": len(runtime.config.functions),
    }
    if as_app and local_file:
        info["state_warning"] = (
            "State is a local file, and a Databricks App's disk is wiped on every restart or "
            "redeploy: checkpoints and the journal go with it. Set `state: lakebase` (or a "
            "postgresql:// URL) in app.yaml to keep them."
        )
    # The watcher chose it when it started; asking here before would open it.
    statuses = runtime.table_status()
    if statuses and statuses[0]["source"]:
        info["table_source"] = statuses[0]["source"]
    return info


def _without_password(url: str) -> str:
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


def without_error_text(entry: dict[str, Any]) -> dict[str, Any]:
    """What a viewer sees of an invocation or table status: that it failed and the error's
    type, not its message (which may carry a password, an email, a path), and no logs."""
    shown = dict(entry)
    shown.pop("logs", None)
    for key in ("error", "last_error"):
        text = shown.get(key)
        if isinstance(text, str) and text:
            shown[key] = error_type(text)
    return shown


def error_type(text: str) -> str:
    """ "ValueError" of "ValueError: secret", also after a "versions 3..4: " prefix."""
    parts = [part.strip() for part in text.split(":")]
    head = parts[0]
    if head.isidentifier():
        return head
    if head.startswith("versions ") and len(parts) > 2 and parts[1].isidentifier():
        return parts[1]
    return "(hidden)"
