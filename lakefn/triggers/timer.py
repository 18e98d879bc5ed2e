"""Timer triggers: 5-field cron on APScheduler 3, running on the server's event loop.

The schedule means what crontab(5) says; lakefn computes its fire times (`lakefn._cron`) and
APScheduler only runs them.

A tick that comes while the previous run of the same function is still going is skipped
(APScheduler's `max_instances=1`) and the skip is recorded in the journal. A tick that starts
more than `PAST_DUE_GRACE` seconds after its scheduled time is handed over with `past_due`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, ClassVar, Literal

from pydantic import field_validator

from .._cron import CronSchedule
from .._exceptions import WrongTrigger
from .._model import ConfigModel
from ..abc import Problem, TriggerKind
from ..events import TimerEvent

if TYPE_CHECKING:
    from apscheduler.events import JobSubmissionEvent
    from apscheduler.schedulers.asyncio import AsyncIOScheduler

    from ..abc import Clock, TriggerContext
    from ..config import FunctionConfig
    from ..functions import FunctionRegistry
    from ..invoker import Invoker
    from ..jobs.run import RunReport
    from ..journal import Invocation, Journal

logger = logging.getLogger("lakefn.timer")

#: seconds a tick may start after its scheduled time and still not be `past_due`
PAST_DUE_GRACE = 1.0


class TimerTrigger(ConfigModel):
    type: Literal["timer"]
    schedule: str
    timezone: str = "UTC"

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        from .._cron import CronError

        try:
            CronSchedule.parse(value)
        except CronError as exc:
            raise ValueError(str(exc)) from None
        return value

    @field_validator("timezone")
    @classmethod
    def _zone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}; use an IANA name such as 'Europe/Paris'"
            ) from None
        return value


def cron_trigger(trigger: TimerTrigger) -> Any:
    """The APScheduler trigger for a timer: crontab(5) semantics, in the trigger's timezone."""
    return CronSchedule.parse(trigger.schedule).trigger(trigger.timezone)


class TimerRunner:
    """The timer functions of one runtime, on one APScheduler scheduler."""

    def __init__(
        self,
        functions: Sequence[FunctionConfig],
        *,
        registry: FunctionRegistry,
        invoker: Invoker,
        journal: Journal,
        clock: Clock,
        trigger_factory: Callable[[TimerTrigger], Any] | None = None,
    ) -> None:
        """`functions`: the timer functions to schedule; `registry` tells every function's
        trigger (firing another kind's function by hand is an error naming it)."""
        self.functions = tuple(functions)
        self.registry = registry
        self.invoker = invoker
        self.journal = journal
        self.clock = clock
        self.trigger_factory = trigger_factory or cron_trigger
        self.scheduler: AsyncIOScheduler | None = None
        self._scheduled: dict[str, datetime] = {}

    def names(self) -> list[str]:
        # A run_on: job function is scheduled by its Databricks Job (`lakefn run`), not here.
        return [f.name for f in self.functions if f.run_on != "job"]

    async def start(self) -> None:
        names = self.names()
        if not names:
            return
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_SUBMITTED
        from apscheduler.schedulers.asyncio import AsyncIOScheduler

        scheduler = AsyncIOScheduler(timezone=timezone.utc)
        scheduler.add_listener(self._on_submission, EVENT_JOB_SUBMITTED | EVENT_JOB_MAX_INSTANCES)
        for name in names:
            trigger = self.registry.config(name).trigger
            assert isinstance(trigger, TimerTrigger)
            scheduler.add_job(
                self._tick,
                self.trigger_factory(trigger),
                args=[name],
                id=name,
                name=name,
                max_instances=1,
                coalesce=True,
                misfire_grace_time=None,  # late ticks still run, marked past_due
            )
        scheduler.start()
        self.scheduler = scheduler

    async def stop(self) -> None:
        if self.scheduler is not None:
            self.scheduler.shutdown(wait=False)
            self.scheduler = None

    def next_run_times(self) -> dict[str, datetime | None]:
        if self.scheduler is None:
            return {}
        return {job.id: job.next_run_time for job in self.scheduler.get_jobs()}

    def _on_submission(self, event: JobSubmissionEvent) -> None:
        # Runs on the loop right after APScheduler creates the job's task and before the task
        # starts: the only public place that knows the tick's scheduled time.
        from apscheduler.events import EVENT_JOB_MAX_INSTANCES

        scheduled = event.scheduled_run_times[-1]
        if event.code == EVENT_JOB_MAX_INSTANCES:
            self._record_skip(event.job_id, scheduled)
        else:
            self._scheduled[event.job_id] = scheduled

    def _record_skip(self, name: str, scheduled: datetime) -> None:
        logger.warning("%s: tick of %s skipped, the previous run is still going", name, scheduled)
        detail = {"scheduled_time": scheduled.isoformat()}
        from ..journal import Invocation

        note = Invocation.note(name, "timer", "skipped", "previous run still going", detail)
        self.journal.record(note)

    async def _tick(self, name: str) -> None:
        scheduled = self._scheduled.pop(name, None)
        await self.fire(name, at=scheduled)

    async def fire(self, name: str, at: datetime | None = None) -> Invocation:
        """Run a timer function for the tick scheduled at `at` (default: now)."""
        trigger = self.registry.config(name).trigger  # FunctionNotFound first
        if not isinstance(trigger, TimerTrigger):
            raise WrongTrigger(name, trigger.type, "timer")
        now = self.clock.now()
        scheduled = at or now
        if scheduled.tzinfo is None:
            scheduled = scheduled.replace(tzinfo=timezone.utc)
        past_due = now - scheduled > timedelta(seconds=PAST_DUE_GRACE)

        def make_event() -> TimerEvent:
            return TimerEvent(function_name=name, scheduled_time=scheduled, past_due=past_due)

        detail = {"scheduled_time": scheduled.isoformat(), "past_due": past_due}
        return await self.invoker.invoke(name, make_event, detail=detail)


