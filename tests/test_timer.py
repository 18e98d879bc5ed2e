"""Timer triggers on the real APScheduler: ticks, skipped overlaps, past_due, cron and timezones."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from apscheduler.triggers.base import BaseTrigger
from apscheduler.triggers.interval import IntervalTrigger
from croniter import croniter

from lakefn.testing import FakeClock
from lakefn.triggers.timer import PAST_DUE_GRACE, cron_trigger

PARIS = ZoneInfo("Europe/Paris")

APP = """\
functions:
  - name: tick
    trigger: {type: timer, schedule: "*/5 * * * *"}
  - name: paris
    trigger: {type: timer, schedule: "30 9 * * 1-5", timezone: Europe/Paris}
"""

TICK = """\
import threading, time
RUNNING = []
SEEN = []
LOCK = threading.Lock()

def main(event):
    with LOCK:
        RUNNING.append(1)
        SEEN.append((len(RUNNING), event.scheduled_time, event.past_due))
    time.sleep(float(__import__("os").environ.get("TICK_SLEEP", "0")))
    with LOCK:
        RUNNING.pop()
    return event.scheduled_time.isoformat()
"""


def fast(every: float):
    """Stand in for the cron trigger: the same scheduler, jobs and listeners, a faster clock."""
    return lambda trigger: IntervalTrigger(seconds=every)


def _wait_for(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def _setup(project):
    project.config(APP)
    project.function("tick", TICK)
    project.function("paris", "def main(event):\n    return 'bonjour'\n")


def test_the_scheduler_fires_ticks_with_their_scheduled_time(project, serve, monkeypatch) -> None:
    monkeypatch.setenv("TICK_SLEEP", "0")
    _setup(project)
    server = serve(project, timer_trigger_factory=fast(0.2))
    module = server.runtime.registry.get("tick").module
    _wait_for(lambda: len(module.SEEN) >= 3)
    for _, scheduled, past_due in module.SEEN:
        assert scheduled.tzinfo is not None and past_due is False
    # Scheduled times are the trigger's grid (start + n x 0.2 s), not whenever a tick ran.
    first = module.SEEN[0][1]
    for _, scheduled, _ in module.SEEN[1:]:
        assert scheduled > first and (scheduled - first) % timedelta(seconds=0.2) == timedelta(0)
    entries = server.client.get("/lakefn/invocations", params={"function": "tick"}).json()
    assert entries and all(e["trigger"] == "timer" and e["status"] == "ok" for e in entries)


def test_a_tick_during_a_running_call_is_skipped_and_recorded(
    project, serve, monkeypatch, caplog
) -> None:
    monkeypatch.setenv("TICK_SLEEP", "0.65")
    _setup(project)
    server = serve(project, timer_trigger_factory=fast(0.2))
    journal = server.runtime.journal
    _wait_for(lambda: len(journal.entries(function="tick")) >= 6)
    module = server.runtime.registry.get("tick").module
    assert max(running for running, _, _ in module.SEEN) == 1  # never two at once
    statuses = [e.status for e in journal.entries(function="tick")]
    assert "skipped" in statuses and "ok" in statuses
    skipped = next(e for e in journal.entries(function="tick") if e.status == "skipped")
    scheduled = skipped.detail["scheduled_time"]
    assert (skipped.trigger, skipped.error) == ("timer", "previous run still going")
    warned = [r.getMessage() for r in caplog.records if "skipped" in r.getMessage()]
    assert f"tick: tick of {datetime.fromisoformat(scheduled)} skipped, the previous run is " \
        "still going" in warned  # fmt: skip


class AtTimes(BaseTrigger):
    """Fires at the given instants, then never again: a tick at a time the test chose."""

    def __init__(self, *times: datetime) -> None:
        self.times = sorted(times)

    def get_next_fire_time(self, previous, now):  # noqa: ANN001, ANN201 - APScheduler's API
        return next((t for t in self.times if previous is None or t > previous), None)


def test_a_real_tick_hands_over_its_scheduled_time_and_past_due(project, serve) -> None:
    # The scheduler really fires both ticks; the runtime's clock, which decides past_due,
    # stands at `now`. One tick is due 0.25 s before it (on time), one 10 minutes before
    # (late: with misfire_grace_time=None the scheduler runs it at once, past due).
    now = datetime.now(timezone.utc).replace(microsecond=0) + timedelta(seconds=2)
    on_time, late = now - timedelta(seconds=0.25), now - timedelta(minutes=10)
    project.config(
        """\
        functions:
          - name: ontime
            trigger: {type: timer, schedule: "1 1 * * *"}
          - name: late
            trigger: {type: timer, schedule: "2 2 * * *"}
        """
    )
    project.function("ontime", TICK)
    project.function("late", TICK)
    at = {"1 1 * * *": on_time, "2 2 * * *": late}
    server = serve(
        project,
        clock=FakeClock(now),
        timer_trigger_factory=lambda trigger: AtTimes(at[trigger.schedule]),
    )
    seen = {n: server.runtime.registry.get(n).module.SEEN for n in ("ontime", "late")}
    journal = server.runtime.journal
    _wait_for(lambda: len(journal.entries()) == 2)  # recorded once each function returned
    assert seen["ontime"] == [(1, on_time, False)]  # its own time, not the clock's now
    assert seen["late"] == [(1, late, True)]
    entries = {e.function: e for e in journal.entries()}
    assert entries["ontime"].detail == {"scheduled_time": on_time.isoformat(), "past_due": False}
    assert entries["late"].detail == {"scheduled_time": late.isoformat(), "past_due": True}


def test_past_due_starts_just_past_the_grace(project) -> None:
    _setup(project)
    now = datetime(2025, 6, 2, 12, tzinfo=timezone.utc)
    runtime = project.runtime(clock=FakeClock(now))
    try:
        edge = now - timedelta(seconds=PAST_DUE_GRACE)
        past = edge - timedelta(microseconds=1)
        assert runtime.run_sync(runtime.fire_timer("tick", at=edge)).detail["past_due"] is False
        assert runtime.run_sync(runtime.fire_timer("tick", at=past)).detail["past_due"] is True
        assert runtime.run_sync(runtime.fire_timer("tick")).detail == {
            "scheduled_time": now.isoformat(),  # fired by hand: the clock's now, on time
            "past_due": False,
        }
        module = runtime.registry.get("tick").module
        assert [(s, p) for _, s, p in module.SEEN] == [(edge, False), (past, True), (now, False)]
    finally:
        runtime.close()


# Monday 2 June 2025 to Sunday 8 June, 09:00 and 10:00 in Paris: the next "30 9 * * 1-5".
WEEK = [datetime(2025, 6, 2 + d, h, tzinfo=PARIS) for d in range(7) for h in (9, 10)]
NEXT = {
    (0, 9): (2, 9, 30),
    (0, 10): (3, 9, 30),
    (1, 9): (3, 9, 30),
    (1, 10): (4, 9, 30),
    (2, 9): (4, 9, 30),
    (2, 10): (5, 9, 30),
    (3, 9): (5, 9, 30),
    (3, 10): (6, 9, 30),
    (4, 9): (6, 9, 30),
    (4, 10): (9, 9, 30),  # Friday after the run: Monday
    (5, 9): (9, 9, 30),
    (5, 10): (9, 9, 30),
    (6, 9): (9, 9, 30),
    (6, 10): (9, 9, 30),
}


@pytest.mark.parametrize("local", WEEK, ids=lambda d: d.strftime("%a-%H:%M"))
def test_a_weekday_schedule_from_every_day_of_the_week(project, local: datetime) -> None:
    _setup(project)
    clock = FakeClock(local)
    runtime = project.runtime(clock=clock)
    try:
        trigger = cron_trigger(runtime.registry.config("paris").trigger)  # type: ignore[arg-type]
        fire = trigger.get_next_fire_time(None, clock.now())
    finally:
        runtime.close()
    day, hour, minute = NEXT[(local.weekday(), local.hour)]
    assert fire == datetime(2025, 6, day, hour, minute, tzinfo=PARIS)
    assert fire.weekday() < 5


def test_the_served_next_run_time_is_the_schedules_next_fire(project, serve) -> None:
    # Real time here (the scheduler's), so the expectation comes from croniter at the moments
    # around the start: it holds whatever the day and hour the test runs.
    _setup(project)
    before = datetime.now(timezone.utc)
    server = serve(project)
    functions = {f["name"]: f for f in server.client.get("/lakefn/functions").json()}
    after = datetime.now(timezone.utc)
    for name, schedule, tz in [("tick", "*/5 * * * *", "UTC"), ("paris", "30 9 * * 1-5", PARIS)]:
        got = datetime.fromisoformat(functions[name]["next_run_time"])
        expected = {
            croniter(schedule, moment.astimezone(ZoneInfo(str(tz)))).get_next(datetime)
            for moment in (before, after)
        }
        assert got in expected, (name, got, expected)


def test_the_cron_trigger_uses_the_declared_timezone(project) -> None:
    _setup(project)
    runtime = project.runtime()
    try:
        trigger = cron_trigger(runtime.registry.config("paris").trigger)  # type: ignore[arg-type]
        assert str(trigger.timezone) == "Europe/Paris"
    finally:
        runtime.close()
