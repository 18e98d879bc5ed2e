"""`%lakefn panel`: a control panel in core ipywidgets, 7.7 or 8 (so it renders in Databricks too).

Invocations arrive on the server's thread (or a function worker's). The panel never prints
from there: it rebuilds an HTML widget's `value`, which the kernel sends as a state update
to the browser, whatever thread sets it.
"""

from __future__ import annotations

import json
import threading
from collections import deque
from collections.abc import Callable
from html import escape
from typing import TYPE_CHECKING, Any, cast

import ipywidgets as widgets

from ..triggers import kind
from .views import invocation_line, trigger_line

if TYPE_CHECKING:
    import concurrent.futures

    from ..journal import Invocation
    from ..runtime import Runtime
    from .session import Session

OPERATIONS = ["WRITE", "MERGE", "UPDATE", "DELETE", "STREAMING UPDATE", "OPTIMIZE"]
_BOX = widgets.Layout(border="1px solid #d0d7de", padding="6px", width="100%")
_BUTTON = widgets.Layout(width="120px", min_width="120px")
_CELL = "style='padding:2px 10px;text-align:left'"


class Panel:
    """Status and link, a row per function (Run / Simulate), table lag and a live log."""

    def __init__(self, session: Session, log_lines: int = 50) -> None:
        self.session = session
        self.log_lines = log_lines
        self._lines: deque[str] = deque(maxlen=log_lines)
        self._lock = threading.Lock()
        self._unsubscribe_journal: Callable[[], None] | None = None
        self.status = widgets.HTML()
        self.serve_button = widgets.Button(description="Serve", icon="play")
        self.serve_button.on_click(self._toggle_server)
        self.serve_button.add_class("lakefn-serve")
        self.rows = widgets.VBox()
        self.tables = widgets.HTML()
        self.log = widgets.HTML(value=_log_html([]))
        self.log.add_class("lakefn-log")
        self.widget = widgets.VBox(
            [
                widgets.HBox([self.status, self.serve_button]),
                widgets.HTML("<b>Functions</b>"),
                self.rows,
                self.tables,
                widgets.HTML("<b>Invocations</b> <small>(newest first)</small>"),
                self.log,
            ],
            layout=_BOX,
        )
        self.widget.add_class("lakefn-panel")
        self._unsubscribe_session = session.subscribe(self._on_session)
        self._bind(session.require())

    # ipywidgets 8 widgets are shown through `_repr_mimebundle_`; ipywidgets 7 ones (older
    # Databricks runtimes ship 7) through `_ipython_display_`, which IPython asks for first. The
    # panel offers whichever its widget has, so it is shown exactly as the widget would be.

    @property
    def _ipython_display_(self) -> Callable[..., None]:
        # A closed ipywidgets 7 widget sets its own to None: then plain text, as below.
        show = getattr(self.widget, "_ipython_display_", None)
        if show is None:
            raise AttributeError("_ipython_display_")  # IPython goes on to _repr_mimebundle_
        return cast("Callable[..., None]", show)

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        show = getattr(self.widget, "_repr_mimebundle_", None)
        bundle = show(**kwargs) if show is not None else {}
        if isinstance(bundle, dict):
            # Shown where widgets cannot render (a plain console, nbconvert to text).
            bundle["text/plain"] = f"lakefn panel: {self.session.status()!r}"
        return bundle

    def close(self) -> None:
        self._unsubscribe_session()
        if self._unsubscribe_journal is not None:
            self._unsubscribe_journal()
        self.widget.close()

    # -- building ----------------------------------------------------------------------------

    def _bind(self, runtime: Runtime) -> None:
        if self._unsubscribe_journal is not None:
            self._unsubscribe_journal()
        self.rows.children = [self._row(runtime, fn.name) for fn in runtime.config.functions]
        with self._lock:
            self._lines.clear()
            for invocation in reversed(runtime.journal.entries(limit=self.log_lines)):
                self._lines.appendleft(self._line(invocation))
            self.log.value = _log_html(list(self._lines))
        self._unsubscribe_journal = runtime.journal.subscribe(self._on_invocation)
        self._refresh_status()
        self._refresh_tables()

    def _row(self, runtime: Runtime, name: str) -> widgets.HBox:
        config = runtime.registry.config(name)
        trigger_kind = kind(config.kind)
        label = widgets.HTML(
            f"<code>{escape(name)}</code><br><small>{escape(trigger_line(config))}</small>",
            layout=widgets.Layout(width="260px", min_width="260px"),
        )
        outcome = widgets.HTML(layout=widgets.Layout(width="100%"))
        outcome.add_class("lakefn-outcome")
        if trigger_kind.hand_input == "commit":
            wanted = list(getattr(config.trigger, "operations", None) or [])
            operation = widgets.Dropdown(
                options=wanted + [op for op in OPERATIONS if op not in wanted],
                layout=widgets.Layout(width="220px"),
            )
            button = widgets.Button(
                description="Simulate", icon="database", button_style="info", layout=_BUTTON
            )
            button.add_class("lakefn-simulate")
            button.on_click(lambda _: self._simulate(name, operation.value, button, outcome))
            control: widgets.Widget = operation
        else:
            takes_json = trigger_kind.hand_input == "json"
            payload = widgets.Textarea(
                value="{}" if takes_json else "",
                placeholder="JSON body" if takes_json else "(no payload)",
                disabled=not takes_json,
                rows=2,
                layout=widgets.Layout(width="220px"),
            )
            button = widgets.Button(
                description="Run", icon="play", button_style="primary", layout=_BUTTON
            )
            button.add_class("lakefn-run")
            button.on_click(lambda _: self._run(name, payload.value, button, outcome))
            control = payload
        row = widgets.HBox([label, control, button, outcome])
        row.add_class(f"lakefn-function-{name}")
        return row

    # -- actions (on the kernel's thread; the work goes to a loop thread) ----------------------

    def _run(self, name: str, text: str, button: widgets.Button, outcome: widgets.HTML) -> None:
        try:
            payload = json.loads(text) if text.strip() else None
        except ValueError as exc:
            outcome.value = (
                f"<span style='color:#cf222e'>payload is not JSON: {escape(str(exc))}</span>"
            )
            return
        runtime = self.session.require()
        self._start(runtime.invoke(name, payload), button, outcome)

    def _simulate(
        self, name: str, operation: str, button: widgets.Button, outcome: widgets.HTML
    ) -> None:
        runtime = self.session.require()
        self._start(runtime.invoke(name, {"operation": operation}), button, outcome)

    def _start(self, coro: Any, button: widgets.Button, outcome: widgets.HTML) -> None:
        button.disabled = True
        outcome.value = "<i>running…</i>"

        def done(future: concurrent.futures.Future[Invocation]) -> None:
            button.disabled = False
            try:
                invocation = future.result()
            except Exception as exc:  # noqa: BLE001 - shown in the row, not raised in a thread
                outcome.value = f"<span style='color:#cf222e'>{escape(str(exc))}</span>"
                return
            outcome.value = _outcome_html(invocation)

        self.session.submit(coro).add_done_callback(done)

    def _toggle_server(self, _: Any) -> None:
        try:
            if self.session.serving:
                self.session.stop()
            else:
                self.session.serve()
        except Exception as exc:  # noqa: BLE001 - a busy port is shown, not raised
            self.status.value = f"<span style='color:#cf222e'>{escape(str(exc))}</span>"

    # -- updates (any thread) ------------------------------------------------------------------

    def _on_invocation(self, invocation: Invocation) -> None:
        with self._lock:
            self._lines.appendleft(self._line(invocation))
            self.log.value = _log_html(list(self._lines))
        self._refresh_tables()

    def _line(self, invocation: Invocation) -> str:
        text = invocation_line(invocation)
        logged = self.session.log_capture.for_invocation(invocation.id)[-3:]
        return "\n".join([text, *(f"    {line.message}" for line in logged)])

    def _on_session(self, event: str) -> None:
        if event == "load" and self.session.runtime is not None:
            self._bind(self.session.runtime)
        elif event == "close":
            self.status.value = "<i>lakefn: session closed</i>"
            return
        elif event in ("serve", "stop"):
            self._refresh_status()
        self._refresh_tables()

    def _refresh_status(self) -> None:
        status = self.session.status()
        self.status.value = status._repr_html_()
        self.serve_button.description = "Stop" if status.running else "Serve"
        self.serve_button.icon = "stop" if status.running else "play"

    def _refresh_tables(self) -> None:
        runtime = self.session.runtime
        try:
            states = [] if runtime is None else runtime.table_status()
        except Exception as exc:  # noqa: BLE001 - a source that cannot be reached is shown
            self.tables.value = (
                f"<b>Tables</b> <span style='color:#cf222e'>{escape(str(exc))}</span>"
            )
            return
        self.tables.value = _tables_html(states) if states else ""


