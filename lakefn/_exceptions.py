"""Every error lakefn raises on purpose, each message built in its `__init__` from the facts.

LakefnError
├── ConfigError            app.yaml is wrong (all of its problems, with file, line, field)
├── NoProject              a notebook call before `%lakefn load`
├── ProjectNotCreated      `lakefn init` into a folder that is not empty, or cannot be written
├── InputError             a command, magic, route or test call got input it cannot use
│   ├── JsonInputError     an argument (or the @file it names) is unreadable or not JSON
│   ├── RowsError          rows that are not a JSON list of objects, or no rows at all
│   │   └── RowsFileError  a --file of rows that is missing or of an unknown kind
│   ├── BadOperation       an empty --operation
│   ├── BadScheduledTime   a --scheduled-time that is not ISO 8601
│   ├── BadCount           -n below 1
│   ├── BadPort            DATABRICKS_APP_PORT is not a port
│   ├── BadFunctionName    not letters, digits and _
│   └── BadSimulatedCommit the input of a unity_table function is not a simulated commit
├── FunctionError
│   ├── FunctionNotFound   no function of that name in the project
│   ├── FunctionLoadError  a function module cannot be imported or has no `main`
│   ├── WrongTrigger       asked to fire a timer or simulate a table on another kind
│   ├── NotRunnable        `lakefn run` on an http function
│   └── WatchedByServer    `%lakefn run` on a table the notebook's server delivers itself
├── FunctionFailed         a function run from a test failed (`lakefn.testing.FunctionFailed`)
├── HttpError              raised by a function to answer with a status (not a failure)
├── InvocationTimeout      a function ran past its `timeout`
├── Overloaded             no room to run a function now (HTTP 503, retry later)
├── TableError
│   ├── TableNameError     not a Unity three-part name
│   ├── TableNotFound      the source has no such table
│   ├── SourceUnavailable  the source cannot be reached (or refused access)
│   │   └── StateStoreUnavailable  the state store (PostgreSQL) cannot be reached
│   ├── HistoryGap         commits needed are gone from the table's history
│   ├── ChangeDataFeedUnavailable  `event.changes()` on a table without change data feed
│   └── NothingToReplay    a replay from a version the table does not have
├── StateError             the `state:` setting, or the store it names, cannot be used
│   ├── BadStateSetting    empty, unknown scheme, bad SQLite URL, unknown option, schema
│   ├── StateNeedsPackage  the store's driver is not installed
│   ├── LakebaseNotConfigured  the PG* variables a Databricks App sets are missing
│   ├── StateLayoutTooNew  written by a newer lakefn
│   ├── StateStoreFailed   cannot open, use or write the store, or it is closed
│   └── NoJournal          the store keeps no invocation journal
├── CheckpointError        a checkpoint cannot be moved as asked
│   ├── CheckpointConflict another process moved a checkpoint under us
│   ├── NotATableFunction  only unity_table functions have checkpoints
│   ├── WrongTable         the function watches another table
│   ├── BadCheckpointVersion  below -1, or past the table's latest version
│   ├── LeaseHeld          a live process delivers the table (use force)
│   └── CheckpointBusy     the checkpoint kept moving while we tried
├── BundleError            `lakefn bundle` cannot write the bundle
│   ├── NotConvertible     a cron schedule that no Quartz expression says exactly
│   ├── WheelUnavailable   lakefn's own wheel cannot be built
│   └── BundleResourceInvalid  a resource the Databricks bundle models refuse or change
├── HarnessError           the test harness (`lakefn` fixture) was used wrongly or gave up
└── ServerError            the server cannot start (for example: port in use)
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .journal import Invocation


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


class NotRunnable(FunctionError):
    def __init__(self, name: str, kind: str) -> None:
        self.name = name
        super().__init__(
            f"{name} is an {kind} function: `lakefn run` runs timer and unity_table functions "
            f"(call an http function with `lakefn invoke {name}`)"
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


class NotATableFunction(CheckpointError):
    def __init__(self, function: str, table_functions: list[str]) -> None:
        self.function = function
        known = ", ".join(sorted(table_functions)) or "(none)"
        super().__init__(f"{function!r} is not a unity_table function; those are: {known}")


class WrongTable(CheckpointError):
    def __init__(self, function: str, watched: object, asked: object) -> None:
        self.function = function
        super().__init__(f"{function!r} watches {watched}, not {asked}")


class BadCheckpointVersion(CheckpointError):
    """Below -1, or (when the table's `latest` version is known) past it."""

    def __init__(self, version: int, table: object = None, latest: int | None = None) -> None:
        self.version = version
        if latest is None:
            super().__init__(f"version {version}: a checkpoint is -1 (before version 0) or more")
        else:
            super().__init__(
                f"version {version}: {table} is at version {latest}, so a checkpoint is "
                f"-1 (deliver from version 0) up to {latest}"
            )


class LeaseHeld(CheckpointError):
    def __init__(self, function: str, holder: str | None, until: str, force_hint: str) -> None:
        self.function = function
        self.holder = holder
        super().__init__(
            f"{function}: {holder or 'another process'} holds the lease (until {until}) and "
            f"is delivering this table; stop it first, or {force_hint} (it then resumes "
            "from the new checkpoint)"
        )


class CheckpointBusy(CheckpointError):
    def __init__(self, key: str) -> None:
        self.key = key
        super().__init__(f"{key}: the checkpoint kept moving; try again")


# -- the state store --------------------------------------------------------------------------


class StateError(LakefnError):
    """The `state:` setting, or the store it names, cannot be used."""


class BadStateSetting(StateError):
    """`state:` names no store lakefn knows; `forms` are the ones it does."""

    def __init__(self, state: str, problem: str = "", *, forms: str = "") -> None:
        self.state = state
        if not state.strip():
            super().__init__(f"state is empty; expected {forms}")
        elif problem == "scheme":
            scheme = state.split("://", 1)[0].lower()
            super().__init__(f"state {state!r} has an unknown scheme {scheme!r}; expected {forms}")
        elif problem == "sqlite":
            super().__init__(
                f"state {state!r}: a SQLite URL is sqlite:///relative/path or sqlite:////abs"
            )
        else:
            super().__init__(f"state {state!r}: {problem}")


class BadStateOptions(BadStateSetting):
    def __init__(self, state: str, store: str, known: str, unknown: set[str]) -> None:
        problem = f"{store} takes only {known}, not {', '.join(sorted(unknown))}"
        super().__init__(state, problem)


class BadStateSchema(StateError):
    def __init__(self, schema: str) -> None:
        self.schema = schema
        super().__init__(f"state schema {schema!r} must be 1 to 63 characters")


class StateNeedsPackage(StateError):
    def __init__(self, state: str, package: str | None, extra: str, purpose: str = "") -> None:
        self.package = package
        if purpose:
            super().__init__(
                f"state: {state} needs {package} for {purpose}: pip install 'lakefn[{extra}]'"
                " (or set PGPASSWORD)"
            )
        else:
            super().__init__(f"state {state!r} needs {package}: pip install 'lakefn[{extra}]'")


class LakebaseNotConfigured(StateError):
    def __init__(self, missing: list[str]) -> None:
        self.missing = missing
        super().__init__(
            f"state: lakebase needs {', '.join(missing)}, which Databricks Apps sets from "
            "the App's database resource; to run elsewhere, set PGHOST, PGPORT, "
            "PGDATABASE, PGUSER (and PGPASSWORD, or databricks-sdk credentials)"
        )


class StateLayoutTooNew(StateError):
    def __init__(self, where: str, schema: str, found: int, known: int) -> None:
        self.found = found
        super().__init__(
            f"the state store {where} schema {schema!r} is at layout "
            f"version {found}, written by a newer lakefn (this one knows up to "
            f"{known}); upgrade lakefn or use another schema"
        )


class StateStoreFailed(StateError):
    """A checkpoint store (or its journal) at `path` cannot do `what`: open, use, write,
    journal; `closed` after `close()`; `call` when a store call fails under the watcher."""

    _SAYS = {
        "open": "cannot open the checkpoint store {path}: {reason}",
        "use": "cannot use {path} as a checkpoint store: {reason}",
        "write": "cannot write to the checkpoint store {path}: {reason}",
        "journal": "cannot keep the journal in {path}: {reason}",
        "closed": "the checkpoint store {path} is closed",
        "call": "the checkpoint store failed: {reason}",
    }

    def __init__(self, what: str, path: object = "", reason: object = "") -> None:
        self.what = what
        self.path = path
        if isinstance(reason, BaseException) and not isinstance(reason, LakefnError):
            reason = f"{type(reason).__name__}: {reason}" if what == "call" else reason
        self.reason = str(reason)
        super().__init__(self._SAYS[what].format(path=path, reason=self.reason))


class NoJournal(StateError):
    def __init__(self, state: str) -> None:
        self.state = state
        super().__init__(f"state {state!r} keeps no journal")


# -- input from commands, magics, routes and tests ---------------------------------------------


class InputError(LakefnError):
    """A command, magic, admin route or test call was given input it cannot use."""


class JsonInputError(InputError):
    """`what` (an option, the payload) from `source` (`argument` or a file) is not JSON, or
    the file cannot be read (`unreadable`)."""

    def __init__(self, what: str, source: str, reason: object, *, unreadable: bool = False) -> None:
        self.what = what
        self.source = source
        if unreadable:
            super().__init__(f"cannot read {what} from {source}: {reason}")
        else:
            super().__init__(f"{what} is not valid JSON ({source}): {reason}")


class RowsError(InputError):
    """Rows (for a simulated commit, or to write to a local table) that are not a JSON list of
    objects; `where` is the option or field that gave them."""

    def __init__(self, where: str, problem: str = "", *, non_empty: bool = False) -> None:
        self.where = where
        self.problem = problem
        kind = "a non-empty JSON list" if non_empty else "a JSON list"
        example = 'one per row, e.g. [{"id": 1}]'
        super().__init__(
            f"{where} must be {kind} of objects, {example}" + (f"; {problem}" if problem else "")
        )


class NoRowsGiven(RowsError):
    def __init__(self, what: str, options: str) -> None:
        self.where = options
        self.problem = ""
        InputError.__init__(self, f"give {what} with {options}")


class RowsFileError(RowsError):
    def __init__(self, path: object, problem: str) -> None:
        self.where = f"--file {path}"
        self.problem = problem
        InputError.__init__(self, f"--file {path}: {problem}")


class BadOperation(InputError):
    def __init__(self, option: str = "--operation") -> None:
        super().__init__(f"{option} must name an operation, e.g. WRITE, MERGE, DELETE")


class BadScheduledTime(InputError):
    def __init__(self, text: str) -> None:
        self.text = text
        super().__init__(
            f"--scheduled-time {text!r} is not an ISO 8601 time, e.g. 2026-03-01T02:30:00Z"
        )


class BadCount(InputError):
    def __init__(self, option: str, minimum: int = 1) -> None:
        super().__init__(f"{option} must be {minimum} or more")


class BadPort(InputError):
    def __init__(self, source: str, reason: object) -> None:
        self.source = source
        super().__init__(f"{source}: {reason}")


class BadFunctionName(InputError):
    def __init__(self, name: str) -> None:
        self.name = name
        super().__init__(f"{name!r} is not a valid function name (letters, digits, _)")


class BadSimulatedCommit(InputError):
    """A manual invoke of a unity_table function whose payload is not a simulated commit."""

    def __init__(self, payload: Any, fields: tuple[str, ...]) -> None:
        import json

        super().__init__(
            "the input of a unity_table function is a simulated commit: an object with "
            f"some of {', '.join(fields)}; got {json.dumps(payload)[:200]}"
        )


# -- projects, bundles, the notebook and the test harness --------------------------------------


class NoProject(LakefnError):
    def __init__(self) -> None:
        super().__init__("no project loaded: run `%lakefn load path/to/app.yaml` first")


class ProjectNotCreated(LakefnError):
    """`lakefn init` refuses a folder that is not empty (`reason` empty), or cannot write."""

    def __init__(self, target: object, reason: str = "") -> None:
        self.target = target
        if reason:
            super().__init__(f"cannot create the project in {target}: {reason}")
        else:
            super().__init__(f"{target} already exists and is not empty; pick a new folder")


class BundleError(LakefnError):
    """`lakefn bundle` cannot write the bundle."""


class NotConvertible(BundleError):
    """A cron schedule that no Quartz expression says exactly."""

    def __init__(self, schedule: str, reason: str) -> None:
        self.schedule = schedule
        self.reason = reason
        super().__init__(f"schedule {schedule!r} cannot run as a Databricks Job: {reason}")


class WheelUnavailable(BundleError):
    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(
            f"cannot make lakefn's wheel for the bundle: {reason}; "
            "use --no-wheel to reference lakefn from your package index instead"
        )


class BundleResourceInvalid(BundleError):
    """A resource the bundle models refuse (`error`), or change when loaded (`loaded`)."""

    def __init__(
        self, key: str, value: object, *, error: object = None, loaded: object = None
    ) -> None:
        self.key = key
        if error is not None:
            super().__init__(f"bundle resource {key} does not load: {error}")
        else:
            super().__init__(f"bundle resource {key} changes when loaded: {loaded} != {value}")


class HarnessError(LakefnError):
    """The test harness was used wrongly (closed, nothing invoked) or gave up waiting."""

    _SAYS = {
        "closed": "this lakefn harness is closed",
        "nothing_invoked": "no function has been invoked yet in this test",
        "gave_up": "gave up after {timeout:g} s (the harness's `timeout`); the function "
        "may still be running",
        "no_server": "the test server did not start on {host}",
        "too_few": "{name!r} was invoked {done} time(s) in {timeout:g} s, not {count}",
    }

    def __init__(self, what: str, **facts: Any) -> None:
        self.what = what
        self.facts = facts
        super().__init__(self._SAYS[what].format(**facts))
