"""What functions log through `event.log`, kept per invocation for the journal's store."""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict

#: longest log line kept with an invocation
MAX_LINE = 2000


class LogCapture(logging.Handler):
    """What functions log through `event.log`, kept per invocation id until the journal takes
    it. One handler per process on `lakefn.functions`, bounded in ids and lines."""

    _installed: LogCapture | None = None
    _guard = threading.Lock()
    MAX_IDS = 1000
    MAX_LINES = 1000

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self._lines: OrderedDict[str, list[str]] = OrderedDict()
        self._lines_lock = threading.Lock()

    @classmethod
    def install(cls) -> None:
        with cls._guard:
            if cls._installed is None:
                cls._installed = cls()
                logging.getLogger("lakefn.functions").addHandler(cls._installed)

    @classmethod
    def take(cls, invocation_id: str, limit: int) -> list[str]:
        capture = cls._installed
        if capture is None or not capture._lines:  # nothing logged (the usual case): no lock
            return []
        with capture._lines_lock:
            lines = capture._lines.pop(invocation_id, [])
        return lines[-limit:] if limit else []

    def emit(self, record: logging.LogRecord) -> None:
        invocation_id = getattr(record, "invocation_id", None)
        if not invocation_id:
            return
        try:
            text = f"{record.levelname} {record.getMessage()}"
        except Exception:  # noqa: BLE001 - a bad format string: keep what there is
            text = f"{record.levelname} {record.msg}"
        with self._lines_lock:
            lines = self._lines.get(invocation_id)
            if lines is None:
                lines = self._lines[invocation_id] = []
                while len(self._lines) > self.MAX_IDS:
                    self._lines.popitem(last=False)
            lines.append(text[:MAX_LINE])
            if len(lines) > self.MAX_LINES:
                del lines[0]
