"""What the notebook shows: small objects with a text `repr` and an HTML `_repr_html_`.

They hold data the caller can read too (`status.url`, `view.invocation.result`), so the same
object serves the magics, plain Python in a cell, and a script printing it.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime
from html import escape
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..config import FunctionConfig
    from ..journal import Invocation
    from ..runtime import Runtime
    from .links import ServerLink

# Styled inline: JupyterLab's widget and output CSS do not make links look like links.
_LINK = "target='_blank' rel='noopener' style='color:#0969da;text-decoration:underline'"
_STATUS_COLOURS = {"ok": "#1a7f37", "error": "#cf222e", "timeout": "#bc4c00", "skipped": "#6e7781"}


@dataclass(frozen=True)
class ServerStatus:
    """Whether the project's server runs, and where to reach it."""

    running: bool
    project: str | None = None
    functions: int = 0
    host: str | None = None
    port: int | None = None
    link: ServerLink | None = None

    @property
    def url(self) -> str | None:
        return self.link.url if self.link else None

    @property
    def local_url(self) -> str | None:
        return self.link.local_url if self.link else None

    def __repr__(self) -> str:
        if self.project is None:
            return "lakefn: no project loaded (%lakefn load app.yaml)"
        if not self.running:
            return f"lakefn: {self.project} loaded ({self.functions} functions), not serving"
        extra = f" (in the kernel: {self.local_url})" if self.local_url != self.url else ""
        return f"lakefn: serving {self.project} ({self.functions} functions) at {self.url}{extra}"

    def _repr_html_(self) -> str:
        if self.project is None or not self.running:
            return f"<div class='lakefn-status'>{escape(repr(self))}</div>"
        url = escape(self.link.console_url if self.link else "")
        shown = escape(self.url or "")
        docs = escape(self.link.docs_url if self.link else "")
        return (
            "<div class='lakefn-status'><b>lakefn</b> serving "
            f"<code>{escape(self.project)}</code> ({self.functions} functions) at "
            f"<a href='{url}' {_LINK}>{shown}</a>"
            f" &middot; <a href='{docs}' {_LINK}>API docs</a></div>"
        )


@dataclass
class LogLine:
    created: float
    level: str
    invocation_id: str | None
    message: str

    def text(self) -> str:
        when = datetime.fromtimestamp(self.created).strftime("%H:%M:%S")
        return f"{when} {self.level:<7} {self.message}"


class LogCapture(logging.Handler):
    """Keeps lakefn's recent log records, so a cell can show what a function logged.

    `emit` runs on whichever thread logs (function workers, the server loop): it only appends.
    """

    def __init__(self, maxlen: int = 2000) -> None:
        super().__init__(logging.INFO)
        self.lines: deque[LogLine] = deque(maxlen=maxlen)
        self._lock_lines = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break the function
            message = str(record.msg)
        line = LogLine(
            record.created, record.levelname, getattr(record, "invocation_id", None), message
        )
        with self._lock_lines:
            self.lines.append(line)

    def for_invocation(self, invocation_id: str) -> list[LogLine]:
        with self._lock_lines:
            return [line for line in self.lines if line.invocation_id == invocation_id]


def trigger_line(function: FunctionConfig) -> str:
    """A function's trigger as the notebook lists it: its kind and the kind's summary (the
    one `lakefn functions` and /lakefn/functions show), "http POST /orders"."""
    from ..triggers import kind

    return f"{function.kind} {kind(function.kind).summary(function)}"


def invocation_line(invocation: Invocation) -> str:
    """One line per invocation, as the log and the panel show it."""
    when = invocation.started_at.astimezone().strftime("%H:%M:%S")
    ms = "" if invocation.duration is None else f" {invocation.duration * 1000:.1f} ms"
    sim = " simulated" if invocation.simulated else ""
    error = f" — {invocation.error}" if invocation.error else ""
    return (
        f"{when} {invocation.function} [{invocation.trigger}{sim}] {invocation.status}{ms}{error}"
    )


