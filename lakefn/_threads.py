"""Threads for sync functions: a pool whose threads never hold up the process's exit, and a
per-function gate that bounds how many copies of one function run at once.

`concurrent.futures.ThreadPoolExecutor` joins its workers at interpreter exit, so one sync
function stuck in `time.sleep(3600)` would keep a stopped server alive. Functions are user
code; on shutdown we abandon them instead, and these daemon workers let the process go.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("lakefn")

#: threads still running a call that timed out, past which no more are started for them
MAX_ABANDONED = 64

_PENDING, _RUNNING, _CANCELLED, _FINISHED = range(4)


class Job:
    """One call handed to the pool: far lighter than a `concurrent.futures.Future` (no
    condition, no callback list), since the sync HTTP path pays for it on every request.

    `done(result, exception)` runs on the worker thread once the call ends, whatever it
    raised; never for a job cancelled before it started.
    """

    __slots__ = ("fn", "args", "done", "_state", "_lock", "_abandoned")

    def __init__(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        done: Callable[[Any, BaseException | None], None],
    ) -> None:
        self.fn = fn
        self.args = args
        self.done = done
        self._state = _PENDING
        self._lock = threading.Lock()  # the worker and a giving-up caller race for the job
        self._abandoned = False

    def cancel(self) -> bool:
        """Not started yet: it never will be (True). Running or ended: False."""
        with self._lock:
            if self._state == _PENDING:
                self._state = _CANCELLED
            return self._state == _CANCELLED


class DaemonThreadPool:
    def __init__(
        self, max_workers: int = 40, name: str = "lakefn-fn", max_abandoned: int = MAX_ABANDONED
    ) -> None:
        self._max_workers = max_workers
        self.max_abandoned = max_abandoned
        self._name = name
        self._queue: queue.SimpleQueue[Job | None] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        # One token per idle worker. A deque's append and pop are atomic: no lock and no
        # condition on the loop thread, which a Semaphore would take per call.
        self._idle: deque[None] = deque()
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

    def run(
        self,
        fn: Callable[..., Any],
        args: tuple[Any, ...],
        done: Callable[[Any, BaseException | None], None],
    ) -> Job:
        """Call `fn(*args)` on a worker; `done(result, exception)` follows on that thread."""
        if self._shutdown:
            raise RuntimeError("cannot submit after shutdown")
        job = Job(fn, args, done)
        self._queue.put(job)
        try:
            self._idle.pop()
        except IndexError:
            self._grow()
        return job

    def abandon(self, job: Job) -> None:
        """The caller stopped waiting for `job` (a timeout). Not started yet: it never will
        be. Running: while it runs on, its thread does not count against `max_workers`, up to
        `max_abandoned` such threads (past that they count again, so the total stays bounded)."""
        with job._lock:
            if job._state == _PENDING:
                job._state = _CANCELLED
                return
            if job._state != _RUNNING:
                return  # it ended meanwhile
            job._abandoned = True
            with self._lock:  # inside the job's lock: the worker cannot count it back first
                self.abandoned += 1
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
            job = self._queue.get()
            if job is None:
                return
            with job._lock:
                start = job._state == _PENDING
                if start:
                    job._state = _RUNNING
            if start:
                result: Any = None
                error: BaseException | None = None
                try:
                    result = job.fn(*job.args)
                except BaseException as exc:  # noqa: BLE001 - handed to the awaiting side
                    error = exc
                with job._lock:
                    job._state = _FINISHED
                    abandoned = job._abandoned
                if abandoned:
                    with self._lock:
                        self.abandoned -= 1
                try:
                    job.done(result, error)
                except BaseException:  # noqa: BLE001 - the worker must live on
                    logger.exception("lakefn: a worker's completion callback failed")
                del result, error
            del job
            self._idle.append(None)

    def release_idle(self, wait: float = 1.0) -> None:
        """End the workers idle now (a stopped server keeps no thread); more start on demand.
        Waits up to `wait` seconds for them to be gone."""
        with self._lock:
            threads = list(self._threads)
        ending = 0
        while True:
            try:
                self._idle.pop()
            except IndexError:
                break
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

    def try_acquire(self) -> bool:
        """A slot at once, if one is free and nobody waits (the usual case: no coroutine to
        make and await); else False, and `acquire` queues."""
        if self.limit is None:
            return True
        with self._lock:
            if self.running < self.limit and not self._waiters:
                self.running += 1
                return True
        return False

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
        while True:
            with self._lock:
                if not self._waiters:
                    self.running -= 1
                    return
                loop, waiter = self._waiters.popleft()
            # Outside the lock (waking a loop is a system call): the slot is in transit to
            # the waiter, `running` stays as it is, and newcomers queue meanwhile.
            try:
                loop.call_soon_threadsafe(self._hand_over, waiter)
                return
            except RuntimeError:
                continue  # its loop is closed: nobody is waiting there any more

    def _hand_over(self, waiter: asyncio.Future[None]) -> None:
        if waiter.done():  # the waiter gave up between release and now
            self.release()
        else:
            waiter.set_result(None)
