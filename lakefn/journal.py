"""The invocation journal: a bounded record of recent invocations that others subscribe to.

In memory it is the fast path (recording is a deque append) and all a test needs. Given a state
store (`persist_to`), it also keeps history there, so /lakefn/invocations, `lakefn logs` and the
notebook show what happened before a restart and in other processes sharing the store:

- write-behind: a background thread writes what was recorded, in batches, every half second,
  so the HTTP path never waits for the store; a crash may lose the last half second of
  journal, never a checkpoint (those are written by the watcher itself, synchronously);
- the store keeps the newest `keep` invocations, none older than `max_age_days`
  (app.yaml's `journal:`), each with up to `log_lines` of what its function logged;
- reading merges this process's entries with a snapshot of the store that the same thread
  refreshes while someone reads, so reading never waits for the store either.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import threading
import time
import uuid
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from .config import JournalConfig

Subscriber = Callable[["Invocation"], None]
logger = logging.getLogger("lakefn.journal")

#: seconds between writes of what was recorded (the most a crash loses)
FLUSH_INTERVAL = 0.5
#: seconds between retention passes over the store
PRUNE_INTERVAL = 60.0
#: seconds a snapshot of the store's history stays fresh while someone reads
SNAPSHOT_AGE = 1.0
#: most entries waiting for the store while it is unreachable; older ones are dropped
MAX_PENDING = 10_000
#: longest the first read waits for the store's history (later reads never wait)
FIRST_READ_WAIT = 2.0
#: longest log line kept with an invocation
MAX_LINE = 2000


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
            **({"logs": self.logs} if self.logs else {}),
            **({"process": self.process} if self.process else {}),
        }


class JournalStore(Protocol):
    """Where a journal keeps history: the state store (PostgreSQL), or a table beside it
    (SQLite). Entries are `Invocation.to_dict()` plus `recorded_at` and `process`."""

    def append_invocations(self, entries: list[dict[str, Any]]) -> None: ...

    def recent_invocations(
        self, limit: int | None = None, function: str | None = None
    ) -> list[dict[str, Any]]: ...

    def prune_invocations(self, keep: int, older_than: float) -> None: ...

    def close(self) -> None: ...


def journal_store_for(store: object) -> tuple[JournalStore | None, bool]:
    """The journal store that goes with a checkpoint store, and whether the caller owns it
    (must close it): PostgreSQL keeps the journal itself; SQLite in a table of the same file,
    through a connection of its own; memory keeps none."""
    if hasattr(store, "append_invocations"):
        return store, False  # type: ignore[return-value]
    from .checkpoints.sqlite import SQLiteCheckpointStore

    if isinstance(store, SQLiteCheckpointStore):
        from .checkpoints.sqlite_journal import SQLiteJournal

        return SQLiteJournal(store.path), True
    return None, False


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
        self._subscribers: list[Subscriber] = []
        self._lock = threading.Lock()
        self._durable: _Durable | None = None
        if persist_to is not None:
            from .config import JournalConfig

            settings = settings or JournalConfig()
            if settings.keep > 0:
                self._durable = _Durable(persist_to, settings, maxlen)

    def record(self, invocation: Invocation) -> None:
        invocation.recorded_at = time.time()
        if self._durable is not None:
            self._durable.add(invocation)
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


class _Durable:
    """The store side of a journal: the writer thread, the snapshot, the log capture."""

    def __init__(
        self, persist_to: Callable[[], object], settings: JournalConfig, snapshot_size: int
    ) -> None:
        self._persist_to = persist_to
        self._settings = settings
        self._snapshot_size = snapshot_size
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        self._cond = threading.Condition()
        self._pending: list[Invocation] = []
        self._in_flight = 0
        self._snapshot: list[Invocation] = []
        self._snapshot_at = 0.0
        self._wanted_at = 0.0
        self._stopping = False
        self._flush_wanted = False
        self._thread: threading.Thread | None = None
        self._failing = False
        self._dropped = 0
        #: no store to keep history in (a memory store, or none could be opened)
        self._disabled = False
        #: set once the first read of the store's history is done (or failed)
        self._loaded = threading.Event()
        if settings.log_lines:
            _LogCapture.install()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="lakefn-journal", daemon=True)
            self._thread.start()

    def add(self, invocation: Invocation) -> None:
        if self._disabled:
            return
        if self._settings.log_lines:
            invocation.logs = _LogCapture.take(invocation.id, self._settings.log_lines)
        invocation.process = self._process
        with self._cond:  # made into a row on the writer thread, off the HTTP path
            self._pending.append(invocation)
            if len(self._pending) > MAX_PENDING:
                del self._pending[: len(self._pending) - MAX_PENDING]
                self._dropped += 1
            self._ensure_thread()

    def merged(self, mine: list[Invocation]) -> list[Invocation]:
        if self._disabled:
            return mine
        with self._cond:
            self._wanted_at = time.monotonic()
            snapshot = self._snapshot
            self._ensure_thread()
            if time.monotonic() - self._snapshot_at > SNAPSHOT_AGE:
                self._cond.notify_all()
        if not self._loaded.is_set():
            # The first read shows history from the start; later ones never wait.
            self._loaded.wait(FIRST_READ_WAIT)
            snapshot = self._snapshot
        if not snapshot:
            return mine
        seen = {i.id for i in mine}
        combined = mine + [i for i in snapshot if i.id not in seen]
        # Stable: this process's entries keep their order among themselves.
        return sorted(combined, key=lambda i: i.recorded_at or 0.0, reverse=True)

    @property
    def unwritten(self) -> int:
        with self._cond:
            return len(self._pending) + self._in_flight

    def flush(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._cond:
            if not self._pending and not self._in_flight:
                return True
            self._ensure_thread()
            self._flush_wanted = True
            self._cond.notify_all()
            while self._pending or self._in_flight:
                left = deadline - time.monotonic()
                if left <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            thread = self._thread
        if thread is not None:
            thread.join(timeout=15)

    def release_idle(self) -> None:
        """Write what is pending and end the writer thread; the next entry starts it again
        (a notebook's stopped server leaves no thread behind)."""
        self.close()
        with self._cond:
            if self._thread is not None and not self._thread.is_alive():
                self._thread = None
            self._stopping = False
            if self._pending:
                self._ensure_thread()

    # -- the writer thread -------------------------------------------------------------------

    def _run(self) -> None:
        try:
            store, owned = journal_store_for(self._persist_to())
        except Exception as exc:  # noqa: BLE001 - no store, no history: never a failed function
            logger.warning(
                "the journal keeps no history: the state store cannot be opened: %s", exc
            )
            store, owned = None, False
        try:
            if store is None:
                self._loaded.set()
                with self._cond:
                    self._disabled = True
                    self._pending.clear()
                    self._cond.notify_all()
                return
            self._loop(store)
        finally:
            if owned and store is not None:
                with contextlib.suppress(Exception):
                    store.close()

    def _loop(self, store: JournalStore) -> None:
        next_prune = 0.0
        while True:
            with self._cond:
                # Batches, at most one write per interval however busy the server is; sooner
                # only when asked to flush, to stop, or for a snapshot someone is waiting on.
                deadline = time.monotonic() + FLUSH_INTERVAL
                while not (self._stopping or self._flush_wanted or self._snapshot_due()):
                    left = deadline - time.monotonic()
                    if left <= 0:
                        break
                    self._cond.wait(left)
                batch, self._pending = self._pending, []
                self._in_flight = len(batch)
                self._flush_wanted = False
                stopping = self._stopping
            if batch:
                self._write(store, batch, stopping)
            with self._cond:
                self._in_flight = 0
                self._cond.notify_all()
            if stopping:
                return
            now = time.monotonic()
            if now >= next_prune:
                next_prune = now + PRUNE_INTERVAL
                self._quietly(store.prune_invocations, self._settings.keep, self._oldest())
            if self._snapshot_due():
                self._refresh(store)

    def _snapshot_due(self) -> bool:
        now = time.monotonic()
        recently_read = now - self._wanted_at < 60.0
        return recently_read and now - self._snapshot_at > SNAPSHOT_AGE

    def _oldest(self) -> float:
        return time.time() - self._settings.max_age_days * 86400

    def _write(self, store: JournalStore, batch: list[Invocation], last: bool) -> None:
        rows = [{**i.to_dict(), "recorded_at": i.recorded_at} for i in batch]
        if self._quietly(store.append_invocations, rows):
            return
        if last:
            logger.warning("the journal lost %d invocation(s) it could not write", len(batch))
            return
        with self._cond:  # kept, in order, for the next try
            self._pending = (batch + self._pending)[-MAX_PENDING:]

    def _refresh(self, store: JournalStore) -> None:
        rows: list[dict[str, Any]] = []

        def read() -> None:
            rows.extend(store.recent_invocations(self._snapshot_size))

        self._snapshot_at = time.monotonic()
        if self._quietly(read):
            snapshot = []
            for row in rows:
                with contextlib.suppress(Exception):
                    snapshot.append(Invocation.from_dict(row))
            self._snapshot = snapshot
        self._loaded.set()

    def _quietly(self, fn: Callable[..., Any], *args: Any) -> bool:
        """Run a store call; a failure is logged once per change of state, never raised."""
        try:
            fn(*args)
        except Exception as exc:  # noqa: BLE001 - the journal must never fail a function
            if not self._failing:
                self._failing = True
                logger.warning("the journal cannot reach the state store (will retry): %s", exc)
            return False
        if self._failing:
            self._failing = False
            logger.info("the journal reaches the state store again")
        return True


class _LogCapture(logging.Handler):
    """What functions log through `event.log`, kept per invocation id until the journal takes
    it. One handler per process on `lakefn.functions`, bounded in ids and lines."""

    _installed: _LogCapture | None = None
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
        if capture is None:
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
