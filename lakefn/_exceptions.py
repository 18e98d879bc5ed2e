"""Every error lakefn raises on purpose.

    LakefnError
    ├── ConfigError            app.yaml is wrong (all of its problems, with file, line, field)
    ├── FunctionError
    │   ├── FunctionNotFound   no function of that name in the project
    │   ├── FunctionLoadError  a function module cannot be imported or has no `main`
    │   └── WrongTrigger       asked to fire a timer or simulate a table on another kind
    ├── HttpError              raised by a function to answer with a status (not a failure)
    ├── InvocationTimeout      a function ran past its `timeout`
    ├── Overloaded             no room to run a function now (HTTP 503, retry later)
    ├── TableError
    │   ├── TableNameError     not a Unity three-part name
    │   ├── TableNotFound      the source has no such table
    │   ├── SourceUnavailable  the source cannot be reached (or refused access)
    │   │   └── StateStoreUnavailable  the state store (PostgreSQL) cannot be reached
    │   ├── HistoryGap         commits needed are gone from the table's history
    │   └── ChangeDataFeedUnavailable  `event.changes()` on a table without change data feed
    ├── CheckpointConflict     another process moved a checkpoint under us
    └── ServerError            the server cannot start (for example: port in use)

Messages are built in `__init__`, so every raise site reads the same.
"""

from __future__ import annotations

from dataclasses import dataclass


class LakefnError(Exception):
    """Base of every error lakefn raises on purpose."""


@dataclass(frozen=True)
class ConfigIssue:
    """One problem in app.yaml, located precisely enough to fix it."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ConfigError(LakefnError):
    def __init__(self, issues: list[ConfigIssue]) -> None:
        self.issues = list(issues)
        count = len(self.issues)
        head = f"{count} problem{'s' if count != 1 else ''} in app.yaml:"
        super().__init__("\n".join([head, *(f"  {issue}" for issue in self.issues)]))


class FunctionError(LakefnError):
    """A problem with one function of the project."""


class FunctionNotFound(FunctionError):
    def __init__(self, name: str, known: list[str]) -> None:
        self.name = name
        self.known = sorted(known)
        listed = ", ".join(self.known) or "(none)"
        super().__init__(f"no function named {name!r}; the project has: {listed}")


class FunctionLoadError(FunctionError):
    def __init__(self, name: str, path: str, reason: str) -> None:
        self.name = name
        self.path = path
        self.reason = reason
        super().__init__(f"function {name!r} ({path}) cannot be loaded: {reason}")


class WrongTrigger(FunctionError):
    def __init__(self, name: str, actual: str, wanted: str) -> None:
        self.name = name
        self.actual = actual
        self.wanted = wanted
        super().__init__(f"function {name!r} has a {actual} trigger, not {wanted}")


class HttpError(LakefnError):
    """Raise from an HTTP function to answer with `status` and a JSON `{"detail": ...}`."""

    def __init__(self, status: int, detail: object = None) -> None:
        self.status = status
        self.detail = detail
        super().__init__(f"HTTP {status}: {detail}")


class InvocationTimeout(LakefnError):
    def __init__(self, name: str, seconds: float) -> None:
        self.name = name
        self.seconds = seconds
        super().__init__(f"function {name!r} did not finish within its timeout of {seconds:g} s")


class Overloaded(LakefnError):
    """A function was not started: its `max_concurrency` queue is full, or too many timed-out
    calls still hold threads. Nothing ran; try again after `retry_after` seconds."""

    def __init__(self, name: str, reason: str, retry_after: int = 1) -> None:
        self.name = name
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"function {name!r} was not started: {reason}")


class TableError(LakefnError):
    """A problem reading a table's history or changes."""


class TableNameError(TableError, ValueError):
    def __init__(self, name: object, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(
            f"{name!r} is not a Unity table name ({reason}); "
            "expected catalog.schema.table, parts may be `backtick-quoted`"
        )


class TableNotFound(TableError):
    def __init__(self, table: str, where: str = "") -> None:
        self.table = table
        suffix = f" in {where}" if where else ""
        super().__init__(f"table {table} not found{suffix}")


class SourceUnavailable(TableError):
    def __init__(self, source: str, reason: str) -> None:
        self.source = source
        self.reason = reason
        super().__init__(f"table source {source!r} is unavailable: {reason}")


class StateStoreUnavailable(SourceUnavailable):
    """The checkpoint store cannot be reached: for the watcher, a failed check like an
    unreachable table source, retried on the next one."""

    def __init__(self, store: str, reason: str) -> None:
        LakefnError.__init__(self, f"the state store {store} is unavailable: {reason}")
        self.source = store
        self.reason = reason


class HistoryGap(TableError):
    def __init__(self, table: str, after: int, first_available: int) -> None:
        self.table = table
        self.after = after
        self.first_available = first_available
        super().__init__(
            f"history gap on {table}: last processed version is {after} but the oldest "
            f"version still in its history is {first_available}; versions "
            f"{after + 1}..{first_available - 1} are gone (log retention)"
        )


class ChangeDataFeedUnavailable(TableError):
    def __init__(self, table: str, reason: str = "") -> None:
        self.table = table
        hint = (
            "enable it with ALTER TABLE ... SET TBLPROPERTIES (delta.enableChangeDataFeed = true)"
        )
        super().__init__(
            f"table {table} has no change data feed for these versions"
            + (f" ({reason})" if reason else "")
            + f"; {hint}"
        )


class CheckpointConflict(LakefnError):
    def __init__(self, key: str, expected: int | None, found: int | None) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"checkpoint {key!r} moved under us: expected {expected}, found {found}")


class ServerError(LakefnError):
    """The server cannot start or stop as asked."""
