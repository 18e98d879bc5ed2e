"""5-field cron (crontab(5)) to the Quartz cron expression Databricks Jobs schedules with.

Exact or refused. Each field is read into the set of values it matches, and the Quartz field
written from that set, so the two can only differ where the languages do:

- Quartz counts weekdays 1 = SUN .. 7 = SAT; cron 0 or 7 = SUN, 1 = MON. Quartz weekdays are
  written as names (MON-FRI), which reads the same in both.
- Quartz wants `?` in day-of-month or day-of-week, and then the other alone picks the days.
- cron picks days by day-of-month OR day-of-week when both are restricted (neither starts with
  `*`), and by both (AND) otherwise. Quartz says neither "OR" nor "AND of two restrictions":
  such schedules are refused, naming the fields.
"""

from __future__ import annotations

import re

from .._exceptions import NotConvertible

MONTHS = ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC")
#: cron's numbering: 0 = SUN .. 6 = SAT (7 is SUN again)
WEEKDAYS = ("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT")

_FIELDS = (
    # name, low, high, names (value of names[0])
    ("minute", 0, 59, None, 0),
    ("hour", 0, 23, None, 0),
    ("day-of-month", 1, 31, None, 0),
    ("month", 1, 12, MONTHS, 1),
    ("day-of-week", 0, 7, WEEKDAYS, 0),
)
_ITEM = re.compile(r"(?P<start>\*|[0-9A-Za-z]+)(?:-(?P<end>[0-9A-Za-z]+))?(?:/(?P<step>[0-9]+))?")


def to_quartz(schedule: str) -> str:
    """The Quartz expression (`sec min hour dom month dow`) firing exactly when `schedule`
    does, in the same time zone; NotConvertible when there is none."""
    parts = schedule.split()
    if len(parts) != 5:
        raise NotConvertible(schedule, "it is not a 5-field cron expression")
    sets = [_parse(schedule, text, *spec) for text, spec in zip(parts, _FIELDS, strict=True)]
    minute, hour, dom, month, dow = sets
    dow = {0 if d == 7 else d for d in dow}
    dom_text, dow_text = _days(schedule, parts[2], parts[4], dom, dow)
    return " ".join(
        ["0", _numbers(minute, 0, 59), _numbers(hour, 0, 23), dom_text, _numbers(month, 1, 12),
         dow_text]
    )  # fmt: skip


def _days(
    schedule: str, dom_text: str, dow_text: str, dom: set[int], dow: set[int]
) -> tuple[str, str]:
    dom_full, dow_full = dom == set(range(1, 32)), dow == set(range(7))
    if not dom_text.startswith("*") and not dow_text.startswith("*"):
        # Both restricted: cron runs on a day matching either field.
        if dom_full or dow_full:
            return "*", "?"
        raise NotConvertible(
            schedule,
            f"it restricts both day-of-month ({dom_text}) and day-of-week ({dow_text}), and "
            "cron then runs on days matching EITHER; a Quartz schedule can restrict only one "
            "of them. Use two functions (one per field), or put `*` in one of the two",
        )
    # At least one starts with `*`: days matching both.
    if dow_full:
        return ("*" if dom_full else _numbers(dom, 1, 31)), "?"
    if dom_full:
        return "?", _weekdays(dow)
    raise NotConvertible(
        schedule,
        f"it restricts day-of-month ({dom_text}) and day-of-week ({dow_text}) together; a "
        "Quartz schedule can restrict only one of them",
    )


def _parse(
    schedule: str, text: str, name: str, low: int, high: int, names: tuple[str, ...] | None,
    first: int,
) -> set[int]:  # fmt: skip
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            raise NotConvertible(schedule, f"{name} field {text!r} is not cron syntax")
        step = int(match["step"]) if match["step"] else 1
        if step == 0:
            raise NotConvertible(schedule, f"{name} field {text!r} has a step of 0")
        if match["start"] == "*":
            if match["end"]:
                raise NotConvertible(schedule, f"{name} field {text!r} is not cron syntax")
            start, end = low, (6 if name == "day-of-week" else high)
        else:
            start = _value(schedule, match["start"], name, low, high, names, first)
            # `a/n` runs to the field's end; for weekdays that is SAT (7 is SUN again).
            default_end = (6 if name == "day-of-week" else high) if match["step"] else start
            end = (
                _value(schedule, match["end"], name, low, high, names, first)
                if match["end"]
                else default_end
            )
        if end < start:
            raise NotConvertible(schedule, f"{name} range {item!r} runs backwards")
        values.update(range(start, end + 1, step))
    return values


def _value(
    schedule: str, text: str, name: str, low: int, high: int, names: tuple[str, ...] | None,
    first: int,
) -> int:  # fmt: skip
    if text.isdigit():
        value = int(text)
    elif names is not None and text.upper() in names:
        value = names.index(text.upper()) + first
    else:
        raise NotConvertible(schedule, f"{name} value {text!r} is not a number or a name")
    if not low <= value <= high:
        raise NotConvertible(schedule, f"{name} value {value} is outside {low}-{high}")
    return value


def _numbers(values: set[int], low: int, high: int) -> str:
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    if len(ordered) >= 3:
        step = ordered[1] - ordered[0]
        # Quartz `a/n`: from a to the field's end, every n: only when the set is exactly that.
        if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
            return f"{ordered[0]}/{step}"
    return ",".join(_runs([str(v) for v in ordered], ordered))


def _weekdays(cron_days: set[int]) -> str:
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
