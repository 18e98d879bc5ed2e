"""Every error lakefn raises on purpose, each message built in its `__init__` from the facts.

The classes live in `core` (the runtime), `state` (checkpoints, the state store) and `usage`
(command input, init, bundle, the test harness); import them from here.

LakefnError
├── ConfigError            app.yaml is wrong (all of its problems, with file, line, field)
├── NoProject              a notebook call before `%lakefn load`
├── ProjectNotCreated      `lakefn init` into a folder that is not empty, or cannot be written
├── PluginFailed           an installed `lakefn.plugins` entry point cannot be loaded
├── InputError             a command, magic, route or test call got input it cannot use
│   ├── JsonInputError     an argument (or the @file it names) is unreadable or not JSON
│   ├── RowsError          rows that are not a JSON list of objects, or no rows at all
│   │   └── RowsFileError  a --file of rows that is missing or of an unknown kind
│   ├── BadOperation       an empty --operation (or `operation` of a simulated commit)
│   ├── BadScheduledTime   a --scheduled-time that is not ISO 8601
│   ├── BadCount           -n below 1
│   ├── BadPort            DATABRICKS_APP_PORT is not a port
│   ├── BadVersion         a simulated commit's version that is no table version
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
│   ├── NothingToReplay    a replay from a version the table does not have
│   ├── BadTableRows       rows that make no Delta table (none, or a column of mixed types)
│   ├── TableExists        `lakefn tables create` over a table already there
│   ├── TableWriteFailed   a write to a local table failed
│   └── TableCheckFailed   a test's `lakefn.check(name)` found the watcher's check failing
├── StateError             the `state:` setting, or the store it names, cannot be used
│   ├── BadStateSetting    empty, unknown scheme, bad SQLite URL, unknown option, schema
│   │   └── BadLakebaseName  a Lakebase instance or database name that names none
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
└── ServerError            the server cannot start or stop as asked
    ├── PortInUse          another process listens on the port
    ├── CannotListen       the address cannot be bound for another reason
    ├── NotATcpPort        a port outside 0-65535
    ├── ServerNotStarted   the app's startup failed, or the server did not start in time
    └── ServerBlocked      a function blocks the server's event loop, so it cannot stop
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_getattr
from .core import (
    BadTableRows,
    CannotListen,
    ChangeDataFeedUnavailable,
    CheckpointConflict,
    CheckpointError,
    ConfigError,
    ConfigIssue,
    FunctionError,
    FunctionFailed,
    FunctionLoadError,
    FunctionNotFound,
    HistoryGap,
    HttpError,
    InvocationTimeout,
    LakefnError,
    NotATcpPort,
    NothingToReplay,
    NotRunnable,
    Overloaded,
    PluginFailed,
    PortInUse,
    ServerBlocked,
    ServerError,
    ServerNotStarted,
    SourceUnavailable,
    StateStoreUnavailable,
    TableCheckFailed,
    TableError,
    TableExists,
    TableNameError,
    TableNotFound,
    TableWriteFailed,
    WatchedByServer,
    WrongTrigger,
)

if TYPE_CHECKING:
    from .state import (
        BadCheckpointVersion,
        BadLakebaseName,
        BadStateOptions,
        BadStateSchema,
        BadStateSetting,
        CheckpointBusy,
        LakebaseNotConfigured,
        LeaseHeld,
        NoJournal,
        NotATableFunction,
        StateError,
        StateLayoutTooNew,
        StateNeedsPackage,
        StateStoreFailed,
        WrongTable,
    )
    from .usage import (
        BadCount,
        BadFunctionName,
        BadOperation,
        BadPort,
        BadScheduledTime,
        BadSimulatedCommit,
        BadVersion,
        BundleError,
        BundleResourceInvalid,
        HarnessError,
        InputError,
        JsonInputError,
        NoProject,
        NoRowsGiven,
        NotConvertible,
        ProjectNotCreated,
        RowsError,
        RowsFileError,
        WheelUnavailable,
    )

# The state and usage errors load when first named: `import lakefn` needs only the core ones,
# and each class costs start-up time.
_LAZY = {
    "BadCheckpointVersion": "state",
    "BadLakebaseName": "state",
    "BadStateOptions": "state",
    "BadStateSchema": "state",
    "BadStateSetting": "state",
    "CheckpointBusy": "state",
    "LakebaseNotConfigured": "state",
    "LeaseHeld": "state",
    "NoJournal": "state",
    "NotATableFunction": "state",
    "StateError": "state",
    "StateLayoutTooNew": "state",
    "StateNeedsPackage": "state",
    "StateStoreFailed": "state",
    "WrongTable": "state",
    "BadCount": "usage",
    "BadFunctionName": "usage",
    "BadOperation": "usage",
    "BadPort": "usage",
    "BadScheduledTime": "usage",
    "BadSimulatedCommit": "usage",
    "BadVersion": "usage",
    "BundleError": "usage",
    "BundleResourceInvalid": "usage",
    "HarnessError": "usage",
    "InputError": "usage",
    "JsonInputError": "usage",
    "NoProject": "usage",
    "NoRowsGiven": "usage",
    "NotConvertible": "usage",
    "ProjectNotCreated": "usage",
    "RowsError": "usage",
    "RowsFileError": "usage",
    "WheelUnavailable": "usage",
}


__getattr__ = lazy_getattr(__name__, _LAZY, globals())


__all__ = [
    "BadTableRows",
    "TableCheckFailed",
    "TableExists",
    "TableWriteFailed",
    "BadCheckpointVersion",
    "BadCount",
    "BadFunctionName",
    "BadOperation",
    "BadPort",
    "BadScheduledTime",
    "BadSimulatedCommit",
    "BadVersion",
    "BadLakebaseName",
    "BadStateOptions",
    "BadStateSchema",
    "BadStateSetting",
    "BundleError",
    "BundleResourceInvalid",
    "CannotListen",
    "ChangeDataFeedUnavailable",
    "CheckpointBusy",
    "CheckpointConflict",
    "CheckpointError",
    "ConfigError",
    "ConfigIssue",
    "FunctionError",
    "FunctionFailed",
    "FunctionLoadError",
    "FunctionNotFound",
    "HarnessError",
    "HistoryGap",
    "HttpError",
    "InputError",
    "InvocationTimeout",
    "JsonInputError",
    "LakebaseNotConfigured",
    "LakefnError",
    "LeaseHeld",
    "NoJournal",
    "NoProject",
    "NoRowsGiven",
    "NotATableFunction",
    "NotATcpPort",
    "NotConvertible",
    "NotRunnable",
    "NothingToReplay",
    "Overloaded",
    "PluginFailed",
    "PortInUse",
    "ProjectNotCreated",
    "RowsError",
    "RowsFileError",
    "ServerBlocked",
    "ServerError",
    "ServerNotStarted",
    "SourceUnavailable",
    "StateError",
    "StateLayoutTooNew",
    "StateNeedsPackage",
    "StateStoreFailed",
    "StateStoreUnavailable",
    "TableError",
    "TableNameError",
    "TableNotFound",
    "WatchedByServer",
    "WheelUnavailable",
    "WrongTable",
    "WrongTrigger",
]
