"""Delta history through a Databricks SQL warehouse (`databricks-sql-connector`).

The workspace host and credentials come from the Databricks SDK's `Config`, so whatever the SDK
accepts works here: a token, a profile in ~/.databrickscfg, or the OAuth service principal
Databricks Apps injects (DATABRICKS_CLIENT_ID / DATABRICKS_CLIENT_SECRET).

The connector retries for up to 15 minutes by default; a watcher polling every 30 seconds
would rather hear quickly that the warehouse is unreachable, so retries and socket timeouts
are bounded here.

Only `TableName.sql` (every part backtick-quoted) and integers lakefn computed ever reach SQL
text; table_changes() takes the name as a string literal, escaped below.
"""

from __future__ import annotations

import contextlib
import os
import re
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from .._exceptions import ChangeDataFeedUnavailable, SourceUnavailable, TableNotFound
from .._tablename import TableName
from ..abc import TableSource
from ..events import Commit
from ._rows import commit_from_row, normalize_changes

if TYPE_CHECKING:
    import pyarrow

_NOT_FOUND = re.compile(r"TABLE_OR_VIEW_NOT_FOUND|DELTA_TABLE_NOT_FOUND|SQLSTATE: 42P01")
_NO_CHANGE_DATA = re.compile(
    r"DELTA_MISSING_CHANGE_DATA|DELTA_CHANGE_DATA_FEED|DELTA_CDC|DELTA_VERSION_NOT_FOUND"
    r"|change data was not recorded"
)


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
    """DESCRIBE HISTORY and table_changes() on a SQL warehouse, over one reused connection.

    `config` is a `databricks.sdk.core.Config` (default: built from the environment when first
    needed); `connect` replaces `databricks.sql.connect`, for tests. One query asks for at most
    `history_limit` history rows; `timeout` bounds a request and its retries, in seconds.
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
        self._connection: Any = None
        self._lock = threading.Lock()

    def latest_version(self, table: TableName) -> int:
        rows = self._history(table, 1)
        if not rows:
            raise TableNotFound(str(table), "the SQL warehouse (no history)")
        return rows[0].version

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        # DESCRIBE HISTORY returns newest first and only takes a LIMIT, so ask for as many
        # rows as there are versions after `after`. Commits landing between the two queries
        # push the oldest wanted ones out of that window: widen it until it reaches back.
        latest = self.latest_version(table)
        count = latest - after
        while count > 0:
            commits = sorted(self._history(table, count), key=lambda c: c.version)
            reaches_back = len(commits) < count or commits[0].version <= after + 1
            if reaches_back or count >= self.history_limit:
                wanted = [c for c in commits if c.version > after]
                return wanted if limit is None else wanted[:limit]
            count = min(count + commits[-1].version - latest, self.history_limit)
            latest = commits[-1].version
        return []

    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        query = f"SELECT * FROM table_changes({sql_string(table.sql)}, {int(start)}, {int(end)})"
        return normalize_changes(self._run(table, query, arrow=True))

    def close(self) -> None:
        with self._lock:
            self._drop_connection()

    def _history(self, table: TableName, count: int) -> list[Commit]:
        rows = self._run(table, f"DESCRIBE HISTORY {table.sql} LIMIT {int(count)}")
        return [commit_from_row(row) for row in rows]

    def _run(self, table: TableName, query: str, *, arrow: bool = False) -> Any:
        """Run one query; a dropped session is reopened once before giving up."""
        from databricks.sql import exc

        with self._lock:
            for attempt in (1, 2):
                reused = self._connection is not None
                try:
                    return self._execute(query, arrow)
                except exc.ServerOperationError as error:
                    raise self._translate(table, error) from error
                except (exc.Error, OSError) as error:
                    # The session may have expired or the network blipped: start afresh.
                    self._drop_connection()
                    if attempt == 2 or not reused:
                        raise self._translate(table, error) from error
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

    def _translate(self, table: TableName, error: Exception) -> Exception:
        message = str(error) or type(error).__name__
        if _NOT_FOUND.search(message):
            return TableNotFound(str(table), "the SQL warehouse")
        if _NO_CHANGE_DATA.search(message):
            return ChangeDataFeedUnavailable(str(table), message.split("\n")[0])
        return SourceUnavailable(self.name, f"{type(error).__name__}: {message.splitlines()[0]}")


def _as_dict(row: Any, names: list[str]) -> dict[str, Any]:
    if hasattr(row, "asDict"):
        return dict(row.asDict())
    return dict(zip(names, row, strict=True))
