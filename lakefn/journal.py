"""The invocation journal: a bounded record of recent invocations that others subscribe to.

In memory it is the fast path (recording is a deque append) and all a test needs. Given a state
store (`persist_to`), it also keeps history there (`_journal_store.WriteBehind`), so
/lakefn/invocations, `lakefn logs` and the notebook show what happened before a restart and in
other processes sharing the store. The record itself is `Invocation` (`_invocation.py`); what
functions log is captured per invocation by `_log_capture.py`.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from ._invocation import Invocation
from ._journal_store import JournalStore, WriteBehind, journal_store_for
from ._listeners import Listeners

if TYPE_CHECKING:
    from .config import JournalConfig

__all__ = ["Invocation", "Journal", "JournalStore", "journal_store_for"]

Subscriber = Callable[[Invocation], None]


class Journal:
    """Keeps the last `maxlen` finished invocations; tells subscribers about each one.

    Subscribers run on the thread that records (usually the server's event loop): they must be
    quick and must not block. An exception in one is dropped so it cannot break an invocation.
    With `persist_to` (a callable giving the checkpoint store, asked for on the writer thread),
    history also goes to the store; see the module docstring.
    """

    def __init__(
        self,
        maxlen: int = 1000,
        *,
        persist_to: Callable[[], object] | None = None,
        settings: JournalConfig | None = None,
    ) -> None:
        self._entries: deque[Invocation] = deque(maxlen=maxlen)
        # A broken subscriber must not fail the function that was recorded.
        self._subscribers: Listeners[Invocation] = Listeners()
        self._durable: WriteBehind | None = None
        if persist_to is not None:
            from .config import JournalConfig

            settings = settings or JournalConfig()
            if settings.keep > 0:
                self._durable = WriteBehind(persist_to, settings, maxlen)

    def record(self, invocation: Invocation) -> None:
        invocation.recorded_at = time.time()
        if self._durable is not None:
            self._durable.add(invocation)
        self._entries.append(invocation)
        self._subscribers.notify(invocation)

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Call `subscriber` with every invocation recorded from now on; returns an unsubscribe."""
        return self._subscribers.add(subscriber)

    def entries(self, *, limit: int | None = None, function: str | None = None) -> list[Invocation]:
        """Newest first: this process's, and with a store, what it holds from before and
        from other processes."""
        items = list(self._entries)
        items.reverse()
        if self._durable is not None:
            items = self._durable.merged(items)
        if function is not None:
            items = [i for i in items if i.function == function]
        return items if limit is None else items[:limit]

    @property
    def unwritten(self) -> int:
        """Entries recorded but not yet in the store (0 without a store)."""
        return 0 if self._durable is None else self._durable.unwritten

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything recorded so far is in the store (True), or `timeout`."""
        return True if self._durable is None else self._durable.flush(timeout)

    def close(self) -> None:
        """Write what is left to the store and stop the writer thread."""
        if self._durable is not None:
            self._durable.close()

    def release_idle(self) -> None:
        """Write what is left and end the writer thread until the next entry needs it."""
        if self._durable is not None:
            self._durable.release_idle()

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()
