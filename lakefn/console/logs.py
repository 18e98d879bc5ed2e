"""The lines each invocation logged (`event.log`), kept for the console's invocation detail.

A logging handler on the `lakefn` logger while the server runs. It keeps what the logging
configuration lets through: `lakefn serve` logs at INFO, so `event.log.info(...)` lines show;
under a bare `uvicorn app:app` only warnings and errors reach it.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from datetime import datetime, timezone
from typing import Any

#: invocations whose lines are kept, and lines kept per invocation
MAX_INVOCATIONS = 1000
MAX_LINES = 50


class InvocationLogs(logging.Handler):
    """Records carrying an `invocation_id` (what `event.log` adds), indexed by that id.

    `emit` runs on whichever thread logs (function workers, the loop): it only appends."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lines: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
        self._guard = threading.Lock()

    def emit(self, record: logging.LogRecord) -> None:
        invocation_id = getattr(record, "invocation_id", None)
        if not invocation_id:
            return
        try:
            message = record.getMessage()
        except Exception:  # noqa: BLE001 - a bad format string must not break the function
            message = str(record.msg)
        prefix = f"[{invocation_id}] "
        line = {
            "time": datetime.fromtimestamp(record.created, timezone.utc).isoformat(),
            "level": record.levelname,
            "message": message.removeprefix(prefix),
        }
        with self._guard:
            lines = self._lines.get(invocation_id)
            if lines is None:
                lines = self._lines[invocation_id] = []
                if len(self._lines) > MAX_INVOCATIONS:
                    self._lines.popitem(last=False)
            if len(lines) < MAX_LINES:
                lines.append(line)

    def for_invocation(self, invocation_id: str) -> list[dict[str, Any]]:
        with self._guard:
            return list(self._lines.get(invocation_id, ()))
