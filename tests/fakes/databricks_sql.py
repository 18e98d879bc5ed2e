"""A SQL warehouse double behind `databricks.sql.connect`'s signature.

It answers only the statements lakefn is allowed to send, matched by strict regexes: a table
name must arrive fully backtick-quoted (and, inside table_changes(), as a properly escaped
string literal). Anything else fails the way Databricks would, with the connector's own
exception classes and Databricks' error texts ("[CONDITION] message SQLSTATE: xxxxx", the
conditions of lakefn/sources/_errors.py), and is recorded in `rejected` for tests to assert on.

Result shapes follow the connector: with pyarrow's native complex types (the default,
`maps="pairs"`) a MAP arrives as a list of (key, value) tuples and a STRUCT as a dict; without
them (`maps="json"`, `_use_arrow_native_complex_types=False`) every complex column - maps and
the `job` / `notebook` structs alike - arrives as JSON text. An ARRAY goes through pandas like
every column of `fetchall()` (`ResultSet._convert_arrow_table`), so it arrives as a numpy array.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any, Literal

import numpy as np
import pyarrow as pa
from databricks.sql import exc
from databricks.sql.types import Row

from .catalog import (
    DETAIL_TYPES,
    HISTORY_TYPES,
    QUOTED_NAME,
    Failure,
    FakeCatalog,
    not_found,
    unquote_name,
)

_HISTORY = re.compile(rf"DESCRIBE HISTORY (?P<name>{QUOTED_NAME}) LIMIT (?P<limit>[1-9][0-9]*)")
_DETAIL = re.compile(rf"DESCRIBE DETAIL (?P<name>{QUOTED_NAME})")
# A SQL string literal: no bare quote or backslash inside, only escaped ones.
_CHANGES = re.compile(
    r"SELECT \* FROM table_changes\('(?P<literal>(?:[^'\\]|\\.)*)', "
    r"(?P<start>[0-9]+), (?P<end>[0-9]+)\)"
)

MapEncoding = Literal["json", "pairs"]


class FakeWarehouse:
    """The warehouse: its catalog, what it was asked, and switches to make it fail."""

    def __init__(self, catalog: FakeCatalog, *, maps: MapEncoding = "pairs") -> None:
        self.catalog = catalog
        # The connector returns MAP columns as (key, value) lists with pyarrow's native complex
        # types (the default) and as JSON text without them.
        self.maps = maps
        self.queries: list[str] = []
        #: DESCRIBE HISTORY rows handed back, over all queries: what the warehouse had to read
        self.history_rows = 0
        self.rejected: list[str] = []
        self.connect_calls: list[dict[str, Any]] = []
        self.connections: list[Connection] = []
        self.refuse_auth = False
        self.unreachable = False
        self.drop_session_on_next_query = False
        # Called after each answered statement: lets a test commit between two queries.
        self.after_query: Callable[[str], None] | None = None

    def connect(self, **kwargs: Any) -> Connection:
        """Stands in for `databricks.sql.connect`."""
        self.connect_calls.append(kwargs)
        if self.unreachable:
            raise exc.RequestError(
                "Error during request to server: "
                "HTTPSConnectionPool(host='example.cloud.databricks.com', port=443): "
                "Max retries exceeded (Caused by NewConnectionError: Connection refused)"
            )
        # The connector asks the provider for a header factory when the session opens.
        headers = kwargs["credentials_provider"]()()
        if self.refuse_auth or not headers.get("Authorization", "").startswith("Bearer "):
            raise exc.RequestError(
                "Error during request to server: 403 Client Error: Forbidden. Invalid access token."
            )
        connection = Connection(self)
        self.connections.append(connection)
        return connection

    def run(self, statement: str) -> tuple[list[tuple[str, str]], list[dict[str, Any]] | pa.Table]:
        self.queries.append(statement)
        if self.drop_session_on_next_query:
            self.drop_session_on_next_query = False
            raise exc.RequestError("Error during request to server: Invalid SessionHandle")
        try:
            answer = self._answer(statement)
        except Failure as failure:
            # The connector raises what the server's displayMessage says, as is.
            raise exc.ServerOperationError(str(failure)) from None
        finally:
            if self.after_query is not None:
                self.after_query(statement)
        return answer

    def _answer(self, statement: str) -> tuple[list[tuple[str, str]], Any]:
        if match := _HISTORY.fullmatch(statement):
            return self._history(match["name"], int(match["limit"]))
        if match := _DETAIL.fullmatch(statement):
            return self._detail(match["name"])
        if match := _CHANGES.fullmatch(statement):
            name = re.sub(r"\\(.)", r"\1", match["literal"])
            return self._changes(name, int(match["start"]), int(match["end"]))
        self.rejected.append(statement)
        raise Failure("PARSE_SYNTAX_ERROR", "42601", "Syntax error at or near the statement.")

    def _history(self, name: str, limit: int) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        table = self.catalog.lookup(name)
        if table is None:
            raise not_found(name)
        rows = [self._encode(row) for row in table.describe_history(limit)]
        self.history_rows += len(rows)
        return list(HISTORY_TYPES.items()), rows

    def _detail(self, name: str) -> tuple[list[tuple[str, str]], list[dict[str, Any]]]:
        table = self.catalog.lookup(name)
        if table is None:
            raise not_found(name)
        return list(DETAIL_TYPES.items()), [
            self._encode_detail(table.describe_detail(unquote_name(name)))
        ]

    def _encode_detail(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for column, kind in DETAIL_TYPES.items():
            value = row[column]
            if value is None:
                continue
            if self.maps == "json" and kind.startswith(("map", "array")):
                out[column] = json.dumps(value, separators=(",", ":"))
            elif kind.startswith("map"):
                out[column] = list(value.items())
            elif kind.startswith("array"):
                out[column] = np.array(value, dtype=object)
        return out

    def _changes(self, name: str, start: int, end: int) -> tuple[list[tuple[str, str]], pa.Table]:
        table = self.catalog.lookup(name)
        if table is None:
            raise not_found(name)
        changes = table.table_changes(start, end)
        return [(f.name, str(f.type)) for f in changes.schema], changes

    def _encode(self, row: dict[str, Any]) -> dict[str, Any]:
        out = dict(row)
        for column in ("operationParameters", "operationMetrics", "job", "notebook"):
            value = row[column]
            if value is None:
                continue
            if self.maps == "json":
                out[column] = json.dumps(value, separators=(",", ":"))
            elif HISTORY_TYPES[column].startswith("map"):
                out[column] = list(value.items())
        return out


class Connection:
    def __init__(self, warehouse: FakeWarehouse) -> None:
        self.warehouse = warehouse
        self.open = True

    def cursor(self) -> Cursor:
        if not self.open:
            raise exc.InterfaceError("Cannot create cursor from closed connection")
        return Cursor(self)

    def close(self) -> None:
        self.open = False


class Cursor:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection
        self.description: list[tuple[Any, ...]] | None = None
        self._result: list[dict[str, Any]] | pa.Table = []

    def execute(self, operation: str, parameters: Any = None) -> Cursor:
        if not self.connection.open:
            raise exc.InterfaceError("Cursor is closed")
        if parameters is not None:
            raise AssertionError("lakefn sends no parameters; names are quoted in the text")
        columns, self._result = self.connection.warehouse.run(operation)
        self.description = [(name, kind, None, None, None, None, None) for name, kind in columns]
        return self

    def fetchall(self) -> list[Row]:
        result = self._result
        rows = result.to_pylist() if isinstance(result, pa.Table) else result
        return [Row(**row) for row in rows]

    def fetchall_arrow(self) -> pa.Table:
        result = self._result
        return result if isinstance(result, pa.Table) else pa.Table.from_pylist(result)

    def close(self) -> None:
        self._result = []
