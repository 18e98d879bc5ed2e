"""`lakefn run NAME`: run one timer or table function once, the way its Databricks Job does.

The function's trigger kind decides (`TriggerKind.run_as_job`); the timer and unity_table
kinds hand over to `run_timer` and `run_table` here, with what each uses.

A table function's run is the watcher's own check, repeated until nothing is new: the same
checkpoint, the same rules (operations, start, gaps, recreated tables, retry) and the same lease
per (function, table). A second run started while one holds the lease waits for it (up to
`lease_wait` seconds) and then looks for whatever is still new, so a table-update trigger that
fires during a run is never lost; past the wait it gives up, exits 0 and says another run holds
the lease. Nothing is ever delivered twice: only the lease holder delivers, and the checkpoint's
compare-and-set guards even a holder whose lease lapsed.

A timer function's run is one call with `scheduled_time` (the job's trigger time) and
`past_due` when the run started more than `JOB_PAST_DUE_GRACE` after it: serverless start-up
takes tens of seconds, so the server's one-second grace would mark every job run late.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from .._exceptions import BadScheduledTime, LakefnError
from ..events import TimerEvent

logger = logging.getLogger("lakefn.run")

if TYPE_CHECKING:
    from collections.abc import Callable

    from ..abc import CheckpointStore, Clock
    from ..invoker import Invoker
    from ..journal import Invocation, Journal
    from ..runtime import Runtime
    from ..watching import TableWatcher

#: how late a job's timer run may start and still not be `past_due`
JOB_PAST_DUE_GRACE = timedelta(minutes=5)
#: default seconds a run waits for another run's lease on the same table
DEFAULT_LEASE_WAIT = 300.0
#: seconds between two attempts at the lease while waiting
LEASE_POLL = 1.0


@dataclass
class RunReport:
    """What one `lakefn run` did; `to_dict` is the `--json` output."""

    function: str
    trigger: str
    #: delivered | nothing_new | busy | failed (table); ok | failed (timer)
    outcome: str = "nothing_new"
    table: str | None = None
    checkpoint_before: int | None = None
    checkpoint_after: int | None = None
    invocations: list[Invocation] = field(default_factory=list)
    notes: list[Invocation] = field(default_factory=list)
    error: str | None = None
    scheduled_time: datetime | None = None
    past_due: bool | None = None

    @property
    def ok(self) -> bool:
        return self.outcome != "failed"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "function": self.function,
            "trigger": self.trigger,
            "ok": self.ok,
            "outcome": self.outcome,
            "error": self.error,
            "invocations": [_invocation(i) for i in self.invocations],
            "notes": [{"status": n.status, "message": n.error, **n.detail} for n in self.notes],
        }
        if self.table is not None:  # a table function's run
            out["table"] = self.table
            out["checkpoint"] = {"before": self.checkpoint_before, "after": self.checkpoint_after}
            out["delivered_versions"] = sorted(
                {v for i in self.invocations if i.ok for v in _versions(i)}
            )
        else:
            stamp = self.scheduled_time
            out["scheduled_time"] = stamp.isoformat() if stamp else None
            out["past_due"] = self.past_due
        return out

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        # How a notebook cell shows `%lakefn run`: the same lines the CLI prints.
        printer.text("\n".join(self.lines()) or f"{self.function}: {self.outcome}")

    def lines(self) -> list[str]:
        """The plain-text report, one line per fact."""
        out = []
        for note in self.notes:
            out.append(f"{self.function}: {note.error}")
        for inv in self.invocations:
            what = _what(inv)
            state = "ok" if inv.ok else f"{inv.status} after {inv.attempt} attempt(s)"
            out.append(f"{self.function}: {what}: {state} (invocation {inv.id})")
            if not inv.ok and inv.error:
                out.append(f"  {inv.error}")
        if self.outcome == "nothing_new":
            at = self.checkpoint_after
            where = f" (checkpoint {at})" if at is not None and at >= 0 else ""
            out.append(f"{self.function}: nothing new in {self.table}{where}")
        elif self.outcome == "busy":
            out.append(f"{self.function}: {self.error}")
        elif self.outcome == "failed" and not self.invocations:
            out.append(f"{self.function}: failed: {self.error}")
        return out


def _versions(invocation: Invocation) -> range:
    first, last = invocation.detail.get("versions", (0, -1))
    return range(int(first), int(last) + 1)


def _what(invocation: Invocation) -> str:
    if "versions" in invocation.detail:
        first, last = invocation.detail["versions"]
        return f"versions {first}..{last}" if first != last else f"version {first}"
    return f"tick {invocation.detail.get('scheduled_time')}"


def _invocation(invocation: Invocation) -> dict[str, Any]:
    out = invocation.to_dict()
    out.pop("detail", None)
    out.update({k: v for k, v in invocation.detail.items() if k in ("versions", "table")})
    return out


def parse_time(text: str) -> datetime:
    """An ISO 8601 time as Jobs writes it (`2026-03-01T02:30:00.000Z`); naive means UTC."""
    raw = text.strip()
    try:
        stamp = datetime.fromisoformat(raw[:-1] + "+00:00" if raw.endswith(("Z", "z")) else raw)
    except ValueError:
        raise BadScheduledTime(text) from None
    return stamp if stamp.tzinfo else stamp.replace(tzinfo=timezone.utc)


async def run_function(
    runtime: Runtime,
    name: str,
    *,
    scheduled_time: datetime | None = None,
    lease_wait: float = DEFAULT_LEASE_WAIT,
) -> RunReport:
    """Run `name` once as its job would (its kind's `run_as_job`); the report says what
    happened. NotRunnable for a kind that cannot run as a job."""
    kind = runtime.kind_of(name)  # FunctionNotFound first
    return await kind.run_as_job(name, scheduled_time=scheduled_time, lease_wait=lease_wait)


async def run_timer(
    invoker: Invoker, clock: Clock, name: str, scheduled: datetime | None
) -> RunReport:
    """A timer function's job run: one call for the tick at `scheduled` (None: now)."""
    now = clock.now()
    at = scheduled or now
    past_due = now - at > JOB_PAST_DUE_GRACE

    def make_event() -> TimerEvent:
        return TimerEvent(function_name=name, scheduled_time=at, past_due=past_due)

    detail = {"scheduled_time": at.isoformat(), "past_due": past_due, "job": True}
    invocation = await invoker.invoke(name, make_event, detail=detail)
    return RunReport(
        name,
        "timer",
        outcome="ok" if invocation.ok else "failed",
        invocations=[invocation],
        error=invocation.error,
        scheduled_time=at,
        past_due=past_due,
    )


async def run_table(
    watcher: TableWatcher,
    checkpoints: Callable[[], CheckpointStore],
    journal: Journal,
    name: str,
    lease_wait: float,
) -> RunReport:
    """A table function's job run: every new commit after its checkpoint, under its lease."""
    state = watcher.states[name]
    report = RunReport(name, "unity_table", table=str(state.table))
    recorded: list[Invocation] = []
    unsubscribe = journal.subscribe(lambda i: recorded.append(i) if i.function == name else None)
    try:
        await _deliver_all(watcher, checkpoints, name, report, lease_wait)
    except Exception as exc:  # noqa: BLE001 - a broken store or source fails the run, said plainly
        logger.debug("%s: run failed", name, exc_info=True)
        said = str(exc) if isinstance(exc, LakefnError) else f"{type(exc).__name__}: {exc}"
        report.outcome, report.error = "failed", said
    finally:
        unsubscribe()
    report.checkpoint_after = watcher.states[name].last_processed
    delivered = {i.id for i in report.invocations}
    # What the watcher journaled besides the calls: history gaps, a recreated table.
    report.notes = [i for i in recorded if i.id not in delivered]
    return report


async def _deliver_all(
    watcher: TableWatcher,
    checkpoints: Callable[[], CheckpointStore],
    name: str,
    report: RunReport,
    lease_wait: float,
) -> None:
    """The watcher's check, again and again under its lease, until nothing is new."""
    state = watcher.states[name]
    report.checkpoint_before = await asyncio.to_thread(lambda: checkpoints().load(state.key))
    give_up_at = time.monotonic() + lease_wait
    try:
        while True:
            before = state.last_processed
            invocation = await watcher.check(name)
            if state.lease_until <= 0:  # another run holds the lease
                if time.monotonic() >= give_up_at:
                    report.outcome = "busy"
                    report.error = (
                        f"another run holds the lease on {state.table}; it delivers what is new"
                    )
                    return
                await asyncio.sleep(LEASE_POLL)
                continue
            if invocation is not None:
                report.invocations.append(invocation)
                if not invocation.ok:
                    report.outcome, report.error = "failed", invocation.error
                    return
                report.outcome = "delivered"
                continue
            if state.error_kind is not None:  # the table cannot be read: the job run fails
                report.outcome, report.error = "failed", state.last_error
                return
            if state.last_processed == before:
                return  # nothing new (commits the operations filter skips move it: look again)
    finally:
        if state.lease_until > 0:
            state.lease_until, state.cached = 0.0, None
            await asyncio.to_thread(checkpoints().release, state.key, watcher.owner)
