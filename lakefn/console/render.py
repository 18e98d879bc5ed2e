"""Jinja2 templates for the console, loaded on first use (importing lakefn never imports
Jinja2). The stylesheet and script are inlined into the page: one request paints it, and
no static URL has to survive a proxy's path prefix."""

from __future__ import annotations

import functools
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from starlette.responses import HTMLResponse, PlainTextResponse

if TYPE_CHECKING:
    import jinja2
    from starlette.requests import Request
    from starlette.responses import Response

HERE = Path(__file__).parent


@functools.cache
def environment() -> jinja2.Environment:
    import jinja2

    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,  # every value is escaped unless a template says otherwise
        trim_blocks=True,
        lstrip_blocks=True,
        # lenient: a trigger's fields are left out when unset (model_dump exclude_none)
    )
    env.filters.update(ago=ago, clock=clock, seconds=seconds, pretty=pretty)
    env.globals.update(css=static("console.css"), js=static("console.js"))
    return env


@functools.cache
def static(name: str) -> str:
    return (HERE / "static" / name).read_text(encoding="utf-8")


def render(
    request: Request, template: str, context: dict[str, Any], status_code: int = 200
) -> Response:
    # root_path: the prefix a proxy serves the app under (a notebook's driver proxy or
    # jupyter-server-proxy), so the page's links and requests go back through it.
    root = request.scope.get("root_path", "").rstrip("/")
    try:
        env = environment()
    except ImportError:
        # An install from metadata older than the console's dependency: say what to do.
        message = "lakefn's console needs Jinja2: pip install 'jinja2>=3.1' (lakefn depends on it)"
        return PlainTextResponse(message, status_code=500)
    html = env.get_template(template).render(root=root, **context)
    headers = {
        "Cache-Control": "no-store",
        "X-Frame-Options": "SAMEORIGIN",
        "Referrer-Policy": "same-origin",
        "X-Content-Type-Options": "nosniff",
    }
    return HTMLResponse(html, status_code=status_code, headers=headers)


def _parse(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        when = datetime.fromisoformat(value)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


def ago(value: str | None) -> str:
    """ "12 s ago", "in 3 min" for an ISO time; "—" for none."""
    when = _parse(value)
    if when is None:
        return "—"
    delta = (datetime.now(timezone.utc) - when).total_seconds()
    if abs(delta) < 1:
        return "just now"
    text = seconds(abs(delta))
    return f"{text} ago" if delta >= 0 else f"in {text}"


def seconds(value: float | None) -> str:
    if value is None:
        return "—"
    value = float(value)
    if value < 1:
        return "0 s" if value == 0 else f"{value:.2g} s"
    if value < 90:
        return f"{value:.0f} s"
    if value < 5400:
        return f"{value / 60:.0f} min"
    if value < 172800:
        return f"{value / 3600:.1f} h"
    return f"{value / 86400:.1f} d"


def clock(value: str | None) -> str:
    """An ISO time as "14:05:09 UTC", in its own zone (a timer's next fire time is in the
    timer's timezone)."""
    when = _parse(value)
    if when is None:
        return "—"
    today = datetime.now(when.tzinfo).date()
    day = "" if when.date() == today else when.strftime("%Y-%m-%d ")
    return f"{day}{when.strftime('%H:%M:%S')} {when.tzname() or ''}".strip()


def pretty(value: Any) -> str:
    try:
        text = json.dumps(value, indent=2, default=str, ensure_ascii=False)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= 20_000 else text[:20_000] + "\n…"
