"""Every Databricks / Delta error class the warehouse and Spark sources can meet, in one table.

Both sources name a failure by its error class ("condition" since Spark 4): pyspark 4 hands it
over through `getCondition()`, pyspark 3.x through `getErrorClass()`, and the SQL connector only
in the message text, which Databricks starts with `[CLASS]` or `[CLASS.SUBCLASS]` and ends with
`SQLSTATE: xxxxx`. `classify` turns any of those into the lakefn exception a function or the
watcher should see; the test doubles raise exactly the classes and SQLSTATEs listed here.

Where each SQLSTATE comes from:

- delta: delta-io/delta `spark/src/main/resources/error/delta-error-classes.json`
  (commit 2b3e79cdd866141b16b11d337c75b4d402239ebd)
- dbx: the Databricks error-condition pages (docs.databricks.com/error-messages/...,
  learn.microsoft.com/azure/databricks/error-messages/...); classes that exist only in
  Databricks Runtime, not in open-source Delta
- spark: Apache Spark's `error-conditions.json` (same text on the Databricks pages)
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from .._exceptions import ChangeDataFeedUnavailable, SourceUnavailable, TableError, TableNotFound

#: what a query read: the history (DESCRIBE HISTORY), the table's detail (DESCRIBE DETAIL, for
#: its identity) or the change data feed; only the last one can meet change-feed errors
Reading = Literal["history", "detail", "changes"]


@dataclass(frozen=True)
class KnownError:
    error_class: str
    sqlstate: str
    #: what a source raises for it; change-feed problems only while reading changes
    raises: type[TableError]
    documented_in: str


_TABLE = TableNotFound
_FEED = ChangeDataFeedUnavailable
_DOWN = SourceUnavailable

KNOWN_ERRORS: dict[str, KnownError] = {
    e.error_class: e
    for e in (
        # -- the table is not there (or not a Delta table) --------------------------------
        KnownError("TABLE_OR_VIEW_NOT_FOUND", "42P01", _TABLE, "dbx table-or-view-not-found"),
        KnownError("DELTA_TABLE_NOT_FOUND", "42P01", _TABLE, "delta"),
        KnownError("DELTA_MISSING_DELTA_TABLE", "42P01", _TABLE, "delta"),
        KnownError("DELTA_NO_RELATION_TABLE", "42P01", _TABLE, "delta"),
        KnownError("DELTA_PATH_DOES_NOT_EXIST", "42K03", _TABLE, "delta"),
        # -- the change data feed cannot serve these versions -----------------------------
        # not enabled (or not yet) for a version of the range
        KnownError("DELTA_MISSING_CHANGE_DATA", "KD002", _FEED, "delta"),
        # its change files were vacuumed away (past delta.deletedFileRetentionDuration)
        KnownError("DELTA_CHANGE_DATA_FILE_NOT_FOUND", "42K03", _FEED, "dbx error conditions"),
        # end before start, or a start past the latest version
        KnownError("DELTA_INVALID_CDC_RANGE", "22003", _FEED, "delta"),
        # a data or change file of the range cannot be read (subclasses: FILE_NOT_EXIST, ...)
        KnownError("FAILED_READ_FILE", "KD001", _FEED, "dbx failed-read-file; spark"),
        KnownError("DELTA_FILE_NOT_FOUND", "42K03", _FEED, "delta"),
        # the log of those versions is gone (log retention)
        KnownError("DELTA_TRUNCATED_TRANSACTION_LOG", "42K03", _FEED, "delta"),
        # column mapping / type changes inside the range
        KnownError("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_SCHEMA_CHANGE", "0AKDC", _FEED, "delta"),
        KnownError("DELTA_CHANGE_DATA_FEED_INCOMPATIBLE_DATA_SCHEMA", "0AKDC", _FEED, "delta"),
        KnownError("DELTA_BLOCK_COLUMN_MAPPING_AND_CDC_OPERATION", "42KD4", _FEED, "delta"),
        # -- the source cannot answer now: reported, retried on the next check ------------
        KnownError("INSUFFICIENT_PERMISSIONS", "42501", _DOWN, "dbx insufficient-permissions"),
        KnownError("PARSE_SYNTAX_ERROR", "42601", _DOWN, "spark"),
        KnownError("DELTA_VERSIONS_NOT_CONTIGUOUS", "KD00C", _DOWN, "delta"),
    )
}

# "[CLASS]" or "[CLASS.SUBCLASS]" where Databricks puts it: at the start of the message (the
# connector may prefix its own words, so the first bracket pair anywhere is taken).
_IN_MESSAGE = re.compile(r"\[([A-Z][A-Z0-9_]*)(?:\.[A-Z0-9_]+)*\]")
_SQLSTATE = re.compile(r"SQLSTATE: ([0-9A-Z]{5})")


def error_class(error: BaseException) -> str | None:
    """The error class (without subclass) of a pyspark or connector exception, if it has one."""
    for getter in ("getCondition", "getErrorClass"):
        # pyspark 4 deprecates getErrorClass with a FutureWarning: ask getCondition first.
        method = getattr(error, getter, None)
        if callable(method):
            found = method()
            if found:
                return str(found).split(".")[0]
    match = _IN_MESSAGE.search(str(error))
    return match.group(1) if match else None


def sqlstate(error: BaseException) -> str | None:
    method = getattr(error, "getSqlState", None)
    if callable(method) and method():
        return str(method())
    match = _SQLSTATE.search(str(error))
    return match.group(1) if match else None


def classify(error: BaseException, reading: Reading) -> type[TableError]:
    """The lakefn exception for `error`, met while reading `reading`.

    A change-feed class met while reading history or detail is a source problem (neither uses
    the change feed); an unknown class falls back on its SQLSTATE, then on SourceUnavailable.
    """
    known = KNOWN_ERRORS.get(error_class(error) or "")
    if known is not None:
        if known.raises is ChangeDataFeedUnavailable and reading != "changes":
            return SourceUnavailable
        return known.raises
    if sqlstate(error) == "42P01":  # "undefined table" in every SQL dialect
        return TableNotFound
    return SourceUnavailable


def first_line(error: BaseException) -> str:
    """The line that says what went wrong: the one naming the condition (py4j buries it under
    a Java call trace), else the first."""
    text = str(error) or type(error).__name__
    match = _IN_MESSAGE.search(text)
    if match is None:
        return text.splitlines()[0]
    return text[match.start() :].splitlines()[0]
