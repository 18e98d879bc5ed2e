"""One check of one watched table: read the checkpoint, ask the source what is new after it,
and hand the whole new range to the function in one call.

The checkpoint (the last version handed over successfully) moves only after the function
succeeds, by a compare-and-set, so a failure or a crash means the same range is delivered
again; a version is never skipped silently. Commits the function's `operations` filter leaves
out are passed over, their checkpoint moved as for a delivery.

A table dropped and created again under the same name is a new table: its history is new data,
handed over from version 0. It is recognised by its identity (`TableSource.table_id`, the Delta
metadata id), saved with the checkpoint, or, where a source cannot tell, by its versions going
back. The identity is read only when the checkpoint is (re)loaded and when there is news, so an
idle check stays as cheap as the source's version probe.

History gaps (versions removed by log retention before they were handed over) are reported and
delivery resumes at the oldest version still available: nothing can bring the lost commits
back, and stopping forever would only add an outage to the loss.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING

from .._exceptions import HistoryGap, SourceUnavailable, TableNotFound
from . import status
from .handover import delivery_event
from .state import MAX_BATCH
from .store import StoreFailed

if TYPE_CHECKING:
    from collections.abc import Callable, Mapping

    from ..abc import Clock, TableSource
    from ..config import TableTrigger
    from ..events import Commit
    from ..invoker import Invoker
    from ..journal import Invocation, Journal
    from .lease import Lease
    from .state import WatchState
    from .store import Checkpoints, WorkerThreads

logger = logging.getLogger("lakefn.tables")

#: operations that give a Delta table a new id while its history goes on
_REPLACE_OPERATIONS = frozenset(
    {
        "REPLACE TABLE",
        "REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE",
        "CREATE OR REPLACE TABLE AS SELECT",
    }
)


class DeliveryLoop:
    """Checks watched tables and delivers what is new, one (function, table) at a time."""

    def __init__(
        self,
        *,
        triggers: Mapping[str, TableTrigger],
        source: Callable[[], TableSource],
        checkpoints: Checkpoints,
        lease: Lease,
        threads: WorkerThreads,
        invoker: Invoker,
        journal: Journal,
        clock: Clock,
    ) -> None:
        self._triggers = triggers
        self._source = source
        self._checkpoints = checkpoints
        self._lease = lease
        self._threads = threads
        self._invoker = invoker
        self._journal = journal
        self._clock = clock

    async def check(self, state: WatchState) -> Invocation | None:
        """Look once for new versions of the state's table; deliver them if there are."""
        invocation = await self._check(state)
        status.check_went_through(state)
        return invocation

    async def _check(self, state: WatchState) -> Invocation | None:
        state.last_check = self._clock.now()
        state.moves_at_check = state.moves
        try:
            news = await self._news(state)
        except (TableNotFound, SourceUnavailable, HistoryGap) as exc:
            status.note_error(state, type(exc).__name__, str(exc))
            return None
        except StoreFailed as exc:
            status.store_failed(state, str(exc), str(exc))
            return None
        if news is None:
            return None
        status.table_readable(state)
        last, commits = news
        if not commits:
            return None
        state.pending_since = commits[0].timestamp
        if commits[0].version > last + 1:
            status.report_gap(self._journal, state, last, commits[0].version)
        try:
            return await self._deliver(state, last, commits)
        except StoreFailed as exc:  # moving past commits the operations filter leaves out
            status.store_failed(state, str(exc), str(exc))
            return None

    async def _news(self, state: WatchState) -> tuple[int, list[Commit]] | None:
        """The checkpoint and the commits after it; None when there is nothing to look at."""
        if not await self._lease.hold(state):
            return None  # another process delivers this table's versions
        last = await self._checkpoint(state)
        if last is None:
            return None
        source = self._source()
        state.last_processed = last
        latest = await self._threads.run(source.latest_version, state.table)
        state.latest_seen = latest
        if latest != last or state.identity_due:
            last = await self._same_table(state, last, latest)
        if latest <= last:
            state.pending_since = None
            state.consecutive_failures = 0  # nothing is owed, so nothing is failing
            status.table_readable(state)
            return None
        commits = await self._threads.run(source.commits_since, state.table, last, MAX_BATCH)
        return last, commits

    async def _checkpoint(self, state: WatchState) -> int | None:
        """The last version handed over: kept in memory while the lease holds, else loaded
        (with the table's identity); on a first run, where `start:` says (None: nothing to do
        this time)."""
        last = state.cached
        if last is None:
            last = state.cached = await self._checkpoints.call(state, "load", state.key)
            state.table_id = await self._checkpoints.call(state, "load_table_id", state.key)
            state.identity_due = True
        if last is None:
            last = await self._first_checkpoint(state)
        return last

    async def _first_checkpoint(self, state: WatchState) -> int | None:
        """Where a function starts on its first run (`start:`): latest records the current
        version and calls nothing; earliest delivers the whole history; N delivers from N."""
        start = self._triggers[state.function].start
        source = self._source()
        current = await self._threads.run(source.table_id, state.table)
        if start == "latest":
            latest = await self._threads.run(source.latest_version, state.table)
            state.latest_seen = latest
            await self._checkpoints.save(state, latest, None)
            await self._checkpoints.remember_table_id(state, current)
            logger.info("%s: watching %s from version %d", state.function, state.table, latest)
            return None
        first = 0 if start == "earliest" else int(start)
        await self._checkpoints.save(state, first - 1, None)
        await self._checkpoints.remember_table_id(state, current)
        return first - 1

    # -- a table dropped and created again ---------------------------------------------------

    async def _same_table(self, state: WatchState, last: int, latest: int) -> int:
        """The checkpoint to deliver after: `last`, or -1 when the table was dropped and
        created again (a new identity, or versions that went back)."""
        source = self._source()
        current = await self._threads.run(source.table_id, state.table)
        known = state.table_id
        new_id = known is not None and current is not None and current != known
        if latest >= last and new_id:
            # REPLACE TABLE gives a Delta table a new id while its history goes on: the
            # replace commit is then among the new ones, and they are delivered as usual.
            commits = await self._threads.run(source.commits_since, state.table, last, MAX_BATCH)
            if any(c.operation.upper() in _REPLACE_OPERATIONS for c in commits):
                new_id = False
            elif len(commits) == MAX_BATCH:
                return last  # the replace may lie further on: decide on a later batch
        if latest < last or new_id:
            status.report_recreated(
                self._journal, state, (last, latest), (known, current), self._clock.now()
            )
            await self._checkpoints.save(state, -1, last)
            state.last_processed = last = -1
        await self._checkpoints.remember_table_id(state, current)
        state.identity_due = False
        return last

    # -- handing a range over ----------------------------------------------------------------

    async def _deliver(
        self, state: WatchState, last: int, commits: list[Commit]
    ) -> Invocation | None:
        operations = self._triggers[state.function].operations
        wanted = set(operations) if operations else None
        relevant = [c for c in commits if wanted is None or c.operation.upper() in wanted]
        end = commits[-1].version
        if not relevant:
            await self._checkpoints.save(state, end, last)
            return None
        make_event = delivery_event(self._source(), state, last, commits, relevant)
        versions = (relevant[0].version, relevant[-1].version)
        heartbeat = asyncio.create_task(self._lease.keep(state))
        try:
            invocation = await self._invoker.invoke(
                state.function,
                make_event,
                detail={"table": str(state.table), "versions": list(versions)},
            )
        finally:
            heartbeat.cancel()
        if invocation.ok:
            await self._delivered(state, last, end, versions)
        else:
            status.delivery_failed(state, versions, invocation)
        return invocation

    async def _delivered(
        self, state: WatchState, last: int, end: int, versions: tuple[int, int]
    ) -> None:
        try:
            await self._checkpoints.save(state, end, last)
        except StoreFailed as exc:
            message = (
                f"versions {versions[0]}..{versions[1]} were handed over, but {exc}; "
                "they will be delivered again"
            )
            status.store_failed(state, message, str(exc))
            return
        state.last_success = self._clock.now()
        state.consecutive_failures = 0
        state.last_error = None
        state.pending_since = None
