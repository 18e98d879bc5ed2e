"""The journal's history in the SQLite state file, beside the checkpoints.

A connection of its own, used only by the journal's writer thread and by `lakefn logs`, so
journal writes never wait behind the checkpoint store's lock. `synchronous=NORMAL`: a power
cut may lose the last journal lines, which the journal allows; checkpoints stay on FULL.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from pathlib import Path
from typing import Any

from .._exceptions import StateStoreFailed
from . import _sqlite

_SCHEMA = """
CREATE TABLE IF NOT EXISTS invocations (
    id TEXT PRIMARY KEY,
    function TEXT NOT NULL,
    recorded_at REAL NOT NULL,
    entry TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_recent ON invocations (recorded_at DESC);
CREATE INDEX IF NOT EXISTS invocations_function ON invocations (function, recorded_at DESC);
"""


class SQLiteJournal:
    def __init__(self, path: str | Path, *, busy_timeout: float = 10.0) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        try:
            self._db = _sqlite.connect(self.path, busy_timeout=busy_timeout)
            _sqlite.prepare(
                self._db, busy_timeout=busy_timeout, synchronous="NORMAL", schema=_SCHEMA
            )
        except (OSError, sqlite3.Error) as exc:
            raise StateStoreFailed("journal", self.path, exc) from exc

    def append_invocations(self, entries: list[dict[str, Any]]) -> None:
        rows = [
            (e["id"], e["function"], e["recorded_at"], json.dumps(e, default=str)) for e in entries
        ]
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR IGNORE INTO invocations (id, function, recorded_at, entry) "
                    "VALUES (?, ?, ?, ?)",
                    rows,
                )
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")

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
        with self._lock:
            self._db.execute(
                "DELETE FROM invocations WHERE recorded_at < ? OR id IN ("
                "SELECT id FROM invocations ORDER BY recorded_at DESC, id LIMIT -1 OFFSET ?)",
                (older_than, keep),
            )

    def close(self) -> None:
        with self._lock:
            self._db.close()
