"""The one uvicorn launcher: `ServerRun` serves an app with lakefn's protocol and graceful
shutdown on a socket bound first (so a busy port is a clear message), blocking (`lakefn serve`)
or on a loop thread (the notebook's `BackgroundServer`, the test harness).
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import errno
import logging
import os
import socket
import sys
import time
from pathlib import Path
from typing import Any

from ._defaults import GRACEFUL_SHUTDOWN
from ._exceptions import CannotListen, PortInUse, ServerBlocked, ServerError, ServerNotStarted
from ._limits import PROTOCOL
from ._loopthread import LoopThread

#: what every uvicorn lakefn starts is told, unless a caller says otherwise
SETTINGS: dict[str, Any] = {"http": PROTOCOL, "timeout_graceful_shutdown": GRACEFUL_SHUTDOWN}
#: seconds `ServerRun.start` waits for the app's startup (timers, table watchers) by default
STARTUP_TIMEOUT = 30.0


class ServerRun:
    """One run of uvicorn serving `app` on `sock`; `options` are uvicorn.Config's, over
    `SETTINGS` and lifespan on. `run()` serves on this thread until the server exits; `start()`
    serves on a loop thread and returns once it answers, and `stop()` ends it.

    On a thread uvicorn installs no signal handlers (it does so only on the main thread): it
    is stopped through `should_exit`. The kernel's or caller's own loop is never touched.
    """

    def __init__(self, app: Any, sock: socket.socket, **options: Any) -> None:
        import uvicorn

        self.sock = sock
        self.host, self.port = sock.getsockname()[:2]
        self.server = uvicorn.Server(
            uvicorn.Config(app, **{**SETTINGS, "lifespan": "on", **options})
        )
        self.thread: LoopThread | None = None
        self._own_thread = False
        self._done: concurrent.futures.Future[None] | None = None

    def run(self) -> bool:
        """Serve here until the server exits (Ctrl-C, SIGTERM); whether it ever started."""
        self.server.run(sockets=[self.sock])
        return bool(self.server.started)

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done() and bool(self.server.started)

    def start(self, thread: LoopThread | None = None, timeout: float = STARTUP_TIMEOUT) -> None:
        """Serve on `thread`'s loop (shared with its other work), else on a loop thread of
        this run's own that ends with it; ServerNotStarted when it does not answer in time."""
        self._own_thread = thread is None
        self.thread = thread or LoopThread(f"lakefn-server-{self.port}").start()
        self._done = self.thread.submit(self._serve())
        deadline = time.monotonic() + timeout
        while not self.server.started:
            if self._done.done() or time.monotonic() > deadline:
                error = self._done.exception() if self._done.done() else None
                self.stop(timeout=1.0)
                if isinstance(error, ServerError):
                    raise error
                raise ServerNotStarted(self.host, self.port, error)
            time.sleep(0.002)

    async def _serve(self) -> None:
        try:
            await serve_in_loop(self.server, self.sock)
        except SystemExit:
            # uvicorn exits the process when the app's startup fails; here that would only
            # kill the loop, so it becomes an error the caller sees.
            raise ServerNotStarted() from None

    def stop(self, timeout: float = GRACEFUL_SHUTDOWN + 3) -> None:
        """Ask uvicorn to exit, wait (bounded) for it to close the socket, end its own thread.

        A loop blocked by a function cannot be stopped from outside: that is ServerBlocked,
        not a quiet success with the port still taken."""
        self.server.should_exit = True
        done, self._done = self._done, None
        if done is None:
            self.sock.close()  # never served
            return
        try:
            done.result(timeout)
        except concurrent.futures.TimeoutError:
            self.server.force_exit = True
            with contextlib.suppress(Exception):  # stopping anyway
                done.result(1.0)
        except Exception:  # noqa: BLE001 - a failed run is over all the same
            pass
        thread, self.thread = self.thread, None
        if thread is None or not self._own_thread:
            return
        worker = thread.thread
        thread.stop(timeout=1.0)
        if worker is not None and worker.is_alive():
            raise ServerBlocked(self.port)


async def serve_in_loop(server: Any, sock: socket.socket) -> None:
    """Run a uvicorn server on the current loop until it exits, leaving no connection open.

    Past its graceful timeout uvicorn cancels the requests still running but leaves their
    connections open; on a loop that then stops (a notebook's, a test's) their sockets would be
    left to the garbage collector. Closing them here ends each such request for its client."""
    try:
        await server.serve(sockets=[sock])
    finally:
        sock.close()
        for connection in list(server.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None and not transport.is_closing():
                transport.close()


def bind_socket(host: str, port: int) -> socket.socket:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise PortInUse(host, port) from None
        raise CannotListen(host, port, exc.strerror) from None
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def serve(
    app_path: str | None, *, host: str, port: int, reload: bool = False, log_level: str = "info"
) -> int:
    from .project import find_app_yaml

    logging.basicConfig(
        level=log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("apscheduler").setLevel(
        max(logging.WARNING, logging.getLevelName(log_level.upper()))
    )
    app_yaml = find_app_yaml(app_path)
    if reload:
        return _serve_reloading(app_yaml, host, port, log_level)
    return _serve_once(app_yaml, host, port, log_level)


def _serve_reloading(app_yaml: Path, host: str, port: int, log_level: str) -> int:
    import uvicorn

    from .project import load_functions, load_project

    # Reload needs an import string: the child process rebuilds the app from this path.
    load_functions(load_project(app_yaml))  # refuse a bad project before anything starts
    bind_socket(host, port).close()  # a busy port: our message, not uvicorn's [Errno 98]
    os.environ["LAKEFN_APP_YAML"] = str(app_yaml)
    uvicorn.run(
        "lakefn._serve:app_from_env",
        factory=True,
        host=host,
        port=port,
        reload=True,
        reload_dirs=[str(app_yaml.parent)],
        reload_includes=["*.py", "*.yaml"],
        log_level=log_level,
        **SETTINGS,
    )
    return 0


def _serve_once(app_yaml: Path, host: str, port: int, log_level: str) -> int:
    from .server import create_app

    app = create_app(app_yaml)  # a bad app.yaml is refused here, before the port is taken
    try:  # the runtime is closed however this ends, a busy port included
        run = ServerRun(app, bind_socket(host, port), log_level=log_level)
        shown = "localhost" if host in ("127.0.0.1", "0.0.0.0") else host
        print(
            f"lakefn serving {app_yaml} on http://{shown}:{run.port}", file=sys.stderr, flush=True
        )
        return 0 if run.run() else 1
    finally:
        app.state.runtime.close()


def app_from_env():  # type: ignore[no-untyped-def]
    from .server import create_app

    return create_app(os.environ["LAKEFN_APP_YAML"])
