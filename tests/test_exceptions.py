"""The exception tree is complete: every error lakefn raises is a class in `lakefn._exceptions`
whose `__init__` builds its message from the facts, and the messages users (and tests) know
stay as they were."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import lakefn
import lakefn._exceptions as errors

#: exception classes defined outside `lakefn._exceptions` on purpose, and why
OUTSIDE_THE_TREE = {
    # pydantic turns a ValueError raised in a validator into a ConfigIssue of app.yaml
    "lakefn._cron.CronError": ValueError,
    # yaml's own error type, so app.yaml's size and depth limits report like YAML errors
    "lakefn._yaml.YamlLimitError": Exception,
    # control flow between reading a request body and the route that answers 413 / gives up;
    # the user sees the HTTP answer, never the exception
    "lakefn.triggers.http_routes.BodyTooLarge": Exception,
    "lakefn.triggers.http_routes.NoBody": Exception,
    # control flow inside the table watcher: a store call that failed, carried to the delivery
    # loop, which reports it as a failed delivery (the user sees the journal entry and status)
    "lakefn.watching.store.StoreFailed": Exception,
    # lakefn's own misuse of a stopped loop thread: a RuntimeError (a bug in lakefn, not a
    # problem in the user's input), as Python's own "event loop is closed" is
    "lakefn._loopthread.LoopNotRunning": RuntimeError,
}

#: the classes that group others; raised only through a subclass
GROUPS = {
    "LakefnError",
    "FunctionError",
    "TableError",
    "StateError",
    "CheckpointError",
    "InputError",
    "BundleError",
    "ServerError",
}

LAKEFN_SOURCE = Path(lakefn.__file__).parent


def _lakefn_modules() -> list[Any]:
    names = [info.name for info in pkgutil.walk_packages(lakefn.__path__, "lakefn.")]
    return [importlib.import_module(name) for name in sorted(names)]


def test_every_exception_class_lakefn_defines_is_in_the_tree_or_private_or_listed() -> None:
    strays = []
    for module in _lakefn_modules():
        if module.__name__.startswith("lakefn._exceptions"):
            continue
        for name, value in vars(module).items():
            if not (inspect.isclass(value) and issubclass(value, BaseException)):
                continue
            if value.__module__ != module.__name__ or name.startswith("_"):
                continue  # imported from elsewhere, or private control flow of one module
            qualified = f"{module.__name__}.{name}"
            if qualified in OUTSIDE_THE_TREE:
                assert issubclass(value, OUTSIDE_THE_TREE[qualified]), qualified
                continue
            strays.append(qualified)
    assert strays == [], f"move these into lakefn/_exceptions (or make them private): {strays}"


def test_every_error_of_the_tree_is_a_lakefn_error_that_builds_its_own_message() -> None:
    for name in errors.__all__:
        cls = getattr(errors, name)
        if name == "ConfigIssue":
            continue
        assert issubclass(cls, errors.LakefnError), name
        if name in GROUPS:
            assert cls.__subclasses__(), f"{name} groups nothing"
        else:
            assert any("__init__" in vars(k) for k in cls.__mro__[:-3]), name


def test_no_raise_site_builds_the_message_of_a_group_class() -> None:
    pattern = re.compile(rf"raise ({'|'.join(sorted(GROUPS))})\(")
    found = [
        f"{path.relative_to(LAKEFN_SOURCE)}:{number}"
        for path in sorted(LAKEFN_SOURCE.rglob("*.py"))
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
        if pattern.search(line)
    ]
    assert found == []


def test_the_moved_classes_are_still_where_users_import_them() -> None:
    from lakefn.jobs.quartz import NotConvertible
    from lakefn.testing import FunctionFailed

    assert FunctionFailed is errors.FunctionFailed and NotConvertible is errors.NotConvertible
    assert issubclass(FunctionFailed, lakefn.LakefnError)
    for name in lakefn.__all__:  # the public ones are the same objects as the tree's
        if name in errors.__all__:
            assert getattr(lakefn, name) is getattr(errors, name)


_INVOCATION = SimpleNamespace(
    function="broken", id="0123", trigger="http", attempt=2, status="error", error="boom"
)

MESSAGES: list[tuple[Any, str]] = [
    (errors.NoProject(), "no project loaded: run `%lakefn load path/to/app.yaml` first"),
    (
        errors.FunctionFailed(_INVOCATION),  # type: ignore[arg-type]
        "function 'broken' failed (invocation 0123, http trigger, attempt 2, status error): boom",
    ),
    (
        errors.NotRunnable("hello", "http"),
        "hello is an http function: `lakefn run` runs timer and unity_table functions "
        "(call an http function with `lakefn invoke hello`)",
    ),
    (
        errors.JsonInputError("--data", "argument", "Expecting value"),
        "--data is not valid JSON (argument): Expecting value",
    ),
    (
        errors.JsonInputError("--rows", "x.json", "No such file or directory", unreadable=True),
        "cannot read --rows from x.json: No such file or directory",
    ),
    (
        errors.BadPort("DATABRICKS_APP_PORT", "port must be a number, not 'x'"),
        "DATABRICKS_APP_PORT: port must be a number, not 'x'",
    ),
    (errors.BadOperation(), "--operation must name an operation, e.g. WRITE, MERGE, DELETE"),
    (
        errors.BadScheduledTime("soon"),
        "--scheduled-time 'soon' is not an ISO 8601 time, e.g. 2026-03-01T02:30:00Z",
    ),
    (errors.BadCount("-n"), "-n must be 1 or more"),
    (errors.BadFunctionName("a-b"), "'a-b' is not a valid function name (letters, digits, _)"),
    (
        errors.BadSimulatedCommit({"op": "merge"}, ("operation", "rows", "version", "replay_from")),
        "the input of a unity_table function is a simulated commit: an object with some of "
        'operation, rows, version, replay_from; got {"op": "merge"}',
    ),
    (
        errors.RowsFileError("r.txt", "use a .json, .csv or .parquet file"),
        "--file r.txt: use a .json, .csv or .parquet file",
    ),
    (
        errors.NoRowsGiven("the rows to commit", "--rows or --file"),
        "give the rows to commit with --rows or --file",
    ),
    (
        errors.ProjectNotCreated("/p"),
        "/p already exists and is not empty; pick a new folder",
    ),
    (
        errors.ProjectNotCreated("/p", "Permission denied"),
        "cannot create the project in /p: Permission denied",
    ),
    (
        errors.WatchedByServer("watch"),
        "watch is watched by the running server, which delivers its new commits itself; "
        "`%lakefn simulate` hands it a commit by hand, or stop the server first",
    ),
    (errors.NothingToReplay("main.s.t", 7), "main.s.t has no versions from 7 on to replay"),
    (errors.BadTableRows(), "no rows given: a Delta table needs at least a schema"),
    (
        errors.BadTableRows("mixed types"),
        "rows do not make a table (each column needs one type): mixed types",
    ),
    (errors.TableExists("main.s.t", "/c/main/s/t"), "table main.s.t already exists at /c/main/s/t"),
    (errors.TableWriteFailed("main.s.t", "append", "cast"), "cannot append to main.s.t: cast"),
    (
        errors.TableCheckFailed("watch", "table main.s.t not found"),
        "watch: table main.s.t not found",
    ),
    (
        errors.NotATableFunction("hello", ["watch", "audit"]),
        "'hello' is not a unity_table function; those are: audit, watch",
    ),
    (
        errors.NotATableFunction("hello", []),
        "'hello' is not a unity_table function; those are: (none)",
    ),
    (errors.WrongTable("watch", "main.s.t", "main.s.u"), "'watch' watches main.s.t, not main.s.u"),
    (errors.BadCheckpointVersion(-2), "version -2: a checkpoint is -1 (before version 0) or more"),
    (
        errors.BadCheckpointVersion(9, "main.s.t", 4),
        "version 9: main.s.t is at version 4, so a checkpoint is -1 (deliver from version 0) up to 4",
    ),
    (
        errors.LeaseHeld("watch", None, "?", "add --force"),
        "watch: another process holds the lease (until ?) and is delivering this table; stop it "
        "first, or add --force (it then resumes from the new checkpoint)",
    ),
    (
        errors.CheckpointBusy("watch|main.s.t"),
        "watch|main.s.t: the checkpoint kept moving; try again",
    ),
    (
        errors.BadStateSetting("", forms="a file path"),
        "state is empty; expected a file path",
    ),
    (
        errors.BadStateSetting("mysql://h/db", "scheme", forms="a file path"),
        "state 'mysql://h/db' has an unknown scheme 'mysql'; expected a file path",
    ),
    (
        errors.BadStateSetting("sqlite://x", "sqlite"),
        "state 'sqlite://x': a SQLite URL is sqlite:///relative/path or sqlite:////abs",
    ),
    (
        errors.BadStateOptions("lakebase?a=1&b=2", "lakebase", "?schema=NAME", {"b", "a"}),
        "state 'lakebase?a=1&b=2': lakebase takes only ?schema=NAME, not a, b",
    ),
    (errors.BadStateSchema(""), "state schema '' must be 1 to 63 characters"),
    (
        errors.StateNeedsPackage("postgresql://h/db", "psycopg", "postgres"),
        "state 'postgresql://h/db' needs psycopg: pip install 'lakefn[postgres]'",
    ),
    (
        errors.StateNeedsPackage("lakebase", "databricks-sdk", "databricks", "its OAuth token"),
        "state: lakebase needs databricks-sdk for its OAuth token: pip install "
        "'lakefn[databricks]' (or set PGPASSWORD)",
    ),
    (
        errors.LakebaseNotConfigured(["PGHOST", "PGUSER"]),
        "state: lakebase needs PGHOST, PGUSER, which Databricks Apps sets from the App's database "
        "resource; to run elsewhere, set PGHOST, PGPORT, PGDATABASE, PGUSER (and PGPASSWORD, or "
        "databricks-sdk credentials)",
    ),
    (
        errors.StateLayoutTooNew("h:5432/db", "lakefn", 3, 2),
        "the state store h:5432/db schema 'lakefn' is at layout version 3, written by a newer "
        "lakefn (this one knows up to 2); upgrade lakefn or use another schema",
    ),
    (
        errors.StateStoreFailed("open", "s.db", "disk I/O error"),
        "cannot open the checkpoint store s.db: disk I/O error",
    ),
    (
        errors.StateStoreFailed("use", "s.db", "file is not a database"),
        "cannot use s.db as a checkpoint store: file is not a database",
    ),
    (
        errors.StateStoreFailed("write", "s.db", "readonly"),
        "cannot write to the checkpoint store s.db: readonly",
    ),
    (
        errors.StateStoreFailed("journal", "s.db", "locked"),
        "cannot keep the journal in s.db: locked",
    ),
    (errors.StateStoreFailed("closed", "s.db"), "the checkpoint store s.db is closed"),
    (
        errors.StateStoreFailed("call", reason=OSError("gone")),
        "the checkpoint store failed: OSError: gone",
    ),
    (
        errors.StateStoreFailed("call", reason=errors.BadStateSchema("")),
        "the checkpoint store failed: state schema '' must be 1 to 63 characters",
    ),
    (errors.NoJournal("memory"), "state 'memory' keeps no journal"),
    (
        errors.BundleResourceInvalid("app", {"a": 1}, error="bad key"),
        "bundle resource app does not load: bad key",
    ),
    (
        errors.BundleResourceInvalid("app", {"a": 1}, loaded={"a": 2}),
        "bundle resource app changes when loaded: {'a': 2} != {'a': 1}",
    ),
    (errors.HarnessError("closed"), "this lakefn harness is closed"),
    (errors.HarnessError("nothing_invoked"), "no function has been invoked yet in this test"),
    (
        errors.HarnessError("no_server", host="127.0.0.1"),
        "the test server did not start on 127.0.0.1",
    ),
    (
        errors.HarnessError("gave_up", timeout=60.0),
        "gave up after 60 s (the harness's `timeout`); the function may still be running",
    ),
    (
        errors.HarnessError("too_few", name="tick", done=1, timeout=10.0, count=3),
        "'tick' was invoked 1 time(s) in 10 s, not 3",
    ),
    (
        errors.PortInUse("127.0.0.1", 8000),
        "port 8000 on 127.0.0.1 is already in use; stop what holds it or pick another with --port",
    ),
    (
        errors.CannotListen("10.9.9.9", 80, "Cannot assign requested address"),
        "cannot listen on 10.9.9.9:80: Cannot assign requested address",
    ),
    (errors.NotATcpPort(70000), "port 70000 is not a TCP port (0-65535)"),
    (errors.ServerNotStarted(), "the app failed to start; see the log above"),
    (
        errors.ServerNotStarted("127.0.0.1", 8000),
        "the server on 127.0.0.1:8000 did not start in time",
    ),
    (
        errors.ServerNotStarted("127.0.0.1", 8000, OSError("boom")),
        "the server on 127.0.0.1:8000 did not start: OSError: boom",
    ),
    (
        errors.ServerBlocked(8000),
        "the server on port 8000 did not stop: its event loop is blocked, most likely by an "
        "`async def main` calling blocking code (time.sleep, a sync client). It stops, and frees "
        "the port, once that call returns.",
    ),
]


@pytest.mark.parametrize(("error", "message"), MESSAGES, ids=lambda v: type(v).__name__)
def test_each_message_is_the_one_users_know(error: Exception, message: str) -> None:
    assert str(error) == message