class TimerKind(TriggerKind):
    """A cron schedule; run by hand, it fires now (any payload is ignored)."""

    type: ClassVar[str] = "timer"
    config_model = TimerTrigger
    hand_input = "none"

    def __init__(self, context: TriggerContext) -> None:
        super().__init__(context)
        self.runner = TimerRunner(
            context.functions,
            registry=context.registry,
            invoker=context.invoker,
            journal=context.journal,
            clock=context.clock,
            trigger_factory=context.options.get("trigger_factory"),
        )

    @classmethod
    def summary(cls, function: FunctionConfig) -> str:
        trigger = function.trigger
        assert isinstance(trigger, TimerTrigger)
        return f"{trigger.schedule} ({trigger.timezone})"

    async def start(self) -> None:
        await self.runner.start()

    async def stop(self) -> None:
        await self.runner.stop()

    async def run_by_hand(self, name: str, payload: Any = None) -> Invocation:
        return await self.runner.fire(name)

    def function_status(self, name: str) -> dict[str, Any]:
        when = self.runner.next_run_times().get(name)
        return {} if when is None else {"next_run_time": when.isoformat()}

    # -- as a Databricks Job: the schedule as Quartz, one call per run ----------------------

    runs_as_job = True
    job_parameters = ("--scheduled-time", "{{job.trigger.time.iso_datetime}}")

    @classmethod
    def job_problems(cls, function: FunctionConfig) -> list[Problem]:
        from .._exceptions import NotConvertible
        from ..jobs.quartz import to_quartz

        trigger = function.trigger
        assert isinstance(trigger, TimerTrigger)
        try:
            to_quartz(trigger.schedule)
        except NotConvertible as exc:
            return [Problem(("trigger", "schedule"), f"{exc} (run_on: job)")]
        return []

    @classmethod
    def job_trigger(cls, function: FunctionConfig) -> dict[str, Any]:
        from ..jobs.quartz import to_quartz

        trigger = function.trigger
        assert isinstance(trigger, TimerTrigger)
        paused = function.job is not None and function.job.paused
        schedule = {
            "quartz_cron_expression": to_quartz(trigger.schedule),
            "timezone_id": trigger.timezone,
            "pause_status": "PAUSED" if paused else "UNPAUSED",
        }
        return {"schedule": schedule}

    async def run_as_job(
        self, name: str, *, scheduled_time: datetime | None, lease_wait: float
    ) -> RunReport:
        from ..jobs.run import run_timer

        return await run_timer(self.context.invoker, self.context.clock, name, scheduled_time)
