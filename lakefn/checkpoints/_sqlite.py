"""Opening a SQLite file that other processes may be opening at the same moment.

`PRAGMA journal_mode = WAL` needs the file's exclusive lock, and SQLite answers "database is
locked" at once, without waiting on the busy handler, when another connection holds any lock
then; two `lakefn run`s started together on a fresh state file hit it one time in four. The
switch is retried until `busy_timeout`, the schema written in one `BEGIN IMMEDIATE` (which does
wait on the busy handler).
"""

from __future__ import annotations

import contextlib
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

_RETRY_SLEEP = 0.005


def connect(path: Path, *, busy_timeout: float) -> sqlite3.Connection:
    """A connection in autocommit mode, waiting up to `busy_timeout` for locks.

    Raises `OSError` or `sqlite3.Error` when the file cannot be opened.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit transactions, every one is an explicit BEGIN.
    db = sqlite3.connect(path, timeout=busy_timeout, isolation_level=None, check_same_thread=False)
    try:
        db.execute(f"PRAGMA busy_timeout = {int(busy_timeout * 1000)}")
    except BaseException:
        db.close()
        raise
    return db


def prepare(db: sqlite3.Connection, *, busy_timeout: float, synchronous: str, schema: str) -> None:
    """WAL journal, the given `synchronous`, `schema` applied; `db` closed when that fails."""
    try:
        _wal(db, time.monotonic() + busy_timeout)
        db.execute(f"PRAGMA synchronous = {synchronous}")
        with immediate(db):
            for statement in schema.split(";"):
                if statement.strip():
                    db.execute(statement)
    except BaseException:
        db.close()
        raise


@contextlib.contextmanager
def immediate(db: sqlite3.Connection) -> Iterator[sqlite3.Connection]:
    """One `BEGIN IMMEDIATE` transaction (the write lock taken first, waiting on the busy
    handler): committed if the body ends well; otherwise, or if COMMIT itself fails, rolled
    back unless SQLite already did, so the connection is never left inside a transaction and
    the error that counts is the one raised."""
    db.execute("BEGIN IMMEDIATE")
    try:
        yield db
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise


def _wal(db: sqlite3.Connection, give_up_at: float) -> None:
    sleep = _RETRY_SLEEP
    while True:
        try:
            db.execute("PRAGMA journal_mode = WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() >= give_up_at:
                raise
        time.sleep(sleep)
        sleep = min(sleep * 2, 0.1)
