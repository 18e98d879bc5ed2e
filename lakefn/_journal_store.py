"""The store side of the journal: history written behind the HTTP path, read back merged.

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
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from ._invocation import Invocation
from ._log_capture import LogCapture

if TYPE_CHECKING:
    from .config import JournalConfig

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


class JournalStore(Protocol):
    """Where a journal keeps history: the state store (PostgreSQL), or a table beside it
    (SQLite). Each store writes entries as it likes; it reads them back as
    `Invocation.to_dict(recorded=True)` gives them."""

    def append_invocations(self, invocations: list[Invocation]) -> None: ...

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


class WriteBehind:
    """The store side of a journal: the writer thread, the snapshot, the log capture."""

    def __init__(
        self, persist_to: Callable[[], object], settings: JournalConfig, snapshot_size: int
    ) -> None:
        self._persist_to = persist_to
        self._settings = settings
        self._snapshot_size = snapshot_size
        self._process = f"{socket.gethostname()}:{os.getpid()}"
        # `add` takes the condition's lock itself: the HTTP path pays for no Python-level
        # __enter__ (the writer waits on the condition as usual).
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._pending: deque[Invocation] = deque(maxlen=MAX_PENDING)  # the oldest go first
        self._log_lines = settings.log_lines
        self._in_flight = 0
        #: entries a write failed for, kept as they were for the next one (writer thread only)
        self._retry: list[Invocation] = []
        self._snapshot: list[Invocation] = []
        self._snapshot_at = 0.0
        self._wanted_at = 0.0
        self._stopping = False
        self._flush_wanted = False
        self._thread: threading.Thread | None = None
        self._failing = False
        #: no store to keep history in (a memory store, or none could be opened)
        self._disabled = False
        #: set once the first read of the store's history is done (or failed)
        self._loaded = threading.Event()
        self._budget = OkBudget(settings.max_ok_per_second)
        if settings.log_lines:
            LogCapture.install()

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._stopping:
            self._thread = threading.Thread(target=self._run, name="lakefn-journal", daemon=True)
            self._thread.start()

    def add(self, invocation: Invocation) -> None:
        """On the HTTP path: as little as it can, the rest on the writer thread."""
        if self._disabled:
            return
        if self._log_lines:
            invocation.logs = LogCapture.take(invocation.id, self._log_lines)
        invocation.process = self._process
        with self._lock:
            self._pending.append(invocation)
            if self._thread is None:
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
        next_prune, unpruned = 0.0, 0
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
                batch = list(self._pending)
                self._pending.clear()
                self._in_flight = len(batch) + len(self._retry)
                self._flush_wanted = False
                stopping = self._stopping
            if batch or self._retry:
                unpruned += self._write(store, batch, stopping)
            with self._cond:
                self._in_flight = len(self._retry)  # still to be written
                self._cond.notify_all()
            if stopping:
                return
            now = time.monotonic()
            # Now and then, and as soon as half of `keep` came in since the last pass: with
            # writes of at most `keep` entries, the store never holds more than twice `keep`
            # however busy the server is.
            if now >= next_prune or unpruned >= max(1, self._settings.keep // 2):
                next_prune, unpruned = now + PRUNE_INTERVAL, 0
                self._quietly(store.prune_invocations, self._settings.keep, self._oldest())
            if self._snapshot_due():
                self._refresh(store)

    def _snapshot_due(self) -> bool:
        now = time.monotonic()
        recently_read = now - self._wanted_at < 60.0
        return recently_read and now - self._snapshot_at > SNAPSHOT_AGE

    def _oldest(self) -> float:
        return time.time() - self._settings.max_age_days * 86400

    def _write(self, store: JournalStore, batch: list[Invocation], last: bool) -> int:
        """Write `batch` (after what a failed write left); the number of entries written."""
        # Sampled once: what a failed write left is tried again as it is. Past the newest
        # `keep`, entries would be pruned as soon as written.
        entries = [*self._retry, *self._budget.kept(batch)][-self._settings.keep :]
        self._retry = []
        if self._quietly(store.append_invocations, entries):
            return len(entries)
        if last:
            logger.warning("the journal lost %d invocation(s) it could not write", len(entries))
            return 0
        self._retry = entries[-MAX_PENDING:]
        return 0

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


class OkBudget:
    """Which successful runs of each function go to the store: at most `rate` a second, in
    bursts of up to a second's worth (a token bucket per function, filled by the time between
    the runs themselves, so a write that comes late keeps as many). Failures, timeouts and
    skips always go.

    A function called thousands of times a second would otherwise fill the store with its
    successes, push every other function's history out of `keep` within a second, and cost the
    server a fifth of its throughput in writes; this process's own journal still shows every
    run. Used by the writer thread only.
    """

    def __init__(self, rate: float | None) -> None:
        self.rate = rate
        self._buckets: dict[str, tuple[float, float]] = {}  # function -> (tokens, as of when)

    def kept(self, batch: list[Invocation]) -> list[Invocation]:
        rate = self.rate
        if rate is None:
            return batch
        burst = max(rate, 1.0)
        buckets = self._buckets
        kept: list[Invocation] = []
        for invocation in batch:  # oldest first
            if invocation.status != "ok":
                kept.append(invocation)
                continue
            at = invocation.recorded_at
            tokens, since = buckets.get(invocation.function, (burst, at))
            tokens = min(burst, tokens + max(0.0, at - since) * rate)
            if tokens >= 1:
                kept.append(invocation)
                tokens -= 1
            buckets[invocation.function] = (tokens, max(since, at))
        return kept
