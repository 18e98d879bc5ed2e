"""How a function's outcome reaches its invocation: the exceptions asyncio must not carry
(taken as values), a cancel told apart from a CancelledError the function raised, and a sync
call's outcome handed from its worker thread to the loop."""

from __future__ import annotations

import asyncio
import collections
import concurrent.futures
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("lakefn")


#: raised by user code, these must not travel through asyncio as exceptions: a task re-raises
#: SystemExit and KeyboardInterrupt out of the loop (killing the server), and a GeneratorExit
#: that passes through an awaited future resurfaces when the awaiting coroutine returns.
SPECIAL = (SystemExit, KeyboardInterrupt, GeneratorExit)


class Escaped:
    """One of `SPECIAL` that a function raised, carried to `_attempt` as a value."""

    __slots__ = ("exception",)

    def __init__(self, exception: BaseException) -> None:
        self.exception = exception


async def contained(call: Coroutine[Any, Any, Any]) -> Any:
    try:
        return await call
    except SPECIAL as exc:
        return Escaped(exc)
    except asyncio.CancelledError as exc:
        # Raised by the function itself, it would end a task of its own as "cancelled" and
        # then pass for a cancel from outside: carried as a value too.
        if being_cancelled(exc):
            raise
        return Escaped(exc)


class Inbox:
    """Outcomes of sync calls on their way to one loop. Under load many calls end between two
    turns of the loop: one wake-up (a system call on the worker, a callback on the loop)
    carries them all, rather than one each.

    Lock-free under the GIL: `post` appends, then schedules a drain unless one is pending;
    `_drain` clears the flag, then empties the deque, so nothing posted is left behind.
    """

    __slots__ = ("loop", "_items", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self._items: collections.deque[tuple[asyncio.Future[Any], Any, BaseException | None]] = (
            collections.deque()
        )
        self._scheduled = False

    def post(self, future: asyncio.Future[Any], result: Any, error: BaseException | None) -> None:
        """From a worker thread."""
        self._items.append((future, result, error))
        if not self._scheduled:
            self._scheduled = True
            try:
                assert self.loop is not None
                self.loop.call_soon_threadsafe(self._drain)
            except RuntimeError:  # closed: nobody is waiting any more
                self._items.clear()
                self._scheduled = False

    def _drain(self) -> None:
        self._scheduled = False
        items = self._items
        while items:
            future, result, error = items.popleft()
            try:
                settle(future, result, error)
            except Exception:  # noqa: BLE001 - the rest must still be settled
                logger.exception("lakefn: could not hand a sync call's outcome over")


#: what a sync call's future holds when its timeout came first (no function returns it)
EXPIRED = object()


def expire(future: asyncio.Future[Any]) -> None:
    if not future.done():
        future.set_result(EXPIRED)


def settle(future: asyncio.Future[Any], result: Any, exc: BaseException | None) -> None:
    """On the loop: hand a worker's outcome to the coroutine awaiting it."""
    if future.done():
        return
    if exc is None:
        future.set_result(result)
        return
    if isinstance(exc, (*SPECIAL, asyncio.CancelledError, concurrent.futures.CancelledError)):
        # See `SPECIAL`: carried as a value. A CancelledError from a worker thread is the
        # function's own, never a cancel of the awaiting task: it must not pass for one.
        future.set_result(Escaped(exc))
        return
    if isinstance(exc, StopIteration):
        # A future cannot carry it (asyncio raises TypeError and the caller would wait
        # forever); an async function's StopIteration becomes this RuntimeError too (PEP 479).
        error = RuntimeError(f"function raised {type(exc).__name__}")
        error.__cause__ = exc
        exc = error
    converted = _FROM_CONCURRENT.get(type(exc))
    future.set_exception(exc if converted is None else converted(*exc.args))


_Pairs = tuple[tuple[type[BaseException], type[BaseException]], ...]
_CONVERTED: _Pairs = (
    (concurrent.futures.CancelledError, asyncio.CancelledError),
    (concurrent.futures.TimeoutError, asyncio.TimeoutError),
    (concurrent.futures.InvalidStateError, asyncio.InvalidStateError),
)
#: what asyncio.wrap_future converts (before Python 3.11, the TimeoutErrors differ)
_FROM_CONCURRENT: dict[type[BaseException], type[BaseException]] = {
    theirs: ours for theirs, ours in _CONVERTED if theirs is not ours
}


def being_cancelled(exc: BaseException) -> bool:
    """Is the running task being cancelled from outside (the server stopping, a client gone)?
    If not, a CancelledError came from the function itself."""
    task = asyncio.current_task()
    cancelling = getattr(task, "cancelling", None)  # Python 3.11+
    if cancelling is not None:
        return bool(cancelling() > 0)
    # Python 3.10 counts no cancel requests. A cancel from outside is thrown into the coroutine
    # where it waits, so its innermost frame stopped at an await (YIELD_FROM, or YIELD_VALUE
    # in a generator-based awaitable), whichever module that is: asyncio's, a library's or a
    # helper's awaiting an executor. One the function raises itself starts at a raise or a call.
    frame = exc.__traceback__
    if frame is None:
        return True
    while frame.tb_next is not None:
        frame = frame.tb_next
    import dis

    code = frame.tb_frame.f_code.co_code
    at = frame.tb_lasti
    return not 0 <= at < len(code) or dis.opname[code[at]] in ("YIELD_FROM", "YIELD_VALUE")
