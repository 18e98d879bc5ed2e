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

from ._exceptions import HttpError, InvocationTimeout
from ._threads import DaemonThreadPool
from .events import Event, HttpEvent
from .functions import FunctionRegistry, LoadedFunction
from .journal import Invocation, Journal

logger = logging.getLogger("lakefn")
EventFactory = Callable[[], Event]


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
        max_workers: int = 40,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.registry = registry
        self.journal = journal
        self.pool = DaemonThreadPool(max_workers)
        self._sleep = sleep

    async def invoke(
        self,
        name: str,
        make_event: Callable[[], Event],
        *,
        retry: bool = True,
        detail: dict[str, Any] | None = None,
    ) -> Invocation:
        """Run `name` until it succeeds or its attempts run out; return the last invocation.

        From an HTTP function, `HttpError` below 500 is an answer, not a failure: it ends the
        invocation at once, unretried. From a timer or table function it is a failure like any.
        """
        function = self.registry.get(name)
        policy = function.config.retry
        attempts = policy.max_attempts if retry else 1
        invocation_id = _new_id()
        for attempt in range(1, attempts + 1):
            event = make_event()
            invocation = await self._attempt(function, event, invocation_id, attempt, detail)
            if invocation.ok:
                return invocation
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
    ) -> Invocation:
        name = function.name
        event.function_name = name
        event.invocation_id = invocation_id
        event.attempt = attempt
        event._log = None  # a retried event may reuse the object: bind the log afresh
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
            invocation.result = await self._call(function, event)
            invocation.status = "ok"
        except HttpError as exc:
            # An HTTP function's answer; anywhere else, a failure (and retried as one).
            answered = isinstance(event, HttpEvent) and exc.status < 500
            invocation.status = "ok" if answered else "error"
            invocation.exception, invocation.error = exc, str(exc)
            invocation.detail = {**invocation.detail, "http_status": exc.status}
        except InvocationTimeout as exc:
            invocation.status, invocation.exception, invocation.error = "timeout", exc, str(exc)
            event.log.error("timed out after %g s", exc.seconds)
        except asyncio.CancelledError:
            raise  # the server is stopping: not the function's doing
        except BaseException as exc:  # noqa: BLE001 - user code, even sys.exit(): recorded, logged, answered
            invocation.status, invocation.exception = "error", exc
            invocation.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            event.log.error("failed: %s", invocation.error, exc_info=exc)
        invocation.duration = time.perf_counter() - start
        self.journal.record(invocation)
        return invocation

    async def _call(self, function: LoadedFunction, event: Event) -> Any:
        timeout = function.config.timeout
        if function.is_async:
            if not timeout:
                return await function.main(event)
            task = asyncio.ensure_future(function.main(event))
            # asyncio.wait, not wait_for: a TimeoutError the function raises itself must stay
            # the function's error, not pass for lakefn's timeout.
            done, _ = await asyncio.wait({task}, timeout=timeout)
            if not done:
                task.cancel()
                raise InvocationTimeout(function.name, timeout)
            return task.result()
        work = self.pool.submit(function.main, event)
        future = asyncio.wrap_future(work)
        if not timeout:
            return await future
        done, _ = await asyncio.wait({future}, timeout=timeout)
        if not done:
            # A thread cannot be stopped: it is abandoned, finishes on its own, and no longer
            # counts against the pool, so timed-out calls cannot starve the next ones.
            self.pool.abandon(work)
            logger.warning(
                "%s: timed out; its thread keeps running until the function returns "
                "(%d abandoned threads)",
                function.name,
                self.pool.abandoned,
            )
            raise InvocationTimeout(function.name, timeout)
        return future.result()

    def close(self) -> None:
        self.pool.shutdown(wait=False)