def _outcome_html(invocation: Invocation) -> str:
    colour = "#1a7f37" if invocation.ok else "#cf222e"
    text = invocation.error or _short(invocation.result)
    ms = "" if invocation.duration is None else f" {invocation.duration * 1000:.1f} ms"
    return (
        f"<b style='color:{colour}'>{escape(invocation.status)}</b>{ms} <code>{escape(text)}</code>"
    )


def _short(value: Any, limit: int = 160) -> str:
    try:
        text = json.dumps(value, default=str)
    except (TypeError, ValueError):
        text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def _log_html(lines: list[str]) -> str:
    body = escape("\n".join(lines)) if lines else "<i>no invocations yet</i>"
    return (
        "<pre class='lakefn-log-lines' style='max-height:16em;overflow:auto;margin:0;"
        f"font-size:12px'>{body}</pre>"
    )


def _tables_html(states: list[dict[str, Any]]) -> str:
    def cell(value: Any) -> str:
        return f"<td {_CELL}>{escape('' if value is None else str(value))}</td>"

    rows = "".join(
        "<tr>"
        + cell(s["function"])
        + cell(s["table"])
        + cell(s["last_processed_version"])
        + cell(s["latest_version"])
        + cell(s["lag_versions"])
        + cell(s["lag_seconds"])
        + cell(s["last_error"])
        + "</tr>"
        for s in states
    )
    names = ("function", "table", "processed", "latest", "lag (versions)", "lag (s)", "error")
    head = "<tr>" + "".join(f"<th {_CELL}>{name}</th>" for name in names) + "</tr>"
    return f"<b>Tables</b><table class='lakefn-tables'>{head}{rows}</table>"
