"""A SparkSession double, as far as lakefn uses one (pyspark is not installed here).

It plays pyspark 4 (`version="4.0"`: `DataFrame.toArrow`, `getCondition()`, `getErrorClass()`
deprecated with a FutureWarning) or pyspark 3.5 as Databricks Runtime 15.x ships it
(`version="3.5"`: no `toArrow`, so `toPandas()`, which turns TIMESTAMP columns into naive
wall-clock times of `spark.sql.session.timeZone`; `getErrorClass()` only; failures while
running a job surface as py4j's Py4JJavaError, whose only trace of the condition is its text).

Like classic pyspark, `spark.sql()` analyses eagerly: an unknown table fails there, with an
`AnalysisException` carrying Databricks' condition and SQLSTATE. DataFrame methods accept only
the expressions lakefn sends (strict regexes), so an interpolated user string fails loudly.
Rows are pyspark-like: tuples with attribute access and `asDict(recursive=...)`; maps are
dicts, structs are Rows.
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Literal

import pyarrow as pa

from .catalog import QUOTED_NAME, Failure, FakeCatalog, not_found, unquote_name

_HISTORY = re.compile(
    rf"DESCRIBE HISTORY (?P<name>{QUOTED_NAME})(?: LIMIT (?P<limit>[1-9][0-9]*))?"
)
_DETAIL = re.compile(rf"DESCRIBE DETAIL (?P<name>{QUOTED_NAME})")
_WHERE = re.compile(r"version > (?P<after>-?[0-9]+)")

Version = Literal["3.5", "4.0"]


class _SparkError(Exception):
    """What pyspark's captured exceptions have in common (PySparkException)."""

    version: Version = "4.0"

    def __init__(self, failure: Failure, version: Version) -> None:
        super().__init__(str(failure))
        self._condition = failure.condition
        self._sqlstate = failure.sqlstate
        self.version = version

    def getErrorClass(self) -> str:  # noqa: N802 - pyspark's name
        if self.version != "3.5":
            warnings.warn(
                "Deprecated in 4.0.0, use getCondition instead.", FutureWarning, stacklevel=2
            )
        return self._condition

    def getSqlState(self) -> str:  # noqa: N802 - pyspark's name
        return self._sqlstate

    def __getattr__(self, name: str) -> Any:
        if name == "getCondition" and self.version != "3.5":
            return lambda: self._condition
        raise AttributeError(name)


class AnalysisException(_SparkError):
    """Shaped like pyspark.errors.AnalysisException."""


class SparkRuntimeException(_SparkError):
    """pyspark 4's exception for a failed job (pyspark.errors.SparkRuntimeException)."""


class Py4JJavaError(Exception):
    """py4j's wrapper of a Java exception pyspark 3.5 does not convert: text only."""

    def __init__(self, failure: Failure) -> None:
        super().__init__(
            "An error occurred while calling o412.collectToPython.\n"
            ": org.apache.spark.SparkException: Job aborted due to stage failure: Task 0 in "
            "stage 7.0 failed 4 times, most recent failure: Lost task 0.3 in stage 7.0 (TID 31) "
            f"(10.139.64.4 executor 0): org.apache.spark.SparkException: {failure}\n"
            "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.fileNotExistError"
        )


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
    for key, stamp in values.items():
        if isinstance(stamp, datetime):
            # pyspark converts timestamps to naive datetimes in the process's local time zone.
            out[key] = stamp.replace(tzinfo=timezone.utc).astimezone().replace(tzinfo=None)
    return Row(**out)


@dataclass(frozen=True)
class DataType:
    name: str

    def typeName(self) -> str:  # noqa: N802 - pyspark's name
        return self.name


@dataclass(frozen=True)
class StructField:
    name: str
    dataType: DataType  # noqa: N815 - pyspark's name


@dataclass(frozen=True)
class StructType:
    fields: list[StructField]


def _spark_type(arrow_type: pa.DataType) -> DataType:
    if pa.types.is_timestamp(arrow_type):
        # Spark's TIMESTAMP is an instant (Arrow: with a zone); TIMESTAMP_NTZ has none.
        return DataType("timestamp" if arrow_type.tz else "timestamp_ntz")
    if pa.types.is_integer(arrow_type):
        return DataType("long")
    return DataType("string")


