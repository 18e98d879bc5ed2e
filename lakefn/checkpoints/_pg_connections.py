"""Connections to the PostgreSQL state store, and how its state URL is read and shown."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import psycopg

#: the schema lakefn's tables live in unless the state URL says `schema=`
DEFAULT_SCHEMA = "lakefn"


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
