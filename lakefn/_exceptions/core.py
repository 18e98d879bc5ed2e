"""The root of the tree, and the errors of the runtime: config, functions, tables, server."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..journal import Invocation


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


class PluginFailed(LakefnError):
    """An installed `lakefn.plugins` entry point that could not be loaded."""

    def __init__(self, name: str, value: str, error: BaseException) -> None:
        self.name = name
        super().__init__(
            f"lakefn plug-in {name!r} ({value}) failed to load: {type(error).__name__}: {error}"
        )


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


class NotRunnable(FunctionError):
    def __init__(self, name: str, kind: str) -> None:
        from ..triggers import KINDS

        self.name = name
        runnable = [k for k, cls in KINDS.items() if cls.runs_as_job]
        listed = " and ".join(filter(None, [", ".join(runnable[:-1]), runnable[-1]]))
        article = "an" if kind[:1] in "aeiouh" else "a"
        hint = f" (call an http function with `lakefn invoke {name}`)" if kind == "http" else ""
        super().__init__(
            f"{name} is {article} {kind} function: `lakefn run` runs {listed} functions{hint}"
        )


class WatchedByServer(FunctionError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(
            f"{name} is watched by the running server, which delivers its new commits "
            "itself; `%lakefn simulate` hands it a commit by hand, or stop the server first"
        )


class FunctionFailed(LakefnError):
    """A function run from a test failed; `invocation` is its record, and the function's own
    exception is chained as `__cause__`."""

    def __init__(self, invocation: Invocation) -> None:
        self.invocation = invocation
        self.function = invocation.function
        self.invocation_id = invocation.id
        super().__init__(
            f"function {invocation.function!r} failed (invocation {invocation.id}, "
            f"{invocation.trigger} trigger, attempt {invocation.attempt}, "
            f"status {invocation.status}): {invocation.error}"
        )


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


class NothingToReplay(TableError):
    def __init__(self, table: object, replay_from: int) -> None:
        self.table = table
        self.replay_from = replay_from
        super().__init__(f"{table} has no versions from {replay_from} on to replay")


class BadTableRows(TableError):
    """Rows that make no Delta table: none at all (no `reason`), or a column of mixed types."""

    def __init__(self, reason: object = "") -> None:
        if reason:
            super().__init__(f"rows do not make a table (each column needs one type): {reason}")
        else:
            super().__init__("no rows given: a Delta table needs at least a schema")


class TableExists(TableError):
    def __init__(self, table: object, path: object) -> None:
        self.table = table
        super().__init__(f"table {table} already exists at {path}")


class TableWriteFailed(TableError):
    def __init__(self, table: object, mode: str, reason: object) -> None:
        self.table = table
        super().__init__(f"cannot {mode} to {table}: {reason}")


class TableCheckFailed(TableError):
    """A test's `lakefn.check(name)`: the watcher's check of the function's table failed."""

    def __init__(self, function: str, error: object) -> None:
        self.function = function
        super().__init__(f"{function}: {error}")


class CheckpointError(LakefnError):
    """A checkpoint cannot be moved as asked."""


class CheckpointConflict(CheckpointError):
    def __init__(self, key: str, expected: int | None, found: int | None) -> None:
        self.key = key
        self.expected = expected
        self.found = found
        super().__init__(f"checkpoint {key!r} moved under us: expected {expected}, found {found}")


class ServerError(LakefnError):
    """The server cannot start or stop as asked."""


class PortInUse(ServerError):
    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        super().__init__(
            f"port {port} on {host} is already in use; stop what holds it or pick another "
            "with --port"
        )


class CannotListen(ServerError):
    def __init__(self, host: str, port: int, reason: object) -> None:
        self.host, self.port = host, port
        super().__init__(f"cannot listen on {host}:{port}: {reason}")


class NotATcpPort(ServerError):
    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(f"port {port} is not a TCP port (0-65535)")


class ServerNotStarted(ServerError):
    """The app's startup failed (no address: uvicorn said why in the log), or the server on
    `host:port` did not start, for `error` or in time."""

    def __init__(self, host: str = "", port: int = 0, error: BaseException | None = None) -> None:
        if not host:
            super().__init__("the app failed to start; see the log above")
            return
        reason = f": {type(error).__name__}: {error}" if error else " in time"
        super().__init__(f"the server on {host}:{port} did not start{reason}")


class ServerBlocked(ServerError):
    def __init__(self, port: int) -> None:
        self.port = port
        super().__init__(
            f"the server on port {port} did not stop: its event loop is blocked, most "
            "likely by an `async def main` calling blocking code (time.sleep, a sync "
            "client). It stops, and frees the port, once that call returns."
        )