def _badge(status: str) -> str:
    colour = _STATUS_COLOURS.get(status, "#6e7781")
    return f"<b style='color:{colour}'>{escape(status)}</b>"


def _json(value: Any, limit: int = 4000) -> str:
    try:
        text = json.dumps(value, indent=2, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "\n…"


@dataclass
class InvocationView:
    """One invocation's outcome, its result and what it logged."""

    invocation: Invocation
    log: list[LogLine] = field(default_factory=list)

    @property
    def result(self) -> Any:
        return self.invocation.result

    def __repr__(self) -> str:
        lines = [invocation_line(self.invocation)]
        if self.invocation.ok and self.invocation.result is not None:
            lines.append(_json(self.invocation.result))
        lines += [f"  {line.text()}" for line in self.log]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        inv = self.invocation
        ms = "" if inv.duration is None else f" in {inv.duration * 1000:.1f} ms"
        parts = [
            f"<div class='lakefn-invocation'><code>{escape(inv.function)}</code> "
            f"[{escape(inv.trigger)}{' simulated' if inv.simulated else ''}] "
            f"{_badge(inv.status)}{ms} <small>id {escape(inv.id)}</small>"
        ]
        if inv.error:
            parts.append(f"<pre style='color:#cf222e'>{escape(inv.error)}</pre>")
        elif inv.result is not None:
            parts.append(f"<pre>{escape(_json(inv.result))}</pre>")
        if self.log:
            text = "\n".join(line.text() for line in self.log)
            parts.append(f"<pre style='color:#57606a'>{escape(text)}</pre>")
        return "".join(parts) + "</div>"


@dataclass
class InvocationLog:
    """The last invocations, newest first."""

    invocations: list[Invocation]

    def __len__(self) -> int:
        return len(self.invocations)

    def __repr__(self) -> str:
        if not self.invocations:
            return "lakefn: no invocations yet"
        return "\n".join(invocation_line(i) for i in self.invocations)

    def _repr_html_(self) -> str:
        if not self.invocations:
            return "<i>lakefn: no invocations yet</i>"
        rows = "".join(
            "<tr>"
            f"<td>{escape(i.started_at.astimezone().strftime('%H:%M:%S'))}</td>"
            f"<td><code>{escape(i.function)}</code></td>"
            f"<td>{escape(i.trigger)}{' (simulated)' if i.simulated else ''}</td>"
            f"<td>{_badge(i.status)}</td>"
            f"<td>{'' if i.duration is None else f'{i.duration * 1000:.1f} ms'}</td>"
            f"<td>{escape(i.error or '')}</td>"
            "</tr>"
            for i in self.invocations
        )
        head = "".join(
            f"<th>{name}</th>"
            for name in ("time", "function", "trigger", "status", "took", "error")
        )
        head = f"<tr>{head}</tr>"
        return f"<table class='lakefn-log'>{head}{rows}</table>"


# JupyterLab right-aligns table cells; names and triggers read left to right.
_LEFT = "style='text-align:left'"


@dataclass
class FunctionsView:
    """The loaded project: each function with its trigger."""

    runtime: Runtime

    def rows(self) -> list[tuple[str, str]]:
        return [(fn.name, trigger_line(fn)) for fn in self.runtime.config.functions]

    def __repr__(self) -> str:
        head = f"lakefn: loaded {self.runtime.project.path}"
        return "\n".join([head, *(f"  {name:<24} {trigger}" for name, trigger in self.rows())])

    def _repr_html_(self) -> str:
        rows = "".join(
            f"<tr><td {_LEFT}><code>{escape(name)}</code></td>"
            f"<td {_LEFT}>{escape(trigger)}</td></tr>"
            for name, trigger in self.rows()
        )
        return (
            f"<div><b>lakefn</b> loaded <code>{escape(str(self.runtime.project.path))}</code>"
            f"<table>{rows}</table></div>"
        )
