"""The notebook's server: the project's app served by uvicorn on a thread of its own, so a cell
returns while the server keeps serving (`%lakefn serve`). How it is served is `ServerRun`'s."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._defaults import GRACEFUL_SHUTDOWN
from .._serve import ServerRun, bind_socket
from .links import proxy_root_path

if TYPE_CHECKING:
    import asyncio

    from .._loopthread import LoopThread
    from ..runtime import Runtime


class BackgroundServer:
    """One run of the project's server: `start()` returns once it answers; `stop()` ends it."""

    def __init__(self, runtime: Runtime, host: str, port: int) -> None:
        self.runtime = runtime
        self.host = host
        self.port = port
        self._run: ServerRun | None = None

    @property
    def running(self) -> bool:
        return self._run is not None and self._run.running

    @property
    def thread(self) -> LoopThread | None:
        """The loop thread it serves on (where the session runs its actions meanwhile)."""
        return self._run.thread if self._run is not None else None

    @property
    def loop(self) -> asyncio.AbstractEventLoop | None:
        thread = self.thread
        return thread.loop if thread is not None else None

    def start(self) -> None:
        from ..server import create_app

        app = create_app(runtime=self.runtime)
        # Bound on this thread: a busy port is a ServerError here, before any thread starts.
        sock = bind_socket(self.host, self.port)
        self.port = sock.getsockname()[1]  # port 0 means "any free one"
        self._run = ServerRun(
            app,
            sock,
            log_config=None,  # leave the notebook's logging alone
            access_log=False,
            ws="none",
            # Behind a notebook proxy, /docs must fetch /openapi.json through it.
            root_path=proxy_root_path(self.host, self.port),
        )
        try:
            self._run.start()
        except BaseException:
            self._run = None
            raise

    def stop(self, timeout: float = GRACEFUL_SHUTDOWN + 3) -> None:
        """Ask uvicorn to exit and wait (bounded) for the port to be free; ServerBlocked when a
        function blocks the loop so that it cannot be stopped from outside."""
        run, self._run = self._run, None
        if run is not None:
            run.stop(timeout)
