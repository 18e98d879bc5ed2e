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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg
from psycopg import sql

from .._exceptions import (
    BadStateSchema,
    CheckpointConflict,
    StateLayoutTooNew,
    StateStoreUnavailable,
)
from ..abc import CheckpointStore

logger = logging.getLogger("lakefn.state")
T = TypeVar("T")

#: the layout this lakefn writes; a store at a higher version was made by a newer lakefn
SCHEMA_VERSION = 1
DEFAULT_SCHEMA = "lakefn"

_TABLES = """
CREATE TABLE IF NOT EXISTS {s}.schema_version (version integer NOT NULL);
CREATE TABLE IF NOT EXISTS {s}.checkpoints (
    key text PRIMARY KEY,
    version bigint NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.leases (
    key text PRIMARY KEY,
    owner text NOT NULL,
    expires_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.table_ids (
    key text PRIMARY KEY,
    table_id text NOT NULL,
    updated_at double precision NOT NULL
);
CREATE TABLE IF NOT EXISTS {s}.invocations (
    id text PRIMARY KEY,
    function text NOT NULL,
    recorded_at double precision NOT NULL,
    entry text NOT NULL
);
CREATE INDEX IF NOT EXISTS invocations_recent ON {s}.invocations (recorded_at DESC);
CREATE INDEX IF NOT EXISTS invocations_function ON {s}.invocations (function, recorded_at DESC);
"""


class Connections:
    """A few reusable connections, made on demand, each with a password asked for afresh.

    Not psycopg_pool: its background reconnection logs a warning per attempt and makes a
    checkout wait out the pool timeout while the server is down; a state check must instead
    fail at once (one clear log line) and simply connect again on the next check. Broken
    connections are dropped on return; `discard_idle` drops the rest after a failure, since
    a restarted server has closed them all.
    """

    def __init__(
        self,
        conninfo: str,
        *,
        password: Callable[[], str | None] | None = None,
        keep: int = 4,
        connect_timeout: float = 5.0,
    ) -> None:
        self.conninfo = conninfo
        self._password = password
        self._keep = keep
        self._connect_timeout = connect_timeout
        self._idle: list[psycopg.Connection[Any]] = []
        self._lock = threading.Lock()
        #: every password handed to a connection, to scrub from error messages
        self.secrets: set[str] = set()
        self.made = 0
        try:
            given = psycopg.conninfo.conninfo_to_dict(conninfo).get("password")
        except psycopg.Error:
            given = None
        if given:
            self.secrets.add(str(given))

    def connect(self) -> psycopg.Connection[Any]:
        kwargs: dict[str, Any] = {
            "autocommit": True,
            "connect_timeout": max(1, round(self._connect_timeout)),
        }
        password = self._password() if self._password is not None else None
        if password:
            self.secrets.add(password)
            kwargs["password"] = password
        conn = psycopg.connect(self.conninfo, **kwargs)
        self.made += 1
        # Short transactions, also when a lock is contended or the server is slow.
        conn.execute("SET statement_timeout = '15s'")
        conn.execute("SET lock_timeout = '10s'")
        return conn

    @contextmanager
    def connection(self) -> Iterator[tuple[psycopg.Connection[Any], bool]]:
        """A connection and whether it was reused (so may have died while idle)."""
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        reused = conn is not None
        if conn is None:
            conn = self.connect()
        try:
            yield conn, reused
        finally:
            self._give_back(conn)

    def _give_back(self, conn: psycopg.Connection[Any]) -> None:
        healthy = (
            not conn.closed
            and not conn.broken
            and conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE
        )
        with self._lock:
            if healthy and len(self._idle) < self._keep:
                self._idle.append(conn)
                return
        conn.close()

    def discard_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def close(self) -> None:
        self.discard_idle()


def split_state_url(state: str) -> tuple[str, str]:
    """(conninfo for libpq, schema name): lakefn's own `schema=` query parameter is taken out
    of the URL, libpq would refuse it."""
    parts = urlsplit(state)
    query = parse_qsl(parts.query, keep_blank_values=True)
    schema = next((v for k, v in query if k == "schema"), DEFAULT_SCHEMA)
    rest = [(k, v) for k, v in query if k != "schema"]
    return parts._replace(query=urlencode(rest)).geturl(), schema


def describe_conninfo(conninfo: str) -> str:
    """postgresql://user@host:port/db, never the password (from the URL, the environment
    or ~/.pgpass alike)."""
    try:
        params = psycopg.conninfo.conninfo_to_dict(conninfo)
    except psycopg.Error:
        return "postgresql://(unparsable connection string)"
    info = {**_env_params(), **{k: str(v) for k, v in params.items() if v is not None}}
    user = f"{info['user']}@" if info.get("user") else ""
    port = f":{info['port']}" if info.get("port") else ""
    return f"postgresql://{user}{info.get('host', 'localhost')}{port}/{info.get('dbname', '')}"


