"""Delta history through a Databricks SQL warehouse (`databricks-sql-connector`).

The workspace host and credentials come from the Databricks SDK's `Config`, so whatever the SDK
accepts works here: a token, a profile in ~/.databrickscfg, or the OAuth service principal
Databricks Apps injects (DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET).

The connector retries for up to 15 minutes by default; a watcher polling every 30 seconds
would rather hear quickly that the warehouse is unreachable, so retries and socket timeouts
are bounded here.

Only `TableName.sql` (every part backtick-quoted) and integers lakefn computed ever reach SQL
text; table_changes() takes the name as a string literal, escaped below.

The connector allows one statement at a time per connection (PEP 249 threadsafety 1), so the
queries of every watched table take turns on the one connection: `tables.concurrency` does not
make this source faster. CloudFetch (results fetched from cloud storage by presigned URL) is
off unless `use_cloud_fetch` is set: history rows are small, and a Databricks App may not be
allowed to reach the storage hosts.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._exceptions import ChangeDataFeedUnavailable, SourceUnavailable, TableNotFound
from .._tablename import TableName
from ..abc import TableSource
from ..events import Commit
from ._detail import TableIds, detail_query
from ._errors import Reading, classify, first_line
from ._history import HistoryWindow
from ._rows import normalize_changes

if TYPE_CHECKING:
    import pyarrow

    from ..project import Project


def sql_string(text: str) -> str:
    """`text` as a Databricks SQL string literal (backslash escapes are on by default)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def resolve_http_path(http_path: str | None = None) -> str | None:
    """The warehouse's HTTP path: the argument, DATABRICKS_WAREHOUSE_PATH, or from the id."""
    if http_path:
        return http_path
    if os.environ.get("DATABRICKS_WAREHOUSE_PATH"):
        return os.environ["DATABRICKS_WAREHOUSE_PATH"]
    if os.environ.get("DATABRICKS_WAREHOUSE_ID"):
        return f"/sql/1.0/warehouses/{os.environ['DATABRICKS_WAREHOUSE_ID']}"
    return None