class DataFrame:
    """pyspark 3.5's DataFrame: no toArrow."""

    def __init__(
        self,
        session: SparkSession,
        rows: list[dict[str, Any]] | None = None,
        arrow: pa.Table | None = None,
        failure: Failure | None = None,
    ) -> None:
        self._session = session
        self._rows = rows
        self._arrow = arrow
        self._failure = failure  # raised when the job runs, as a file read fails then

    def _derive(self, rows: list[dict[str, Any]]) -> DataFrame:
        return type(self)(self._session, rows)

    def where(self, condition: str) -> DataFrame:
        match = _WHERE.fullmatch(condition)
        if match is None:
            raise AnalysisException(
                Failure("PARSE_SYNTAX_ERROR", "42601", f"cannot parse {condition!r}"),
                self._session.version,
            )
        after = int(match["after"])
        return self._derive([r for r in self._rows or [] if r["version"] > after])

    filter = where

    def orderBy(self, column: str) -> DataFrame:  # noqa: N802 - pyspark's name
        assert column == "version", column
        return self._derive(sorted(self._rows or [], key=lambda r: r["version"]))

    def limit(self, count: int) -> DataFrame:
        assert isinstance(count, int) and count >= 0, count
        return self._derive((self._rows or [])[:count])

    def collect(self) -> list[Row]:
        self._run()
        return [_to_row(row) for row in self._rows or []]

    @property
    def schema(self) -> StructType:
        table = self._table()
        return StructType([StructField(f.name, _spark_type(f.type)) for f in table.schema])

    def toPandas(self) -> Any:  # noqa: N802 - pyspark's name
        """Like pyspark: TIMESTAMP columns as naive times of the session time zone."""
        self._run()
        table = self._table()
        frame = table.to_pandas()
        zone = self._session.conf.get("spark.sql.session.timeZone")
        for field in table.schema:
            if pa.types.is_timestamp(field.type) and field.type.tz:
                frame[field.name] = frame[field.name].dt.tz_convert(zone).dt.tz_localize(None)
        return frame

    def _table(self) -> pa.Table:
        return self._arrow if self._arrow is not None else pa.Table.from_pylist(self._rows or [])

    def _run(self) -> None:
        if self._failure is not None:
            if self._session.version == "3.5":
                raise Py4JJavaError(self._failure)
            raise SparkRuntimeException(self._failure, self._session.version)


class DataFrame4(DataFrame):
    """pyspark 4's DataFrame: toArrow keeps instants in UTC."""

    def toArrow(self) -> pa.Table:  # noqa: N802 - pyspark's name
        self._run()
        return self._table()


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
        session = self._session
        session.queries.append(f"read.table({name})")
        assert self._format == "delta" and self._options.get("readChangeFeed") == "true"
        found = session.catalog.lookup(name)
        if found is None:
            raise AnalysisException(not_found(name), session.version)
        start, end = int(self._options["startingVersion"]), int(self._options["endingVersion"])
        try:
            changes = found.table_changes(start, end)
        except Failure as failure:
            if failure.condition.startswith(("FAILED_READ_FILE", "DELTA_CHANGE_DATA_FILE")):
                return session.frame(failure=failure)  # files are opened when the job runs
            raise AnalysisException(failure, session.version) from None
        return session.frame(arrow=changes)


class RuntimeConf:
    def __init__(self, values: dict[str, str]) -> None:
        self._values = values

    def get(self, key: str, default: Any = None) -> Any:
        return self._values.get(key, default)

    def set(self, key: str, value: str) -> None:
        self._values[key] = value


class SparkSession:
    def __init__(
        self, catalog: FakeCatalog, *, version: Version = "4.0", time_zone: str = "UTC"
    ) -> None:
        self.catalog = catalog
        self.version: Version = version
        self.conf = RuntimeConf({"spark.sql.session.timeZone": time_zone})
        self.queries: list[str] = []
        #: DESCRIBE HISTORY rows produced, over all queries: the commit files Delta read
        self.history_rows = 0
        # Called after each statement: lets a test commit between two queries.
        self.after_query: Callable[[str], None] | None = None

    def frame(self, **kwargs: Any) -> DataFrame:
        return (DataFrame4 if self.version == "4.0" else DataFrame)(self, **kwargs)

    def sql(self, query: str) -> DataFrame:
        self.queries.append(query)
        try:
            return self._sql(query)
        finally:
            if self.after_query is not None:
                self.after_query(query)

    def _sql(self, query: str) -> DataFrame:
        if detail := _DETAIL.fullmatch(query):
            found = self.catalog.lookup(detail["name"])
            if found is None:
                raise AnalysisException(not_found(detail["name"]), self.version)
            # One row; arrays arrive as lists and maps as dicts, like pyspark's.
            return self.frame(rows=[found.describe_detail(unquote_name(detail["name"]))])
        match = _HISTORY.fullmatch(query)
        if match is None:
            failure = Failure("PARSE_SYNTAX_ERROR", "42601", f"Syntax error at {query!r}.")
            raise AnalysisException(failure, self.version)
        table = self.catalog.lookup(match["name"])
        if table is None:
            raise AnalysisException(not_found(match["name"]), self.version)
        limit = int(match["limit"]) if match["limit"] else None
        rows = [dict(row) for row in table.describe_history(limit)]
        self.history_rows += len(rows)  # without LIMIT, Delta reads every commit file
        return self.frame(rows=rows)

    @property
    def read(self) -> DataFrameReader:
        return DataFrameReader(self)
