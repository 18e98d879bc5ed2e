"""Checkpoints in a SQLite file: survive restarts and are shared safely by processes on one host.

Every change is one `BEGIN IMMEDIATE` transaction, which takes SQLite's write lock before
reading, so a compare-and-set or a lease check cannot interleave with another process's.
WAL with `synchronous=FULL` makes a committed checkpoint survive a power cut, not only a crash:
a checkpoint that goes back means a version delivered twice.

A state file deleted (or replaced) while the store has it open would otherwise go unnoticed:
SQLite keeps writing to the unlinked file, and the next start finds no checkpoints at all and
delivers every table's whole history again. So each call first checks that the file at `path`
is still the one open (one `stat`); if not, the store reads what the old file holds, opens the
file at `path` anew and writes those checkpoints into it, and says so in the log.
"""

from __future__ import annotations

import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .._exceptions import CheckpointConflict, StateStoreFailed
from ..abc import CheckpointStore
from . import _sqlite

logger = logging.getLogger("lakefn.checkpoints")

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
CREATE TABLE IF NOT EXISTS table_ids (
    key TEXT PRIMARY KEY,
    table_id TEXT NOT NULL,
    updated_at REAL NOT NULL
);
"""
_SELECT_VERSION = "SELECT version FROM checkpoints WHERE key = ?"
_SELECT_LEASE = "SELECT owner, expires_at FROM leases WHERE key = ?"
_UPSERT_TABLE_ID = (
    "INSERT INTO table_ids (key, table_id, updated_at) VALUES (?, ?, ?) "
    "ON CONFLICT (key) DO UPDATE SET table_id = excluded.table_id, "
    "updated_at = excluded.updated_at"
)


@dataclass
class _Carried:
    """What a deleted or replaced state file held, until it is written into its successor."""

    checkpoints: dict[str, tuple[int, float]] = field(default_factory=dict)
    table_ids: dict[str, tuple[str, float]] = field(default_factory=dict)
    leases: dict[str, tuple[str, float]] = field(default_factory=dict)
    how: str = "deleted"


def _file_id(path: Path) -> tuple[int, int] | None:
    try:
        found = os.stat(path)
    except FileNotFoundError:
        return None
    return (found.st_dev, found.st_ino)


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
        self._busy_timeout = busy_timeout
        self._clock = clock
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._file: tuple[int, int] | None = None
        self._carried: _Carried | None = None
        self._closed = False
        with self._lock:
            self._connection()

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> SQLiteCheckpointStore:
        from .selection import sqlite_path

        return cls(sqlite_path(state, project_root), clock=clock)

    def _open(self) -> sqlite3.Connection:
        try:
            db = _sqlite.connect(self.path, busy_timeout=self._busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreFailed("open", self.path, exc) from exc
        try:
            _sqlite.prepare(db, busy_timeout=self._busy_timeout, synchronous="FULL", schema=_SCHEMA)
        except sqlite3.Error as exc:
            raise StateStoreFailed("use", self.path, exc) from exc
        return db

    def _connection(self) -> sqlite3.Connection:
        """The open connection, to the file that is at `path` now. Call with the lock held."""
        if self._closed:
            raise StateStoreFailed("closed", self.path)
        if self._db is not None:
            now_at_path = _file_id(self.path)
            if now_at_path == self._file:
                return self._db
            self._carry(self._db, "deleted" if now_at_path is None else "replaced by another file")
            # Closed before anything opens the path again: the old file's WAL shares the new
            # file's name, and a new connection must never replay it into the new file.
            self._db.close()
            self._db = None
        db = self._open()
        try:
            if self._carried is not None:
                self._restore(db, self._carried)
        except sqlite3.Error as exc:
            db.close()
            raise StateStoreFailed("write", self.path, exc) from exc
        self._db, self._file = db, _file_id(self.path)
        return db

    def _carry(self, old: sqlite3.Connection, how: str) -> None:
        carried = self._carried or _Carried()
        carried.how = how
        try:
            for key, version, at in old.execute("SELECT key, version, updated_at FROM checkpoints"):
                if key not in carried.checkpoints or carried.checkpoints[key][0] < version:
                    carried.checkpoints[key] = (int(version), float(at))
            for key, table_id, at in old.execute("SELECT key, table_id, updated_at FROM table_ids"):
                carried.table_ids[key] = (str(table_id), float(at))
            for key, owner, expires in old.execute("SELECT key, owner, expires_at FROM leases"):
                carried.leases[key] = (str(owner), float(expires))
        except sqlite3.Error as exc:  # the old file is unreadable too: keep what was read
            logger.error("checkpoint store %s: cannot read the old file: %s", self.path, exc)
        self._carried = carried

    def _restore(self, db: sqlite3.Connection, carried: _Carried) -> None:
        """Write what the old file held into the new one. A checkpoint only ever moves forward:
        the higher of the two stands, since every version up to it was handed over."""
        now = self._clock()
        with _sqlite.immediate(db):
            db.executemany(
                "INSERT INTO checkpoints (key, version, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO UPDATE SET version = excluded.version, "
                "updated_at = excluded.updated_at WHERE excluded.version > checkpoints.version",
                [(k, v, at) for k, (v, at) in carried.checkpoints.items()],
            )
            db.executemany(
                "INSERT INTO table_ids (key, table_id, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                [(k, t, at) for k, (t, at) in carried.table_ids.items()],
            )
            db.executemany(
                "INSERT INTO leases (key, owner, expires_at) VALUES (?, ?, ?) "
                "ON CONFLICT (key) DO NOTHING",
                [(k, o, e) for k, (o, e) in carried.leases.items() if e > now],
            )
        self._carried = None
        logger.error(
            "checkpoint store %s was %s while in use: opened it anew and wrote the %d "
            "checkpoint(s) the old file held into it, so nothing is delivered again",
            self.path,
            carried.how,
            len(carried.checkpoints),
        )

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock, _sqlite.immediate(self._connection()) as db:
            yield db

    @property
    def lease_clock(self) -> Callable[[], float]:
        """The seconds this store expires leases by: the watcher counts its lease down on it."""
        return self._clock

    def load(self, key: str) -> int | None:
        with self._lock:
            row = self._connection().execute(_SELECT_VERSION, (key,)).fetchone()
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

    def load_table_id(self, key: str) -> str | None:
        with self._lock:
            row = (
                self._connection()
                .execute("SELECT table_id FROM table_ids WHERE key = ?", (key,))
                .fetchone()
            )
        return None if row is None else str(row[0])

    def save_table_id(self, key: str, table_id: str) -> None:
        with self._transaction() as db:
            db.execute(_UPSERT_TABLE_ID, (key, table_id, time.time()))

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
            rows = (
                self._connection()
                .execute("SELECT key, version FROM checkpoints ORDER BY key")
                .fetchall()
            )
        return {key: int(version) for key, version in rows}

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._db is not None:
                self._db.close()
                self._db = None
