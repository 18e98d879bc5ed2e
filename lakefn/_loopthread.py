"""An asyncio event loop on a thread of its own.

The notebook runs the server here, and the synchronous API (`Runtime.run_sync`, the notebook
session, the pytest fixture, the CLI) runs coroutines here through `run_on`. It never touches the
caller's loop, so it works the same in a Jupyter kernel whose loop is already running, with or
without nest_asyncio.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    def __init__(self, name: str = "lakefn-loop") -> None:
        self._name = name
        self._ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self.thread: threading.Thread | None = None

    def start(self) -> LoopThread:
        if self.thread is not None and self.thread.is_alive():
            return self
        self._ready.clear()
        self.thread = threading.Thread(target=self._main, name=self._name, daemon=True)
        self.thread.start()
        self._ready.wait()
        return self

    def _main(self) -> None:
        # A fresh loop from the default policy: nest_asyncio patches the loop *class*'s
        # run methods, which is harmless to a loop that is only ever run here.
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        self.loop = loop
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            try:
                pending = [t for t in asyncio.all_tasks(loop) if not t.done()]
                for task in pending:
                    task.cancel()
                if pending:
                    loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
                loop.run_until_complete(loop.shutdown_asyncgens())
            finally:
                loop.close()

    @property
    def running(self) -> bool:
        return self.thread is not None and self.thread.is_alive()

    def submit(self, coro: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        """Start `coro` on the loop thread; returns at once with a thread-safe future."""
        return asyncio.run_coroutine_threadsafe(coro, self._loop_for(coro))

    def run(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run `coro` on the loop thread and wait for its result (see `run_on`)."""
        return run_on(self._loop_for(coro), coro, timeout)

    def _loop_for(self, coro: Coroutine[Any, Any, Any]) -> asyncio.AbstractEventLoop:
        if self.loop is None or not self.running:
            coro.close()  # never run: close it so Python does not warn it was never awaited
            raise LoopNotRunning()
        return self.loop

    def stop(self, timeout: float = 5.0) -> None:
        if self.loop is not None and self.running:
            self.loop.call_soon_threadsafe(self.loop.stop)
        if self.thread is not None:
            self.thread.join(timeout)
        self.thread = None
        self.loop = None


class LoopNotRunning(RuntimeError):
    """The loop thread was stopped (or never started): nothing can run on it."""

    def __init__(self) -> None:
        super().__init__("the loop thread is not running")


def run_on(
    loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T], timeout: float | None
) -> T:
    """Run `coro` on `loop`, running on another thread, and wait for its result here.

    The one way lakefn's synchronous API runs a coroutine. The caller's own loop is never
    used: in a notebook it is busy running the cell (patched by nest_asyncio or not), and
    waiting on it from itself would deadlock. Past `timeout` seconds the coroutine is
    cancelled and TimeoutError raised; a KeyboardInterrupt leaves it running, as a server's
    request would go on.
    """
    if running_here(loop):
        coro.close()
        raise RuntimeError("cannot wait on the running loop from itself: it would deadlock")
    future = asyncio.run_coroutine_threadsafe(coro, loop)
    try:
        return future.result(timeout)
    except concurrent.futures.TimeoutError:
        future.cancel()
        # The builtin TimeoutError: on Python 3.10 concurrent.futures has a class of its own,
        # which an `except TimeoutError` would miss.
        raise TimeoutError(f"gave up waiting after {timeout} s") from None


def running_here(loop: asyncio.AbstractEventLoop) -> bool:
    """Whether `loop` is the one running on the caller's thread (waiting on it would hang)."""
    try:
        return asyncio.get_running_loop() is loop
    except RuntimeError:
        return False
