"""uvicorn on a thread of its own, so a notebook cell returns while the server keeps serving.

The server gets a fresh event loop on a `LoopThread`; the kernel's loop (busy running cells,
possibly patched by nest_asyncio) is never touched. uvicorn installs signal handlers only on
the main thread, so none are installed here; it is stopped through `should_exit`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import time
from typing import TYPE_CHECKING, Any

from .._defaults import GRACEFUL_SHUTDOWN
from .._exceptions import ServerBlocked, ServerError, ServerNotStarted
from .._limits import PROTOCOL
from .._loopthread import LoopThread
from .._serve import bind_socket, serve_in_loop
from .links import proxy_root_path

if TYPE_CHECKING:
    import socket

    from ..runtime import Runtime

#: seconds serve waits for the app's startup (timers, table watchers) before giving up
STARTUP_TIMEOUT = 30.0


class BackgroundServer:
    """One run of the project's server: `start()` returns once it answers; `stop()` ends it."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._thread: LoopThread | None = None
        self._server: Any = None  # uvicorn.Server
        self._done: concurrent.futures.Future[None] | None = None

    @property
    def running(self) -> bool:
        return self._done is not None and not self._done.done() and bool(self._server.started)

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        return self._thread.loop if self._thread is not None else None

    def start(self) -> None:
        import uvicorn

        from ..server import create_app

        # Bind first, on this thread: a busy port is a ServerError here, before any thread.
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]  # port 0 means "any free one"
        config = uvicorn.Config(
            create_app(runtime=self.runtime),
            lifespan="on",
            log_config=None,  # leave the notebook's logging alone
            access_log=False,
            ws="none",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN,
            # Behind a notebook proxy, /docs must fetch /openapi.json through it.
            root_path=proxy_root_path(self.host, self.port),
            http=PROTOCOL,
        )
        self._server = uvicorn.Server(config)
        self._thread = LoopThread(f"lakefn-server-{self.port}").start()
        assert self._thread.loop is not None
        self._done = asyncio.run_coroutine_threadsafe(self._serve(sock), self._thread.loop)
        self._wait_started()

    async def _serve(self, sock: socket.socket) -> None:
        try:
            await serve_in_loop(self._server, sock)
        except SystemExit:
            # uvicorn exits the process when the app's startup fails; here that would only
            # kill the loop, so it becomes an error the caller sees.
            raise ServerNotStarted() from None

    def _wait_started(self) -> None:
        assert self._done is not None
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not self._server.started:
            if self._done.done() or time.monotonic() > deadline:
                error = self._done.exception() if self._done.done() else None
                self._shutdown_thread()
                if isinstance(error, ServerError):
                    raise error
                raise ServerNotStarted(self.host, self.port, error)
            time.sleep(0.002)

    def stop(self, timeout: float = GRACEFUL_SHUTDOWN + 3) -> None:
        """Ask uvicorn to exit, wait (bounded) for it to close the socket, end the thread.

        A loop blocked by a function cannot be stopped from outside: that is a ServerError,
        not a quiet success with the port still taken."""
        thread = self._thread.thread if self._thread is not None else None
        if self._server is not None:
            self._server.should_exit = True
        if self._done is not None:
            try:
                self._done.result(timeout)
            except concurrent.futures.TimeoutError:
                self._server.force_exit = True
                _quietly(self._done, 1.0)
            except Exception:  # noqa: BLE001 - a failed run is over all the same
                pass
        self._shutdown_thread()
        if thread is not None and thread.is_alive():
            raise ServerBlocked(self.port)

    def _shutdown_thread(self) -> None:
        if self._thread is not None:
            thread = self._thread.thread
            self._thread.stop(timeout=1.0)
            if thread is not None and thread is not threading.current_thread():
                thread.join(1.0)
            self._thread = None
        self._done = None


def _quietly(future: concurrent.futures.Future[None], timeout: float) -> None:
    with contextlib.suppress(Exception):  # stopping anyway
        future.result(timeout)
