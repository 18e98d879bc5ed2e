"""unity_table triggers: watch tables for new Delta versions and hand them over, at least once.

Per function, every `check_interval` seconds: read the checkpoint (the last version handed over
successfully), ask the source for commits after it, and hand the whole new range to the function
in one call. The checkpoint moves only after the function succeeds (a compare-and-set), so a
failure or a crash means the same range is delivered again; a version is never skipped silently.

Two processes sharing a state file take turns through a lease per (function, table): only the
holder checks and delivers, and it keeps the lease renewed while its function runs. While the
lease is held without a break, nobody else can move the checkpoint, so the holder keeps it (and
the lease's expiry) in memory: a check that finds nothing new touches the store only when the
lease is due for renewal, which keeps a thousand watched tables cheap.

A table dropped and created again under the same name is a new table: its history is new data,
handed over from version 0. It is recognised by its identity (`TableSource.table_id`, the Delta
metadata id), saved with the checkpoint, or, where a source cannot tell, by its versions going
back. The identity is read only when the checkpoint is (re)loaded and when there is news, so an
idle check stays as cheap as the source's version probe.

A checkpoint store that fails (unwritable, deleted, corrupt) fails the delivery it was to record:
the range is handed over again later, with the same doubling backoff as a failing function, and
the error is logged once per change of state and shown in /lakefn/tables and /healthz.

History gaps (versions removed by log retention before they were handed over) are reported
plainly — logged as an error, shown in /lakefn/tables and the journal — and delivery resumes at
the oldest version still available. Nothing can bring the lost commits back; stopping forever
would only add an outage to the loss.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import (
    BadCheckpointVersion,
    CheckpointConflict,
    HistoryGap,
    LakefnError,
    NothingToReplay,
    SourceUnavailable,
    StateStoreFailed,
    TableNotFound,
    WrongTrigger,
)
from .._tablename import TableName
from ..config import TableTrigger
from ..events import Commit, TableChangeEvent
from ..journal import Invocation

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    import pyarrow

    from ..checkpoints.tools import CheckpointMoved
    from ..runtime import Runtime

logger = logging.getLogger("lakefn.tables")
T = TypeVar("T")

#: operations that give a Delta table a new id while its history goes on
_REPLACE_OPERATIONS = frozenset(
    {
        "REPLACE TABLE",
        "REPLACE TABLE AS SELECT",
        "CREATE OR REPLACE TABLE",
        "CREATE OR REPLACE TABLE AS SELECT",
    }
)

#: most commits handed over in one call; a longer backlog arrives in several calls, in order
MAX_BATCH = 1000


#: longest wait between deliveries of a range its function keeps failing on
FAILURE_BACKOFF_CAP = 60.0


def next_check_in(interval: float, failures: int) -> float:
    """Seconds to the next check: the interval, doubled per consecutive failed delivery (up to
    a minute), so a function that keeps failing is retried, never skipped, and never flooded."""
    if not failures:
        return interval
    return min(max(interval, FAILURE_BACKOFF_CAP), interval * 2 ** min(failures, 20))


class _StoreFailed(Exception):
    """A checkpoint store call failed for a reason other than a compare-and-set conflict."""

    def __init__(self, exc: BaseException) -> None:
        text = str(exc) if isinstance(exc, LakefnError) else f"{type(exc).__name__}: {exc}"
        super().__init__(f"the checkpoint store failed: {text}")


#: error kinds cleared otherwise than by a successful read of the table: a store error when the
#: store works again, an unexpected one when a whole check goes through
_STORE = "store"
_INTERNAL = "internal"


def owner_id() -> str:
    """host:pid:random — the pid lets a restarted server on the same host see that the
    lease's holder crashed, instead of waiting for the lease to run out."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_dead(owner: str) -> bool:
    """True only when `owner` is a process of this host that no longer exists."""
    host, _, rest = owner.partition(":")
    pid_text = rest.partition(":")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False  # another watcher of this very process: alive
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False  # alive, someone else's
    return False


