"""What the warehouse and Spark doubles serve: tables with a Databricks-typed history.

Both doubles read the same `FakeCatalog`, so one recorded history can be checked through every
source. A catalog can mirror a real local Delta table (`FakeCatalog.mirror`), which is how the
contract test compares the local source with the Databricks ones on identical data.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timezone
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


@dataclass
class FakeTable:
    history: list[dict[str, Any]] = field(default_factory=list)  # ascending by version
    changes: pa.Table | None = None  # None: change data feed off

    def describe_history(self, limit: int | None = None) -> list[dict[str, Any]]:
        newest_first = sorted(self.history, key=lambda row: -row["version"])
        return newest_first if limit is None else newest_first[:limit]

    def table_changes(self, start: int, end: int) -> pa.Table | None:
        if self.changes is None:
            return None
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

    def mirror(
        self, name: tuple[str, str, str], raw_rows: list[dict[str, Any]], changes: pa.Table | None
    ) -> FakeTable:
        """Serve rows shaped from real commits (`Commit.raw` of the local source)."""
        rows = []
        for raw in raw_rows:
            row = {column: raw.get(column) for column in HISTORY_TYPES}
            row["timestamp"] = raw["timestamp"].astimezone(timezone.utc).replace(tzinfo=None)
            for column in ("operationParameters", "operationMetrics"):
                row[column] = {k: _text(v) for k, v in (raw[column] or {}).items()}
            rows.append(row)
        return self.add(name, FakeTable(rows, changes))


def not_found_message(sql_name: str) -> str:
    return (
        f"[TABLE_OR_VIEW_NOT_FOUND] The table or view {sql_name} cannot be found. Verify the "
        "spelling and correctness of the schema and catalog.\nIf you did not qualify the name "
        "with a schema, verify the current_schema() output, or qualify the name with the "
        "correct schema and catalog. SQLSTATE: 42P01; line 1 pos 17"
    )


def missing_change_data_message(start: int, end: int) -> str:
    return (
        f"[DELTA_MISSING_CHANGE_DATA] Error getting change data for range [{start} , {end}] as "
        f"change data was not recorded for version [{start}]. If you've enabled change data "
        "feed on this table, use `DESCRIBE HISTORY` to see when it was first enabled. "
        "Otherwise, to start recording change data, use `ALTER TABLE table_name SET "
        "TBLPROPERTIES (delta.enableChangeDataFeed=true)`. SQLSTATE: 42K03"
    )
