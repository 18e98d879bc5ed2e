"""What the warehouse and Spark doubles serve: tables with a Databricks-typed history.

Both doubles read the same `FakeCatalog`, so one recorded history can be checked through every
source. A catalog can mirror a real local Delta table (`FakeCatalog.mirror`), which is how the
contract test compares the local source with the Databricks ones on identical data.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any

import pyarrow as pa

# One identifier part in backticks, with `` standing for a backtick inside it.
QUOTED_PART = r"`(?:[^`]|``)+`"
QUOTED_NAME = rf"{QUOTED_PART}\.{QUOTED_PART}\.{QUOTED_PART}"

HISTORY_TYPES = {
    "version": "bigint",
    "timestamp": "timestamp",
    "userId": "string",
    "userName": "string",
    "operation": "string",
    "operationParameters": "map<string,string>",
    "job": "struct",
    "notebook": "struct",
    "clusterId": "string",
    "readVersion": "bigint",
    "isolationLevel": "string",
    "isBlindAppend": "boolean",
    "operationMetrics": "map<string,string>",
    "userMetadata": "string",
    "engineInfo": "string",
}


#: DESCRIBE DETAIL's one row, in order: delta-io/delta `DescribeDeltaDetailsCommand.scala`
#: (`TableDetail`, 15 columns) plus the `statistics` map Databricks Runtime appends (the
#: "Detail schema" table of docs.databricks.com .../tables/operations/table-details). The docs
#: call sizeInBytes "int"; Delta declares it a java.lang.Long, which Spark maps to bigint.
DETAIL_TYPES = {
    "format": "string",
    "id": "string",
    "name": "string",
    "description": "string",
    "location": "string",
    "createdAt": "timestamp",
    "lastModified": "timestamp",
    "partitionColumns": "array<string>",
    "clusteringColumns": "array<string>",
    "numFiles": "bigint",
    "sizeInBytes": "bigint",
    "properties": "map<string,string>",
    "minReaderVersion": "int",
    "minWriterVersion": "int",
    "tableFeatures": "array<string>",
    "statistics": "map<string,bigint>",
}


def unquote_name(sql_name: str) -> tuple[str, str, str]:
    """The three parts of a fully backtick-quoted name; anything else is a test failure."""
    if not re.fullmatch(QUOTED_NAME, sql_name):
        raise AssertionError(f"table name reached SQL unquoted: {sql_name!r}")
    parts = re.findall(QUOTED_PART, sql_name)
    return tuple(p[1:-1].replace("``", "`") for p in parts)  # type: ignore[return-value]


def _text(value: Any) -> str:
    # Delta's operationParameters/operationMetrics are map<string,string>.
    return value if isinstance(value, str) else json.dumps(value)


def history_row(
    version: int,
    operation: str,
    *,
    timestamp: datetime,
    parameters: dict[str, Any] | None = None,
    metrics: dict[str, Any] | None = None,
    user_name: str | None = "ada@example.com",
    engine: str = "Databricks-Runtime/15.4.x-scala2.12",
    job: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """All 15 DESCRIBE HISTORY columns, typed as Databricks returns them (naive UTC time)."""
    return {
        "version": version,
        "timestamp": timestamp.astimezone(timezone.utc).replace(tzinfo=None),
        "userId": "4242424242" if user_name else None,
        "userName": user_name,
        "operation": operation,
        "operationParameters": {k: _text(v) for k, v in (parameters or {}).items()},
        "job": job,
        "notebook": {"notebookId": "1234"} if job is None else None,
        "clusterId": "0101-123456-abcdefgh",
        "readVersion": version - 1 if version > 0 else None,
        "isolationLevel": "WriteSerializable",
        "isBlindAppend": operation == "WRITE",
        "operationMetrics": {k: _text(v) for k, v in (metrics or {}).items()},
        "userMetadata": None,
        "engineInfo": engine,
    }


class Failure(Exception):
    """A Databricks error, before a double dresses it as its driver's exception.

    `condition` may carry a subclass ("FAILED_READ_FILE.FILE_NOT_EXIST"); the text is what
    Databricks prints: "[CONDITION] message SQLSTATE: xxxxx".
    """

    def __init__(self, condition: str, sqlstate: str, message: str) -> None:
        self.condition = condition
        self.sqlstate = sqlstate
        self.message = message
        super().__init__(f"[{condition}] {message} SQLSTATE: {sqlstate}")


@dataclass
class FakeTable:
    history: list[dict[str, Any]] = field(default_factory=list)  # ascending by version
    changes: pa.Table | None = None  # None: change data feed off
    #: oldest version whose change files VACUUM left (delta.deletedFileRetentionDuration)
    change_files_from: int = 0
    #: how this engine reports vacuumed change files (Databricks Runtime; OSS Spark 4 gives
    #: FAILED_READ_FILE.FILE_NOT_EXIST)
    vacuumed_condition: str = "DELTA_CHANGE_DATA_FILE_NOT_FOUND"
    #: the Delta metadata id (a UUID), new for every table created under a name
    table_id: str = field(default_factory=lambda: str(uuid.uuid4()))
    #: False: a Parquet (non-Delta) table, whose DESCRIBE DETAIL has no id
    delta: bool = True

    def describe_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        newest_first = sorted(self.history, key=lambda row: -row["version"])
        return newest_first if limit is None else newest_first[:limit]

    def describe_detail(self, name: tuple[str, str, str]) -> dict[str, Any]:
        """DESCRIBE DETAIL's one row, every column typed as Databricks returns it (naive UTC
        times); a non-Delta table has no id, versions or features (DescribeDeltaDetailsCommand's
        describeNonDeltaTable)."""
        # naive UTC, like the history rows
        created = self.history[0]["timestamp"] if self.history else datetime(2024, 1, 1)
        modified = self.history[-1]["timestamp"] if self.history else created
        location = f"s3://bucket/metastore/tables/{self.table_id}"
        if not self.delta:
            return {
                **dict.fromkeys(DETAIL_TYPES),
                "format": "parquet",
                "name": ".".join(name),
                "description": "",
                "location": location,
                "createdAt": created,
                "partitionColumns": [],
                "properties": {},
            }
        # Protocol (1, 2) implies appendOnly and invariants; (1, 4), which the change data feed
        # needs, adds three more. Delta lists the names sorted.
        feed = self.changes is not None
        implied = ["changeDataFeed", "checkConstraints", "generatedColumns"] if feed else []
        return {
            "format": "delta",
            "id": self.table_id,
            "name": ".".join(name),
            "description": None,
            "location": location,
            "createdAt": created,
            "lastModified": modified,
            "partitionColumns": [],
            "clusteringColumns": [],
            "numFiles": len(self.history),
            "sizeInBytes": 1_024 * len(self.history),
            "properties": {"delta.enableChangeDataFeed": "true"} if feed else {},
            "minReaderVersion": 1,
            "minWriterVersion": 4 if feed else 2,
            "tableFeatures": sorted(["appendOnly", "invariants", *implied]),
            "statistics": {"numRowsDeletedByDeletionVectors": 0, "numDeletionVectors": 0},
        }

    def commit(self, operation: str = "WRITE", **kwargs: Any) -> int:
        """One more commit, a minute after the last; returns its version."""
        last = self.history[-1] if self.history else None
        version = last["version"] + 1 if last else 0
        when = (
            last["timestamp"].replace(tzinfo=timezone.utc) + timedelta(minutes=1)
            if last
            else datetime(2024, 1, 1, tzinfo=timezone.utc)
        )
        self.history.append(history_row(version, operation, timestamp=when, **kwargs))
        return version

    def expire_log(self, before: int) -> None:
        """Log cleanup (delta.logRetentionDuration): commits older than `before` leave the
        history for good."""
        self.history = [row for row in self.history if row["version"] >= before]

    def table_changes(self, start: int, end: int) -> pa.Table:
        """The change rows of start..end, or the Failure Databricks raises for them."""
        if end < start:
            raise Failure(
                "DELTA_INVALID_CDC_RANGE",
                "22003",
                f"CDC range from start {start} to end {end} was invalid. End cannot be before "
                "start.",
            )
        if self.changes is None:
            raise Failure(
                "DELTA_MISSING_CHANGE_DATA", "KD002", missing_change_data_text(start, end)
            )
        if start < self.change_files_from:
            raise vacuumed_failure(self.vacuumed_condition, start)
        versions = self.changes.column("_commit_version").to_pylist()
        keep = [start <= v <= end for v in versions]
        return self.changes.filter(pa.array(keep, pa.bool_()))


class FakeCatalog:
    def __init__(self) -> None:
        self.tables: dict[tuple[str, str, str], FakeTable] = {}

    def add(self, name: tuple[str, str, str], table: FakeTable | None = None) -> FakeTable:
        self.tables[name] = table or FakeTable()
        return self.tables[name]

    def lookup(self, sql_name: str) -> FakeTable | None:
        return self.tables.get(unquote_name(sql_name))

    def recreate(self, name: tuple[str, str, str], commits: int) -> FakeTable:
        """DROP TABLE, then CREATE TABLE and `commits - 1` writes under the same name: a new
        table id, and a history starting again at version 0."""
        del self.tables[name]
        table = self.add(name)
        for version in range(commits):
            table.commit("CREATE TABLE" if version == 0 else "WRITE")
        return table

    def mirror(
        self,
        name: tuple[str, str, str],
        raw_rows: list[dict[str, Any]],
        changes: pa.Table | None,
        table_id: str | None = None,
    ) -> FakeTable:
        """Serve rows shaped from real commits (`Commit.raw` of the local source), and the
        real table's id when given."""
        rows = []
        for raw in raw_rows:
            row = {column: raw.get(column) for column in HISTORY_TYPES}
            row["timestamp"] = raw["timestamp"].astimezone(timezone.utc).replace(tzinfo=None)
            for column in ("operationParameters", "operationMetrics"):
                row[column] = {k: _text(v) for k, v in (raw[column] or {}).items()}
            rows.append(row)
        table = FakeTable(rows, changes)
        if table_id is not None:
            table.table_id = table_id
        return self.add(name, table)