@dataclass
class WatchState:
    """What /lakefn/tables shows for one watched (function, table)."""

    function: str
    table: TableName
    check_interval: float
    last_processed: int | None = None
    latest_seen: int | None = None
    pending_since: datetime | None = None
    last_check: datetime | None = None
    last_success: datetime | None = None
    last_error: str | None = None
    error_kind: str | None = None
    consecutive_failures: int = 0
    gaps: list[dict[str, int]] = field(default_factory=list)
    recreated: list[dict[str, Any]] = field(default_factory=list)
    #: the store's failure while it lasts (for /healthz), without the range it failed to record
    store_error: str | None = None
    #: wall-clock time until which this process surely holds the lease (0: not held)
    lease_until: float = 0.0
    #: the checkpoint as of the last load or save, valid only while the lease is held
    cached: int | None = None
    #: the identity of the table the checkpoint counts versions of (None: not known)
    table_id: str | None = None
    #: the checkpoint was (re)loaded: compare the table's identity on this check
    identity_due: bool = True
    #: checkpoint moves made from this process (the console), and how many there were when the
    #: running check began: a check that began before a move never saves over it
    moves: int = 0
    moves_at_check: int = 0

    @property
    def lease_ttl(self) -> float:
        # Long enough that a busy store or a slow check never loses it; short enough that a
        # restarted process after a crash takes over soon.
        return max(10.0, 3 * self.check_interval)

    @property
    def key(self) -> str:
        return f"{self.function}|{self.table}"

    def to_dict(self, source: str) -> dict[str, Any]:
        lag_versions = (
            max(0, self.latest_seen - self.last_processed)
            if self.latest_seen is not None and self.last_processed is not None
            else None
        )
        lag_seconds = (
            round((datetime.now(timezone.utc) - self.pending_since).total_seconds(), 3)
            if self.pending_since is not None and lag_versions
            else 0.0
        )
        return {
            "function": self.function,
            "table": str(self.table),
            "source": source,
            "check_interval": self.check_interval,
            "last_processed_version": self.last_processed,
            "latest_version": self.latest_seen,
            "lag_versions": lag_versions,
            "lag_seconds": lag_seconds,
            "last_check": self.last_check.isoformat() if self.last_check else None,
            "last_success": self.last_success.isoformat() if self.last_success else None,
            "last_error": self.last_error,
            "consecutive_failures": self.consecutive_failures,
            "gaps": self.gaps,
            "recreated": self.recreated,
        }


