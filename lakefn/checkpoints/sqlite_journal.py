"""The journal's history in the SQLite state file, beside the checkpoints.

A connection of its own, used only by the journal's writer thread and by `lakefn logs`, so
journal writes never wait behind the checkpoint store's lock. `synchronous=NORMAL`: a power
cut may lose the last journal lines, which the journal allows; checkpoints stay on FULL.

One B-tree, ordered by time (`WITHOUT ROWID`, keyed by when an entry was recorded and its id):
each entry costs one insert and, at retention, one range delete, not four (a rowid table, its
id key and two indexes). Reading by function walks the same order, over about `keep` entries.
Entries stay `Invocation.to_dict()` objects, so an older lakefn sharing the file (a rolling
deploy) still reads and writes them.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from .._exceptions import StateStoreFailed
from .._invocation import ENTRY_JSON, Invocation
from . import _sqlite

logger = logging.getLogger("lakefn.journal")

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

# A batch goes in as one JSON array, split by SQLite itself: one statement step, the GIL given
# up once (executemany steps per row, taking the GIL back each time from a busy event loop).
_INSERT_ARRAY = """
INSERT OR IGNORE INTO invocations (recorded_at, id, function, entry)
SELECT json_extract(value, '$.recorded_at'), json_extract(value, '$.id'),
       json_extract(value, '$.function'), value
FROM json_each(?)
"""

#: most entries, and most bytes, in one statement (SQLite's strings stop at 1 GB)
CHUNK_ROWS = 500
CHUNK_BYTES = 4 * 2**20

#: where an older state file's journal (keyed by id: one attempt per invocation) is moved from
_BEFORE = "invocations_keyed_by_id"


class SQLiteJournal:
    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = _sqlite.connect(self.path, busy_timeout=busy_timeout)
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreFailed("journal", self.path, exc) from exc
        try:
            _sqlite.prepare(
                self._db, busy_timeout=busy_timeout, synchronous="NORMAL", schema=_SCHEMA
            )
            self._db.execute("SELECT count(*) FROM json_each('[1]')")  # SQLite with JSON
            _upgrade(self._db)
        except (OSError, sqlite3.Error) as exc:
            self._db.close()
            raise StateStoreFailed("journal", self.path, exc) from exc

    def append_invocations(self, invocations: list[Invocation]) -> None:
        if not invocations:
            return
        entries = [ENTRY_JSON.encode(i.to_dict(recorded=True)) for i in invocations]
        with self._lock, _sqlite.immediate(self._db):
            for chunk in _chunks(entries):
                try:
                    self._db.execute(_INSERT_ARRAY, ("[" + ",".join(chunk) + "]",))
                except sqlite3.Error as exc:
                    if _busy(exc):
                        raise  # the whole write is tried again later
                    self._one_by_one(chunk, exc)

    def _one_by_one(self, chunk: list[str], exc: sqlite3.Error) -> None:
        """A chunk SQLite refused: each entry on its own, so one it cannot take (it will not
        take it on a retry either) costs only itself, never the whole journal."""
        dropped = 0
        for entry in chunk:
            try:
                self._db.execute(_INSERT_ARRAY, ("[" + entry + "]",))
            except sqlite3.Error as again:
                if _busy(again):
                    raise
                dropped += 1
        if dropped:
            logger.warning("the journal dropped %d entries SQLite refused: %s", dropped, exc)

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
        return [json.loads(row[0]) for row in rows]

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


def _chunks(entries: list[str]) -> Iterator[list[str]]:
    chunk: list[str] = []
    size = 0
    for entry in entries:
        if chunk and (len(chunk) >= CHUNK_ROWS or size + len(entry) > CHUNK_BYTES):
            yield chunk
            chunk, size = [], 0
        chunk.append(entry)
        size += len(entry) + 1
    if chunk:
        yield chunk


def _busy(exc: sqlite3.Error) -> bool:
    """Another connection holds the lock: not this entry's fault, the write is tried again."""
    text = str(exc)
    return isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text)


def _upgrade(db: sqlite3.Connection) -> None:
    """A state file written by an earlier lakefn has the journal keyed by id: its entries move
    to the table above (once, by whichever process gets there first). An earlier lakefn still
    running on the file adds its two indexes to the new table when it starts: they go too."""
    if _keyed_by_id(db):
        with _sqlite.immediate(db):
            if _keyed_by_id(db):  # not moved meanwhile by another process
                db.execute(f"ALTER TABLE invocations RENAME TO {_BEFORE}")
                db.execute(_SCHEMA)
                db.execute(
                    "INSERT OR IGNORE INTO invocations (recorded_at, id, function, entry) "
                    f"SELECT recorded_at, id, function, entry FROM {_BEFORE}"
                )
                db.execute(f"DROP TABLE {_BEFORE}")  # and its indexes
    for index in ("invocations_recent", "invocations_function"):
        db.execute(f"DROP INDEX IF EXISTS {index}")


def _keyed_by_id(db: sqlite3.Connection) -> bool:
    row = db.execute(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'invocations'"
    ).fetchone()
    return row is not None and "WITHOUT ROWID" not in row[0].upper()