def not_found(sql_name: str) -> Failure:
    return Failure(
        "TABLE_OR_VIEW_NOT_FOUND",
        "42P01",
        f"The table or view {sql_name} cannot be found. Verify the spelling and correctness of "
        "the schema and catalog.\nIf you did not qualify the name with a schema, verify the "
        "current_schema() output, or qualify the name with the correct schema and catalog.\n"
        "To tolerate the error on drop use DROP VIEW IF EXISTS or DROP TABLE IF EXISTS.",
    )


def not_found_message(sql_name: str) -> str:
    return str(not_found(sql_name))


def missing_change_data_text(start: int, end: int) -> str:
    # delta-error-classes.json: DELTA_MISSING_CHANGE_DATA, SQLSTATE KD002
    return (
        f"Error getting change data for range [{start} , {end}] as change data was not\n"
        f"recorded for version [{start}]. If you've enabled change data feed on this table,\n"
        "use `DESCRIBE HISTORY` to see when it was first enabled.\n"
        "Otherwise, to start recording change data, use `ALTER TABLE table_name SET "
        "TBLPROPERTIES\n(delta.enableChangeDataFeed=true)`."
    )


def missing_change_data_message(start: int, end: int) -> str:
    return str(Failure("DELTA_MISSING_CHANGE_DATA", "KD002", missing_change_data_text(start, end)))


def vacuumed_failure(condition: str, version: int) -> Failure:
    path = f"s3://bucket/tables/orders/_change_data/cdc-{version:05d}-0000.c000.snappy.parquet"
    if condition == "DELTA_CHANGE_DATA_FILE_NOT_FOUND":
        return Failure(
            condition,
            "42K03",
            f"{path} referenced in the transaction log cannot be found. This can occur when "
            "data has been manually deleted from the file system rather than using the table "
            "`DELETE` statement. This request appears to be targeting Change Data Feed, if that "
            "is the case, this error can occur when the change data file is out of the "
            "retention period and has been deleted by the `VACUUM` statement.",
        )
    return Failure(
        "FAILED_READ_FILE.FILE_NOT_EXIST",
        "KD001",
        f"Error while reading file {path}. File does not exist. It is possible the underlying "
        "files have been updated.",
    )
