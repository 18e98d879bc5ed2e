"""The journal's history in the SQLite state file, beside the checkpoints.

A connection of its own, used only by the journal's writer thread and by `lakefn logs`, so
journal writes never wait behind the checkpoint store's lock. `synchronous=NORMAL`: a power
cut may lose the last journal lines, which the journal allows; checkpoints stay on FULL.

One B-tree, ordered by time (`WITHOUT ROWID`, keyed by when an entry was recorded and its id):
a busy server writes thousands of entries a second and the retention pass deletes as many, so
each entry costs one insert and one range delete, not four (a rowid table, its id key and two
indexes). Reading by function walks the same order, over at most about `keep` entries.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .._exceptions import StateStoreFailed
from .._invocation import ENTRY_JSON, Invocation
from . import _sqlite

# Keyed by (recorded_at, id), not by id alone: a retried invocation keeps its id, and each of
# its attempts is an entry of its own; an entry written again (a write whose reply was lost)
# has the same key and is ignored.
_SCHEMA = """
CREATE TABLE IF NOT EXISTS invocations (
    recorded_at REAL NOT NULL,
    id TEXT NOT NULL,
    function TEXT NOT NULL,
    entry TEXT NOT NULL,
    PRIMARY KEY (recorded_at, id)
) WITHOUT ROWID
"""

_INSERT_BATCH = """
INSERT OR IGNORE INTO invocations (recorded_at, id, function, entry)
SELECT json_extract(value, '$[0]'), json_extract(value, '$[1]'), json_extract(value, '$[2]'), value
FROM json_each(?)
"""

#: an entry as this store writes it: a JSON array, these fields in this order (no key names
#: repeated in every row; an entry written by an earlier lakefn is a JSON object)
ROW = (
    "recorded_at",
    "id",
    "function",
    "trigger",
    "started_at",  # POSIX seconds
    "duration",  # seconds
    "status",
    "attempt",
    "simulated",
    "error",
    "detail",
    "logs",
    "process",
)


def _row(i: Invocation) -> list[Any]:
    """What the writer thread does per entry, GIL held: the least it can (a busy server
    writes thousands a second, and its event loop waits for the GIL meanwhile)."""
    return [
        i.recorded_at,
        i.id,
        i.function,
        i.trigger,
        i.started_at.timestamp(),
        i.duration,
        i.status,
        i.attempt,
        i.simulated,
        i.error,
        i.detail or None,
        i.logs or None,
        i.process,
    ]


def _entry(stored: Any) -> dict[str, Any]:
    """A stored entry as `Invocation.to_dict(recorded=True)` gives it."""
    if not isinstance(stored, list):
        return dict(stored)  # written by an earlier lakefn
    values = dict(zip(ROW, stored, strict=True))
    values["started_at"] = datetime.fromtimestamp(values["started_at"], timezone.utc)
    values["detail"] = values["detail"] or {}
    values["logs"] = values["logs"] or []
    return Invocation(**values).to_dict(recorded=True)


#: where an older state file's journal (keyed by id: one attempt per invocation) is moved from
_BEFORE = "invocations_keyed_by_id"


class SQLiteJournal:
    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = _sqlite.connect(self.path, busy_timeout=busy_timeout)
            _sqlite.prepare(
                self._db, busy_timeout=busy_timeout, synchronous="NORMAL", schema=_SCHEMA
            )
            _upgrade(self._db)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreFailed("journal", self.path, exc) from exc

    def append_invocations(self, invocations: list[Invocation]) -> None:
        # The batch goes in as one JSON array of rows, split by SQLite itself: one statement
        # step, the GIL given up once. executemany steps per row, taking the GIL back each
        # time, and a busy server's event loop paid for every one of those hand-overs.
        batch = ENTRY_JSON.encode([_row(i) for i in invocations])
        with self._lock, _transaction(self._db):
            self._db.execute(_INSERT_BATCH, (batch,))

    def recent_invocations(
        self, limit: int | None = None, function: str | None = None
    ) -> list[dict[str, Any]]:
        limit_value = -1 if limit is None else int(limit)
        with self._lock:
            if function is None:
                rows = self._db.execute(
                    "SELECT entry FROM invocations ORDER BY recorded_at DESC, id LIMIT ?",
                    (limit_value,),
                ).fetchall()
            else:
                rows = self._db.execute(
                    "SELECT entry FROM invocations WHERE function = ? "
                    "ORDER BY recorded_at DESC, id LIMIT ?",
                    (function, limit_value),
                ).fetchall()
        return [_entry(json.loads(row[0])) for row in rows]

    def prune_invocations(self, keep: int, older_than: float) -> None:
        """Entries older than `older_than`, and all but about the newest `keep` (entries
        recorded at the very instant of the `keep`-th stay with it): two range deletes."""
        with self._lock:
            self._db.execute(
                "DELETE FROM invocations WHERE recorded_at < max(?, coalesce(("
                "SELECT recorded_at FROM invocations ORDER BY recorded_at DESC "
                "LIMIT 1 OFFSET ?), 0))",
                (older_than, max(keep - 1, 0)),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()


class _transaction:
    """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK when the body raises."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *_: object) -> None:
        self.db.execute("COMMIT" if kind is None else "ROLLBACK")


def _upgrade(db: sqlite3.Connection) -> None:
    """A state file written by an earlier lakefn has the journal keyed by id: its entries move
    to the table above (once, by whichever process gets there first)."""
    if not _keyed_by_id(db):
        return
    with _transaction(db):
        if not _keyed_by_id(db):
            return  # another process moved them meanwhile
        db.execute(f"ALTER TABLE invocations RENAME TO {_BEFORE}")
        db.execute(_SCHEMA)
        db.execute(
            "INSERT OR IGNORE INTO invocations (recorded_at, id, function, entry) "
            f"SELECT recorded_at, id, function, entry FROM {_BEFORE}"
        )
        db.execute(f"DROP TABLE {_BEFORE}")  # and its indexes


def _keyed_by_id(db: sqlite3.Connection) -> bool:
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'invocations'"
    ).fetchone()
    return row is not None and "WITHOUT ROWID" not in row[0].upper()
