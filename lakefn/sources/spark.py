"""Delta history through a SparkSession: a notebook's `spark`, or a Databricks Connect session.

pyspark is never imported here: the session is handed in, and everything goes through its
methods, so the same code serves classic pyspark, Spark Connect and Databricks Connect, 3.5
(Databricks Runtime 15.x) as well as 4.x.

History is read like on the warehouse (`_history.HistoryWindow`): `DESCRIBE HISTORY t LIMIT n`
only. Without LIMIT, Delta reads every retained commit file in a Spark job, and a filter on
`version` is not pushed down into that read.
"""

from __future__ import annotations

import sys
from datetime import datetime, timezone
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


class SparkSource(TableSource):
    """DESCRIBE HISTORY, DESCRIBE DETAIL and the change data feed, read with `spark`.

    Spark sessions are thread-safe for running queries, so calls are not serialized. Up to
    `history_limit` commits read ahead of a batch are kept per table for the next batches.
    """

    name = "spark"

    def __init__(self, spark: Any, *, history_limit: int = 10_000) -> None:
        self.spark = spark
        self.history = HistoryWindow(self.name, self._describe, keep=history_limit)
        self._table_ids = TableIds(self.history)

    @classmethod
    def from_environment(cls, *, connect: bool = True) -> SparkSource | None:
        """A source on the notebook's session, or a Databricks Connect one; None if neither."""
        spark = active_spark_session(connect=connect)
        return None if spark is None else cls(spark)

    @classmethod
    def from_project(cls, project: Project) -> SparkSource:
        """`tables.source: spark`: the active session; SourceUnavailable without one."""
        source = cls.from_environment()
        if source is None:
            raise SourceUnavailable(
                cls.name,
                "no Spark session: run inside a Databricks notebook, or install "
                "lakefn[connect] and configure databricks-connect",
            )
        return source

    def latest_version(self, table: TableName) -> int:
        newest = self.history.newest(table)
        if newest is None:
            raise TableNotFound(str(table), "Spark (no history)")
        return newest.version

    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        return self.history.commits_since(table, after, limit)

    def table_id(self, table: TableName) -> str | None:
        """The Delta table id, from DESCRIBE DETAIL (one row, read from the latest snapshot)."""
        try:
            rows = self.spark.sql(detail_query(table)).collect()
        except Exception as error:
            raise self._translate(table, error, "detail") from error
        return self._table_ids.note(table, [row.asDict() for row in rows])

    def close(self) -> None:
        self.history.forget()

    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        try:
            result = self._to_arrow(self._change_feed(table, start, end))
        except Exception as error:
            raise self._translate(table, error, "changes") from error
        return normalize_changes(result)

    def _describe(self, table: TableName, count: int) -> list[dict[str, Any]]:
        # `count` is an int lakefn computed, never text from a user. Classic Spark fails in
        # spark.sql() (analysis is eager), Spark Connect in collect().
        try:
            rows = self.spark.sql(f"DESCRIBE HISTORY {table.sql} LIMIT {int(count)}").collect()
            return [_with_utc_time(row.asDict(recursive=True)) for row in rows]
        except Exception as error:
            raise self._translate(table, error, "history") from error

    def _translate(self, table: TableName, error: Exception, reading: Reading) -> Exception:
        # Any Spark flavour's exception, matched by its error class (getCondition,
        # getErrorClass or the message) without importing pyspark.
        kind = classify(error, reading)
        if kind is TableNotFound:
            return TableNotFound(str(table), "Spark")
        if kind is ChangeDataFeedUnavailable:
            return ChangeDataFeedUnavailable(str(table), first_line(error))
        return SourceUnavailable(self.name, f"{type(error).__name__}: {first_line(error)}")

    def _to_arrow(self, frame: Any) -> pyarrow.Table:
        if hasattr(frame, "toArrow"):  # pyspark >= 4 and Spark Connect: UTC instants
            return frame.toArrow()
        return _from_pandas(frame, self._session_time_zone())

    def _session_time_zone(self) -> str:
        try:
            zone = self.spark.conf.get("spark.sql.session.timeZone")
        except Exception:  # noqa: BLE001 - unreadable conf: the JVM's default, most often UTC
            zone = None
        return str(zone) if zone else "UTC"

    def _change_feed(self, table: TableName, start: int, end: int) -> Any:
        # Bounds are inclusive; they and the quoted name are all lakefn puts in the reader.
        return (
            self.spark.read.format("delta")
            .option("readChangeFeed", "true")
            .option("startingVersion", int(start))
            .option("endingVersion", int(end))
            .table(table.sql)
        )

    def changes_frame(
        self, table: TableName, start: int, end: int, versions: list[int] | None = None
    ) -> Any:
        """The change data feed of versions start..end (only `versions`, when given) as a
        lazy DataFrame, for `event.changes_df()`: the cluster reads it, not the driver."""
        try:
            frame = self._change_feed(table, start, end)
        except Exception as error:  # classic Spark analyses eagerly: a missing table is here
            raise self._translate(table, error, "changes") from error
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


def _from_pandas(frame: Any, session_zone: str) -> pyarrow.Table:
    """pyspark < 4: toPandas() turns TIMESTAMP columns into naive wall-clock times of the
    session time zone; they are put back to UTC here. TIMESTAMP_NTZ columns have no zone and
    stay as they are. In the hour a DST change repeats, the earlier instant is assumed: the
    wall-clock value toPandas() returns cannot tell them apart."""
    import pyarrow as pa
    import pyarrow.compute as pc

    zoned = {
        field.name
        for field in frame.schema.fields
        if field.dataType.typeName() == "timestamp"  # TIMESTAMP_NTZ is "timestamp_ntz"
    }
    table = pa.Table.from_pandas(frame.toPandas(), preserve_index=False)
    for index, column in enumerate(table.schema):
        if column.name in zoned and pa.types.is_timestamp(column.type) and not column.type.tz:
            local = pc.assume_timezone(
                table.column(index), session_zone, ambiguous="earliest", nonexistent="earliest"
            )
            utc = local.cast(pa.timestamp(column.type.unit, tz="UTC"))
            table = table.set_column(index, column.name, utc)
    return table


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
