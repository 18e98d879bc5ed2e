"""Timer triggers on the real APScheduler: ticks, skipped overlaps, past_due, cron and timezones."""

from __future__ import annotations

import time
from datetime import datetime, timedelta, timezone

from apscheduler.triggers.interval import IntervalTrigger

from lakefn.triggers.timer import PAST_DUE_GRACE, cron_trigger

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
        assert abs((datetime.now(timezone.utc) - scheduled).total_seconds()) < 10
    entries = server.client.get("/lakefn/invocations", params={"function": "tick"}).json()
    assert entries and all(e["trigger"] == "timer" and e["status"] == "ok" for e in entries)


def test_a_tick_during_a_running_call_is_skipped_and_recorded(project, serve, monkeypatch) -> None:
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
    assert "scheduled_time" in skipped.detail and "still going" in (skipped.error or "")


def test_past_due_is_set_beyond_the_grace(project) -> None:
    _setup(project)
    runtime = project.runtime()
    try:
        late = datetime.now(timezone.utc) - timedelta(seconds=PAST_DUE_GRACE + 5)
        assert runtime.run_sync(runtime.fire_timer("tick", at=late)).detail["past_due"] is True
        on_time = datetime.now(timezone.utc)
        assert runtime.run_sync(runtime.fire_timer("tick", at=on_time)).detail["past_due"] is False
        module = runtime.registry.get("tick").module
        assert [p for _, _, p in module.SEEN] == [True, False]
    finally:
        runtime.close()


def test_cron_and_timezone_decide_the_next_run(project, serve) -> None:
    _setup(project)
    server = serve(project)
    functions = {f["name"]: f for f in server.client.get("/lakefn/functions").json()}
    tick_next = datetime.fromisoformat(functions["tick"]["next_run_time"])
    assert tick_next.minute % 5 == 0 and tick_next.second == 0
    assert tick_next - datetime.now(timezone.utc) <= timedelta(minutes=5)
    paris_next = datetime.fromisoformat(functions["paris"]["next_run_time"])
    local = paris_next.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Paris"))
    assert (local.hour, local.minute) == (9, 30) and local.weekday() < 5


def test_the_cron_trigger_uses_the_declared_timezone(project) -> None:
    _setup(project)
    runtime = project.runtime()
    try:
        trigger = cron_trigger(runtime.registry.config("paris").trigger)  # type: ignore[arg-type]
        assert str(trigger.timezone) == "Europe/Paris"
    finally:
        runtime.close()
