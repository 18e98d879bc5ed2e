"""5-field cron (crontab(5)) to the Quartz cron expression Databricks Jobs schedules with.

Exact or refused. The schedule is read by the parser app.yaml validates with
(`lakefn._cron.CronSchedule`: macros such as `@daily`, names, ranges, steps), and each Quartz
field is written from the set of values the cron field matches, so the two can only differ
where the languages do:

- Quartz counts weekdays 1 = SUN .. 7 = SAT; cron 0 or 7 = SUN, 1 = MON. Quartz weekdays are
  written as names (MON-FRI), which reads the same in both.
- Quartz wants `?` in day-of-month or day-of-week, and then the other alone picks the days.
  So a schedule restricting both day fields has no Quartz form, whether cron ORs them (both
  restricted, neither starting with `*`, as crontab(5) says) or ANDs them (one starts with `*`
  but is not every day, such as `*/2`): those are the refusals.
- On the days a daylight-saving change skips or repeats a wall time, each scheduler keeps its own
  policy (the expression does not say); every other day fires at the same instants. Quartz 2.3.2
  skips a time the clocks skip (lakefn runs a fixed time at the change) and fires a repeated
  time in its second pass (lakefn: the first).
"""

from __future__ import annotations

from .._cron import WEEKDAYS, CronError, CronSchedule
from .._exceptions import NotConvertible

_EVERY_DAY_OF_MONTH = frozenset(range(1, 32))
_EVERY_WEEKDAY = frozenset(range(7))


def to_quartz(schedule: str) -> str:
    """The Quartz expression (`sec min hour dom month dow`) firing exactly when `schedule`
    does, in the same time zone; NotConvertible when there is none."""
    try:
        cron = CronSchedule.parse(schedule)
    except CronError as exc:
        raise NotConvertible(schedule, str(exc)) from None
    days, weekdays = _days(cron)
    fields = [
        "0",
        _numbers(cron.minutes, 0, 59),
        _numbers(cron.hours, 0, 23),
        days,
        _numbers(cron.months, 1, 12),
        weekdays,
    ]
    return " ".join(fields)


def _days(cron: CronSchedule) -> tuple[str, str]:
    """Quartz's day-of-month and day-of-week fields: one of them `?`."""
    every_day = cron.days == _EVERY_DAY_OF_MONTH
    every_weekday = cron.weekdays == _EVERY_WEEKDAY
    if cron.days_or and (every_day or every_weekday):
        return "*", "?"  # either side matches every day: so does the schedule
    if not cron.days_or and every_weekday:
        return _numbers(cron.days, 1, 31), "?"
    if not cron.days_or and every_day:
        return "?", _weekdays(cron.weekdays)
    dom, dow = _day_fields(cron.text)
    if cron.days_or:
        raise NotConvertible(
            cron.text,
            f"it restricts both day-of-month ({dom}) and day-of-week ({dow}), and cron then "
            "runs on days matching EITHER; a Quartz schedule can restrict only one of them. "
            "Use two functions (one per field), or put `*` in one of the two",
        )
    raise NotConvertible(
        cron.text,
        f"it restricts day-of-month ({dom}) and day-of-week ({dow}) together; a Quartz "
        "schedule can restrict only one of them",
    )


def _day_fields(text: str) -> tuple[str, str]:
    # Only reached for 5-field text: every macro has a `*` day field.
    parts = text.split()
    return parts[2], parts[4]


def _numbers(values: frozenset[int], low: int, high: int) -> str:
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        # Quartz `a/n`: from a to the field's end, every n: only when the set is exactly that.
        if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
            return f"{ordered[0]}/{step}"
    return ",".join(_runs([str(v) for v in ordered], ordered))


def _weekdays(cron_days: frozenset[int]) -> str:
    quartz = sorted(d + 1 for d in cron_days)  # 1 = SUN .. 7 = SAT
    labels = [WEEKDAYS[d - 1] for d in quartz]
    return ",".join(_runs(labels, quartz))


def _runs(labels: list[str], numbers: list[int]) -> list[str]:
    """Consecutive numbers as `first-last` (three or more), the rest one by one."""
    out: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        if j - i >= 2:
            out.append(f"{labels[i]}-{labels[j]}")
        else:
            out.extend(labels[i : j + 1])
        i = j + 1
    return out
