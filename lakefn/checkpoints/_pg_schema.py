"""The PostgreSQL state store's tables and statements, and creating them on first use."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import psycopg
from psycopg import sql

from .._exceptions import StateLayoutTooNew

#: the layout this lakefn writes; a store at a higher version was made by a newer lakefn
SCHEMA_VERSION = 1

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


def create_schema(conn: psycopg.Connection[Any], schema: str, where: str) -> None:
    """The schema, its tables and its version row, unless there; refused when a newer lakefn
    wrote it."""
    name = sql.Identifier(schema)
    statements = Statements(schema)
    with conn.transaction():
        # Two processes starting at once would race on CREATE ... IF NOT EXISTS.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"lakefn:{schema}",))
        conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name))
        for statement in _TABLES.split(";"):
            if statement.strip():
                conn.execute(sql.SQL(statement.strip()).format(s=name))
        row = conn.execute(statements.version).fetchone()
        found = None if row is None else row[0]
        if found is None:
            conn.execute(statements.set_version, (SCHEMA_VERSION,))
        elif found > SCHEMA_VERSION:
            raise StateLayoutTooNew(where, schema, found, SCHEMA_VERSION)


class Statements:
    """Every statement, with the schema name quoted in once."""

    def __init__(self, schema: str) -> None:
        s = sql.Identifier(schema)

        def q(text: str) -> sql.Composed:
            return sql.SQL(text).format(s=s)

        self.version = q("SELECT max(version) FROM {s}.schema_version")
        self.set_version = q("INSERT INTO {s}.schema_version (version) VALUES (%s)")
        self._checkpoints(q)
        self._journal(q)

    def _checkpoints(self, q: Callable[[str], sql.Composed]) -> None:
        """Checkpoints and their leases."""
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

    def _journal(self, q: Callable[[str], sql.Composed]) -> None:
        """Table ids and the journal's invocations."""
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
