"""Delta history through a SparkSession: a notebook's `spark`, or a Databricks Connect session.

pyspark is never imported here: the session is handed in, and everything goes through its
methods, so the same code serves classic pyspark, Spark Connect and Databricks Connect.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from .._exceptions import ChangeDataFeedUnavailable, SourceUnavailable, TableNotFound
from .._tablename import TableName
from ..abc import TableSource
from ..events import Commit
from ._rows import commit_from_row, normalize_changes

if TYPE_CHECKING:
    import pyarrow

_NOT_FOUND = re.compile(
    r"TABLE_OR_VIEW_NOT_FOUND|DELTA_TABLE_NOT_FOUND|DELTA_MISSING_DELTA_TABLE|SQLSTATE: 42P01"
)
_NO_CHANGE_DATA = re.compile(
    r"DELTA_MISSING_CHANGE_DATA|DELTA_CHANGE_DATA_FEED|DELTA_CDC|DELTA_VERSION_NOT_FOUND"
    r"|change data was not recorded"
)


class SparkSource(TableSource):
    """DESCRIBE HISTORY and the change data feed, read with `spark`.

    Spark sessions are thread-safe for running queries, so calls are not serialized.
    """

    name = "spark"

    def __init__(self, spark: Any) -> None:
        self.spark = spark

    @classmethod
    def from_environment(cls, *, connect: bool = True) -> SparkSource | None:
        """A source on the notebook's session, or a Databricks Connect one; None if neither."""
        spark = active_spark_session(connect=connect)
        return None if spark is None else cls(spark)

    def latest_version(self, table: TableName) -> int:
        rows = self._rows(table, lambda: self.spark.sql(f"DESCRIBE HISTORY {table.sql} LIMIT 1"))
        if not rows:
            raise TableNotFound(str(table), "Spark (no history)")
        return int(rows[0]["version"])

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        def query() -> Any:
            frame = self.spark.sql(f"DESCRIBE HISTORY {table.sql}")
            # Filtering in Spark keeps the transfer to the versions wanted; `after` and
            # `limit` are ints lakefn computed, never text from a user.
            frame = frame.where(f"version > {int(after)}").orderBy("version")
            return frame if limit is None else frame.limit(int(limit))

        return [commit_from_row(row) for row in self._rows(table, query)]

    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        try:
            frame = (
                self.spark.read.format("delta")
                .option("readChangeFeed", "true")
                .option("startingVersion", int(start))
                .option("endingVersion", int(end))
                .table(table.sql)
            )
            result = _to_arrow(frame)
        except Exception as error:
            raise self._translate(table, error) from error
        return normalize_changes(result)

    def _rows(self, table: TableName, query: Callable[[], Any]) -> list[dict[str, Any]]:
        # Classic Spark fails in spark.sql() (analysis is eager), Spark Connect in collect().
        try:
            return [_with_utc_time(row.asDict(recursive=True)) for row in query().collect()]
        except Exception as error:
            raise self._translate(table, error) from error

    def _translate(self, table: TableName, error: Exception) -> Exception:
        # pyspark's AnalysisException carries the error class in its message and in
        # getErrorClass(); matching text works for every Spark flavour without importing it.
        error_class = getattr(error, "getErrorClass", lambda: None)() or ""
        message = f"{error_class} {error}"
        if _NOT_FOUND.search(message):
            return TableNotFound(str(table), "Spark")
        if _NO_CHANGE_DATA.search(message):
            return ChangeDataFeedUnavailable(str(table), str(error).splitlines()[0])
        first = str(error).splitlines()[0] if str(error) else ""
        return SourceUnavailable(self.name, f"{type(error).__name__}: {first}")

    def changes_frame(
        self, table: TableName, start: int, end: int, versions: list[int] | None = None
    ) -> Any:
        """The change data feed of versions start..end (only `versions`, when given) as a
        lazy DataFrame, for `event.changes_df()`: the cluster reads it, not the driver."""
        try:
            frame = (
                self.spark.read.format("delta")
                .option("readChangeFeed", "true")
                .option("startingVersion", int(start))
                .option("endingVersion", int(end))
                .table(table.sql)
            )
        except Exception as error:  # classic Spark analyses eagerly: a missing table is here
            raise self._translate(table, error) from error
        if versions is not None:
            # ints lakefn computed, never user text
            listed = ", ".join(str(int(v)) for v in versions)
            frame = frame.where(f"_commit_version IN ({listed})")
        return frame


def _with_utc_time(row: dict[str, Any]) -> dict[str, Any]:
    # pyspark (classic and Connect) hands timestamps back as naive datetimes in the Python
    # process's local time zone, not UTC: on a laptop with Databricks Connect they differ.
    stamp = row.get("timestamp")
    if isinstance(stamp, datetime) and stamp.tzinfo is None:
        row["timestamp"] = stamp.astimezone(timezone.utc)
    return row


def _to_arrow(frame: Any) -> pyarrow.Table:
    import pyarrow as pa

    if hasattr(frame, "toArrow"):  # pyspark >= 4 and Spark Connect
        return frame.toArrow()
    return pa.Table.from_pandas(frame.toPandas(), preserve_index=False)


def active_spark_session(*, connect: bool = True) -> Any | None:
    """The SparkSession a notebook already has, else a Databricks Connect one, else None.

    Looks, in order, at the IPython user namespace's `spark` (Databricks notebooks define it),
    at pyspark's active session, and, when `connect` is true and databricks-connect is
    installed, at `DatabricksSession.builder.getOrCreate()` (credentials from the SDK config).
    """
    ipython = sys.modules.get("IPython")  # only if a notebook already imported it
    shell = ipython.get_ipython() if ipython is not None else None
    candidate = getattr(shell, "user_ns", {}).get("spark") if shell is not None else None
    if candidate is not None and hasattr(candidate, "sql"):
        return candidate
    pyspark_sql = sys.modules.get("pyspark.sql")
    if pyspark_sql is not None:
        active = pyspark_sql.SparkSession.getActiveSession()
        if active is not None:
            return active
    if not connect:
        return None
    try:
        from databricks.connect import DatabricksSession
    except ImportError:
        return None
    try:
        return DatabricksSession.builder.getOrCreate()
    except Exception:  # not configured, or the workspace is unreachable: no session
        return None
