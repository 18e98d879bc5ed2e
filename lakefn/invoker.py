"""One path for every invocation, whatever the trigger.

It builds nothing trigger-specific: callers hand it an event factory (called once per attempt),
and it runs the function — sync ones on worker threads, async ones on the loop — applying
`timeout` and `retry`, binding a logger to the invocation id and recording the outcome.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from typing import Any

from ._exceptions import HttpError, InvocationTimeout, Overloaded
from ._outcomes import EXPIRED, Escaped, Inbox, being_cancelled, contained, expire
from ._threads import ConcurrencyGate, DaemonThreadPool, Job
from .events import Event, HttpEvent
from .functions import FunctionRegistry, LoadedFunction
from .journal import Invocation, Journal

logger = logging.getLogger("lakefn")

#: threads for sync functions; by default one function may use half of them
MAX_WORKERS = 40
#: calls of one function that may wait for a slot, per slot of its `max_concurrency`
QUEUE_PER_SLOT = 4


_ID_PREFIX = os.urandom(4).hex()
_ID_COUNTER = itertools.count(1)


def _new_id() -> str:
    """16 hex digits, unique across processes (random prefix) and in one (counter); cheaper
    than a uuid on the HTTP path."""
    return f"{_ID_PREFIX}{next(_ID_COUNTER) & 0xFFFFFFFF:08x}"


class Invoker:
    def __init__(
        self,
        registry: FunctionRegistry,
        journal: Journal,
        *,
        max_workers: int = MAX_WORKERS,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.pool = DaemonThreadPool(max_workers)
        self._sleep = sleep
        self._gates: dict[tuple[str, bool], ConcurrencyGate] = {}
        self._inbox = Inbox(None)

    async def invoke(
        self,
        name: str,
        make_event: Callable[[], Event],
        *,
        retry: bool = True,
        detail: dict[str, Any] | None = None,
        answer: Callable[[Invocation], Any] | None = None,
    ) -> Invocation:
        """Run `name` until it succeeds or its attempts run out; return the last invocation.

        `answer` turns each attempt into its trigger's answer (kept as `invocation.answer`)
        before the journal records it, and may still fail it (a result that cannot be sent).

        From an HTTP function, `HttpError` below 500 is an answer, not a failure: it ends the
        invocation at once, unretried. From a timer or table function it is a failure like any.
        """
        function = self.registry.get(name)
        policy = function.config.retry
        attempts = policy.max_attempts if retry else 1
        invocation_id = _new_id()
        for attempt in range(1, attempts + 1):
            event = make_event()
            invocation, final = await self._attempt(
                function, event, invocation_id, attempt, detail, answer
            )
            if invocation.ok or final:
                return invocation
            invocation.answer = None  # the journal keeps the attempt, not its answer
            if attempt < attempts:
                delay = policy.delay(attempt)
                logger.warning(
                    "[%s] %s failed (attempt %d of %d): %s; retrying in %.3g s",
                    invocation_id,
                    name,
                    attempt,
                    attempts,
                    invocation.error,
                    delay,
                )
                await self._sleep(delay)
        return invocation

    async def _attempt(
        self,
        function: LoadedFunction,
        event: Event,
        invocation_id: str,
        attempt: int,
        detail: dict[str, Any] | None,
        answer: Callable[[Invocation], Any] | None,
    ) -> tuple[Invocation, bool]:
        """One attempt, journaled; and whether it is final even if it failed: the function
        ran fine but its answer could not be given, which running it again would not change."""
        name = function.name
        event.bind(name, invocation_id, attempt)
        invocation = Invocation(
            id=invocation_id,
            function=name,
            trigger=event.trigger,
            started_at=datetime.now(timezone.utc),
            attempt=attempt,
            simulated=event.simulated,
            detail=detail or {},
        )
        start = time.perf_counter()
        try:
            result = await self._call(function, event)
            if isinstance(result, Escaped):
                _failed(invocation, event, result.exception)
            else:
                invocation.result, invocation.status = result, "ok"
        except HttpError as exc:
            # An HTTP function's answer; anywhere else, a failure (and retried as one).
            answered = isinstance(event, HttpEvent) and exc.status < 500
            invocation.status = "ok" if answered else "error"
            invocation.exception, invocation.error = exc, str(exc)
            invocation.detail = {**invocation.detail, "http_status": exc.status}
        except InvocationTimeout as exc:
            invocation.status, invocation.exception, invocation.error = "timeout", exc, str(exc)
            event.log.error("timed out after %g s", exc.seconds)
        except Overloaded as exc:
            invocation.status, invocation.exception, invocation.error = "error", exc, str(exc)
            event.log.warning("%s", exc)
        except asyncio.CancelledError as exc:
            if being_cancelled(exc):
                raise  # the server is stopping: not the function's doing
            _failed(invocation, event, exc)  # the function raised it itself
        except BaseException as exc:  # noqa: BLE001 - user code, even sys.exit(): recorded, logged, answered
            _failed(invocation, event, exc)
        invocation.duration = time.perf_counter() - start
        final = False
        if answer is not None:
            ran = invocation.ok
            try:
                invocation.answer = answer(invocation)
            except Exception as exc:  # noqa: BLE001 - an answer that fails must not lose the run
                _failed(invocation, event, exc)
            final = ran and not invocation.ok
        self.journal.record(invocation)
        return invocation, final

    def gate(self, function: LoadedFunction) -> ConcurrencyGate:
        """The function's `max_concurrency` gate. Unset, a sync function may hold half of the
        pool's threads, so one slow function cannot starve the others; an async one is
        unbounded (it costs no thread)."""
        key = (function.name, function.is_async)  # a reload may turn one into the other
        gate = self._gates.get(key)
        if gate is None:
            limit = function.config.max_concurrency
            if limit is None and not function.is_async:
                limit = max(1, self.pool.max_workers // 2)
            queue = QUEUE_PER_SLOT * limit if limit else 0
            gate = self._gates.setdefault(key, ConcurrencyGate(limit, queue))
        return gate

    async def _call(self, function: LoadedFunction, event: Event) -> Any:
        timeout = function.config.timeout
        gate = self.gate(function)
        if gate.limit is None and not timeout:
            # Unbounded and untimed (an async function, as declared by default): nothing to
            # count or watch, and the HTTP path is measured per microsecond. Awaited in this
            # task, not a task of its own, so whatever it raises (SystemExit included) reaches
            # `_attempt` as an exception like any other.
            return await function.main(event)
        if not gate.try_acquire() and not await gate.acquire(timeout):
            raise Overloaded(
                function.name,
                f"{gate.limit} calls of it are running (its max_concurrency) and no slot came "
                "free in time",
            )
        # The slot is held until the function really ends, even past a timeout: a timed-out
        # call's thread (or task) still runs it.
        if function.is_async:
            return await self._call_async(function, event, gate, timeout)
        return await self._call_sync(function, event, gate, timeout)

    async def _call_async(
        self, function: LoadedFunction, event: Event, gate: ConcurrencyGate, timeout: float | None
    ) -> Any:
        if not timeout:
            try:
                return await contained(function.main(event))
            finally:
                gate.release()
        # A task of its own, so a timeout can leave it. asyncio re-raises SystemExit and
        # KeyboardInterrupt out of the loop when a task raises them, which would kill the
        # server: `contained` hands them back as a value, which `_attempt` records.
        task = asyncio.ensure_future(contained(function.main(event)))
        task.add_done_callback(lambda _: gate.release())
        # asyncio.wait, not wait_for: a TimeoutError the function raises itself must stay
        # the function's error, not pass for lakefn's timeout.
        done, _ = await asyncio.wait({task}, timeout=timeout)
        if not done:
            task.cancel()
            raise InvocationTimeout(function.name, timeout)
        return task.result()

    async def _call_sync(
        self, function: LoadedFunction, event: Event, gate: ConcurrencyGate, timeout: float | None
    ) -> Any:
        if self.pool.saturated:
            gate.release()
            raise Overloaded(
                function.name,
                f"{self.pool.abandoned} timed-out calls still hold threads",
                retry_after=5,
            )
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        inbox = self._inbox
        if inbox.loop is not loop:  # one loop at a time, as a rule: the server's
            inbox = self._inbox = Inbox(loop)

        def finished(result: Any, error: BaseException | None) -> None:
            # On the worker thread: the slot is released even if this loop is gone by then.
            gate.release()
            inbox.post(future, result, error)

        # A pool job and one hop to the loop, no concurrent.futures.Future in between: the
        # sync HTTP path is measured per microsecond.
        try:
            job = self.pool.run(function.main, (event,), finished)
        except BaseException:
            gate.release()
            raise
        # A timer that settles the future itself, rather than asyncio.wait: no task, set or
        # callbacks per call.
        timer = loop.call_later(timeout, expire, future) if timeout else None
        try:
            result = await future
        except asyncio.CancelledError:
            if job.cancel():
                gate.release()  # not started yet: it never will be
            raise
        finally:
            if timer is not None:
                timer.cancel()
        if result is not EXPIRED:
            return result
        assert timeout  # only its timer settles a future with EXPIRED
        raise self._timed_out(function, job, gate, timeout)

    def _timed_out(
        self, function: LoadedFunction, job: Job, gate: ConcurrencyGate, timeout: float
    ) -> InvocationTimeout:
        """A sync call whose time ran out: dropped if it has not started, else its thread is
        abandoned."""
        if job.cancel():
            gate.release()  # not started yet: it never will be
            return InvocationTimeout(function.name, timeout)
        # A thread cannot be stopped: it is abandoned, finishes on its own, and no longer
        # counts against the pool, so timed-out calls cannot starve the next ones.
        self.pool.abandon(job)
        logger.warning(
            "%s: timed out; its thread keeps running until the function returns "
            "(%d abandoned threads)",
            function.name,
            self.pool.abandoned,
        )
        return InvocationTimeout(function.name, timeout)

    def close(self) -> None:
        self.pool.shutdown(wait=True)  # waits for idle workers only, never for a function


def _failed(invocation: Invocation, event: Event, exc: BaseException) -> None:
    invocation.status, invocation.exception = "error", exc
    invocation.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
    event.log.error("failed: %s", invocation.error, exc_info=exc)
