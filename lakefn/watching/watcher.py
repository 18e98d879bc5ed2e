"""The unity_table triggers of one runtime: a watch task per function, and what can be done to
a watched table by hand (a check, a simulation, moving its checkpoint).

Every `check_interval` seconds each task runs one check of its table (`loop.py`) under the
lease shared with other processes (`lease.py`); trouble is reported as `status.py` says. A
function that keeps failing is checked less and less often (`next_check_in`).
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any, TypeVar

from .._exceptions import (
    BadCheckpointVersion,
    FunctionNotFound,
    NothingToReplay,
    SourceUnavailable,
    StateStoreFailed,
    TableNotFound,
    WrongTrigger,
)
from ..abc import CheckpointStore, SystemClock, TableSource
from ..config import TableTrigger
from . import status
from .handover import simulated_event, with_simulated_commit
from .lease import Lease, owner_id
from .loop import DeliveryLoop
from .state import MAX_BATCH, WatchState, next_check_in
from .store import Checkpoints, StoreFailed, WorkerThreads

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable

    from ..abc import Clock
    from ..checkpoints.tools import CheckpointMoved
    from ..events import SimulatedCommit
    from ..invoker import Invoker
    from ..journal import Invocation, Journal
    from ..project import Project

P = TypeVar("P")


def _opener(part: P | Callable[[], P], kind: type) -> Callable[[], P]:
    return (lambda: part) if isinstance(part, kind) else part  # type: ignore[return-value]


class TableWatcher:
    """Watches the tables of `project`'s unity_table functions and hands their new versions
    to `invoker`, noting trouble in `journal`.

    `source` and `checkpoints` are instances, or functions that open them on first use (off
    the loop: the store may wait for a file lock). `clock` is all the time the watcher reads:
    lease expiry (compared with the store's clock), lag, check times. `sleep` waits between
    checks. Tests hand in ones they control.
    """

    def __init__(
        self,
        project: Project,
        *,
        invoker: Invoker,
        journal: Journal,
        source: TableSource | Callable[[], TableSource],
        checkpoints: CheckpointStore | Callable[[], CheckpointStore],
        clock: Clock | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        self.project = project
        self.clock = clock if clock is not None else SystemClock()
        self._sleep = sleep or asyncio.sleep
        self._source = _opener(source, TableSource)
        self._functions = {fn.name: fn for fn in project.config.functions}
        self.states: dict[str, WatchState] = {}
        triggers: dict[str, TableTrigger] = {}
        for fn in project.config.functions:
            if isinstance(fn.trigger, TableTrigger) and fn.table is not None:
                self.states[fn.name] = WatchState(fn.name, fn.table, fn.trigger.check_interval)
                triggers[fn.name] = fn.trigger
        self._threads = WorkerThreads(project.config.tables.concurrency)
        self._checkpoints = Checkpoints(_opener(checkpoints, CheckpointStore), self._threads)
        self._lease = Lease(self._checkpoints, self.clock, owner_id())
        self._invoker = invoker
        self._delivery = DeliveryLoop(
            triggers=triggers,
            source=self._source,
            checkpoints=self._checkpoints,
            lease=self._lease,
            threads=self._threads,
            invoker=invoker,
            journal=journal,
            clock=self.clock,
        )
        self._tasks: list[asyncio.Task[None]] = []
        #: the functions this process watches now (started, not run_on: job)
        self._watching: set[str] = set()

    @property
    def owner(self) -> str:
        """Who this process is in the store's leases."""
        return self._lease.owner

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        self._threads.start()
        self._watching = {
            name
            for name in self.states
            # a run_on: job function is watched by its Databricks Job (`lakefn run` checks it)
            if self._functions[name].run_on != "job"
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
        pool, self._threads.pool = self._threads.pool, None
        if pool is not None:
            held = [state for state in self.states.values() if state.lease_until > 0]
            for state in held:
                state.lease_until, state.cached = 0.0, None
            await asyncio.get_running_loop().run_in_executor(pool, self._lease.release, held)
            pool.shutdown(wait=False, cancel_futures=True)

    async def _watch(self, name: str) -> None:
        state = self.states[name]
        while True:
            try:
                await self._delivery.check(state)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - one table's trouble never stops the others
                status.note_error(state, status.INTERNAL, f"{type(exc).__name__}: {exc}", exc)
            await self._sleep(next_check_in(state.check_interval, state.consecutive_failures))

    # -- by hand ---------------------------------------------------------------------------

    async def check(self, name: str) -> Invocation | None:
        """Look once for new versions of the function's table; deliver them if there are."""
        return await self._delivery.check(self.states[name])

    def _state(self, name: str) -> WatchState:
        state = self.states.get(name)
        if state is None:
            if name not in self._functions:
                raise FunctionNotFound(name, list(self._functions))
            raise WrongTrigger(name, self._functions[name].trigger.type, "unity_table")
        return state

    async def simulate(self, name: str, commit: SimulatedCommit) -> Invocation:
        """Hand the function a made-up commit (or real history from `replay_from`), exactly
        as the watcher would, marked simulated. No checkpoint moves."""
        state = self._state(name)
        source = self._source()
        replay_from = commit.replay_from
        overlaid = replay_from is None
        if replay_from is None:
            version = commit.version
            if version is None:
                version = await self._next_version(state, source)
            now = self.clock.now()
            source = with_simulated_commit(
                source, state.table, commit.operation, commit.rows, version, now
            )
            replay_from = version
        commits = await self._threads.run(
            source.commits_since, state.table, replay_from - 1, MAX_BATCH
        )
        if not commits:
            raise NothingToReplay(state.table, replay_from)
        make_event = simulated_event(source, name, state.table, commits, overlaid)
        detail = {
            "table": str(state.table),
            "versions": [commits[0].version, commits[-1].version],
            "operation": commits[-1].operation,
        }
        return await self._invoker.invoke(name, make_event, detail=detail)

    async def _next_version(self, state: WatchState, source: TableSource) -> int:
        """The version after the table's latest (after the checkpoint, if it cannot be read)."""
        try:
            return await self._threads.run(source.latest_version, state.table) + 1
        except (TableNotFound, SourceUnavailable):
            pass
        try:  # the store's checkpoint: this process may not have checked the table yet
            last = await self._checkpoints.call(state, "load", state.key)
        except StoreFailed:
            last = state.last_processed
        return 0 if last is None else last + 1

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

        state = self._state(name)
        latest = await self._threads.run(self._source().latest_version, state.table)
        if not -1 <= version <= latest:
            raise BadCheckpointVersion(version, state.table, latest)
        store = self._checkpoints.open()
        try:
            own = name in self._watching and await self._lease.hold(state)
        except StoreFailed as exc:
            raise StateStoreFailed("call", reason=exc.__cause__) from exc
        if own:
            previous = await self._threads.run(move, store, state.key, version)
            moved = CheckpointMoved(name, str(state.table), previous, version, None, 0.0)
        else:
            project = self.project
            moved = await self._threads.run(
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

    # -- status ----------------------------------------------------------------------------

    def problems(self) -> list[str]:
        """Why table triggers cannot run now (for /healthz); empty when they can."""
        return status.problems(self.states.values())

    def status(self) -> list[dict[str, Any]]:
        """The /lakefn/tables rows, one per watched table."""
        source = self._source().name if self.states else ""
        return status.status(self.states.values(), source, self.clock.now())
