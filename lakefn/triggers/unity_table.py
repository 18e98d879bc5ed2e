"""The unity_table trigger kind: a function gets each new version of a Unity table.

The watching itself (polling, leases, checkpoints) is `TableWatcher`, which the kind uses
through its public methods; it is built in one place, `Runtime.watcher`, and handed to the
kind as the `watcher` option (with `checkpoints`, the store opener, and `store_problem`).
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import Field, field_validator

from .. import _operations
from .._exceptions import LakefnError
from .._json_input import check_simulated_commit
from .._model import MAX_VERSION, ConfigModel, check_table_name
from ..abc import TriggerKind

if TYPE_CHECKING:
    from datetime import datetime

    from ..abc import TriggerContext
    from ..config import FunctionConfig
    from ..jobs.run import RunReport
    from ..journal import Invocation
    from ..watching import TableWatcher


class TableTrigger(ConfigModel):
    type: Literal["unity_table"]
    check_interval: float = Field(default=30.0, gt=0, le=86400)
    table_name: str | None = None
    operations: tuple[str, ...] | None = None
    start: Literal["latest", "earliest"] | int = "latest"

    @field_validator("operations")
    @classmethod
    def _known(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        if value is not None and not value:
            raise ValueError("operations must list at least one operation, or be left out")
        return None if value is None else tuple(_operations.check(op) for op in value)

    @field_validator("table_name")
    @classmethod
    def _table_name(cls, value: str | None) -> str | None:
        return check_table_name(value)

    @field_validator("start", mode="before")
    @classmethod
    def _start(cls, value: Any) -> Any:
        if isinstance(value, bool) or (
            not isinstance(value, int) and value not in ("latest", "earliest")
        ):
            raise ValueError(f"start must be latest, earliest or a version number, not {value!r}")
        if isinstance(value, int) and not 0 <= value <= MAX_VERSION:
            raise ValueError(f"start version must be between 0 and {MAX_VERSION}")
        return value


class TableKind(TriggerKind):
    """Watches tables for new versions; run by hand, a simulated commit."""

    type: ClassVar[str] = "unity_table"
    config_model = TableTrigger
    uses_table = True
    hand_input = "commit"

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        trigger = function.trigger
        assert isinstance(trigger, TableTrigger)
        return f"{function.table} every {trigger.check_interval:g} s"

    def __init__(self, context: TriggerContext) -> None:
        super().__init__(context)
        self._watcher: TableWatcher | None = None

    @property
    def watcher(self) -> TableWatcher:
        """The runner: one watcher for the project's table functions, built on first use."""
        if self._watcher is None:
            from ..watching import TableWatcher

            context = self.context
            self._watcher = TableWatcher(
                context.project,
                invoker=context.invoker,
                journal=context.journal,
                source=context.table_source,
                checkpoints=context.checkpoints,
                clock=context.clock,
                sleep=context.sleep,
            )
        return self._watcher

    async def start(self) -> None:
        if not self.context.functions:
            return
        # Opened now, so /healthz tells of an unusable state file from the first request.
        with contextlib.suppress(LakefnError):
            await asyncio.to_thread(self.context.checkpoints)
        await self.watcher.start()

    async def stop(self) -> None:
        if self.context.functions:
            await self.watcher.stop()

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        """`payload` names the simulated commit (see `check_simulated_commit`), or None."""
        return await self.watcher.simulate(name, check_simulated_commit(payload))

    def status(self) -> list[dict[str, Any]]:
        return self.watcher.status() if self.context.functions else []

    def problems(self) -> list[str]:
        if not self.context.functions:
            return []
        store_problem = self.context.store_problem()
        if store_problem is not None:
            # The watcher's failures are this one, seen from each table: said once here.
            return [f"table triggers cannot open their checkpoint store: {store_problem}"]
        return self.watcher.problems()

    # -- as a Databricks Job: started when the table changes, delivers what is new ----------

    runs_as_job = True

    @classmethod
    def job_trigger(cls, function: FunctionConfig) -> dict[str, Any]:
        settings = function.job
        table_update: dict[str, Any] = {
            "table_names": [str(function.table)],
            "condition": "ANY_UPDATED",
        }
        if settings and settings.min_time_between_triggers:
            table_update["min_time_between_triggers_seconds"] = settings.min_time_between_triggers
        if settings and settings.wait_after_last_change:
            table_update["wait_after_last_change_seconds"] = settings.wait_after_last_change
        paused = "PAUSED" if settings and settings.paused else "UNPAUSED"
        return {"trigger": {"pause_status": paused, "table_update": table_update}}

    async def run_as_job(
        self, name: str, *, scheduled_time: datetime | None, lease_wait: float
    ) -> RunReport:
        from ..jobs.run import run_table

        context = self.context
        return await run_table(self.watcher, context.checkpoints, context.journal, name, lease_wait)
