"""cron -> Quartz: every conversion checked by evaluating both expressions independently
(croniter for cron; a small Quartz evaluator written here, sharing nothing with the converter,
itself pinned to fire times Quartz computed) over a year, in several time zones across their DST
changes; the macros, names and steps app.yaml accepts; and the refusals."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from croniter import croniter

from lakefn.jobs.quartz import NotConvertible, to_quartz

ZONES = ["UTC", "Europe/Amsterdam", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata"]
START = date(2026, 1, 1)

# (cron, the Quartz expression expected, days compared: a year, or a week for dense ones)
CASES = [
    ("30 2 * * 1-5", "0 30 2 ? * MON-FRI", 366),
    ("0 * * * *", "0 0 * * * ?", 366),
    ("*/15 9-17 * * MON-FRI", "0 0/15 9-17 ? * MON-FRI", 366),
    ("0 0 1 * *", "0 0 0 1 * ?", 366),
    ("0 12 * * 0", "0 0 12 ? * SUN", 366),
    ("0 12 * * 7", "0 0 12 ? * SUN", 366),
    ("5 4 * * sun", "0 5 4 ? * SUN", 366),
    ("15 10 * * 5-7", "0 15 10 ? * SUN,FRI,SAT", 366),
    ("0 0 * * 6,0", "0 0 0 ? * SUN,SAT", 366),
    ("0 0 1,15 * *", "0 0 0 1,15 * ?", 366),
    ("0 6 * 1-3 *", "0 0 6 * 1-3 ?", 366),
    ("0 8 * JAN,jul MON", "0 0 8 ? 1,7 MON", 366),
    ("0 */3 * * *", "0 0 0/3 * * ?", 366),
    ("0 0 */2 * *", "0 0 0 1/2 * ?", 366),
    ("0 9 1-7 * *", "0 0 9 1-7 * ?", 366),
    ("59 23 31 12 *", "0 59 23 31 12 ?", 366),
    ("10-20/5 8 * * *", "0 10,15,20 8 * * ?", 366),
    ("1/10 * * * 3", "0 1/10 * ? * WED", 366),
    ("0 0 29 2 *", "0 0 0 29 2 ?", 366 * 3),
    ("0 0 1-31 * 1", "0 0 0 * * ?", 366),  # both restricted, OR, day-of-month is every day
    ("0 0 * * 1-7", "0 0 0 * * ?", 366),
    ("0 0 * * */2", "0 0 0 ? * SUN,TUE,THU,SAT", 366),
    ("30 1,2,3 * * *", "0 30 1-3 * * ?", 366),
    ("* * * * *", "0 * * * * ?", 7),
    ("*/7 * 10 * *", "0 0/7 * 10 * ?", 366),
    # the macros app.yaml accepts
    ("@yearly", "0 0 0 1 1 ?", 366),
    ("@annually", "0 0 0 1 1 ?", 366),
    ("@monthly", "0 0 0 1 * ?", 366),
    ("@weekly", "0 0 0 ? * SUN", 366),
    ("@daily", "0 0 0 * * ?", 366),
    ("@midnight", "0 0 0 * * ?", 366),
    ("@hourly", "0 0 * * * ?", 366),
    ("@DAILY", "0 0 0 * * ?", 366),
    # names, ranges and steps as the cron parser reads them
    ("0 0 * * FRI-SUN", "0 0 0 ? * SUN,FRI,SAT", 366),
    ("0 9 * * mon-FRI/2", "0 0 9 ? * MON,WED,FRI", 366),
    ("0 0 * FEB-dec/3 *", "0 0 0 * 2/3 ?", 366),
    ("5/15 * * * *", "0 5/15 * * * ?", 7),
    ("0 0/6 * * *", "0 0 0/6 * * ?", 366),
    ("0 0 * * 1-7/2", "0 0 0 ? * SUN,MON,WED,FRI", 366),
    ("0 12 */1 * */1", "0 0 12 * * ?", 366),
    ("0 0 1-31 * */2", "0 0 0 ? * SUN,TUE,THU,SAT", 366),  # AND: dom is every day
    ("0 0 1 * 0-6", "0 0 0 * * ?", 366),  # OR, day-of-week every day: every day
    ("0 0 28-31 * *", "0 0 0 28-31 * ?", 366),
]


@pytest.mark.parametrize(("cron", "quartz", "days"), CASES, ids=[c[0] for c in CASES])
def test_conversion_fires_exactly_when_cron_does(cron: str, quartz: str, days: int) -> None:
    assert to_quartz(cron) == quartz
    end = START + timedelta(days=days)
    for zone in ZONES:
        expected = _cron_fires(cron, zone, START, end)
        got = _quartz_fires(quartz, zone, START, end)
        assert got == expected, (cron, zone, sorted(got ^ expected)[:5])
        assert expected or cron == "0 0 29 2 *"  # the comparison is never vacuous...
    leap = _quartz_fires(to_quartz("0 0 29 2 *"), "UTC", START, START + timedelta(days=366 * 3))
    assert leap == {datetime(2028, 2, 29, tzinfo=timezone.utc)}  # ...not even for that one


REFUSED = [
    ("0 0 1 * 1", "restricts both day-of-month (1) and day-of-week (1)"),
    ("0 0 1-15 * MON-FRI", "matching EITHER"),
    ("0 0 */2 * 1", "restricts day-of-month (*/2) and day-of-week (1) together"),
    ("0 0 1 * 0-5", "restricts both day-of-month (1) and day-of-week (0-5)"),
    ("0 0 1 * */2", "restricts day-of-month (1) and day-of-week (*/2) together"),
    # not cron at all (app.yaml refuses these first): the cron parser's own words
    ("0 0 * * 8", "day of week field '8': 8 is higher than the maximum 7"),
    ("60 * * * *", "minute field '60': 60 is higher than the maximum 59"),
    ("0 0 * * 5-1", "day of week field '5-1': range '5-1' runs backwards"),
    ("*/0 * * * *", "step '0' must be a whole number above 0"),
    ("0 0 * * FUN", "day of week field 'FUN': 'FUN' is not a number or a name"),
    ("0 0 L * *", "(L, W, # and ? are not standard cron)"),
    ("0 0 * *", "is not a 5-field cron expression"),
    ("@fortnightly", "is not a 5-field cron expression"),
    ("0 0 31 2 *", "can never fire"),
]


@pytest.mark.parametrize(("cron", "message"), REFUSED, ids=[c[0] for c in REFUSED])
def test_schedules_quartz_cannot_say_are_refused(cron: str, message: str) -> None:
    with pytest.raises(NotConvertible) as caught:
        to_quartz(cron)
    assert message in str(caught.value)
    assert str(caught.value).startswith(f"schedule {cron!r} cannot run as a Databricks Job")


#: What Quartz itself (org.quartz.CronExpression 2.3.2, getNextValidTimeAfter) fires from
#: 2026-01-28 to 2026-02-04 in America/New_York, local `MM-DD@HH:MM,...`: it pins the evaluator
#: below to Quartz's reading of steps, lists, weekday names and month boundaries (`1/2` starts
#: again on the 1st). Every conversion above was also compared with Quartz 2.3.2 directly over
#: its whole span in every zone (DST-change days aside), with no difference.
QUARTZ_ITSELF = {
    "0 0/20 9-10 ? * MON-FRI": "01-28@09:00,09:20,09:40,10:00,10:20,10:40 "
    "01-29@09:00,09:20,09:40,10:00,10:20,10:40 01-30@09:00,09:20,09:40,10:00,10:20,10:40 "
    "02-02@09:00,09:20,09:40,10:00,10:20,10:40 02-03@09:00,09:20,09:40,10:00,10:20,10:40",
    "0 0 0 1/2 * ?": "01-29@00:00 01-31@00:00 02-01@00:00 02-03@00:00",
    "0 0 0 ? * SUN,FRI,SAT": "01-30@00:00 01-31@00:00 02-01@00:00",
    "0 0 0 * 2/3 ?": "02-01@00:00 02-02@00:00 02-03@00:00",
    "0 5/25 0 * * ?": "01-28@00:05,00:30,00:55 01-29@00:05,00:30,00:55 01-30@00:05,00:30,00:55 "
    "01-31@00:05,00:30,00:55 02-01@00:05,00:30,00:55 02-02@00:05,00:30,00:55 "
    "02-03@00:05,00:30,00:55",
    "0 0 0 28-31 * ?": "01-28@00:00 01-29@00:00 01-30@00:00 01-31@00:00",
}


@pytest.mark.parametrize("expression", list(QUARTZ_ITSELF))
def test_the_quartz_evaluator_fires_as_quartz_does(expression: str) -> None:
    zone = ZoneInfo("America/New_York")
    expected = set()
    for day in QUARTZ_ITSELF[expression].split():
        month_day, _, times = day.partition("@")
        month, dom = map(int, month_day.split("-"))
        for hm in times.split(","):
            hour, minute = map(int, hm.split(":"))
            at = datetime(2026, month, dom, hour, minute, tzinfo=zone)
            expected.add(at.astimezone(timezone.utc))
    fires = _quartz_fires(expression, "America/New_York", date(2026, 1, 28), date(2026, 2, 4))
    assert fires == expected


# -- the two evaluations -------------------------------------------------------------------


def _transition_days(zone: str, start: date, end: date) -> set[date]:
    """Days whose UTC offset changes (DST): which of their wall times fire there is each
    scheduler's own policy (croniter fires 02:30 at 03:00 on spring-forward days and twice on
    fall-back ones), not the expression's meaning, so those days are left out."""
    tz = ZoneInfo(zone)
    days, day = set(), start
    while day < end:
        a = datetime(day.year, day.month, day.day, tzinfo=tz).utcoffset()
        nxt = day + timedelta(days=1)
        b = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz).utcoffset()
        if a != b:
            days.update({day, nxt})
        day = nxt
    return days


