"""The interfaces behind which lakefn's pluggable parts live.

A `Runtime` is handed one instance of each (with in-process defaults), so tests swap them
without patching:

- `TableSource`: where unity_table triggers read a table's history and changes
  (`lakefn.sources.local`, `.warehouse`, `.spark`, `.recorded`; app.yaml's `tables.source`
  names one through `lakefn.sources.selection.SOURCES`).
- `CheckpointStore`: where the last processed version per (function, table) is kept
  (`lakefn.checkpoints.sqlite`, `.postgres`, `.lakebase`, `.memory`; the scheme of app.yaml's
  `state:` names one through `lakefn.checkpoints.selection.STORES`).
- `Clock`: what time it is, for timers; `lakefn.testing.FakeClock` is one tests can advance.
- `TriggerKind`: one kind of trigger (`type:` in app.yaml): its config model, its runner, how
  it runs by hand and describes itself (`lakefn.triggers.http`, `.timer`, `.unity_table`;
  the mapping of names to kinds is `lakefn.triggers.KINDS`).

Sources are synchronous (their clients are blocking); the watcher calls them from worker
threads, so an implementation must be safe to call from several threads at once.
"""

from __future__ import annotations

import builtins
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from collections.abc import Awaitable, Callable, Mapping

    import pyarrow
    from fastapi import FastAPI
    from pydantic import BaseModel

    from ._tablename import TableName
    from ._yaml import Path_
    from .config import AppConfig, FunctionConfig
    from .events import Commit
    from .functions import FunctionRegistry
    from .invoker import Invoker
    from .jobs.run import RunReport
    from .journal import Invocation, Journal
    from .project import Project


class TableSource(ABC):
    """Reads Delta history for Unity tables."""

    #: short name shown in /lakefn/tables and messages: "local", "warehouse", "spark", "recorded"
    name: str = "source"

    @abstractmethod
    def latest_version(self, table: TableName) -> int:
        """The table's current version. Raises TableNotFound or SourceUnavailable."""

    @abstractmethod
    def commits_since(self, table: TableName, after: int, limit: int | None = None) -> list[Commit]:
        """Commits with version > `after`, ascending, at most `limit` of them (oldest first).

        `after = -1` asks for the whole history still available. When versions right after
        `after` are gone from the history (log retention), the list simply starts later:
        the caller detects the gap.
        """

    @abstractmethod
    def changes(self, table: TableName, start: int, end: int) -> pyarrow.Table:
        """Change-data-feed rows for versions start..end inclusive, with `_change_type`,
        `_commit_version` and `_commit_timestamp`. Raises ChangeDataFeedUnavailable."""

    def table_id(self, table: TableName) -> str | None:
        """The table's identity, which a drop and create gives anew (the Delta metadata id).

        None means the source cannot tell; the watcher then notices a recreated table only when
        its versions go back. Called when there is news, never on an idle check, so it may cost
        a read.
        """
        return None

    def close(self) -> None:  # noqa: B027 - optional: most sources hold nothing to release
        """Release connections and handles. Called once when the runtime stops."""


class CheckpointStore(ABC):
    """Durable last-processed versions, keyed by (function, table).

    `save` is a compare-and-set: it moves a checkpoint only from the value the caller read,
    so two processes sharing a store can never both record the same delivery. A lease
    (`acquire`) lets one process at a time deliver a key's versions.
    """

    @abstractmethod
    def load(self, key: str) -> int | None:
        """The last processed version, or None if this key has never been processed."""

    @abstractmethod
    def save(self, key: str, version: int, *, expected: int | None) -> None:
        """Set the key to `version` if it currently holds `expected`, else CheckpointConflict."""

    @abstractmethod
    def load_table_id(self, key: str) -> str | None:
        """The identity of the table (`TableSource.table_id`) whose versions the key's
        checkpoint counts, or None if none was saved."""

    @abstractmethod
    def save_table_id(self, key: str, table_id: str) -> None:
        """Record the identity of the table the key's checkpoint counts versions of (an upsert,
        durable like `save`: a recreated table is detected across restarts)."""

    @abstractmethod
    def acquire(
        self, key: str, owner: str, ttl: float, *, take_over: Callable[[str], bool] | None = None
    ) -> bool:
        """Take or renew the lease on `key` for `ttl` seconds; False if another owner holds it,
        unless `take_over(that_owner)` says its holder is gone (a crashed process)."""

    @abstractmethod
    def release(self, key: str, owner: str) -> None:
        """Give up the lease if `owner` holds it."""

    def items(self) -> dict[str, int]:
        """Every key and its version (for status pages)."""
        return {}

    def close(self) -> None:  # noqa: B027 - optional: the memory store holds nothing
        """Release the store's resources."""


class Clock(ABC):
    """The time, as timers see it."""

    @abstractmethod
    def now(self) -> datetime:
        """The current time, timezone-aware."""


class SystemClock(Clock):
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


