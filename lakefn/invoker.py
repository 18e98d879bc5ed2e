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
from .events import Event
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

        `HttpError` is an answer, not a failure: it ends the invocation at once, unretried.
        """
        function = self.registry.get(name)
        policy = function.config.retry
        attempts = policy.max_attempts if retry else 1
        invocation_id = _new_id()
        for attempt in range(1, attempts + 1):
            event = make_event()
            invocation = await self._attempt(function, event, invocation_id, attempt, detail)
            if invocation.ok or isinstance(invocation.exception, HttpError):
                return invocation
            if attempt < attempts:
                delay = policy.backoff_seconds * (2 ** (attempt - 1))
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
            invocation.status = "ok" if exc.status < 500 else "error"
            invocation.exception = exc
            invocation.error = None if exc.status < 500 else str(exc)
        except (asyncio.TimeoutError, InvocationTimeout):
            timeout = function.config.timeout or 0
            exc_t = InvocationTimeout(name, timeout)
            invocation.status, invocation.exception, invocation.error = "timeout", exc_t, str(exc_t)
            event.log.error("timed out after %g s", timeout)
        except Exception as exc:  # noqa: BLE001 - user code; recorded, logged, answered
            invocation.status, invocation.exception = "error", exc
            invocation.error = "".join(traceback.format_exception_only(type(exc), exc)).strip()
            event.log.error("failed: %s", invocation.error, exc_info=exc)
        invocation.duration = time.perf_counter() - start
        self.journal.record(invocation)
        return invocation

    async def _call(self, function: LoadedFunction, event: Event) -> Any:
        timeout = function.config.timeout
        if function.is_async:
            coro = function.main(event)
            return await (asyncio.wait_for(coro, timeout) if timeout else coro)
        loop = asyncio.get_running_loop()
        future = loop.run_in_executor(self.pool, function.main, event)
        if timeout:
            # A thread cannot be stopped: on timeout it is abandoned and finishes on its own.
            return await asyncio.wait_for(future, timeout)
        return await future

    def close(self) -> None:
        self.pool.shutdown(wait=False)
