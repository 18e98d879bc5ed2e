"""One run of a function as the journal records it, and as a store keeps it (`to_dict`)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

#: an entry as a store keeps it: compact JSON, the encoder built once (json.dumps with options
#: builds one per call, a cost a busy server's journal pays on every invocation)
ENTRY_JSON = json.JSONEncoder(separators=(",", ":"), default=str)


@dataclass(slots=True)
class Invocation:
    """One run of a function: what it was, when, how long, how it ended."""

    id: str
    function: str
    trigger: str
    started_at: datetime
    status: str = "running"  # running | ok | error | timeout | skipped
    duration: float | None = None  # seconds
    attempt: int = 1
    simulated: bool = False
    error: str | None = None
    detail: dict[str, Any] = field(default_factory=dict)
    result: Any = field(default=None, repr=False)
    exception: BaseException | None = field(default=None, repr=False)
    #: what the function logged through `event.log` (kept when the journal has a store)
    logs: list[str] = field(default_factory=list, repr=False)
    #: wall-clock seconds when the journal recorded it (orders entries across processes)
    recorded_at: float = 0.0
    #: host:pid of the process that ran it ("" for this one, until read back from a store)
    process: str = ""
    #: what its trigger answered (an HTTP function's response), settled before the journal
    #: records the run, so a result that cannot be sent is recorded as the failure it is
    answer: Any = field(default=None, repr=False, compare=False)

    @classmethod
    def note(
        cls, function: str, trigger: str, status: str, error: str, detail: dict[str, Any]
    ) -> Invocation:
        """An entry for something that happened instead of a run (a skipped tick, a history
        gap): no time spent, the reason in `error`."""
        return cls(
            id=uuid.uuid4().hex[:16],
            function=function,
            trigger=trigger,
            started_at=datetime.now(timezone.utc),
            status=status,
            duration=0.0,
            error=error,
            detail=detail,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Invocation:
        """An entry as `to_dict` wrote it to a store."""
        duration_ms = data.get("duration_ms")
        return cls(
            id=str(data["id"]),
            function=str(data["function"]),
            trigger=str(data.get("trigger", "")),
            started_at=datetime.fromisoformat(data["started_at"]),
            status=str(data.get("status", "")),
            duration=None if duration_ms is None else float(duration_ms) / 1000,
            attempt=int(data.get("attempt", 1)),
            simulated=bool(data.get("simulated", False)),
            error=data.get("error"),
            detail=dict(data.get("detail") or {}),
            logs=list(data.get("logs") or []),
            recorded_at=float(data.get("recorded_at") or 0.0),
            process=str(data.get("process") or ""),
        )

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self, *, recorded: bool = False) -> dict[str, Any]:
        """The entry as shown and stored; `recorded` adds when the journal recorded it (the
        order of entries across processes, which a store sorts by)."""
        entry: dict[str, Any] = {
            "id": self.id,
            "function": self.function,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "duration_ms": None if self.duration is None else round(self.duration * 1000, 3),
            "status": self.status,
            "attempt": self.attempt,
            "simulated": self.simulated,
            "error": self.error,
        }
        if self.detail:
            entry["detail"] = self.detail
        if self.logs:
            entry["logs"] = self.logs
        if self.process:
            entry["process"] = self.process
        if recorded:
            entry["recorded_at"] = self.recorded_at
        return entry
