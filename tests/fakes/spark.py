"""A SparkSession double, as far as lakefn uses one (pyspark is not installed here).

Like classic pyspark, `spark.sql()` analyses eagerly: an unknown table fails there, with an
`AnalysisException` carrying Databricks' error class. DataFrame methods accept only the
expressions lakefn sends (strict regexes), so an interpolated user string fails loudly.
Rows are pyspark-like: tuples with attribute access and `asDict(recursive=...)`; maps are dicts.
"""

from __future__ import annotations

import re
from datetime import datetime, timezone
from typing import Any

import pyarrow as pa

from .catalog import (
    QUOTED_NAME,
    FakeCatalog,
    missing_change_data_message,
    not_found_message,
)

_HISTORY = re.compile(
    rf"DESCRIBE HISTORY (?P<name>{QUOTED_NAME})(?: LIMIT (?P<limit>[1-9][0-9]*))?"
)
_WHERE = re.compile(r"version > (?P<after>-?[0-9]+)")


class AnalysisException(Exception):
    """Shaped like pyspark.errors.AnalysisException."""

    def __init__(self, message: str, error_class: str) -> None:
        super().__init__(message)
        self._error_class = error_class

    def getErrorClass(self) -> str:  # noqa: N802 - pyspark's name
        return self._error_class


class Row(tuple):  # type: ignore[type-arg]
    """pyspark.sql.Row in miniature."""

    __fields__: list[str]

    def __new__(cls, **values: Any) -> Row:
        row = super().__new__(cls, tuple(values.values()))
        row.__fields__ = list(values)
        return row

    def __getattr__(self, name: str) -> Any:
        try:
            return self[self.__fields__.index(name)]
        except ValueError:
            raise AttributeError(name) from None

    def asDict(self, recursive: bool = False) -> dict[str, Any]:  # noqa: N802 - pyspark's name
        out = dict(zip(self.__fields__, self, strict=True))
        if recursive:
            out = {k: v.asDict(True) if isinstance(v, Row) else v for k, v in out.items()}
        return out


def _to_row(values: dict[str, Any]) -> Row:
    out = dict(values)
    for key in ("job", "notebook"):
        if out.get(key):
            out[key] = Row(**out[key])  # structs are Rows in pyspark; maps stay dicts
    stamp = out.get("timestamp")
    if isinstance(stamp, datetime):
        # pyspark converts timestamps to naive datetimes in the process's local time zone.
        out["timestamp"] = stamp.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    return Row(**out)


class DataFrame:
    def __init__(self, rows: list[dict[str, Any]] | None = None, arrow: pa.Table | None = None):
        self._rows = rows
        self._arrow = arrow

    def where(self, condition: str) -> DataFrame:
        match = _WHERE.fullmatch(condition)
        if match is None:
            raise AnalysisException(f"cannot parse condition {condition!r}", "PARSE_SYNTAX_ERROR")
        after = int(match["after"])
        return DataFrame([r for r in self._rows or [] if r["version"] > after])

    filter = where

    def orderBy(self, column: str) -> DataFrame:  # noqa: N802 - pyspark's name
        assert column == "version", column
        return DataFrame(sorted(self._rows or [], key=lambda r: r["version"]))

    def limit(self, count: int) -> DataFrame:
        assert isinstance(count, int) and count >= 0, count
        return DataFrame((self._rows or [])[:count])

    def collect(self) -> list[Row]:
        return [_to_row(row) for row in self._rows or []]

    def toArrow(self) -> pa.Table:  # noqa: N802 - pyspark's name
        return self._arrow if self._arrow is not None else pa.Table.from_pylist(self._rows or [])


class DataFrameReader:
    def __init__(self, session: SparkSession) -> None:
        self._session = session
        self._format: str | None = None
        self._options: dict[str, str] = {}

    def format(self, source: str) -> DataFrameReader:
        self._format = source
        return self

    def option(self, key: str, value: Any) -> DataFrameReader:
        self._options[key] = str(value)  # pyspark stringifies option values
        return self

    def table(self, name: str) -> DataFrame:
        self._session.queries.append(f"read.table({name})")
        assert self._format == "delta" and self._options.get("readChangeFeed") == "true"
        found = self._session.catalog.lookup(name)
        if found is None:
            raise AnalysisException(not_found_message(name), "TABLE_OR_VIEW_NOT_FOUND")
        start, end = int(self._options["startingVersion"]), int(self._options["endingVersion"])
        changes = found.table_changes(start, end)
        if changes is None:
            message = missing_change_data_message(start, end)
            raise AnalysisException(message, "DELTA_MISSING_CHANGE_DATA")
        return DataFrame(arrow=changes)


class SparkSession:
    def __init__(self, catalog: FakeCatalog) -> None:
        self.catalog = catalog
        self.queries: list[str] = []

    def sql(self, query: str) -> DataFrame:
        self.queries.append(query)
        match = _HISTORY.fullmatch(query)
        if match is None:
            raise AnalysisException(f"[PARSE_SYNTAX_ERROR] {query!r}", "PARSE_SYNTAX_ERROR")
        table = self.catalog.lookup(match["name"])
        if table is None:
            raise AnalysisException(not_found_message(match["name"]), "TABLE_OR_VIEW_NOT_FOUND")
        limit = int(match["limit"]) if match["limit"] else None
        return DataFrame([dict(row) for row in table.describe_history(limit)])

    @property
    def read(self) -> DataFrameReader:
        return DataFrameReader(self)
