"""The runtime: a loaded project with its functions, invoker, journal, timers and watchers.

Everything that runs a project (the server, the notebook, the pytest fixture, the CLI) holds one
`Runtime`. Its table source, checkpoint store and clock are handed in as instances; left out,
they are chosen from app.yaml when first needed, so importing and loading stay light.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable, Coroutine
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from ._exceptions import LakefnError
from ._json_input import check_simulated_commit
from ._loopthread import LoopThread, run_on, running_here
from ._loopwatch import LoopWatchdog
from .abc import CheckpointStore, Clock, SystemClock, TableSource, TriggerContext, TriggerKind
from .events import SimulatedCommit
from .functions import FunctionRegistry
from .invoker import Invoker
from .journal import Invocation, Journal
from .project import Project, load_functions, load_project
from .triggers import KINDS

if TYPE_CHECKING:
    import os

    from fastapi import FastAPI

    from .triggers.timer import TimerRunner, TimerTrigger
    from .watching import TableWatcher

logger = logging.getLogger("lakefn")
T = TypeVar("T")


class Runtime:
    def __init__(
        self,
        project: Project,
        *,
        registry: FunctionRegistry | None = None,
        journal: Journal | None = None,
        table_source: TableSource | None = None,
        checkpoints: CheckpointStore | None = None,
        clock: Clock | None = None,
        timer_trigger_factory: Callable[[TimerTrigger], Any] | None = None,
        sleep: Callable[[float], Awaitable[Any]] | None = None,
    ) -> None:
        """`sleep` paces retries and table checks; `clock` is the time of timers and of table
        leases and lag. Both default to the real ones; tests hand in ones they drive."""
        self.project = project
        self.config = project.config
        self.registry = registry if registry is not None else load_functions(project)
        # `is not None`: a journal is falsy while empty, and an empty one handed in must be used.
        self.journal = (
            journal
            if journal is not None
            else Journal(persist_to=lambda: self.checkpoints, settings=self.config.journal)
        )
        self._sleep = sleep
        if sleep is None:
            self.invoker = Invoker(self.registry, self.journal)
        else:
            self.invoker = Invoker(self.registry, self.journal, sleep=sleep)
        self.clock = clock if clock is not None else SystemClock()
        self._table_source = table_source
        self._checkpoints = checkpoints
        #: why the checkpoint store could not be opened, while that lasts
        self._store_problem: str | None = None
        self._lock = threading.Lock()
        #: one runner per trigger kind, by its `type:`
        self.kinds: dict[str, TriggerKind] = {
            name: kind(self._context(name, timer_trigger_factory)) for name, kind in KINDS.items()
        }
        self._loop: asyncio.AbstractEventLoop | None = None
        self._portal: LoopThread | None = None
        self._watchdog: LoopWatchdog | None = None
        #: the kinds started, in order: what `stop` stops
        self._running: list[TriggerKind] = []
        self.started = False

    @classmethod
    def from_path(cls, path: str | os.PathLike[str] | None = None, **kwargs: Any) -> Runtime:
        """Load app.yaml (default: the working directory's) and every function module."""
        return cls(load_project(path), **kwargs)

    def _context(
        self, kind: str, timer_trigger_factory: Callable[[TimerTrigger], Any] | None
    ) -> TriggerContext:
        options = {"trigger_factory": timer_trigger_factory} if kind == "timer" else {}
        return TriggerContext(
            functions=tuple(f for f in self.config.functions if f.kind == kind),
            registry=self.registry,
            invoker=self.invoker,
            journal=self.journal,
            clock=self.clock,
            config=self.config,
            project=self.project,
            table_source=lambda: self.table_source,
            checkpoints=lambda: self.checkpoints,
            store_problem=lambda: self._store_problem,
            sleep=self._sleep,
            options=options,
        )

    # -- parts chosen on first use -------------------------------------------------------

    @property
    def table_source(self) -> TableSource:
        with self._lock:
            if self._table_source is None:
                from .sources.selection import select_source

                self._table_source = select_source(self.project)
            return self._table_source

    @property
    def checkpoints(self) -> CheckpointStore:
        with self._lock:
            if self._checkpoints is None:
                from .checkpoints.selection import open_project_store

                # Leases expire on the runtime's clock, the one the watcher renews by: on two
                # clocks (a FakeClock here, real time in the store) a lease would run out in
                # the store while the watcher still counts it as held.
                clock = self.clock
                seconds = None if type(clock) is SystemClock else lambda: clock.now().timestamp()
                try:
                    self._checkpoints = open_project_store(self.project, clock=seconds)
                except LakefnError as exc:
                    self._store_problem = str(exc)
                    raise
                self._store_problem = None
            return self._checkpoints

    @property
    def watcher(self) -> TableWatcher:
        """The table kind's watcher (built on first use)."""
        return self.kinds["unity_table"].watcher  # type: ignore[attr-defined,no-any-return]

    @property
    def timers(self) -> TimerRunner:
        return self.kinds["timer"].runner  # type: ignore[attr-defined,no-any-return]

    def kind_of(self, name: str) -> TriggerKind:
        """The runner of function `name`'s trigger kind (FunctionNotFound if there is none)."""
        return self.kinds[self.registry.config(name).kind]

    def health(self) -> list[str]:
        """What keeps triggers from running (for /healthz); empty when all is well."""
        return [problem for kind in self.kinds.values() for problem in kind.problems()]

    def table_status(self) -> list[dict[str, Any]]:
        """Each watched (function, table) with its progress: empty without table triggers."""
        return [row for kind in self.kinds.values() if kind.uses_table for row in kind.status()]

    def functions_of(self, kind: str) -> list[str]:
        """The names of the functions whose trigger is of `kind` ("timer", ...)."""
        return [f.name for f in self.config.functions if f.kind == kind]

    def mount(self, app: FastAPI) -> None:
        """Add each kind's routes (the http functions') to the server's app."""
        for kind in self.kinds.values():
            kind.mount(app)

    # -- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Start timers and table watchers on the running loop (the server's lifespan)."""
        if self.started:
            return
        self._loop = asyncio.get_running_loop()
        self._watchdog = LoopWatchdog(self._loop)
        self._watchdog.start()
        self._running = []
        try:
            for kind in self.kinds.values():
                await kind.start()
                self._running.append(kind)
        except BaseException:
            # A kind that cannot start stops the server's start: the ones already running
            # (a scheduler, watch tasks) are stopped, not left behind a runtime that says no.
            self.started = True
            await self.stop()
            raise
        self.started = True
        logger.info(
            "lakefn started: %d functions from %s", len(self.registry.names), self.project.path
        )

    async def stop(self) -> None:
        if not self.started:
            return
        self.started = False
        if self._watchdog is not None:
            self._watchdog.stop()
            self._watchdog = None
        try:
            # Each kind stops even when one before it fails to: a lease left held would make
            # the next server wait it out.
            for kind in reversed(self._running):
                try:
                    await kind.stop()
                except Exception:
                    logger.exception("stopping %s triggers failed", kind.type)
        finally:
            self._running = []
            # A stopping server (a redeploy) writes the journal's last entries before it goes.
            if self.journal.unwritten:
                await asyncio.get_running_loop().run_in_executor(None, self.journal.flush, 2.0)
            self._loop = None

    def close(self) -> None:
        """Release everything: threads, connections, files. The runtime is done after this."""
        if self._portal is not None:
            self._portal.stop()
            self._portal = None
        self.invoker.close()
        self.journal.close()
        if self._table_source is not None:
            self._table_source.close()
        if self._checkpoints is not None:
            self._checkpoints.close()

    # -- doing things by hand --------------------------------------------------------------

    async def invoke(self, name: str, payload: Any = None) -> Invocation:
        """Run one function once, as its trigger would, with `payload` as its input:
        the JSON body for HTTP functions; for table functions, a simulated commit."""
        return await self.kind_of(name).run_by_hand(name, payload)

    async def fire_timer(self, name: str, at: datetime | None = None) -> Invocation:
        return await self.timers.fire(name, at=at)

    async def simulate_table_change(
        self, name: str, commit: SimulatedCommit | None = None, **fields: Any
    ) -> Invocation:
        """Hand table function `name` `commit`, or the one `fields` describe (`operation=`,
        `rows=`, `version=`, `replay_from=`, as `SimulatedCommit` names them)."""
        return await self.watcher.simulate(name, commit or check_simulated_commit(fields))

    def reload(self, name: str | None = None) -> list[str]:
        """Re-import one function (or all) from its file; the server keeps serving meanwhile."""
        names = [name] if name else self.registry.names
        for each in names:
            self.registry.reload(each)
        return names

    # -- the same, from synchronous code ---------------------------------------------------

    def run_sync(self, coro: Coroutine[Any, Any, T], timeout: float | None = None) -> T:
        """Run a coroutine from synchronous code (see `run_on`): on the runtime's loop while it
        runs on another thread (a notebook's server), so it shares the triggers' loop; else on
        a loop thread of the runtime's own, made on first use."""
        loop = self._loop
        if loop is None or not loop.is_running() or running_here(loop):
            if self._portal is None or not self._portal.running:
                self._portal = LoopThread("lakefn-sync").start()
            return self._portal.run(coro, timeout)
        return run_on(loop, coro, timeout)

    def invoke_sync(self, name: str, payload: Any = None) -> Invocation:
        return self.run_sync(self.invoke(name, payload))

    def describe(self) -> list[dict[str, Any]]:
        """What /lakefn/functions shows: each function with its trigger and its summary."""
        out = []
        for fn in self.config.functions:
            trigger = fn.trigger.model_dump(exclude_none=True)
            if fn.table is not None:
                trigger["table_name"] = str(fn.table)
            last = self.journal.entries(limit=1, function=fn.name)
            out.append(
                {
                    "name": fn.name,
                    "trigger": trigger,
                    "summary": KINDS[fn.kind].summary(fn),
                    "retry": fn.retry.model_dump(),
                    "timeout": fn.timeout,
                    "run_on": fn.run_on,
                    "last_invocation": last[0].to_dict() if last else None,
                }
            )
        return out