def _cron_fires(cron: str, zone: str, start: date, end: date) -> set[datetime]:
    tz = ZoneInfo(zone)
    skip = _transition_days(zone, start, end)
    first = datetime(start.year, start.month, start.day, tzinfo=tz) - timedelta(seconds=1)
    last = datetime(end.year, end.month, end.day, tzinfo=tz)
    fires: set[datetime] = set()
    for at in croniter(cron, first).all_next(datetime):
        if at >= last:
            break
        if at.date() not in skip:
            fires.add(at.astimezone(timezone.utc))
    return fires


QUARTZ_NAMES = {
    3: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"],
    5: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"],
}
QUARTZ_RANGES = [(0, 59), (0, 59), (0, 23), (1, 31), (1, 12), (1, 7)]


def _quartz_field(text: str, index: int) -> set[int] | None:
    """A Quartz field as the set of values it allows; None for `?` (no restriction)."""
    low, high = QUARTZ_RANGES[index]
    if text == "?":
        return None
    names = QUARTZ_NAMES.get(index, [])

    def number(token: str) -> int:
        if token.upper() in names:
            return names.index(token.upper()) + low
        return int(token)

    out: set[int] = set()
    for part in text.split(","):
        m = re.fullmatch(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?", part)
        assert m, text
        base, stop, step = m.groups()
        a = low if base == "*" else number(base)
        b = number(stop) if stop else (high if base == "*" or step else a)
        out.update(range(a, b + 1, int(step) if step else 1))
    return out


def _quartz_fires(expression: str, zone: str, start: date, end: date) -> set[datetime]:
    fields = expression.split()
    assert len(fields) == 6 and (fields[3] == "?") != (fields[5] == "?"), expression
    seconds, minutes, hours, doms, months, dows = (
        _quartz_field(f, i) for i, f in enumerate(fields)
    )
    assert seconds == {0}
    tz = ZoneInfo(zone)
    skip = _transition_days(zone, start, end)
    fires: set[datetime] = set()
    day = start
    while day < end:
        quartz_weekday = (day.isoweekday() % 7) + 1  # 1 = SUN .. 7 = SAT
        if (
            day not in skip
            and day.month in months  # type: ignore[operator]
            and (doms is None or day.day in doms)
            and (dows is None or quartz_weekday in dows)
        ):
            for h in sorted(hours):  # type: ignore[arg-type]
                for mi in sorted(minutes):  # type: ignore[arg-type]
                    local = datetime(day.year, day.month, day.day, h, mi, tzinfo=tz)
                    fires.add(local.astimezone(timezone.utc))
        day += timedelta(days=1)
    return fires
