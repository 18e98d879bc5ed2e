"""Checkpoints, leases, table ids and the journal in PostgreSQL: state that outlives the machine.

Every change is one short transaction, most a single statement: a compare-and-set save is a
conditional UPDATE (or an INSERT ... ON CONFLICT DO NOTHING for a first save), a lease is an
upsert that only lands when the lease is free, expired or already ours. Taking over a live
lease whose holder is gone asks `take_over` outside any transaction, then moves the lease only
if that same holder still has it, so no lock is held while Python code runs.

The tables live in a schema of their own (default `lakefn`), created on first use under an
advisory lock (two processes starting at once must not race on CREATE), with a
`schema_version` row so a later lakefn knows what it is migrating from.

A lost connection (Postgres restarted, network cut) is a `StateStoreUnavailable`: the
watcher's check fails and is retried; the next call connects afresh. Only a checkpoint save
waits a few seconds for the server first (`save_patience`): its function has already run, and
a restart of a few seconds should not make it run again. The store logs once when it goes down
and once when it is back, never per call.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import psycopg

from .._exceptions import (
    BadStateSchema,
    CheckpointConflict,
    StateStoreUnavailable,
)
from .._invocation import ENTRY_JSON, Invocation
from ..abc import CheckpointStore
from ._pg_connections import DEFAULT_SCHEMA, Connections, describe_conninfo, split_state_url
from ._pg_schema import SCHEMA_VERSION, Statements, create_schema

__all__ = [
    "DEFAULT_SCHEMA",
    "SCHEMA_VERSION",
    "Connections",
    "PostgresCheckpointStore",
    "describe_conninfo",
    "split_state_url",
]

logger = logging.getLogger("lakefn.state")
T = TypeVar("T")


class PostgresCheckpointStore(CheckpointStore):
    """The CheckpointStore contract on PostgreSQL, for any number of processes and hosts.

    `conninfo` is a libpq connection string or URL ("" takes everything from the PG*
    variables); `password`, when given, is called for each new connection (an OAuth token
    that expires). Lease expiry uses `clock` (wall-clock seconds by default): hosts sharing
    a store must keep their clocks in step, as they must for SQLite on a shared disk.
    """

    name = "postgresql"

    def __init__(
        self,
        conninfo: str = "",
        *,
        schema: str = DEFAULT_SCHEMA,
        password: Callable[[], str | None] | None = None,
        clock: Callable[[], float] = time.time,
        connections: int = 8,
        connect_timeout: float = 5.0,
        save_patience: float = 5.0,
    ) -> None:
        if not schema or len(schema) > 63:
            raise BadStateSchema(schema)
        self.schema = schema
        self.save_patience = save_patience
        self.where = describe_conninfo(conninfo)
        self._clock = clock
        self._connections = Connections(
            conninfo, password=password, keep=connections, connect_timeout=connect_timeout
        )
        self._ready = False
        self._ready_lock = threading.Lock()
        self._down = False
        self._sql = Statements(schema)

    @classmethod
    def from_state(
        cls, state: str, project_root: Path, *, clock: Callable[[], float] = time.time
    ) -> PostgresCheckpointStore:
        conninfo, schema = split_state_url(state)
        return cls(conninfo, schema=schema, clock=clock)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.where} schema={self.schema}>"

    # -- running statements ------------------------------------------------------------------

    def _run(self, work: Callable[[psycopg.Connection[Any]], T]) -> T:
        """Run `work` on a connection; connection trouble becomes StateStoreUnavailable.

        A reused connection that fails is tried once more on a new one: after a server restart
        every idle connection is dead, and that alone should not fail a check. Repeating is
        safe: a save repeated after its commit sees its own value and reports a conflict, which
        makes the watcher read the checkpoint afresh.
        """
        for attempt in (1, 2):
            reused = False
            try:
                with self._connections.connection() as (conn, reused):
                    self._ensure_schema(conn)
                    result = work(conn)
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._connections.discard_idle()
                if attempt == 1 and reused:
                    continue
                raise self._unavailable(exc) from None
            except psycopg.Error as exc:
                raise self._unavailable(exc) from None
            if self._down:
                self._down = False
                logger.info("the state store %s is reachable again", self.where)
            return result
        raise AssertionError("unreachable")  # pragma: no cover

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if not self._ready:
                create_schema(conn, self.schema, self.where)
                self._ready = True

    def _unavailable(self, exc: BaseException) -> StateStoreUnavailable:
        reason = self._scrub(f"{type(exc).__name__}: {exc}".strip())
        if not self._down:
            self._down = True
            logger.error(
                "the state store %s is unavailable (%s); checks fail until it is back",
                self.where,
                reason,
            )
        return StateStoreUnavailable(self.where, reason)

    def _scrub(self, text: str) -> str:
        for secret in self._connections.secrets:
            text = text.replace(secret, "***")
        return " ".join(text.split())

    # -- checkpoints -------------------------------------------------------------------------

    @property
    def lease_clock(self) -> Callable[[], float]:
        """The seconds this store expires leases by: the watcher counts its lease down on it."""
        return self._clock

    def load(self, key: str) -> int | None:
        def work(conn: psycopg.Connection[Any]) -> int | None:
            row = conn.execute(self._sql.load, (key,)).fetchone()
            return None if row is None else int(row[0])

        return self._run(work)

    def save(self, key: str, version: int, *, expected: int | None) -> None:
        """Compare-and-set, tried again for up to `save_patience` seconds while the server is
        unreachable: the function has already run, and giving up means running it again. A
        try whose reply was lost may have landed: finding `version` there is success."""

        def work(conn: psycopg.Connection[Any]) -> tuple[bool, int | None]:
            now = time.time()
            if expected is None:
                done = conn.execute(self._sql.insert, (key, int(version), now)).fetchone()
            else:
                done = conn.execute(
                    self._sql.update, (int(version), now, key, int(expected))
                ).fetchone()
            if done is not None:
                return True, version
            row = conn.execute(self._sql.load, (key,)).fetchone()
            return False, None if row is None else int(row[0])

        deadline = time.monotonic() + self.save_patience
        tried = False
        while True:
            try:
                saved, found = self._run(work)
                break
            except StateStoreUnavailable:
                if time.monotonic() >= deadline:
                    raise
                tried = True
                time.sleep(0.25)
        if not saved and not (tried and found == version):
            raise CheckpointConflict(key, expected, found)

    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        now = self._clock()
        until = now + ttl
        took = self._run(
            lambda conn: conn.execute(self._sql.acquire, (key, owner, until, now)).fetchone()
        )
        if took is not None:
            return True
        if take_over is None:
            return False
        holder = self._run(lambda conn: conn.execute(self._sql.lease, (key,)).fetchone())
        if holder is None:
            # Released between the two statements: free now.
            return self.acquire(key, owner, ttl)
        if not take_over(holder[0]):
            return False
        moved = self._run(
            lambda conn: conn.execute(self._sql.take_over, (owner, until, key, holder[0])).rowcount
        )
        return bool(moved)

    def release(self, key: str, owner: str) -> None:
        self._run(lambda conn: conn.execute(self._sql.release, (key, owner)))

    def items(self) -> dict[str, int]:
        rows = self._run(lambda conn: conn.execute(self._sql.items).fetchall())
        return {key: int(version) for key, version in rows}

    def details(self) -> list[dict[str, Any]]:
        """Every checkpoint with when it moved, and its lease's holder and expiry if any."""
        rows = self._run(lambda conn: conn.execute(self._sql.details).fetchall())
        return [
            {"key": k, "version": v, "updated_at": u, "owner": o, "expires_at": e}
            for k, v, u, o, e in rows
        ]

    # -- table ids: which table a checkpoint belongs to, so a recreated table is noticed -----

    def load_table_id(self, key: str) -> str | None:
        row = self._run(lambda conn: conn.execute(self._sql.load_table_id, (key,)).fetchone())
        return None if row is None else str(row[0])

    def save_table_id(self, key: str, table_id: str) -> None:
        self._run(lambda conn: conn.execute(self._sql.save_table_id, (key, table_id, time.time())))

    # -- the journal (see lakefn.journal) ----------------------------------------------------

    def append_invocations(self, invocations: list[Invocation]) -> None:
        encode = ENTRY_JSON.encode
        entries = [i.to_dict(recorded=True) for i in invocations]
        rows = [(_entry_key(e), e["function"], e["recorded_at"], encode(e)) for e in entries]

        def work(conn: psycopg.Connection[Any]) -> None:
            with conn.cursor() as cur:
                cur.executemany(self._sql.append_invocation, rows)

        if rows:
            self._run(work)

    def recent_invocations(
        self, limit: int | None = None, function: str | None = None
    ) -> list[dict[str, Any]]:
        limit_value = 1_000_000 if limit is None else int(limit)

        def work(conn: psycopg.Connection[Any]) -> list[Any]:
            if function is None:
                return conn.execute(self._sql.recent, (limit_value,)).fetchall()
            return conn.execute(self._sql.recent_of, (function, limit_value)).fetchall()

        return [json.loads(row[0]) for row in self._run(work)]

    def prune_invocations(self, keep: int, older_than: float) -> None:
        self._run(lambda conn: conn.execute(self._sql.prune, (older_than, keep)))

    def close(self) -> None:
        self._connections.close()


def _entry_key(entry: dict[str, Any]) -> str:
    """The row's key: a retried invocation keeps its id, and each attempt is an entry of its
    own (the key of the first is the id, as lakefn always wrote it)."""
    attempt = entry.get("attempt", 1)
    return str(entry["id"]) if attempt == 1 else f"{entry['id']}/{attempt}"
