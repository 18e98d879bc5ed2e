"""Testing lakefn functions: the harness behind the `lakefn` pytest fixture, and fakes.

The fixture (`lakefn.pytest_plugin`) hands each test a `LakefnHarness`; the same class works
without pytest as a context manager:

    with LakefnHarness("app.yaml", tmp_dir) as lakefn:
        assert lakefn.invoke("example_http", {"name": "Ada"})["hello"] == "Ada"

Everything is real: the project's app.yaml and function modules, the FastAPI app served by
uvicorn on loopback, Delta tables on disk, checkpoints in SQLite. Only where they live is
private to the harness: a temporary local catalog and state file, never the project's
`.lakefn/`. Time is a `FakeClock` the test moves by hand.

Running a function (`invoke`, `fire_timer`, `simulate_table_change`, `check`) returns what the
function returned. A function that fails raises `FunctionFailed`, naming the function and the
invocation id, with the function's own exception chained (pytest shows its traceback); the
record of every run (status, error, duration, attempt) is in `journal` and `last_invocation`.
An HTTP function that raises `HttpError` below 500 gave an answer, not a failure: that
`HttpError` is raised as is, so a test can expect it.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Coroutine
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from ._defaults import LOCAL_HOST, LOCAL_ROOT_ENV
from ._exceptions import (
    FunctionFailed,
    HarnessError,
    HttpError,
    LakefnError,
    ServerError,
    TableCheckFailed,
    WrongTrigger,
)
from ._json_input import simulated_commit
from ._local_tables import LocalTables
from ._loopthread import LoopThread
from .abc import Clock
from .sources.recorded import RecordedOverlay, RecordedSource

if TYPE_CHECKING:
    import types

    import httpx
    from fastapi import FastAPI

    from ._serve import ServerRun
    from .events import Commit
    from .journal import Invocation
    from .project import Project
    from .runtime import Runtime

__all__ = ["FakeClock", "FunctionFailed", "LakefnHarness", "LocalTables", "RecordedSource"]

T = TypeVar("T")

#: seconds a run of a function (or a server start) may take before the test is told so
DEFAULT_TIMEOUT = 60.0


class FakeClock(Clock):
    """A clock that stands still until a test moves it. Naive datetimes are taken as UTC.

    It starts at `start`, or at the real time it was made (frozen from then on).
    """

    def __init__(self, start: datetime | None = None) -> None:
        self._now = _aware(start or datetime.now(timezone.utc))
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            return self._now

    def set(self, when: datetime) -> datetime:
        with self._lock:
            self._now = _aware(when)
            return self._now

    def advance(self, delta: timedelta | float = 0.0, **units: float) -> datetime:
        """Move forward by `delta` (a timedelta or seconds) plus `units` (`minutes=5`, ...)."""
        step = delta if isinstance(delta, timedelta) else timedelta(seconds=delta)
        step += timedelta(**units)
        with self._lock:
            self._now += step
            return self._now


def _aware(when: datetime) -> datetime:
    return when if when.tzinfo is not None else when.replace(tzinfo=timezone.utc)


class _Env:
    """Environment variables set for one harness, put back as they were on `restore`."""

    def __init__(self) -> None:
        self._saved: dict[str, str | None] = {}

    def set(self, name: str, value: str) -> None:
        self._saved.setdefault(name, os.environ.get(name))
        os.environ[name] = value

    def restore(self) -> None:
        for name, value in self._saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
        self._saved.clear()


class LakefnHarness:
    """One project loaded for one test, with a private state file and local catalog."""

    def __init__(
        self,
        app_yaml: str | os.PathLike[str],
        workdir: str | os.PathLike[str],
        *,
        clock: FakeClock | None = None,
        timeout: float = DEFAULT_TIMEOUT,
    ) -> None:
        from .journal import Journal
        from .project import load_project
        from .runtime import Runtime
        from .sources.local import LocalDeltaSource

        self.workdir = Path(workdir)
        self.timeout = timeout
        self.clock = clock if clock is not None else FakeClock()
        self._env = _Env()
        # Code that resolves paths from the project on its own (the function's, or lakefn's)
        # lands in the temporary folder too, never in the project's .lakefn/.
        self._env.set(LOCAL_ROOT_ENV, str(self.workdir / "catalog"))
        state = self.workdir / "state.db"
        self._env.set("LAKEFN_STATE", str(state))
        self._loop: LoopThread | None = None
        self._server: ServerRun | None = None
        self._client: httpx.Client | None = None
        self._app: FastAPI | None = None
        runtime: Runtime | None = None
        try:
            self.project: Project = load_project(app_yaml, apply_env=False)
            self._apply_env()
            # A table given a recorded history (`load_history`) is read from it instead.
            self._source = RecordedOverlay(LocalDeltaSource(self.project.local_root))
            self.tables = LocalTables(self.project.local_root)
            runtime = Runtime(
                self.project,
                table_source=self._source,
                journal=Journal(),  # in memory: a test reads what it ran, nothing else
                clock=self.clock,
            )
            # Opened now, from LAKEFN_STATE, as every runtime opens its store: on the runtime's
            # clock, so leases expire on the test's clock, the one the watcher reads.
            runtime.checkpoints  # noqa: B018 - opening it is the point
            self.runtime: Runtime = runtime
        except BaseException:
            if runtime is not None:
                runtime.close()
            self._env.restore()
            raise
        self._loop = LoopThread("lakefn-test").start()

    def _apply_env(self) -> None:
        """app.yaml's `env`, as `Project.apply_env` does, but undone when the test ends."""
        self.project.apply_env(self._env.set)

    # -- running functions ---------------------------------------------------------------

    def invoke(self, name: str, payload: Any = None) -> Any:
        """Run a function once as its trigger would and return its result: `payload` is the
        JSON body of an HTTP function; a timer fires now; a table function gets a simulated
        commit (`payload` may hold `simulate_table_change`'s arguments)."""
        return self._outcome(self.invoke_record(name, payload))

    def invoke_record(self, name: str, payload: Any = None) -> Invocation:
        """As `invoke`, but return the invocation record, failed or not."""
        return self._run(self.runtime.invoke(name, payload))

    def fire_timer(self, name: str, at: datetime | None = None) -> Any:
        """Run a timer function for the tick scheduled at `at` (default: the clock's now); the
        event is `past_due` when `at` is more than a second before `clock.now()`."""
        return self._outcome(self._run(self.runtime.fire_timer(name, at=at)))

    def simulate_table_change(
        self,
        name: str,
        operation: str = "WRITE",
        rows: list[dict[str, Any]] | None = None,
        version: int | None = None,
        replay_from: int | None = None,
    ) -> Any:
        """Hand a table function one fabricated commit of `operation`, with `rows` (its change
        rows) at `version`; or, with `replay_from`, the table's real history from that version
        on. No checkpoint moves."""
        commit = simulated_commit(operation, rows, version, replay_from)
        return self._outcome(self._run(self.runtime.simulate_table_change(name, commit)))

    def check(self, name: str) -> Any:
        """One check of the real table watcher for function `name`, now: new versions of its
        table since the checkpoint are delivered and the checkpoint moves on success.

        Returns the function's result, or None when nothing was delivered (no new versions;
        or the first check of a `start: latest` function, which records where it starts).
        A table the watcher cannot read raises `TableError`.
        """
        kind = self.runtime.registry.config(name).trigger.type  # FunctionNotFound first
        if name not in self.runtime.watcher.states:
            raise WrongTrigger(name, kind, "unity_table")
        watcher = self.runtime.watcher
        invocation = self._run(watcher.check(name))
        state = watcher.states[name]
        if invocation is None and state.error_kind is not None:
            # The watcher only logs a table it cannot read and tries again later; a test
            # that asked for this check wants to know now (a typo in a table name, say).
            raise TableCheckFailed(name, state.last_error)
        return None if invocation is None else self._outcome(invocation)

    def _outcome(self, invocation: Invocation) -> Any:
        if invocation.ok:
            if isinstance(invocation.exception, HttpError):
                raise invocation.exception
            return invocation.result
        raise FunctionFailed(invocation) from invocation.exception

    # -- what happened -------------------------------------------------------------------

    @property
    def journal(self) -> list[Invocation]:
        """Every invocation recorded so far, oldest first (retries and skips included)."""
        return list(reversed(self.runtime.journal.entries()))

    @property
    def last_invocation(self) -> Invocation:
        """The newest invocation; there must be one."""
        entries = self.runtime.journal.entries(limit=1)
        if not entries:
            raise HarnessError("nothing_invoked")
        return entries[0]

    def wait_for(self, name: str, count: int = 1, timeout: float = 10.0) -> Invocation:
        """Wait until `name` has been invoked `count` times in all (by the background
        triggers of `start()`, or over HTTP), and return its latest invocation."""
        deadline = time.monotonic() + timeout
        while True:
            done = self.runtime.journal.entries(function=name)
            if len(done) >= count:
                return done[0]
            if time.monotonic() > deadline:
                raise HarnessError(
                    "too_few", name=name, done=len(done), timeout=timeout, count=count
                )
            time.sleep(0.02)

    # -- tables ----------------------------------------------------------------------------

    @property
    def recorded(self) -> RecordedSource:
        """The recorded history: a table given commits here (`append_commit`, `load`) is read
        from it instead of the local catalog."""
        return self._source.recorded

    def load_history(self, table: str, path: str | os.PathLike[str]) -> list[Commit]:
        """Read `table` from a DESCRIBE HISTORY export (CSV from the Databricks UI, or JSON)
        from now on, instead of the local catalog; returns its commits."""
        return self._source.recorded.load(table, Path(path))

    # -- background triggers and the server -------------------------------------------------

    def start(self) -> None:
        """Run timers and table watchers in the background, as the server does. Off unless
        asked, so nothing fires that the test did not ask for."""
        self._run(self.runtime.start())

    def stop(self) -> None:
        self._run(self.runtime.stop())

    @property
    def app(self) -> FastAPI:
        """The project's FastAPI app, on this harness's runtime."""
        if self._app is None:
            from .server import create_app

            self._app = create_app(runtime=self.runtime)
        return self._app

    @property
    def url(self) -> str:
        """The base URL of the app, served by uvicorn on loopback (started on first use)."""
        if self._server is None:
            self._server = self._serve()
        return f"http://{self._server.host}:{self._server.port}"

    @property
    def client(self) -> httpx.Client:
        """An `httpx.Client` on the served app; relative URLs such as "/run-example" work."""
        if self._client is None:
            import httpx

            # trust_env=False: a proxy configured in the environment must not see loopback calls.
            self._client = httpx.Client(base_url=self.url, timeout=self.timeout, trust_env=False)
        return self._client

    def _serve(self) -> ServerRun:
        from ._serve import ServerRun, bind_socket

        # lifespan off: the background triggers run only after `start()`. log_config=None
        # leaves logging as pytest set it up, so uvicorn's records reach caplog.
        run = ServerRun(
            self.app,
            bind_socket(LOCAL_HOST, 0),
            lifespan="off",
            log_config=None,
            timeout_graceful_shutdown=1,
        )
        try:  # on the harness's loop, where `start()` runs the triggers too
            run.start(self._running_thread(), timeout=self.timeout)
        except ServerError as exc:
            raise HarnessError("no_server", host=LOCAL_HOST) from exc
        return run

    def _stop_server(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.stop(timeout=5)

    # -- lifecycle -------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the server and background triggers and release every thread and file."""
        try:
            try:
                if self._client is not None:
                    self._client.close()
                    self._client = None
                self._stop_server()
                if self._loop is not None and self.runtime.started:
                    self._run(self.runtime.stop())
            finally:  # a stop that failed still leaves files and connections to release
                self.runtime.close()
        finally:
            self._stop_loop()
            self._env.restore()

    def _stop_loop(self) -> None:
        loop, self._loop = self._loop, None
        if loop is None or loop.loop is None:
            return
        # The loop's default executor holds the threads that ran table reads outside
        # `start()`; shut it down so no idle thread outlives the test.
        try:
            loop.run(loop.loop.shutdown_default_executor(), timeout=5)
        finally:
            loop.stop()

    def __enter__(self) -> LakefnHarness:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: types.TracebackType | None,
    ) -> None:
        self.close()

    # -- plumbing --------------------------------------------------------------------------

    def _running_thread(self) -> LoopThread:
        if self._loop is None or not self._loop.running:
            raise HarnessError("closed")
        return self._loop

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        try:
            thread = self._running_thread()
        except LakefnError:
            coro.close()  # never run: close it so Python does not warn it was never awaited
            raise
        try:
            return thread.run(coro, self.timeout)
        except TimeoutError:
            raise HarnessError("gave_up", timeout=self.timeout) from None
