"""Cron means what crontab(5) says, checked against croniter (an independent implementation)
over many expressions, a year of fire times, four timezones and their DST changes.

Where the two disagree it is on purpose, and said here: in an hour the clocks repeat (autumn),
croniter fires a time such as 02:30 twice, once per pass; lakefn fires it once, in the first
pass, as the cron daemon does for fixed-time jobs (`cron(8)`: "jobs that fall in the repeated
time will not be re-run"). In an hour the clocks skip (spring), both follow cron(8): a
fixed-time job runs at the moment of the change, a wildcard job (minute or hour starting with
`*`) skips the missing times. Everywhere else the fire times are compared exactly.

croniter is not used where it departs from crontab(5) itself: it reads a one-value range (`5-5`)
as `*`, and a `*` anywhere in a day list (`2,*`) as an unrestricted field; the generated
expressions avoid both.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lakefn import ConfigError
from lakefn._cron import CronError, CronSchedule, next_fire_times
from lakefn.config import parse_config
from tests._serving import clean_env
from tests.conftest import run_cli

UTC = timezone.utc
ZONES = ["UTC", "Europe/Paris", "America/New_York", "Australia/Lord_Howe"]
YEAR_START = datetime(2024, 2, 1, tzinfo=UTC)  # a leap day and every 2024 DST change

HAND = [
    "0 9 * * 1-5",
    "0 9 * * MON-FRI",
    "0 9 * * mon-fri",
    "0 0 * * 0",
    "0 0 * * 7",
    "0 0 * * SUN",
    "0 0 * * 5-7",
    "0 0 * * SAT,SUN",
    "0 0 * * */2",
    "0 0 * * 1-7/2",
    "0 0 * * 0-7",
    "30 2 * * *",
    "0 0 * * *",
    "0 2 * * *",
    "45 1 * * *",
    "5/15 3 * * *",
    "0 12 1-7 * MON",  # OR: the first seven days, and every Monday
    "0 0 13 * FRI",  # OR: every 13th, and every Friday
    "0 0 1-31 * MON",  # OR: every day
    "0 0 */2 * MON",  # AND: `*/2` starts with `*`, so only Mondays on odd days
    "0 0 1 * 1-7/2",
    "0 0 29 2 *",
    "0 0 31 * *",
    "15,45 */6 * JAN,jul *",
    "0 0 1 */3 *",
    "0 22 * * 1-5",
    "@daily",
    "@weekly",
    "@monthly",
    "@hourly",
]


def _croniter_times(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    it = croniter(expr, start.astimezone(ZoneInfo(tz)), implement_cron_bug=True)
    out = []
    while (fire := it.get_next(datetime)) < end:
        out.append(fire.astimezone(UTC))
    return out


def _lakefn_times(expr: str, tz: str, start: datetime, end: datetime) -> list[datetime]:
    schedule, zone, out, moment = CronSchedule.parse(expr), ZoneInfo(tz), [], start
    while (moment := schedule.next_fire(moment, zone)) < end:
        out.append(moment.astimezone(UTC))
    return out


def _second_pass(instant: datetime, tz: str) -> bool:
    """Whether `instant` is in the second pass of an hour the clocks repeat."""
    local = instant.astimezone(ZoneInfo(tz))
    return local.replace(fold=0).astimezone(UTC) != instant


def _assert_agree(expr: str, tz: str, ours: list[datetime], theirs: list[datetime]) -> None:
    assert ours == sorted(set(ours)), "lakefn's fire times go forward, once each"
    only_croniter = sorted(set(theirs) - set(ours))
    only_lakefn = sorted(set(ours) - set(theirs))
    assert only_lakefn == [], (expr, tz, only_lakefn)
    # The one disagreement: croniter's second run of a fixed time in a repeated hour.
    assert all(_second_pass(t, tz) for t in only_croniter), (expr, tz, only_croniter)


@pytest.mark.parametrize("tz", ZONES)
def test_a_year_of_fire_times_matches_croniter(tz: str) -> None:
    end = YEAR_START + timedelta(days=366)
    for expr in HAND:
        stop = YEAR_START + timedelta(days=40) if expr == "@hourly" else end  # 24 a day
        ours = _lakefn_times(expr, tz, YEAR_START, stop)
        assert ours, expr
        _assert_agree(expr, tz, ours, _croniter_times(expr, tz, YEAR_START, stop))


# --- hypothesis: many expressions, starting near DST changes and anywhere ---------------------


def _field(draw: st.DrawFn, low: int, high: int, names: tuple[str, ...] = ()) -> str:
    def value() -> str:
        n = draw(st.integers(low, high))
        if names and draw(st.booleans()):
            index = n - low if len(names) == high - low + 1 else n % len(names)
            return draw(st.sampled_from([names[index], names[index].lower()]))
        return str(n)

    # `*` only alone: croniter takes a `*` anywhere in a list (`2,*`) as an unrestricted day
    # field, crontab(5) (and lakefn) looks at the field's first character only.
    star = draw(st.sampled_from(["", "", "*", "*/"]))
    if star == "*":
        return "*"
    if star == "*/":
        return f"*/{draw(st.integers(1, high - low + 1))}"
    items = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["v", "a-b", "a-b/", "v/"]))
        if kind == "v":
            items.append(value())
        else:
            # a < b: croniter reads a one-value range (`5-5`) as `*` (lakefn: as 5).
            a = draw(st.integers(low, high - 1))
            b = draw(st.integers(a + 1, high))
            step = f"/{draw(st.integers(1, high - low + 1))}" if kind.endswith("/") else ""
            items.append(f"{a}{step}" if kind == "v/" else f"{a}-{b}{step}")
    return ",".join(items)


@st.composite
def expressions(draw: st.DrawFn) -> str:
    months = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
    days = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
    return " ".join(
        [
            _field(draw, 0, 59),
            _field(draw, 0, 23),
            _field(draw, 1, 31),
            _field(draw, 1, 12, months),
            _field(draw, 0, 7, days),
        ]
    )


# Starts just before each zone's 2025 changes, and ordinary ones.
STARTS = [
    datetime(2025, 3, 29, 20, tzinfo=UTC),  # Europe spring
    datetime(2025, 10, 25, 20, tzinfo=UTC),  # Europe autumn
    datetime(2025, 3, 9, 2, tzinfo=UTC),  # New York spring
    datetime(2025, 11, 2, 2, tzinfo=UTC),  # New York autumn
    datetime(2025, 4, 5, 10, tzinfo=UTC),  # Lord Howe autumn (30 minutes)
    datetime(2025, 10, 4, 10, tzinfo=UTC),  # Lord Howe spring (30 minutes)
    datetime(2025, 6, 15, 12, 34, 56, tzinfo=UTC),
    datetime(2024, 2, 28, 23, 59, 59, tzinfo=UTC),  # into a leap day
]


@settings(
    max_examples=100, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(expressions(), st.sampled_from(ZONES), st.sampled_from(STARTS))
def test_generated_expressions_match_croniter(expr: str, tz: str, start: datetime) -> None:
    try:
        schedule = CronSchedule.parse(expr)
    except CronError as exc:
        assert "can never fire" in str(exc), (expr, exc)  # the only refusal of these shapes
        return
    zone, ours, moment = ZoneInfo(tz), [], start
    for _ in range(40):
        moment = schedule.next_fire(moment, zone)
        ours.append(moment.astimezone(UTC))
    theirs = _croniter_times(expr, tz, start, ours[-1] + timedelta(seconds=1))
    _assert_agree(expr, tz, ours, theirs)


# --- what a user relies on, spelled out --------------------------------------------------------


def _local(times: list[datetime], tz: str = "UTC") -> list[str]:
    return [t.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M") for t in times]


MONDAY = datetime(2025, 6, 2, tzinfo=UTC)  # a Monday, 00:00


def test_1_to_5_is_monday_to_friday() -> None:
    assert _local(next_fire_times("0 9 * * 1-5", "UTC", MONDAY, 6)) == [
        "Mon 2025-06-02 09:00",
        "Tue 2025-06-03 09:00",
        "Wed 2025-06-04 09:00",
        "Thu 2025-06-05 09:00",
        "Fri 2025-06-06 09:00",
        "Mon 2025-06-09 09:00",
    ]


@pytest.mark.parametrize("sunday", ["0", "7", "SUN", "sun"])
def test_0_and_7_and_sun_are_sunday(sunday: str) -> None:
    times = next_fire_times(f"0 0 * * {sunday}", "UTC", MONDAY, 3)
    assert _local(times) == ["Sun 2025-06-08 00:00", "Sun 2025-06-15 00:00", "Sun 2025-06-22 00:00"]


@pytest.mark.parametrize(
    ("dow", "days"),
    [
        ("*/2", ["Sun", "Tue", "Thu", "Sat"]),
        ("5-7", ["Fri", "Sat", "Sun"]),
        ("SAT,SUN", ["Sat", "Sun"]),
        ("1-5/2", ["Mon", "Wed", "Fri"]),
        ("FRI-SUN", ["Fri", "Sat", "Sun"]),
        ("MON-SUN", ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]),
        ("0-0", ["Sun"]),
        ("3-3", ["Wed"]),
    ],
)
def test_lists_ranges_and_steps_across_the_week(dow: str, days: list[str]) -> None:
    week = next_fire_times(f"0 12 * * {dow}", "UTC", MONDAY - timedelta(seconds=1), 7)
    week = [t for t in week if t < MONDAY + timedelta(days=7)]
    assert sorted(t.strftime("%a") for t in week) == sorted(days)


def test_day_of_month_or_day_of_week_when_both_are_restricted() -> None:
    # crontab(5): "0 0 13 * FRI" runs on every 13th AND on every Friday.
    assert _local(next_fire_times("0 0 13 * FRI", "UTC", MONDAY, 8)) == [
        "Fri 2025-06-06 00:00",
        "Fri 2025-06-13 00:00",
        "Fri 2025-06-20 00:00",
        "Fri 2025-06-27 00:00",
        "Fri 2025-07-04 00:00",
        "Fri 2025-07-11 00:00",
        "Sun 2025-07-13 00:00",
        "Fri 2025-07-18 00:00",
    ]
    # A field starting with `*` is not "restricted": then both must match.
    anded = _local(next_fire_times("0 0 */2 * MON", "UTC", MONDAY - timedelta(seconds=1), 3))
    assert anded == ["Mon 2025-06-09 00:00", "Mon 2025-06-23 00:00", "Mon 2025-07-07 00:00"]


@pytest.mark.parametrize("schedule", ["0 0 31 2 *", "0 0 30 2 *", "0 0 31 4,6,9,11 *"])
def test_a_schedule_that_can_never_fire_is_refused(project, schedule: str) -> None:
    text = (
        f"functions:\n  - name: t\n    trigger:\n      type: timer\n      schedule: '{schedule}'\n"
    )
    with pytest.raises(ConfigError) as info:
        parse_config(text, "proj/app.yaml")
    (problem,) = [str(i) for i in info.value.issues]
    assert problem.startswith("proj/app.yaml:5: functions[0].trigger.schedule:")
    assert f"schedule {schedule!r} can never fire" in problem
    project.config(text)
    project.function("t", "def main(event):\n    return 1\n")
    result = run_cli("validate", str(project.app_yaml), env=clean_env())
    assert result.returncode == 1 and "can never fire" in result.stderr
    assert "Traceback" not in result.stderr


def test_schedules_that_fire_rarely_are_kept() -> None:
    assert _local(next_fire_times("0 0 29 2 *", "UTC", MONDAY, 2)) == [
        "Tue 2028-02-29 00:00",
        "Sun 2032-02-29 00:00",
    ]
    # Both day fields restricted: the 31st never comes in February, Mondays do.
    assert _local(next_fire_times("0 0 31 2 MON", "UTC", MONDAY, 1)) == ["Mon 2026-02-02 00:00"]


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        ("0 9 * * 8", "day of week field '8': 8 is higher than the maximum 7"),
        ("0 24 * * *", "hour field '24': 24 is higher than the maximum 23"),
        ("0 9 0 * *", "day of month field '0': 0 is lower than the minimum 1"),
        ("0 9 * * MON-FUN", "'FUN' is not a number or a name (SUN..SAT)"),
        ("0 9 * * 5-1", "range '5-1' runs backwards"),
        ("*/0 * * * *", "step '0' must be a whole number above 0"),
        ("0 9 L * *", "L, W, # and ? are not standard cron"),
        ("0 9 * * 1,", "empty list item"),
        ("0 9 * *", "not a 5-field cron expression"),
    ],
)
def test_a_bad_schedule_names_the_field_and_the_problem(schedule: str, message: str) -> None:
    with pytest.raises(CronError) as info:
        CronSchedule.parse(schedule)
    assert message in str(info.value)


@pytest.mark.parametrize(
    ("schedule", "message"),
    [
        (
            "0 9 * * 5-1",
            "day of week field '5-1': range '5-1' runs backwards; cron ranges go low to high, "
            "so split it in two (for example 6-7,0-1)",
        ),
        (
            "50-10 * * * *",
            "minute field '50-10': range '50-10' runs backwards; cron ranges go low to high, "
            "so split it in two (for example 58-59,0-1)",
        ),
        ("0 9 X * *", "day of month field 'X': 'X' is not a number"),
        (
            "0 9 * * FRI#2",
            "day of week field 'FRI#2': 'FRI#2' is not a number or a name (SUN..SAT) "
            "(L, W, # and ? are not standard cron)",
        ),
        (
            "0 0 30,31 2 *",
            "schedule '0 0 30,31 2 *' can never fire: no month of Feb has day 30, 31",
        ),
        (
            "0 9 * *",
            "schedule '0 9 * *' is not a 5-field cron expression "
            "(minute hour day-of-month month day-of-week)",
        ),
        (123, "schedule must be text, not int"),
    ],
)
def test_the_whole_message_of_a_refused_schedule(schedule: object, message: str) -> None:
    # What app.yaml's author reads, whole: the field, the value, and what to write instead.
    with pytest.raises(CronError) as info:
        CronSchedule.parse(schedule)  # type: ignore[arg-type]
    assert str(info.value) == message


def test_validate_accepts_7_and_names_for_sunday(project) -> None:
    # APScheduler's from_crontab refused 7, and read 0 as Monday.
    project.config(
        "functions:\n"
        "  - name: a\n    trigger: {type: timer, schedule: '0 0 * * 7'}\n"
        "  - name: b\n    trigger: {type: timer, schedule: '0 9 * * MON-FRI', timezone: Europe/Paris}\n"
        "  - name: c\n    trigger: {type: timer, schedule: '0 0 13 * FRI'}\n"
    )
    for name in "abc":
        project.function(name, "def main(event):\n    return 1\n")
    result = run_cli("validate", str(project.app_yaml), env=clean_env())
    assert result.returncode == 0, result.stderr
    assert "ok (3 functions: 3 timer)" in result.stdout


# --- DST, explicitly --------------------------------------------------------------------------


def test_a_time_the_clocks_skip_fires_at_the_change() -> None:
    # Europe/Paris, 2025-03-30: 02:00 CET becomes 03:00 CEST; 02:30 does not exist that night.
    start = datetime(2025, 3, 29, 12, tzinfo=UTC)
    times = next_fire_times("30 2 * * *", "Europe/Paris", start, 3)
    assert [t.isoformat() for t in times] == [
        "2025-03-30T03:00:00+02:00",  # the moment of the change, as croniter and cron do
        "2025-03-31T02:30:00+02:00",
        "2025-04-01T02:30:00+02:00",
    ]
    quarter = next_fire_times(
        "*/15 * * * *", "Europe/Paris", datetime(2025, 3, 30, 0, 40, tzinfo=UTC), 4
    )
    assert [t.isoformat() for t in quarter] == [
        "2025-03-30T01:45:00+01:00",
        "2025-03-30T03:00:00+02:00",  # 02:00..02:45 do not exist: a wildcard job goes on
        "2025-03-30T03:15:00+02:00",
        "2025-03-30T03:30:00+02:00",
    ]
    hourly = next_fire_times(
        "7 * * * *", "Europe/Paris", datetime(2025, 3, 30, 0, 0, tzinfo=UTC), 2
    )
    assert [t.isoformat() for t in hourly] == [
        "2025-03-30T01:07:00+01:00",
        "2025-03-30T03:07:00+02:00",  # no 02:07 that night, and no extra run at 03:00
    ]


def test_a_time_the_clocks_repeat_fires_once() -> None:
    # Europe/Paris, 2025-10-26: 03:00 CEST becomes 02:00 CET; 02:30 happens twice.
    start = datetime(2025, 10, 25, 12, tzinfo=UTC)
    times = next_fire_times("30 2 * * *", "Europe/Paris", start, 2)
    assert [t.isoformat() for t in times] == [
        "2025-10-26T02:30:00+02:00",  # the first pass only (croniter also fires 02:30+01:00)
        "2025-10-27T02:30:00+01:00",
    ]
    theirs = _croniter_times("30 2 * * *", "Europe/Paris", start, times[-1])
    assert [t.isoformat() for t in theirs] == [
        "2025-10-26T00:30:00+00:00",
        "2025-10-26T01:30:00+00:00",  # croniter's second run, which lakefn does not make
    ]
    half = next_fire_times(
        "*/30 * * * *", "Europe/Paris", datetime(2025, 10, 25, 23, 45, tzinfo=UTC), 4
    )
    assert [t.isoformat() for t in half] == [
        "2025-10-26T02:00:00+02:00",
        "2025-10-26T02:30:00+02:00",
        "2025-10-26T03:00:00+01:00",  # the repeated 02:00 and 02:30 (+01:00) are not run again
        "2025-10-26T03:30:00+01:00",
    ]


def test_the_day_after_a_spring_change_is_not_skipped() -> None:
    # APScheduler 3.11's CronTrigger, used before, lands on 01:00 after the change and so skips
    # the whole next day of a midnight job.
    for tz, day in [
        ("Europe/Paris", "2025-03-31"),
        ("America/New_York", "2025-03-10"),
        ("Australia/Lord_Howe", "2025-10-06"),
    ]:
        midnight = datetime.fromisoformat(day)
        start = (midnight - timedelta(days=2)).replace(tzinfo=ZoneInfo(tz))
        times = next_fire_times("0 0 * * *", tz, start, 3)
        assert [t.strftime("%Y-%m-%d %H:%M") for t in times] == [
            (midnight + timedelta(days=n)).strftime("%Y-%m-%d 00:00") for n in (-1, 0, 1)
        ], tz


def test_the_served_trigger_asks_the_same_schedule() -> None:
    trigger = CronSchedule.parse("0 0 13 * FRI").trigger("Europe/Paris")
    now = datetime(2025, 6, 2, 10, tzinfo=UTC)
    expected = next_fire_times("0 0 13 * FRI", "Europe/Paris", now, 3)
    got, previous = [], None
    for _ in range(3):
        previous = trigger.get_next_fire_time(previous, now if previous is None else previous)
        got.append(previous)
    assert got == expected
    # From a previous fire time earlier than now, APScheduler wants the missed ones too.
    assert trigger.get_next_fire_time(expected[0], expected[2] + timedelta(hours=1)) == expected[1]
    assert str(trigger.timezone) == "Europe/Paris"