class TableWatcher:
    """The unity_table triggers of one runtime.

    `clock` gives wall-clock seconds for leases (compared with the store's, so real time by
    default); `sleep` waits between checks. Tests hand in controllable ones.
    """

    def __init__(
        self,
        runtime: Runtime,
        *,
        clock: Callable[[], float] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.runtime = runtime
        self._clock = clock or time.time
        self._sleep = sleep or asyncio.sleep
        self.owner = owner_id()
        self.states: dict[str, WatchState] = {}
        for fn in runtime.config.functions:
            if isinstance(fn.trigger, TableTrigger) and fn.table is not None:
                self.states[fn.name] = WatchState(fn.name, fn.table, fn.trigger.check_interval)
        concurrency = runtime.config.tables.concurrency
        self._pool: ThreadPoolExecutor | None = None
        self._concurrency = concurrency
        self._limit: asyncio.Semaphore | None = None
        self._tasks: list[asyncio.Task[None]] = []
        #: the functions this process watches now (started, not run_on: job)
        self._watching: set[str] = set()

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._limit = asyncio.Semaphore(self._concurrency)
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self._concurrency, thread_name_prefix="lakefn-tables")
        self._watching = {
            name
            for name in self.states
            # a run_on: job function is watched by its Databricks Job (`lakefn run` checks it)
            if self.runtime.registry.config(name).run_on != "job"
        }
        self._tasks = [
            asyncio.create_task(self._watch(name), name=f"lakefn-watch-{name}")
            for name in self._watching
        ]

    async def stop(self) -> None:
        self._watching = set()
        tasks, self._tasks = self._tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        if self._pool is not None:
            pool, self._pool = self._pool, None
            held = [state for state in self.states.values() if state.lease_until > 0]
            for state in held:
                state.lease_until, state.cached = 0.0, None
            # Released so a restarted process takes over at once instead of after the ttl.
            await asyncio.get_running_loop().run_in_executor(pool, self._release, held)
            pool.shutdown(wait=False, cancel_futures=True)

    def _release(self, states: list[WatchState]) -> None:
        for state in states:
            try:
                self.runtime.checkpoints.release(state.key, self.owner)
            except Exception as exc:  # noqa: BLE001 - the lease expires on its own anyway
                logger.warning("%s: cannot release the lease: %s", state.function, exc)

    async def _watch(self, name: str) -> None:
        state = self.states[name]
        while True:
            try:
                await self.check(name)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one table's trouble never stops the others
                self._note_error(state, _INTERNAL, f"{type(exc).__name__}: {exc}", exc)
            await self._sleep(next_check_in(state.check_interval, state.consecutive_failures))

    # -- one check -------------------------------------------------------------------------

    async def check(self, name: str) -> Invocation | None:
        """Look once for new versions of the function's table; deliver them if there are."""
        invocation = await self._check(name)
        state = self.states[name]
        if state.error_kind == _INTERNAL:
            # Cleared only by a whole check that raised nothing: an error that recurs further
            # on in each check is logged once, not once per check.
            logger.info("%s: checks of %s work again", state.function, state.table)
            state.error_kind = state.last_error = None
        return invocation

    async def _check(self, name: str) -> Invocation | None:
        state = self.states[name]
        state.last_check = datetime.now(timezone.utc)
        state.moves_at_check = state.moves
        source = self.runtime.table_source
        try:
            if not await self._hold_lease(state):
                return None  # another process delivers this table's versions
            last = state.cached
            if last is None:
                last = state.cached = await self._store(state, "load", state.key)
                state.table_id = await self._store(state, "load_table_id", state.key)
                state.identity_due = True
            if last is None:
                last = await self._first_checkpoint(state)
                if last is None:
                    return None
            state.last_processed = last
            latest = await self._io(source.latest_version, state.table)
            state.latest_seen = latest
            if latest != last or state.identity_due:
                last = await self._same_table(state, last, latest)
            if latest <= last:
                state.pending_since = None
                state.consecutive_failures = 0  # nothing is owed, so nothing is failing
                self._recovered(state)
                return None
            commits = await self._io(source.commits_since, state.table, last, MAX_BATCH)
        except (TableNotFound, SourceUnavailable, HistoryGap) as exc:
            self._note_error(state, type(exc).__name__, str(exc))
            return None
        except _StoreFailed as exc:
            self._store_failed(state, str(exc), str(exc))
            return None
        self._recovered(state)
        if not commits:
            return None
        state.pending_since = commits[0].timestamp
        if commits[0].version > last + 1:
            self._report_gap(state, last, commits[0].version)
        try:
            return await self._deliver(state, last, commits)
        except _StoreFailed as exc:  # moving past commits the operations filter leaves out
            self._store_failed(state, str(exc), str(exc))
            return None

    async def _hold_lease(self, state: WatchState) -> bool:
        """True while this process holds the (function, table) lease; renews it when due."""
        ttl = state.lease_ttl
        if state.lease_until - self._clock() > ttl / 2:
            return True
        asked_at = self._clock()
        acquired = await self._store(
            state, "acquire", state.key, self.owner, ttl, take_over=holder_is_dead
        )
        if not acquired:
            state.lease_until, state.cached = 0.0, None
            return False
        if state.lease_until <= self._clock():
            # The lease lapsed (or was never ours): someone may have moved the checkpoint.
            state.cached = None
        # The store computed its expiry after `asked_at`, so this is never later than the truth.
        state.lease_until = asked_at + ttl
        return True

    async def _first_checkpoint(self, state: WatchState) -> int | None:
        """Where a function starts on its first run (`start:`): latest records the current
        version and calls nothing; earliest delivers the whole history; N delivers from N."""
        trigger = self.runtime.registry.config(state.function).trigger
        assert isinstance(trigger, TableTrigger)
        source = self.runtime.table_source
        current = await self._io(source.table_id, state.table)
        if trigger.start == "latest":
            latest = await self._io(source.latest_version, state.table)
            state.latest_seen = latest
            await self._save(state, latest, None)
            await self._remember_table_id(state, current)
            logger.info("%s: watching %s from version %d", state.function, state.table, latest)
            return None
        start = 0 if trigger.start == "earliest" else int(trigger.start)
        await self._save(state, start - 1, None)
        await self._remember_table_id(state, current)
        return start - 1

    async def _deliver(
        self, state: WatchState, last: int, commits: list[Commit]
    ) -> Invocation | None:
        trigger = self.runtime.registry.config(state.function).trigger
        assert isinstance(trigger, TableTrigger)
        wanted = set(trigger.operations) if trigger.operations else None
        relevant = [c for c in commits if wanted is None or c.operation.upper() in wanted]
        end = commits[-1].version
        if not relevant:
            await self._save(state, end, last)
            return None
        table = state.table
        source = self.runtime.table_source
        first = relevant[0].version
        skipped = sum(first <= c.version <= relevant[-1].version for c in commits) > len(relevant)

        def load_changes() -> pyarrow.Table:
            rows = source.changes(table, first, relevant[-1].version)
            # Commits the operations filter left out are not this event's: neither are their rows.
            return _only_versions(rows, [c.version for c in relevant]) if skipped else rows

        def make_event() -> TableChangeEvent:
            return TableChangeEvent(
                function_name=state.function,
                table_name=str(table),
                commits=list(relevant),
                previous_version=last if last >= 0 else None,  # None: nothing before
                changes_loader=load_changes,
                frame_loader=_frame_loader(source, table, [c.version for c in relevant], skipped),
            )

        heartbeat = asyncio.create_task(self._keep_lease(state))
        try:
            invocation = await self.runtime.invoker.invoke(
                state.function,
                make_event,
                detail={"table": str(table), "versions": [first, relevant[-1].version]},
            )
        finally:
            heartbeat.cancel()
        if invocation.ok:
            try:
                await self._save(state, end, last)
            except _StoreFailed as exc:
                message = (
                    f"versions {first}..{relevant[-1].version} were handed over, but {exc}; "
                    "they will be delivered again"
                )
                self._store_failed(state, message, str(exc))
                return invocation
            state.last_success = datetime.now(timezone.utc)
            state.consecutive_failures = 0
            state.last_error = None
            state.pending_since = None
        else:
            state.consecutive_failures += 1
            state.last_error = f"versions {first}..{relevant[-1].version}: {invocation.error}"
            logger.error(
                "%s: delivery of %s versions %d..%d failed after %d attempt(s); it will be "
                "delivered again on the next check",
                state.function,
                table,
                first,
                relevant[-1].version,
                invocation.attempt,
            )
        return invocation

    async def _keep_lease(self, state: WatchState) -> None:
        """Renew the lease while the function runs, however long it takes."""
        while True:
            await asyncio.sleep(state.lease_ttl / 4)
            try:
                await self._hold_lease(state)
            except Exception as exc:  # noqa: BLE001 - the save's compare-and-set still guards
                logger.warning("%s: cannot renew the lease: %s", state.function, exc)

    async def _store(self, state: WatchState, method: str, *args: Any, **kwargs: Any) -> Any:
        """Call the checkpoint store on the watcher's threads. A failure (other than a
        conflict) is a _StoreFailed; a success after failures is reported once."""
        runtime = self.runtime

        def call() -> Any:
            # The store is opened here, off the loop: a first open may wait for a file lock.
            return getattr(runtime.checkpoints, method)(*args, **kwargs)

        try:
            result = await self._io(call)
        except CheckpointConflict:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever the store raises, the delivery failed
            raise _StoreFailed(exc) from exc
        if state.error_kind == _STORE:
            logger.info("%s: the checkpoint store works again", state.function)
            state.error_kind = state.last_error = state.store_error = None
        return result

    async def _save(self, state: WatchState, version: int, expected: int | None) -> None:
        if state.moves != state.moves_at_check:
            # Moved from this process while this check ran (even to the very version it
            # started from, which the compare-and-set would let pass): the move stands.
            state.cached = None
            logger.info(
                "%s: the checkpoint was moved meanwhile; not saving %d", state.function, version
            )
            return
        try:
            await self._store(state, "save", state.key, version, expected=expected)
        except CheckpointConflict as exc:
            # Another process moved it (our lease lapsed): its value stands; read it afresh.
            state.cached = None
            logger.warning("%s: %s", state.function, exc)
            return
        state.last_processed = state.cached = version

    # -- errors, once per change of state ----------------------------------------------------

    def _note_error(
        self, state: WatchState, kind: str, message: str, exc: BaseException | None = None
    ) -> None:
        state.last_error = message
        if state.error_kind != kind:
            state.error_kind = kind
            logger.error("%s: %s", state.function, message, exc_info=exc)

    def _store_failed(self, state: WatchState, message: str, store_error: str) -> None:
        """A store that cannot record a delivery fails it: retried later with backoff."""
        state.consecutive_failures += 1
        state.store_error = store_error
        self._note_error(state, _STORE, message)

    def _recovered(self, state: WatchState) -> None:
        if state.error_kind is not None and state.error_kind not in (_STORE, _INTERNAL):
            logger.info("%s: %s is readable again", state.function, state.table)
            state.error_kind = None
            state.last_error = None

    async def _same_table(self, state: WatchState, last: int, latest: int) -> int:
        """The checkpoint to deliver after: `last`, or -1 when the table was dropped and
        created again (a new identity, or versions that went back)."""
        source = self.runtime.table_source
        current = await self._io(source.table_id, state.table)
        known = state.table_id
        new_id = known is not None and current is not None and current != known
        if latest >= last and new_id:
            # REPLACE TABLE gives a Delta table a new id while its history goes on: the
            # replace commit is then among the new ones, and they are delivered as usual.
            commits = await self._io(source.commits_since, state.table, last, MAX_BATCH)
            if any(c.operation.upper() in _REPLACE_OPERATIONS for c in commits):
                new_id = False
            elif len(commits) == MAX_BATCH:
                return last  # the replace may lie further on: decide on a later batch
        if latest < last or new_id:
            last = await self._restart_history(state, last, latest, known, current)
        await self._remember_table_id(state, current)
        state.identity_due = False
        return last

    async def _remember_table_id(self, state: WatchState, current: str | None) -> None:
        # Saved after the checkpoint it belongs to: a crash in between finds the old identity
        # with the new checkpoint and restarts the new history again, never skips it.
        if current is not None and current != state.table_id:
            await self._store(state, "save_table_id", state.key, current)
            state.table_id = current

    async def _restart_history(
        self, state: WatchState, last: int, latest: int, was_id: str | None, now_id: str | None
    ) -> int:
        """A table dropped and created again: its new history is new data, handed over from
        version 0, and the restart is reported."""
        if latest < last:
            why = f"is at version {latest}, behind version {last} already handed over"
        else:
            why = f"has a new table id ({was_id} before, {now_id} now)"
        message = (
            f"{state.table} {why}: the table was dropped and created again; delivering its new "
            "history from version 0"
        )
        logger.error("%s: %s", state.function, message)
        detail: dict[str, Any] = {"recreated": {"was": last, "now": latest}}
        if now_id is not None and now_id != was_id:
            detail["table_ids"] = {"was": was_id, "now": now_id}
        self._journal_error(state, message, detail)
        seen = {"versions": detail["recreated"], "table_ids": detail.get("table_ids")}
        state.recreated = [
            *state.recreated[-19:],
            {**seen, "at": datetime.now(timezone.utc).isoformat()},
        ]
        await self._save(state, -1, last)
        state.last_processed = -1
        return -1

    def _journal_error(self, state: WatchState, message: str, detail: dict[str, Any]) -> None:
        detail = {"table": str(state.table), **detail}
        note = Invocation.note(state.function, "unity_table", "error", message, detail)
        self.runtime.journal.record(note)

    def _report_gap(self, state: WatchState, last: int, first_available: int) -> None:
        if state.gaps and state.gaps[-1] == {"after": last, "resumed_at": first_available}:
            return  # the same gap, seen again because its delivery failed: reported already
        gap = HistoryGap(str(state.table), last, first_available)
        state.gaps.append({"after": last, "resumed_at": first_available})
        state.gaps = state.gaps[-20:]
        logger.error("%s: %s; resuming at version %d", state.function, gap, first_available)
        self._journal_error(state, str(gap), {"gap": [last + 1, first_available - 1]})

    async def _io(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run a blocking source or store call on the watcher's threads, bounded."""
        loop = asyncio.get_running_loop()
        if self._limit is None:
            self._limit = asyncio.Semaphore(self._concurrency)
        call = (lambda: fn(*args, **kwargs)) if kwargs else (lambda: fn(*args))
        async with self._limit:
            return await loop.run_in_executor(self._pool, call)

    # -- moving a checkpoint from this process ---------------------------------------------

    async def set_checkpoint(
        self, name: str, version: int, *, force: bool = False, force_hint: str = "use --force"
    ) -> CheckpointMoved:
        """Rewind (or skip ahead) `name`'s checkpoint from this process, as the console does:
        the next delivery starts at `version + 1`, -1 .. the table's latest version.

        While this watcher holds the lease, `lakefn checkpoints set` would be refused (a live
        process delivers the table), yet the operator asks the very process that delivers it:
        it moves the checkpoint under its own lease and forgets its cached position, so its
        next check delivers from the new one. Otherwise it is `lakefn checkpoints set`:
        refused while another live process holds the lease, unless `force`.

        A delivery already running finishes, and its checkpoint is not saved over the move.
        """
        from ..checkpoints.tools import CheckpointMoved, move, set_checkpoint

        state = self.states.get(name)
        if state is None:
            kind = self.runtime.registry.config(name).trigger.type  # FunctionNotFound first
            raise WrongTrigger(name, kind, "unity_table")
        latest = await self._io(self.runtime.table_source.latest_version, state.table)
        if not -1 <= version <= latest:
            raise BadCheckpointVersion(version, state.table, latest)
        store = self.runtime.checkpoints
        try:
            own = name in self._watching and await self._hold_lease(state)
        except _StoreFailed as exc:
            raise StateStoreFailed("call", reason=exc.__cause__) from exc
        if own:
            previous = await self._io(move, store, state.key, version)
            moved = CheckpointMoved(name, str(state.table), previous, version, None, 0.0)
        else:
            project = self.runtime.project
            moved = await self._io(
                lambda: set_checkpoint(
                    project, store, name, version, force=force, force_hint=force_hint
                )
            )
        # Read afresh on the next check (with the table's identity), whoever holds the lease.
        state.moves += 1
        state.cached = None
        state.last_processed = version
        state.pending_since = None
        return moved

    # -- status and simulation ---------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why table triggers cannot run now (for /healthz); empty when they can."""
        failures = {state.store_error for state in self.states.values() if state.store_error}
        return [f"table triggers cannot record their progress: {text}" for text in sorted(failures)]

    def status(self) -> list[dict[str, Any]]:
        source = self.runtime.table_source.name if self.states else ""
        return [state.to_dict(source) for state in self.states.values()]

    async def simulate(
        self,
        name: str,
        operation: str = "WRITE",
        rows: list[dict[str, Any]] | None = None,
        version: int | None = None,
        replay_from: int | None = None,
    ) -> Invocation:
        """Hand the function a fabricated commit (or real history from `replay_from`), exactly
        as the watcher would, marked simulated. No checkpoint moves."""
        state = self.states.get(name)
        if state is None:
            kind = self.runtime.registry.config(name).trigger.type  # FunctionNotFound first
            raise WrongTrigger(name, kind, "unity_table")
        source = self.runtime.table_source
        if replay_from is not None:
            commits = await self._io(source.commits_since, state.table, replay_from - 1, MAX_BATCH)
            if not commits:
                raise NothingToReplay(state.table, replay_from)

            def loader() -> pyarrow.Table:
                return source.changes(state.table, commits[0].version, commits[-1].version)
        else:
            commits, loader = await self._fabricate(state, operation, rows, version)
        previous = commits[0].version - 1 if commits[0].version > 0 else None

        def make_event() -> TableChangeEvent:
            return TableChangeEvent(
                function_name=name,
                simulated=True,
                table_name=str(state.table),
                commits=list(commits),
                previous_version=previous,
                changes_loader=loader,
            )

        detail = {
            "table": str(state.table),
            "versions": [commits[0].version, commits[-1].version],
            "operation": commits[-1].operation,
        }
        return await self.runtime.invoker.invoke(name, make_event, detail=detail)

    async def _fabricate(
        self,
        state: WatchState,
        operation: str,
        rows: list[dict[str, Any]] | None,
        version: int | None,
    ) -> tuple[list[Commit], Callable[[], pyarrow.Table]]:
        if version is None:
            try:
                version = await self._io(self.runtime.table_source.latest_version, state.table) + 1
            except (TableNotFound, SourceUnavailable):
                version = (state.last_processed or -1) + 1
        now = datetime.now(timezone.utc)
        operation = operation.upper()
        metrics = {"numOutputRows": len(rows)} if rows is not None else {}
        commit = Commit(
            version=version,
            timestamp=now,
            operation=operation,
            operation_parameters={"simulated": True},
            operation_metrics=metrics,
            user_name="lakefn simulate",
            raw={"version": version, "timestamp": now, "operation": operation, "simulated": True},
        )
        change_type = "delete" if operation == "DELETE" else "insert"

        def loader() -> pyarrow.Table:
            import pyarrow as pa

            records = [
                {
                    **row,
                    "_change_type": change_type,
                    "_commit_version": version,
                    "_commit_timestamp": now,
                }
                for row in rows or []
            ]
            if not records:
                return pa.table(
                    {
                        "_change_type": pa.array([], pa.string()),
                        "_commit_version": pa.array([], pa.int64()),
                        "_commit_timestamp": pa.array([], pa.timestamp("us", tz="UTC")),
                    }
                )
            return pa.Table.from_pylist(records)

        return [commit], loader


def _only_versions(rows: pyarrow.Table, versions: list[int]) -> pyarrow.Table:
    import pyarrow as pa
    import pyarrow.compute as pc

    return rows.filter(pc.is_in(rows.column("_commit_version"), pa.array(versions, pa.int64())))


def _frame_loader(
    source: Any, table: TableName, versions: list[int], skipped: bool
) -> Callable[[], Any] | None:
    """`event.changes_df()`'s maker, when the source can make DataFrames (Spark)."""
    make = getattr(source, "changes_frame", None)
    if make is None:
        return None
    only = versions if skipped else None
    return lambda: make(table, versions[0], versions[-1], only)