def _env_params() -> dict[str, str]:
    import os

    names = {"PGHOST": "host", "PGPORT": "port", "PGUSER": "user", "PGDATABASE": "dbname"}
    return {key: os.environ[env] for env, key in names.items() if os.environ.get(env)}


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
        self._sql = _Statements(schema)

    @classmethod
    def from_state(cls, state: str, project_root: Path) -> PostgresCheckpointStore:
        conninfo, schema = split_state_url(state)
        return cls(conninfo, schema=schema)

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

    def _ensure_schema(self, conn: psycopg.Connection[Any]) -> None:
        if self._ready:
            return
        with self._ready_lock:
            if self._ready:
                return
            schema = sql.Identifier(self.schema)
            with conn.transaction():
                # Two processes starting at once would race on CREATE ... IF NOT EXISTS.
                conn.execute(
                    "SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lakefn:{self.schema}",)
                )
                conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(schema))
                for statement in _TABLES.split(";"):
                    if statement.strip():
                        conn.execute(sql.SQL(statement.strip()).format(s=schema))  # type: ignore[arg-type]
                row = conn.execute(self._sql.version).fetchone()
                found = None if row is None else row[0]
                if found is None:
                    conn.execute(self._sql.set_version, (SCHEMA_VERSION,))
                elif found > SCHEMA_VERSION:
                    raise StateLayoutTooNew(self.where, self.schema, found, SCHEMA_VERSION)
            self._ready = True

    # -- checkpoints -------------------------------------------------------------------------

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

    def append_invocations(self, entries: list[dict[str, Any]]) -> None:
        rows = [
            (e["id"], e["function"], e["recorded_at"], json.dumps(e, default=str)) for e in entries
        ]

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


class _Statements:
    """Every statement, with the schema name quoted in once."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)  # type: ignore[arg-type]

        self.version = q("SELECT max(version) FROM {s}.schema_version")
        self.set_version = q("INSERT INTO {s}.schema_version (version) VALUES (%s)")
        self.load = q("SELECT version FROM {s}.checkpoints WHERE key = %s")
        self.insert = q(
            "INSERT INTO {s}.checkpoints (key, version, updated_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO NOTHING RETURNING key"
        )
        self.update = q(
            "UPDATE {s}.checkpoints SET version = %s, updated_at = %s "
            "WHERE key = %s AND version = %s RETURNING key"
        )
        # The lease lands only when free, expired, or already ours (a renewal).
        self.acquire = q(
            "INSERT INTO {s}.leases AS l (key, owner, expires_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET owner = excluded.owner, "
            "expires_at = excluded.expires_at "
            "WHERE l.owner = excluded.owner OR l.expires_at <= %s RETURNING l.owner"
        )
        self.lease = q("SELECT owner, expires_at FROM {s}.leases WHERE key = %s")
        self.take_over = q(
            "UPDATE {s}.leases SET owner = %s, expires_at = %s WHERE key = %s AND owner = %s"
        )
        self.release = q("DELETE FROM {s}.leases WHERE key = %s AND owner = %s")
        self.items = q("SELECT key, version FROM {s}.checkpoints ORDER BY key")
        self.details = q(
            "SELECT c.key, c.version, c.updated_at, l.owner, l.expires_at "
            "FROM {s}.checkpoints c LEFT JOIN {s}.leases l ON l.key = c.key ORDER BY c.key"
        )
        self.load_table_id = q("SELECT table_id FROM {s}.table_ids WHERE key = %s")
        self.save_table_id = q(
            "INSERT INTO {s}.table_ids (key, table_id, updated_at) VALUES (%s, %s, %s) "
            "ON CONFLICT (key) DO UPDATE SET table_id = excluded.table_id, "
            "updated_at = excluded.updated_at"
        )
        self.append_invocation = q(
            "INSERT INTO {s}.invocations (id, function, recorded_at, entry) "
            "VALUES (%s, %s, %s, %s) ON CONFLICT (id) DO NOTHING"
        )
        self.recent = q("SELECT entry FROM {s}.invocations ORDER BY recorded_at DESC, id LIMIT %s")
        self.recent_of = q(
            "SELECT entry FROM {s}.invocations WHERE function = %s "
            "ORDER BY recorded_at DESC, id LIMIT %s"
        )
        # Older than the age bound, or past the newest `keep`.
        self.prune = q(
            "DELETE FROM {s}.invocations WHERE recorded_at < %s OR id IN ("
            "SELECT id FROM {s}.invocations ORDER BY recorded_at DESC, id OFFSET %s)"
        )