class WarehouseSource(TableSource):
    """DESCRIBE HISTORY, DESCRIBE DETAIL and table_changes() on a SQL warehouse, over one
    reused connection.

    `config` is a `databricks.sdk.core.Config` (default: built from the environment when first
    needed); `connect` replaces `databricks.sql.connect`, for tests. Up to `history_limit`
    commits read ahead of a batch are kept per table and serve the next batches; `timeout`
    bounds a request and its retries, in seconds; `use_cloud_fetch` is the connector's switch.
    """

    name = "warehouse"

    def __init__(
        self,
        http_path: str | None = None,
        *,
        config: Any = None,
        connect: Callable[..., Any] | None = None,
        history_limit: int = 10_000,
        timeout: float = 60.0,
        attempts: int = 3,
        use_cloud_fetch: bool = False,
    ) -> None:
        resolved = resolve_http_path(http_path)
        if resolved is None:
            raise SourceUnavailable(
                self.name,
                "no SQL warehouse configured: set DATABRICKS_WAREHOUSE_PATH or "
                "DATABRICKS_WAREHOUSE_ID",
            )
        self.http_path = resolved
        self.history_limit = history_limit
        self._config = config
        self._connect = connect
        self._timeout = timeout
        self._attempts = attempts
        self.use_cloud_fetch = use_cloud_fetch
        self._connection: Any = None
        self._lock = threading.Lock()
        self.history = HistoryWindow(self.name, self._describe, keep=history_limit)
        self._table_ids = TableIds(self.history)

    @classmethod
    def from_project(cls, project: Project) -> WarehouseSource:
        """`tables.source: warehouse`: the warehouse the environment names."""
        return cls(use_cloud_fetch=project.config.tables.use_cloud_fetch)

    def latest_version(self, table: TableName) -> int:
        newest = self.history.newest(table)
        if newest is None:
            raise TableNotFound(str(table), "the SQL warehouse (no history)")
        return newest.version

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        return self.history.commits_since(table, after, limit)

    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        query = f"SELECT * FROM table_changes({sql_string(table.sql)}, {int(start)}, {int(end)})"
        return normalize_changes(self._run(table, query, arrow=True, reading="changes"))

    def table_id(self, table: TableName) -> str | None:
        """The Delta table id, from DESCRIBE DETAIL (one row, one query)."""
        rows = self._run(table, detail_query(table), reading="detail")
        return self._table_ids.note(table, rows)

    def close(self) -> None:
        self.history.forget()
        with self._lock:
            self._drop_connection()

    def _describe(self, table: TableName, count: int) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = self._run(
            table, f"DESCRIBE HISTORY {table.sql} LIMIT {int(count)}"
        )
        return rows

    def _run(
        self, table: TableName, query: str, *, arrow: bool = False, reading: Reading = "history"
    ) -> Any:
        """Run one query; a dropped session is reopened once before giving up."""
        from databricks.sql import exc

        with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                try:
                    return self._execute(query, arrow)
                except exc.ServerOperationError as error:
                    raise self._translate(table, error, reading) from error
                except (exc.Error, OSError) as error:
                    # The session may have expired or the network blipped: start afresh.
                    self._drop_connection()
                    if attempt == 2 or not reused:
                        raise self._translate(table, error, reading) from error
        raise AssertionError("unreachable")

    def _execute(self, query: str, arrow: bool) -> Any:
        cursor = self._connection_or_open().cursor()
        try:
            cursor.execute(query)
            if arrow:
                return cursor.fetchall_arrow()
            names = [column[0] for column in cursor.description or ()]
            return [_as_dict(row, names) for row in cursor.fetchall()]
        finally:
            cursor.close()

    def _connection_or_open(self) -> Any:
        if self._connection is None:
            from databricks.sql import exc

            try:
                self._connection = self._open()
            except (exc.Error, OSError, SourceUnavailable):
                raise
            except Exception as error:
                # The SDK's credential refresh raises its own errors (bad client secret,
                # unknown profile) while the connector opens the session.
                raise SourceUnavailable(self.name, f"cannot connect: {error}") from error
        return self._connection

    def _open(self) -> Any:
        connect = self._connect
        if connect is None:
            from databricks import sql

            connect = sql.connect
        config = self._sdk_config()
        host = str(config.host).removeprefix("https://").removeprefix("http://").rstrip("/")
        return connect(
            server_hostname=host,
            http_path=self.http_path,
            # The connector calls this once per connection for a header factory; the SDK's
            # authenticate() refreshes OAuth tokens as they expire.
            credentials_provider=lambda: config.authenticate,
            user_agent_entry="lakefn",
            use_cloud_fetch=self.use_cloud_fetch,
            _socket_timeout=self._timeout,
            _retry_stop_after_attempts_count=self._attempts,
            _retry_stop_after_attempts_duration=self._timeout,
            _retry_delay_max=10.0,
        )

    def _sdk_config(self) -> Any:
        if self._config is None:
            try:
                from databricks.sdk.core import Config

                self._config = Config()
            except Exception as error:  # the SDK raises ValueError and its own errors
                raise SourceUnavailable(
                    self.name, f"no Databricks credentials found ({error})"
                ) from error
        if not getattr(self._config, "host", None):
            raise SourceUnavailable(self.name, "no Databricks host configured (DATABRICKS_HOST)")
        return self._config

    def _drop_connection(self) -> None:
        connection, self._connection = self._connection, None
        if connection is not None:
            # Closing a broken session fails too; there is nothing left to do with it.
            with contextlib.suppress(Exception):
                connection.close()

    def _translate(self, table: TableName, error: Exception, reading: Reading) -> Exception:
        kind = classify(error, reading)
        if kind is TableNotFound:
            return TableNotFound(str(table), "the SQL warehouse")
        if kind is ChangeDataFeedUnavailable:
            return ChangeDataFeedUnavailable(str(table), first_line(error))
        return SourceUnavailable(self.name, f"{type(error).__name__}: {first_line(error)}")


def _as_dict(row: Any, names: list[str]) -> dict[str, Any]:
    if hasattr(row, "asDict"):
        return dict(row.asDict())
    return dict(zip(names, row, strict=True))
