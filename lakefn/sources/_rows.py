"""DESCRIBE HISTORY rows in every shape a source hands them over, turned into `Commit`s.

The same history reaches lakefn in different encodings: the SQL connector gives maps as JSON
text (without pyarrow) or as lists of (key, value) pairs (with it), Spark gives dicts, a CSV
export gives everything as text, and the local Delta log gives epoch milliseconds. Every
source funnels its rows through `commit_from_row`, so a function sees the same `Commit`
whichever source read it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from ..events import Commit

if TYPE_CHECKING:
    import pyarrow

#: The columns of DESCRIBE HISTORY on Databricks, in their order.
HISTORY_COLUMNS = (
    "version",
    "timestamp",
    "userId",
    "userName",
    "operation",
    "operationParameters",
    "job",
    "notebook",
    "clusterId",
    "readVersion",
    "isolationLevel",
    "isBlindAppend",
    "operationMetrics",
    "userMetadata",
    "engineInfo",
)


def commit_from_row(row: Mapping[str, Any] | Any) -> Commit:
    """One DESCRIBE HISTORY row (a mapping, or a Row with `asDict`) as a `Commit`."""
    raw: Mapping[str, Any] = row if isinstance(row, Mapping) else row.asDict()
    user = raw.get("userName")
    return Commit(
        version=int(raw["version"]),
        timestamp=parse_timestamp(raw["timestamp"]),
        operation=str(raw.get("operation") or "UNKNOWN"),
        operation_parameters=parse_map(raw.get("operationParameters")),
        operation_metrics=parse_map(raw.get("operationMetrics")),
        user_name=str(user) if user not in (None, "") else None,
        raw=raw,
    )


def parse_timestamp(value: Any) -> datetime:
    """A commit time as an aware UTC datetime.

    Databricks hands back naive datetimes that mean UTC; exports carry ISO text; the Delta
    log carries epoch milliseconds.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=timezone.utc)
        return value.astimezone(timezone.utc)
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value / 1000, tz=timezone.utc)
    if isinstance(value, str):
        text = value.strip()
        if text.lstrip("-").isdigit():
            return parse_timestamp(int(text))
        # Python 3.10's fromisoformat accepts neither "Z" nor a space before the offset.
        text = text.replace("Z", "+00:00").replace(" +", "+").replace(" -", "-")
        return parse_timestamp(datetime.fromisoformat(text))
    raise ValueError(f"not a commit timestamp: {value!r}")


def parse_map(value: Any) -> dict[str, Any]:
    """A Delta map column (JSON text, dict, or (key, value) pairs) as a dict of Python values.

    Delta stores map values as strings even when they hold JSON ("[]", "true", "12"); those
    are decoded so `operation_metrics["numOutputRows"]` is an int wherever it came from.
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return {}
    if isinstance(value, str):
        value = json.loads(value)
    if isinstance(value, Mapping):
        items: Iterable[Any] = value.items()
    else:
        items = (_pair(entry) for entry in value)
    return {str(key): _decode(item) for key, item in items}


def _pair(entry: Any) -> tuple[Any, Any]:
    # pyarrow's to_pylist gives MAP entries as tuples; a JSON round trip makes them lists or
    # {"key": ..., "value": ...} objects.
    if isinstance(entry, Mapping):
        return entry["key"], entry["value"]
    key, item = entry
    return key, item


def _reject_constant(name: str) -> Any:
    raise ValueError(name)


def _decode(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    try:
        # NaN and Infinity are not JSON; a predicate text "NaN" must stay text.
        return json.loads(value, parse_constant=_reject_constant)
    except ValueError:
        return value


def normalize_changes(table: pyarrow.Table) -> pyarrow.Table:
    """Give the change-feed columns one type whatever engine produced them, oldest first.

    deltalake gives `_commit_version` as uint64 and naive millisecond timestamps; Spark and the
    warehouse give int64 and microseconds. Functions should not have to care.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    # delta-rs reads text as string_view, which pandas and some compute kernels (take,
    # hence sort) do not handle yet; plain strings are what the other engines give.
    views = {pa.string_view(): pa.string(), pa.binary_view(): pa.binary()}
    for index, column in enumerate(table.schema):
        if column.type in views:
            plain = table.column(index).cast(views[column.type])
            table = table.set_column(index, column.name, plain)
    for name, target in (
        ("_change_type", pa.string()),
        ("_commit_version", pa.int64()),
        ("_commit_timestamp", pa.timestamp("us", tz="UTC")),
    ):
        if name not in table.column_names:
            raise ValueError(f"change data has no {name} column")
        index = table.column_names.index(name)
        column = table.column(index)
        if pa.types.is_timestamp(column.type) and column.type.tz is None:
            column = pc.assume_timezone(column, "UTC")
        table = table.set_column(index, name, column.cast(target))
    if table.num_rows:
        table = table.sort_by([("_commit_version", "ascending")])
    return table
