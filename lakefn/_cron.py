"""Standard 5-field cron (`crontab(5)`): parsed and computed here, run by APScheduler 3.

APScheduler's own `CronTrigger.from_crontab` counts day-of-week 0 as Monday, ANDs day-of-month
with day-of-week, and skips days across DST changes, so lakefn computes fire times itself and
hands APScheduler a trigger that asks it (`CronSchedule.trigger`).

- Fields: minute (0-59), hour (0-23), day of month (1-31), month (1-12 or JAN-DEC), day of week
  (0-7 or SUN-SAT, 0 and 7 both Sunday). Names are case-insensitive.
- Each field is a list (`a,b`) of `*`, a value, a range (`a-b`), each optionally with a step
  (`*/2`, `1-5/2`, `5/15` = `5-59/15`). A day-of-week range may end on Sunday (`FRI-SUN`).
- `@yearly`, `@annually`, `@monthly`, `@weekly`, `@daily`, `@midnight`, `@hourly`.
- When both day fields are restricted (neither starts with `*`), a day matches when EITHER
  matches, as crontab(5) says; when one starts with `*`, both must match.
- Times are local to the schedule's timezone. Across DST changes, as cron(8) does: a time the
  clocks skip (02:30 on a spring-forward night in Europe/Paris) fires at the moment they change
  (03:00 new time) when minute and hour are fixed values, and is skipped when either starts with
  `*` (`*/15 * * * *` just goes on at 03:00). A time the clocks repeat (autumn) fires once, in
  its first pass; unlike cron(8), `*/15` is also silent in the repeated hour's second pass.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone, tzinfo
from typing import Any

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")
MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
#: how far ahead a fire time is looked for: leap days on a weekday recur within 28 years
_SEARCH_DAYS = 366 * 29
_MAX_GAP_MINUTES = 2 * 24 * 60
_LONGEST_MONTH = (31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)  # February: leap years


class CronError(ValueError):
    """A schedule that is not standard 5-field cron, or that can never fire."""


@dataclass(frozen=True)
class _Field:
    name: str
    low: int
    high: int
    names: tuple[str, ...] = ()
    names_start: int = 0


_FIELDS = (
    _Field("minute", 0, 59),
    _Field("hour", 0, 23),
    _Field("day of month", 1, 31),
    _Field("month", 1, 12, MONTHS, 1),
    _Field("day of week", 0, 7, WEEKDAYS, 0),
)


@dataclass(frozen=True)
class CronSchedule:
    """A parsed schedule: the allowed values of each field (day of week 0 = Sunday)."""

    text: str
    minutes: frozenset[int]
    hours: frozenset[int]
    days: frozenset[int]
    months: frozenset[int]
    weekdays: frozenset[int]
    #: crontab's rule: the day fields are ORed only when neither starts with `*`
    days_or: bool
    #: cron's "wildcard job" (minute or hour starts with `*`): it skips times the clocks skip,
    #: where a fixed-time job runs them at the change
    wildcard: bool = False

    @classmethod
    def parse(cls, text: str) -> CronSchedule:
        if not isinstance(text, str):
            raise CronError(f"schedule must be text, not {type(text).__name__}")
        expression = MACROS.get(text.strip().lower(), text)
        parts = expression.split()
        if len(parts) != 5:
            raise CronError(
                f"schedule {text!r} is not a 5-field cron expression "
                "(minute hour day-of-month month day-of-week)"
            )
        minutes, hours, days, months, weekdays = (
            _parse_field(part, field) for part, field in zip(parts, _FIELDS, strict=True)
        )
        weekdays = frozenset(d % 7 for d in weekdays)  # 7 is Sunday too
        days_or = not parts[2].startswith("*") and not parts[4].startswith("*")
        wildcard = parts[0].startswith("*") or parts[1].startswith("*")
        schedule = cls(text, minutes, hours, days, months, weekdays, days_or, wildcard)
        schedule._check_can_fire()
        return schedule

    def _check_can_fire(self) -> None:
        if self.days_or:
            return  # every month has every weekday: the day-of-week side always fires
        if not any(d <= _LONGEST_MONTH[m - 1] for m in self.months for d in self.days):
            months = ", ".join(MONTHS[m - 1].title() for m in sorted(self.months))
            days = ", ".join(str(d) for d in sorted(self.days))
            raise CronError(
                f"schedule {self.text!r} can never fire: no month of {months} has day {days}"
            )

    def next_fire(self, after: datetime, tz: tzinfo) -> datetime:
        """The first fire time strictly after `after` (aware), as an aware datetime in `tz`."""
        after_utc = after.astimezone(timezone.utc)
        local = after_utc.astimezone(tz).replace(tzinfo=None, second=0, microsecond=0)
        day = local.date()
        # Fire times are monotonic in wall time (see the module docstring), so the first
        # matching wall time whose instant is past `after` is the answer.
        for _ in range(_SEARCH_DAYS):
            if self._day_matches(day):
                for hour in self._hours:
                    for minute in self._minutes:
                        wall = datetime(day.year, day.month, day.day, hour, minute)
                        if wall < local:
                            continue
                        instant = _instant(wall, tz, skip_gap=self.wildcard)
                        if instant is not None and instant > after_utc:
                            return instant.astimezone(tz)
            if day == date.max:
                break
            day += timedelta(days=1)
        raise CronError(f"schedule {self.text!r} does not fire within {_SEARCH_DAYS} days")

    def _day_matches(self, day: date) -> bool:
        if day.month not in self.months:
            return False
        day_ok = day.day in self.days
        weekday_ok = day.isoweekday() % 7 in self.weekdays
        return (day_ok or weekday_ok) if self.days_or else (day_ok and weekday_ok)

    @property
    def _hours(self) -> list[int]:
        return sorted(self.hours)

    @property
    def _minutes(self) -> list[int]:
        return sorted(self.minutes)

    def trigger(self, tz: str | tzinfo) -> Any:
        """An APScheduler 3 trigger firing on this schedule in `tz` (a name or tzinfo)."""
        return _trigger_class()(self, _zone(tz))


def _zone(tz: str | tzinfo) -> tzinfo:
    from zoneinfo import ZoneInfo

    return ZoneInfo(tz) if isinstance(tz, str) else tz


def _instant(wall: datetime, tz: tzinfo, *, skip_gap: bool) -> datetime | None:
    """The UTC instant a local wall time stands for. A time the clocks repeat (autumn) is its
    first pass; a time they skip (spring) is None with `skip_gap`, else the moment they change,
    as cron(8) does for wildcard and fixed-time jobs."""
    utc = wall.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
    if utc.astimezone(tz).replace(tzinfo=None) == wall:
        return utc
    if skip_gap:
        return None
    probe = wall
    for _ in range(_MAX_GAP_MINUTES):  # the first wall minute after the gap
        probe += timedelta(minutes=1)
        utc = probe.replace(tzinfo=tz, fold=0).astimezone(timezone.utc)
        if utc.astimezone(tz).replace(tzinfo=None) == probe:
            return utc
    raise CronError(f"no local time after {wall} in {tz}")  # pragma: no cover


def _trigger_class() -> type:
    # Built on first use: importing lakefn must not import APScheduler. Keyed by the base
    # class, so a re-imported APScheduler (pytester does that) gets a subclass of its own.
    from apscheduler.triggers.base import BaseTrigger

    return _subclass_of(BaseTrigger)


@functools.cache
def _subclass_of(BaseTrigger: type) -> type:  # noqa: N803 - it stands for the class
    class CrontabTrigger(BaseTrigger):  # type: ignore[misc]
        """APScheduler 3 trigger computing fire times with `CronSchedule.next_fire`.

        Not APScheduler's CronTrigger: besides its weekday numbering, its arithmetic across DST
        changes skips days (with APScheduler 3.11 a daily 00:00 job in Europe/Paris misses the
        day after the spring change)."""

        def __init__(self, schedule: CronSchedule, tz: tzinfo) -> None:
            self.schedule = schedule
            self.timezone = tz
            self.jitter = None

        def get_next_fire_time(
            self, previous_fire_time: datetime | None, now: datetime
        ) -> datetime | None:
            # As APScheduler's own triggers: the first fire time after the previous one (the
            # scheduler then sees any it missed), or from now, inclusive, for the first.
            if previous_fire_time is not None:
                return self.schedule.next_fire(previous_fire_time, self.timezone)
            return self.schedule.next_fire(now - timedelta(microseconds=1), self.timezone)

        def __str__(self) -> str:
            return f"cron[{self.schedule.text!r}, {self.timezone}]"

        def __repr__(self) -> str:
            return f"<CrontabTrigger {self.schedule.text!r} timezone={str(self.timezone)!r}>"

    return CrontabTrigger


def _parse_field(text: str, field: _Field) -> frozenset[int]:
    values: set[int] = set()
    for item in text.split(","):
        values.update(_parse_item(item, field, text))
    return frozenset(values)


def _parse_item(item: str, field: _Field, whole: str) -> Iterable[int]:
    where = f"{field.name} field {whole!r}"
    if not item:
        raise CronError(f"{where}: empty list item")
    body, slash, step_text = item.partition("/")
    step = 1
    if slash:
        if not step_text.isdigit() or int(step_text) == 0:
            raise CronError(f"{where}: step {step_text!r} must be a whole number above 0")
        step = int(step_text)
    # `*` and `N/step` run to the field's end; for the week that is Saturday (6): each day
    # once, not Sunday twice.
    end = 6 if field.name == "day of week" else field.high
    if body == "*":
        low, high = field.low, end
    elif "-" in body:
        first, _, last = body.partition("-")
        low, high = _value(first, field, where), _value(last, field, where)
        if field.name == "day of week" and high == 0 and low > 0:
            high = 7  # FRI-SUN: Sunday closes the week
        if low > high:
            raise CronError(
                f"{where}: range {body!r} runs backwards; cron ranges go low to high, "
                f"so split it in two (for example {field.high - 1}-{field.high},{field.low}-1)"
            )
    else:
        low = _value(body, field, where)
        # `5/15` is `5-59/15` (cronie, croniter); a bare value is just itself.
        high = end if slash else low
    return range(low, high + 1, step)


def _value(text: str, field: _Field, where: str) -> int:
    upper = text.upper()
    if field.names and upper in field.names:
        return field.names.index(upper) + field.names_start
    if not text.isdigit():
        if field.names:
            hint = f"a number or a name ({field.names[0]}..{field.names[-1]})"
        else:
            hint = "a number"
        extra = " (L, W, # and ? are not standard cron)" if any(c in text for c in "LW#?") else ""
        raise CronError(f"{where}: {text!r} is not {hint}{extra}")
    value = int(text)
    if value < field.low:
        raise CronError(f"{where}: {value} is lower than the minimum {field.low}")
    if value > field.high:
        raise CronError(f"{where}: {value} is higher than the maximum {field.high}")
    return value


def parse(schedule: str) -> CronSchedule:
    """Parse `schedule`, raising CronError (a ValueError) with a message fit for app.yaml."""
    return CronSchedule.parse(schedule)


def next_fire_times(schedule: str, tz: str | tzinfo, start: datetime, n: int) -> list[datetime]:
    """The first `n` fire times strictly after `start` (aware), in `tz` (a name or tzinfo),
    exactly as a served timer would fire them."""
    if start.tzinfo is None:
        raise ValueError("start must be timezone-aware")
    parsed, zone = CronSchedule.parse(schedule), _zone(tz)
    times: list[datetime] = []
    moment = start
    while len(times) < n:
        moment = parsed.next_fire(moment, zone)
        times.append(moment)
    return times