@dataclass(frozen=True)
class TriggerContext:
    """What a trigger kind's runner may use, handed in by the runtime (never the runtime)."""

    #: the project's functions of this kind, in app.yaml order
    functions: tuple[FunctionConfig, ...]
    #: every loaded function, by name (`config(name)` raises FunctionNotFound)
    registry: FunctionRegistry
    invoker: Invoker
    journal: Journal
    clock: Clock
    #: the whole app.yaml, for settings outside `functions` (`http.max_body_bytes`, ...)
    config: AppConfig
    #: the project (its folder, app.yaml's path)
    project: Project
    #: the table source and the checkpoint store, opened on first call (a store that cannot
    #: open raises LakefnError; `store_problem` then says why, until it opens)
    table_source: Callable[[], TableSource]
    checkpoints: Callable[[], CheckpointStore]
    store_problem: Callable[[], str | None]
    #: what paces retries and checks (`asyncio.sleep` unless a test hands in another)
    sleep: Callable[[float], Awaitable[Any]] | None = None
    #: what the runtime was handed for this kind only (a timer's `trigger_factory`)
    options: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """A problem (or warning) a kind finds in app.yaml: where (a path of keys) and what."""

    where: Path_
    message: str


class TriggerKind(ABC):
    """One kind of trigger: what `type: <name>` in app.yaml means.

    The class describes the kind (its config model, one-line summary, checks across app.yaml);
    an instance, made by each runtime with a `TriggerContext`, is the kind's runner: started
    and stopped with the server, run by hand, asked for its status. Adding a kind is one module
    with a subclass, and one line in `lakefn.triggers.KINDS` (or `lakefn.triggers.register`).
    """

    #: the `type:` that selects this kind in app.yaml
    type: ClassVar[str]
    #: the pydantic model of the `trigger:` block, whose `type` field is `Literal[<type>]`
    config_model: ClassVar[builtins.type[BaseModel]]  # `type` is the attribute above
    #: its functions name a Unity table (`table_name`)
    uses_table: ClassVar[bool] = False
    #: its functions may `run_on: job` (a Databricks Job runs them instead of the app); a kind
    #: that sets it implements `job_trigger` and `run_as_job` below
    runs_as_job: ClassVar[bool] = False
    #: why not, said when app.yaml asks `run_on: job` of a kind that cannot ("": no reason)
    not_a_job_because: ClassVar[str] = ""
    #: what a run by hand takes, for forms: "json" (a JSON value), "commit" (a simulated
    #: commit: operation, rows, version, replay_from) or "none"
    hand_input: ClassVar[str] = "json"

    def __init__(self, context: TriggerContext) -> None:
        self.context = context

    # -- the kind ---------------------------------------------------------------------------

    @classmethod
    @abstractmethod
    def summary(cls, function: FunctionConfig) -> str:
        """One line saying when `function` runs, for every listing: `GET /orders`."""

    @classmethod
    def check_functions(cls, functions: list[tuple[int, dict[str, Any]]]) -> list[Problem]:
        """Problems across this kind's functions in app.yaml, as (index, raw function mapping):
        checked on the raw data, so they are reported even when another field is wrong."""
        return []

    @classmethod
    def warnings(cls, functions: list[tuple[int, FunctionConfig]]) -> list[Problem]:
        """What is valid but likely not what was meant, for `lakefn validate` and the log."""
        return []

    # -- the runner -------------------------------------------------------------------------

    def mount(self, app: FastAPI) -> None:  # noqa: B027 - most kinds serve no routes
        """Add this kind's routes to the server's app (before its catch-all console page)."""

    async def start(self) -> None:  # noqa: B027 - a kind may have nothing running
        """Start watching for triggers (the server's start-up, or `LakefnHarness.start`)."""

    async def stop(self) -> None:  # noqa: B027 - nor anything to stop
        """Stop; a stopped runner may be started again."""

    @abstractmethod
    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        """Run function `name` once as its trigger would, `payload` being what the admin route,
        `lakefn invoke`, the notebook and the harness were given (JSON-shaped, or None).
        Bad input raises LakefnError; the function's own failure is in the Invocation."""

    def function_status(self, name: str) -> dict[str, Any]:
        """Extra fields for this function in /lakefn/functions (a timer's `next_run_time`)."""
        return {}

    def status(self) -> list[dict[str, Any]]:
        """Progress rows (/lakefn/tables for table triggers); most kinds have none."""
        return []

    def problems(self) -> list[str]:
        """What keeps this kind's triggers from running (for /healthz); empty when all is well."""
        return []

    def config_of(self, name: str) -> FunctionConfig:
        """The config of this kind's function `name` (the registry says FunctionNotFound)."""
        config = self.context.registry.config(name)
        if config.kind != self.type:
            from ._exceptions import WrongTrigger

            raise WrongTrigger(name, config.kind, self.type)
        return config

    # -- as a Databricks Job (`run_on: job`, when `runs_as_job`) -----------------------------

    #: what `lakefn bundle` adds to the job task's `lakefn run NAME` arguments
    job_parameters: ClassVar[tuple[str, ...]] = ()

    @classmethod
    def job_problems(cls, function: FunctionConfig) -> list[Problem]:
        """What in `function`'s settings a Databricks Job cannot express, for `lakefn bundle`
        (`where` within the function: `("trigger", "schedule")`); empty when all is well."""
        return []

    @classmethod
    def job_trigger(cls, function: FunctionConfig) -> dict[str, Any]:
        """The job settings that start `function`'s job (`schedule`, or `trigger`), for the
        bundle's job resource; called only when `job_problems` found none."""
        from ._exceptions import NotRunnable

        raise NotRunnable(function.name, cls.type)

    async def run_as_job(
        self, name: str, *, scheduled_time: datetime | None, lease_wait: float
    ) -> RunReport:
        """Run function `name` once as its job does (`lakefn run`): `scheduled_time` is the
        job's trigger time (None: now), `lease_wait` how long to wait for another run."""
        from ._exceptions import NotRunnable

        raise NotRunnable(name, self.type)
