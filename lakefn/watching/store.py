"""The watcher's blocking calls (table source, checkpoint store) on its own bounded threads,
and the checkpoint store as the watcher uses it: failures told apart from conflicts, and a
save that never goes over a move made meanwhile.

A checkpoint store that fails (unwritable, deleted, corrupt) fails the delivery it was to
record: the range is handed over again later, with the same doubling backoff as a failing
function, and the error is shown in /lakefn/tables and /healthz until the store works again.
"""

from __future__ import annotations

import asyncio
import logging
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import CheckpointConflict, LakefnError
from . import status

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..abc import CheckpointStore
    from .state import WatchState

logger = logging.getLogger("lakefn.tables")
T = TypeVar("T")


class WorkerThreads:
    """At most `concurrency` blocking calls at once, on threads of their own once started
    (before that, on the loop's default executor: a check or a simulation run by hand)."""

    def __init__(self, concurrency: int) -> None:
        self.concurrency = concurrency
        self.pool: ThreadPoolExecutor | None = None
        self._limit: asyncio.Semaphore | None = None

    def start(self) -> None:
        self._limit = asyncio.Semaphore(self.concurrency)
        if self.pool is None:
            self.pool = ThreadPoolExecutor(self.concurrency, thread_name_prefix="lakefn-tables")

    async def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = asyncio.get_running_loop()
        if self._limit is None:
            self._limit = asyncio.Semaphore(self.concurrency)
        call = (lambda: fn(*args, **kwargs)) if kwargs else (lambda: fn(*args))
        async with self._limit:
            return await loop.run_in_executor(self.pool, call)


class StoreFailed(Exception):
    """A checkpoint store call failed for a reason other than a compare-and-set conflict."""

    def __init__(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, LakefnError) else f"{type(exc).__name__}: {exc}"
        super().__init__(f"the checkpoint store failed: {text}")


class Checkpoints:
    """The checkpoint store, opened by `open_store` on first use (off the loop: a first open
    may wait for a file lock), called on the watcher's threads."""

    def __init__(self, open_store: Callable[[], CheckpointStore], threads: WorkerThreads) -> None:
        self.open = open_store
        self._threads = threads

    async def call(self, state: WatchState, method: str, *args: Any, **kwargs: Any) -> Any:
        """A failure (other than a conflict) is a StoreFailed; a success after failures is
        reported once."""

        def call() -> Any:
            return getattr(self.open(), method)(*args, **kwargs)

        try:
            result = await self._threads.run(call)
        except CheckpointConflict:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, the delivery failed
            raise StoreFailed(exc) from exc
        status.store_works(state)
        return result

    async def save(self, state: WatchState, version: int, expected: int | None) -> None:
        """Move the checkpoint from `expected` to `version`, unless it moved meanwhile."""
        if state.moves != state.moves_at_check:
            # Moved from this process while this check ran (even to the very version it
            # started from, which the compare-and-set would let pass): the move stands.
            state.cached = None
            logger.info(
                "%s: the checkpoint was moved meanwhile; not saving %d", state.function, version
            )
            return
        try:
            await self.call(state, "save", state.key, version, expected=expected)
        except CheckpointConflict as exc:
            # Another process moved it (our lease lapsed): its value stands; read it afresh.
            state.cached = None
            logger.warning("%s: %s", state.function, exc)
            return
        state.last_processed = state.cached = version

    async def remember_table_id(self, state: WatchState, current: str | None) -> None:
        # Saved after the checkpoint it belongs to: a crash in between finds the old identity
        # with the new checkpoint and restarts the new history again, never skips it.
        if current is not None and current != state.table_id:
            await self.call(state, "save_table_id", state.key, current)
            state.table_id = current
