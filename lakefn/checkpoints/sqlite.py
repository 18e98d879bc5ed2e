"""Checkpoints in a SQLite file: survive restarts and are shared safely by processes on one host.

Every change is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before
reading, so a compare-and-set or a lease check cannot interleave with another process's.
WAL with `synchronous=FULL` makes a committed checkpoint survive a power cut, not only a crash:
a checkpoint that goes back means a version delivered twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from .._exceptions import CheckpointConflict, LakefnError
from ..abc import CheckpointStore

_SCHEMA = """
CREATE TABLE IF NOT EXISTS checkpoints (
    key TEXT PRIMARY KEY,
    version INTEGER NOT NULL,
    updated_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS leases (
    key TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    expires_at REAL NOT NULL
);
"""
_SELECT_VERSION = "SELECT version FROM checkpoints WHERE key = ?"
_SELECT_LEASE = "SELECT owner, expires_at FROM leases WHERE key = ?"


class SQLiteCheckpointStore(CheckpointStore):
    """Checkpoints and leases in the SQLite database at `path` (created with its folder).

    One connection serves every thread, behind a lock: the watcher's workers take turns, and
    other processes wait up to `busy_timeout` seconds for the file's write lock. Lease expiry
    uses `clock` (wall-clock seconds by default, since it is compared across processes).
    """

    def __init__(
        self,
        path: str | Path,
        *,
        busy_timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path)
        self._clock = clock
        self._lock = threading.Lock()
        self._db = self._open(busy_timeout)

    def _open(self, busy_timeout: float) -> sqlite3.Connection:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions, every one is an explicit BEGIN.
            db = sqlite3.connect(
                self.path, timeout=busy_timeout, isolation_level=None, check_same_thread=False
            )
        except (OSError, sqlite3.Error) as exc:
            raise LakefnError(f"cannot open the checkpoint store {self.path}: {exc}") from exc
        try:
            db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
            db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = FULL")
            db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            db.close()
            raise LakefnError(f"cannot use {self.path} as a checkpoint store: {exc}") from exc
        return db

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

    def load(self, key: str) -> int | None:
        with self._lock:
            row = self._db.execute(_SELECT_VERSION, (key,)).fetchone()
        return None if row is None else int(row[0])

    def save(self, key: str, version: int, *, expected: int | None) -> None:
        with self._transaction() as db:
            row = db.execute(_SELECT_VERSION, (key,)).fetchone()
            found = None if row is None else int(row[0])
            if found != expected:
                raise CheckpointConflict(key, expected, found)
            db.execute(
                "INSERT INTO checkpoints (key, version, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
                "updated_at = excluded.updated_at",
                (key, int(version), time.time()),
            )

    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        with self._transaction() as db:
            now = self._clock()
            row = db.execute(_SELECT_LEASE, (key,)).fetchone()
            held = row is not None and row[0] != owner and row[1] > now
            if held and not (take_over is not None and take_over(row[0])):
                return False
            db.execute(
                "INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
                "expires_at = excluded.expires_at",
                (key, owner, now + ttl),
            )
            return True

    def release(self, key: str, owner: str) -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM leases WHERE key = ? AND owner = ?", (key, owner))

    def items(self) -> dict[str, int]:
        with self._lock:
            rows = self._db.execute("SELECT key, version FROM checkpoints ORDER BY key").fetchall()
        return {key: int(version) for key, version in rows}

    def close(self) -> None:
        with self._lock:
            self._db.close()
