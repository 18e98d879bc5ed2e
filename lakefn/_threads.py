"""A thread pool whose threads never hold up the process's exit.

`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one sync
function stuck in `time.sleep(3600)` would keep a stopped server alive. Functions are user
code; on shutdown we abandon them instead, and these daemon workers let the process go.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any


class DaemonThreadPool(Executor):
    def __init__(self, max_workers: int = 40, name: str = "lakefn-fn") -> None:
        self._max_workers = max_workers
        self._name = name
        self._queue: queue.SimpleQueue[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._shutdown = False
        self.abandoned = 0

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        future: Future[Any] = Future()
        call = (lambda: fn(*args, **kwargs)) if kwargs else fn
        self._queue.put((future, call, () if kwargs else args))
        if not self._idle.acquire(blocking=False):
            self._grow()
        return future

    def abandon(self, future: Future[Any]) -> None:
        """The caller stopped waiting for `future` (a timeout). Not started yet: it never will
        be. Running: while it runs on, its thread does not count against `max_workers`."""
        if future.cancel():
            return
        with self._lock:
            self.abandoned += 1

        def done(_: Future[Any]) -> None:
            with self._lock:
                self.abandoned -= 1

        future.add_done_callback(done)
        if not self._queue.empty():
            self._grow()  # work queued behind the stuck thread gets a thread of its own

    def _grow(self) -> None:
        with self._lock:
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) < self._max_workers + self.abandoned:
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{len(self._threads)}", daemon=True
                )
                thread.start()
                self._threads.append(thread)

    def _work(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            future, fn, args = item
            if future.set_running_or_notify_cancel():
                try:
                    future.set_result(fn(*args))
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                    future.set_exception(exc)
            del item, future, fn, args
            self._idle.release()

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        self._shutdown = True
        for _ in self._threads:
            self._queue.put(None)
        if wait:
            for thread in self._threads:
                thread.join(timeout=0.5)
