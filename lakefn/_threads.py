"""Threads for sync functions: a pool whose threads never hold up the process's exit, and a
per-function gate that bounds how many copies of one function run at once.

`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one sync
function stuck in `time.sleep(3600)` would keep a stopped server alive. Functions are user
code; on shutdown we abandon them instead, and these daemon workers let the process go.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor, Future
from typing import Any

#: threads still running a call that timed out, past which no more are started for them
MAX_ABANDONED = 64


class DaemonThreadPool(Executor):
    def __init__(
        self, max_workers: int = 40, name: str = "lakefn-fn", max_abandoned: int = MAX_ABANDONED
    ) -> None:
        self._max_workers = max_workers
        self.max_abandoned = max_abandoned
        self._name = name
        self._queue: queue.SimpleQueue[
            tuple[Future[Any], Callable[..., Any], tuple[Any, ...]] | None
        ] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._shutdown = False
        self._serial = 0
        self.abandoned = 0

    @property
    def max_workers(self) -> int:
        return self._max_workers

    @property
    def saturated(self) -> bool:
        """As many abandoned threads as allowed still run: start nothing more until some end."""
        return self.abandoned >= self.max_abandoned

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
        be. Running: while it runs on, its thread does not count against `max_workers`, up to
        `max_abandoned` such threads (past that they count again, so the total stays bounded)."""
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
            if self._shutdown:
                return
            self._threads = [t for t in self._threads if t.is_alive()]
            if len(self._threads) < self._max_workers + min(self.abandoned, self.max_abandoned):
                self._serial += 1
                thread = threading.Thread(
                    target=self._work, name=f"{self._name}-{self._serial - 1}", daemon=True
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

    def release_idle(self, wait: float = 1.0) -> None:
        """End the workers idle now (a stopped server keeps no thread); more start on demand.
        Waits up to `wait` seconds for them to be gone."""
        with self._lock:
            threads = list(self._threads)
        ending = 0
        while self._idle.acquire(blocking=False):
            self._queue.put(None)
            ending += 1
        deadline = time.monotonic() + wait
        while ending and time.monotonic() < deadline:
            if sum(t.is_alive() for t in threads) <= len(threads) - ending:
                break
            time.sleep(0.005)

    def shutdown(self, wait: bool = True, *, cancel_futures: bool = False) -> None:
        """Idle workers end at once; one running a function ends when the function returns."""
        with self._lock:
            self._shutdown = True
        self.release_idle(wait=1.0 if wait else 0.0)
        with self._lock:
            busy = [t for t in self._threads if t.is_alive()]
        for _ in busy:  # each takes one when its function returns (extras are never read)
            self._queue.put(None)


class ConcurrencyGate:
    """At most `limit` holders at once; up to `queue` more wait their turn, first come first
    served; past that, `acquire` refuses at once.

    Thread-safe and loop-agnostic: a sync function's slot is released from its worker thread
    when the function really ends (not when its caller gave up on it), and waiters may sit on
    different event loops (the server's, a notebook's).
    """

    def __init__(self, limit: int | None, queue: int) -> None:
        self.limit = limit
        self.queue = queue
        self.running = 0
        self._waiters: deque[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = deque()
        self._lock = threading.Lock()

    @property
    def queued(self) -> int:
        return len(self._waiters)

    async def acquire(self, timeout: float | None = None) -> bool:
        """True once a slot is held; False when the queue is full or `timeout` passed first."""
        if self.limit is None:
            return True  # unbounded: nothing to count (the HTTP path of async functions)
        with self._lock:
            if self.running < self.limit and not self._waiters:
                self.running += 1
                return True
            if len(self._waiters) >= self.queue:
                return False
            loop = asyncio.get_running_loop()
            waiter: asyncio.Future[None] = loop.create_future()
            self._waiters.append((loop, waiter))
        try:
            await asyncio.wait_for(waiter, timeout)
            return True
        except BaseException as exc:
            with self._lock:
                try:
                    self._waiters.remove((loop, waiter))
                    queued = True
                except ValueError:
                    queued = False  # a slot was handed over meanwhile
            if not queued and waiter.done() and not waiter.cancelled():
                self.release()  # handed over, but we are leaving: pass it on
            if isinstance(exc, asyncio.TimeoutError):  # not the builtin one before 3.11
                return False
            raise

    def release(self) -> None:
        if self.limit is None:
            return
        with self._lock:
            while self._waiters:
                loop, waiter = self._waiters.popleft()
                try:
                    loop.call_soon_threadsafe(self._hand_over, waiter)
                    return  # the slot passes to the waiter: `running` stays as it is
                except RuntimeError:
                    continue  # its loop is closed: nobody is waiting there any more
            self.running -= 1

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # the waiter gave up between release and now
            self.release()
        else:
            waiter.set_result(None)
