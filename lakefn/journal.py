"""The invocation journal: a bounded record of recent invocations that others subscribe to."""

from __future__ import annotations

import contextlib
import threading
import uuid
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

Subscriber = Callable[["Invocation"], None]


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

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "function": self.function,
            "trigger": self.trigger,
            "started_at": self.started_at.isoformat(),
            "duration_ms": None if self.duration is None else round(self.duration * 1000, 3),
            "status": self.status,
            "attempt": self.attempt,
            "simulated": self.simulated,
            "error": self.error,
            **({"detail": self.detail} if self.detail else {}),
        }


class Journal:
    """Keeps the last `maxlen` finished invocations; tells subscribers about each one.

    Subscribers run on the thread that records (usually the server's event loop): they must be
    quick and must not block. An exception in one is dropped so it cannot break an invocation.
    """

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: deque[Invocation] = deque(maxlen=maxlen)
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()

    def record(self, invocation: Invocation) -> None:
        self._entries.append(invocation)
        for subscriber in self._subscribers:
            # A broken subscriber must not fail the function that was recorded.
            with contextlib.suppress(Exception):
                subscriber(invocation)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every invocation recorded from now on; returns an unsubscribe."""
        with self._lock:
            self._subscribers = [*self._subscribers, subscriber]

        def unsubscribe() -> None:
            with self._lock:
                self._subscribers = [s for s in self._subscribers if s is not subscriber]

        return unsubscribe

    def entries(self, *, limit: int | None = None, function: str | None = None) -> list[Invocation]:
        """Newest first."""
        items = list(self._entries)
        items.reverse()
        if function is not None:
            items = [i for i in items if i.function == function]
        return items if limit is None else items[:limit]

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
