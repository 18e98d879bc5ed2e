"""The notebook's plain-Python API: one project, its background server, and what it ran.

Every `%lakefn` subcommand calls one method here, so a script, a test or a cell without the
magics does the same with `lakefn.notebook.load(...)`, `serve()`, `invoke(...)` and so on.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import logging
import os
import secrets
import threading
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from .._defaults import ALL_INTERFACES, DEFAULT_PORT, FUNCTION_NAME, LOCAL_HOST
from .._exceptions import BadFunctionName, FunctionNotFound, NoProject, NotATcpPort, WatchedByServer
from .._json_input import simulated_commit
from .._loopthread import LoopThread
from ..events import SimulatedCommit
from .links import build_link
from .views import InvocationLog, InvocationView, LogCapture, ServerStatus

if TYPE_CHECKING:
    from datetime import datetime

    from ..abc import TableSource
    from ..jobs.run import RunReport
    from ..journal import Invocation
    from ..runtime import Runtime
    from .background import BackgroundServer
    from .panel import Panel

T = TypeVar("T")
Listener = Callable[[str], None]

DEFAULT_HOST = LOCAL_HOST
#: seconds between the "tick" notifications (panel lag refresh) while serving
TICK_SECONDS = 2.0


class Session:
    """A project loaded in a notebook: serve it, call its functions, watch what it does.

    `user_ns` is the notebook's namespace; in a Databricks notebook its `spark` becomes the
    table source.
    """

    def __init__(
        self,
        user_ns: Mapping[str, Any] | None = None,
        *,
        host: str | None = None,
        port: int = DEFAULT_PORT,
    ) -> None:
        self.user_ns: Mapping[str, Any] = user_ns if user_ns is not None else {}
        self.default_host = host
        self.default_port = port
        self.runtime: Runtime | None = None
        self.server: BackgroundServer | None = None
        self.log_capture = LogCapture()
        self._actions: LoopThread | None = None
        self._listeners: list[Listener] = []
        self._lock = threading.RLock()
        self._functions_level: int | None = None

    # -- the project -----------------------------------------------------------------------

    def load(
        self, path: str | os.PathLike[str] | None = None, *, table_source: TableSource | None = None
    ) -> Runtime:
        """Load app.yaml (a file or its folder; default: the working directory's) and its
        functions. A project loaded before is stopped and closed first."""
        from ..project import load_project
        from ..runtime import Runtime

        project = load_project(path)  # a bad app.yaml is refused before anything is stopped
        table_source = table_source or self._notebook_spark_source(project.config.tables.source)
        runtime = Runtime(project, table_source=table_source)
        with self._lock:
            self._close_runtime()
            self.runtime = runtime
            self._capture_logs()
        self._notify("load")
        return runtime

    def _notebook_spark_source(self, configured: str) -> TableSource | None:
        """In a Databricks notebook, the notebook's own `spark` reads table history."""
        from ..sources.selection import in_databricks_notebook

        spark = self.user_ns.get("spark")
        if configured not in ("auto", "spark") or spark is None or not in_databricks_notebook():
            return None
        from ..sources.spark import SparkSource

        return SparkSource(spark)

    def require(self) -> Runtime:
        if self.runtime is None:
            raise NoProject()
        return self.runtime

    # -- the server ------------------------------------------------------------------------

    def serve(self, host: str | None = None, port: int | None = None) -> ServerStatus:
        """Start the server and scheduler on a background thread; returns once it answers.
        Serving already on the same address is not an error; another address restarts it."""
        from ..sources.selection import in_databricks_notebook
        from .background import BackgroundServer

        runtime = self.require()
        # The driver proxy connects from outside the loopback interface.
        default_host = ALL_INTERFACES if in_databricks_notebook() else DEFAULT_HOST
        host = host or self.default_host or default_host
        port = _check_port(self.default_port if port is None else port)
        with self._lock:
            if self.server is not None and self.server.running:
                if (self.server.host, self.server.port) == (host, port) or port == 0:
                    return self.status()
                self._stop_server()
            server = BackgroundServer(runtime, host, port)
            server.start()
            self.server = server
            self._start_ticks(server)
        self._notify("serve")
        return self.status()

    def stop(self) -> ServerStatus:
        """Stop the server: the port is free and no lakefn thread is left when this returns
        (but one still running a function, which ends when the function returns)."""
        with self._lock:
            stopped = self._stop_server()
            if self._actions is not None:
                self._actions.stop()
                self._actions = None
        if stopped:
            self._notify("stop")
        return self.status()

    def _stop_server(self) -> bool:
        server, self.server = self.server, None
        if server is None:
            return False
        server.stop()
        if self.runtime is not None:
            self.runtime.invoker.pool.release_idle()  # started again on the next call
            self.runtime.journal.release_idle()
        return True

    def _start_ticks(self, server: BackgroundServer) -> None:
        async def tick() -> None:
            while True:
                await asyncio.sleep(TICK_SECONDS)
                self._notify("tick")

        assert server.thread is not None
        # Lives on the server's loop, so it ends with it: no thread of its own to clean up.
        server.thread.submit(tick())

    @property
    def serving(self) -> bool:
        return self.server is not None and self.server.running

    def status(self) -> ServerStatus:
        runtime = self.runtime
        server = self.server
        if runtime is None:
            return ServerStatus(running=False)
        project = _shown_path(runtime.project.path)
        functions = len(runtime.registry.names)
        if server is None or not server.running:
            return ServerStatus(running=False, project=project, functions=functions)
        link = build_link(server.host, server.port, user_ns=self.user_ns)
        if link.kind != "local":
            link = replace(link, token=_admin_token())
        return ServerStatus(True, project, functions, server.host, server.port, link)

    # -- doing things ------------------------------------------------------------------------

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `coro` on the server's loop when serving, else on a loop thread of the session;
        never on the notebook's own loop, which is busy running the cell."""
        return self._loop_thread().submit(coro)

    def _run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run `coro` as `submit` does and wait for its result (see `run_on`)."""
        return self._loop_thread().run(coro)

    def _loop_thread(self) -> LoopThread:
        server = self.server
        thread = server.thread if server is not None and server.running else None
        if thread is not None:
            return thread
        with self._lock:
            if self._actions is None or not self._actions.running:
                self._actions = LoopThread("lakefn-notebook").start()
            return self._actions

    def invoke(self, name: str, payload: Any = None) -> Invocation:
        """Run one function once: `payload` is the JSON body of an HTTP function; a timer
        function fires now; a table function gets a simulated commit."""
        runtime = self.require()
        return self._run(runtime.invoke(name, payload))

    def simulate(
        self,
        name: str,
        operation: SimulatedCommit | str = "WRITE",
        *,
        rows: list[dict[str, Any]] | None = None,
        version: int | None = None,
        replay_from: int | None = None,
    ) -> Invocation:
        """Hand a table function a commit of `operation` with `rows` as its changes, at
        `version` (or a `SimulatedCommit`); or real history from `replay_from` on."""
        commit = simulated_commit(operation, rows, version, replay_from)
        runtime = self.require()
        return self._run(runtime.simulate_table_change(name, commit))

    def run(
        self, name: str, scheduled_time: datetime | None = None, lease_wait: float | None = None
    ) -> RunReport:
        """Run a timer or table function once as its Databricks Job would (`lakefn run`): a
        table function gets every new commit after its checkpoint, which then moves."""
        from ..jobs.run import DEFAULT_LEASE_WAIT, run_function

        runtime = self.require()
        config = runtime.registry.config(name)
        # The serving watcher delivers that function's versions: a run beside it would compete.
        if self.serving and runtime.kind_of(name).uses_table and config.run_on == "app":
            raise WatchedByServer(name)
        wait = DEFAULT_LEASE_WAIT if lease_wait is None else lease_wait
        coro = run_function(runtime, name, scheduled_time=scheduled_time, lease_wait=wait)
        return self._run(coro)

    def reload(self, name: str | None = None) -> list[str]:
        """Re-import one function (or all) from its file; serving goes on meanwhile."""
        names = self.require().reload(name)
        self._notify("reload")
        return names

    def write_function(self, name: str, source: str) -> tuple[Path, bool]:
        """Write `source` to functions/NAME_function.py; reload it if app.yaml declares it.
        Returns the path and whether the function was reloaded."""
        from ..functions import module_path

        runtime = self.require()
        if not FUNCTION_NAME.fullmatch(name):
            raise BadFunctionName(name)
        path = module_path(runtime.project.functions_dir, name)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(source if source.endswith("\n") else source + "\n", encoding="utf-8")
        try:
            runtime.registry.config(name)
        except FunctionNotFound:
            return path, False
        self.reload(name)
        return path, True

    def logs(self, n: int = 20) -> InvocationLog:
        """The last `n` invocations, newest first."""
        return InvocationLog(self.require().journal.entries(limit=n))

    def view(self, invocation: Invocation) -> InvocationView:
        """An invocation with the lines its function logged, for display."""
        return InvocationView(invocation, self.log_capture.for_invocation(invocation.id))

    def panel(self, log_lines: int = 50) -> Panel:
        """An ipywidgets control panel for the loaded project."""
        from .panel import Panel

        self.require()
        return Panel(self, log_lines=log_lines)

    # -- listeners (the panel) ---------------------------------------------------------------

    def subscribe(self, listener: Listener) -> Callable[[], None]:
        """Call `listener(event)` on load, serve, stop, reload and, while serving, every tick.
        It may run on the server's thread: it must be quick and must not print."""
        with self._lock:
            self._listeners = [*self._listeners, listener]

        def unsubscribe() -> None:
            with self._lock:
                self._listeners = [x for x in self._listeners if x is not listener]

        return unsubscribe

    def _notify(self, event: str) -> None:
        for listener in self._listeners:
            try:
                listener(event)
            except Exception:  # noqa: BLE001 - a broken panel must not break the session
                logging.getLogger("lakefn.notebook").debug("listener failed", exc_info=True)

    # -- the end ---------------------------------------------------------------------------

    def close(self) -> None:
        """Stop the server, close the project, end every thread the session started."""
        with self._lock:
            self._close_runtime()
            if self._actions is not None:
                self._actions.stop()
                self._actions = None
        self._notify("close")
        self._listeners = []

    def _close_runtime(self) -> None:
        self._stop_server()
        if self.runtime is not None:
            self.runtime.close()
            self.runtime = None
        self._release_logs()

    def _capture_logs(self) -> None:
        logging.getLogger("lakefn").addHandler(self.log_capture)
        functions = logging.getLogger("lakefn.functions")
        if self._functions_level is None:
            self._functions_level = functions.level
        # Without this, `event.log.info(...)` never reaches any handler (root is at WARNING).
        if functions.getEffectiveLevel() > logging.INFO:
            functions.setLevel(logging.INFO)

    def _release_logs(self) -> None:
        logging.getLogger("lakefn").removeHandler(self.log_capture)
        if self._functions_level is not None:
            logging.getLogger("lakefn.functions").setLevel(self._functions_level)
            self._functions_level = None


def _admin_token() -> str:
    """The admin token the console's proxied link signs in with: the user's own
    LAKEFN_ADMIN_TOKEN, else one made for this kernel (it lives as long as the kernel)."""
    from ..access import TOKEN_ENV

    token = os.environ.get(TOKEN_ENV, "").strip()
    if not token:
        token = os.environ[TOKEN_ENV] = secrets.token_urlsafe(24)
    return token


def _shown_path(path: Path) -> str:
    """Relative to the working directory when under it; else in full."""
    try:
        relative = os.path.relpath(path)
    except ValueError:  # another drive on Windows
        return str(path)
    return str(path) if relative.startswith("..") else relative


def _check_port(port: int) -> int:
    if not 0 <= port <= 65535:
        raise NotATcpPort(port)
    return port
