"""When scheduled jobs run: systemd ``OnCalendar=`` expressions, checked, and five-field cron
lines translated into them (pure; :mod:`vpskit.inventory` turns a ``ValueError`` into its error).

``from_cron("*/15 9-17 * * mon-fri")`` gives ``("Mon..Fri *-*-* 09..17:00/15:00 UTC",)``. The
translation takes lists, ranges, steps, month and day names, the ``@daily``-style shortcuts and
cron's rule that a day of month and a day of week, both restricted, mean either one: that is two
expressions, which a timer's several ``OnCalendar=`` lines join. It refuses what it cannot
express (``@reboot``, the L/W/#/? extensions, a seconds field) rather than guess.
"""

from __future__ import annotations

import re

WEEKDAYS = ("Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat")
MONTHS = ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")
SHORTCUTS = {"@yearly": "0 0 1 1 *", "@annually": "0 0 1 1 *", "@monthly": "0 0 1 * *",
             "@weekly": "0 0 * * 0", "@daily": "0 0 * * *", "@midnight": "0 0 * * *",
             "@hourly": "0 * * * *"}
# systemd's own words for a calendar, each a whole expression.
SHORTHANDS = ("minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually",
              "quarterly", "semiannually")
CRON_FIX = "give five fields: minute hour day-of-month month day-of-week, e.g. '0 3 * * *'"
# (name, lowest, highest, names in cron)
CRON_FIELDS = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
               ("month", 1, 12, MONTHS), ("day of week", 0, 7, tuple(d.lower() for d in WEEKDAYS)))
_ITEM = re.compile(r"(\*|\w+)(?:-(\w+))?(?:/(\d+))?")


def from_cron(line: str, timezone: str = "UTC") -> tuple[str, ...]:
    """The ``OnCalendar=`` expressions of crontab schedule ``line``, in ``timezone``."""
    line = line.strip()
    if line.startswith("@"):
        if line.lower() not in SHORTCUTS:
            hint = " (it is no calendar: run it as a process)" if line == "@reboot" else ""
            raise ValueError(f"{line!r} is not a cron shortcut vpskit translates{hint}; use "
                             f"one of {', '.join(SHORTCUTS)}")
        line = SHORTCUTS[line.lower()]
    fields = line.split()
    if len(fields) != 5:
        fix = ("a seconds or year field is no cron's: write the job's calendar: in systemd "
               "syntax instead") if len(fields) in (6, 7) else CRON_FIX
        raise ValueError(f"{line!r} has {len(fields)} fields, cron has 5; {fix}")
    minutes, hours, days, months, weekdays = (
        _cron_field(text, *spec) for text, spec in zip(fields, CRON_FIELDS, strict=True))
    weekdays = {d % 7 for d in weekdays}  # 7 is Sunday too
    time = f"{_chain(hours, 0, 23)}:{_chain(minutes, 0, 59)}:00"
    month = _chain(months, 1, 12)
    days_part = f"*-{month}-{_chain(days, 1, 31)} {time} {timezone}"
    weekday_part = f"{_weekdays(weekdays)} " if len(weekdays) < 7 else ""
    if fields[2].startswith("*") or fields[4].startswith("*"):  # cron: both must match
        return (f"{weekday_part}{days_part}",)
    return (days_part, f"{weekday_part}*-{month}-* {time} {timezone}")  # cron: either one


def _cron_field(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> set[int]:
    """The values a cron field selects: ``*``, ``a``, ``a-b``, each with ``/step``, comma
    separated; months and days also by their three-letter English names."""
    values: set[int] = set()
    for item in text.split(","):
        match = _ITEM.fullmatch(item)
        if not match:
            raise ValueError(f"{name} {item!r}: {_field_fix(item, name, low, high, names)}")
        first, last, step = match.groups()
        if first == "*":
            if last:
                raise ValueError(f"{name} {item!r}: '*' takes no range; write '{low}-{last}'")
            start, end = low, high
        else:
            start = _cron_value(first, name, low, high, names)
            end = _cron_value(last, name, low, high, names) if last else (high if step else start)
        if start > end:
            raise ValueError(f"{name} {item!r}: a range runs upward; split it, e.g. "
                             f"'{first}-{high},{low}-{last}'")
        if step is not None and int(step) < 1:
            raise ValueError(f"{name} {item!r}: a step is at least 1")
        values.update(range(start, end + 1, int(step or 1)))
    return values


def _cron_value(word: str, name: str, low: int, high: int, names: tuple[str, ...]) -> int:
    if word.isdigit() and low <= int(word) <= high:
        return int(word)
    if word.lower() in names:
        return names.index(word.lower()) + low
    raise ValueError(f"{name} {word!r}: {_field_fix(word, name, low, high, names)}")


def _field_fix(text: str, name: str, low: int, high: int, names: tuple[str, ...]) -> str:
    if re.search(r"[LW#?]", text):
        return ("the L, W, # and ? extensions have no translation; write the job's calendar: "
                "in systemd syntax (e.g. '*-*~01' is the last day of a month)")
    named = f" or {names[0].title()}..{names[-1].title()}" if names else ""
    return f"expected {low}-{high}{named}, as a value, a-b range, */step or a list of them"


def _chain(values: set[int], low: int, high: int) -> str:
    """``values`` as a systemd calendar component: ``*``, ``start/step``, or a list of values
    and ``a..b`` ranges, two digits each."""
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    steps = {b - a for a, b in zip(ordered, ordered[1:], strict=False)}
    step = ordered[1] - ordered[0] if len(ordered) >= 3 and len(steps) == 1 else 1
    if step > 1 and ordered[-1] + step > high:
        return f"{ordered[0]:02d}/{step}"
    return _join([f"{v:02d}" for v in range(high + 1)], _runs(ordered))


def _weekdays(values: set[int]) -> str:
    """Cron's days of week (0 = Sunday) as systemd's: ``Mon..Fri``, ``Sat,Sun``."""
    monday_first = sorted(values, key=lambda d: (d + 6) % 7)
    return _join([*WEEKDAYS[1:], WEEKDAYS[0]], _runs([(d + 6) % 7 for d in monday_first]))


def _join(names: list[str], runs: list[tuple[int, int]]) -> str:
    """Runs as a systemd list: ``a..b`` from three values on, each value by its name."""
    return ",".join(names[a] if a == b else f"{names[a]},{names[b]}" if b == a + 1
                    else f"{names[a]}..{names[b]}" for a, b in runs)


def _runs(ordered: list[int]) -> list[tuple[int, int]]:
    """Consecutive runs of sorted ``ordered`` as (first, last) pairs."""
    runs: list[tuple[int, int]] = []
    for value in ordered:
        if runs and value == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], value)
        else:
            runs.append((value, value))
    return runs


# ---- systemd calendars as written ----------------------------------------------------------------
CALENDAR_FIX = ("expected a systemd calendar: [weekdays] [date] [time], e.g. 'daily', "
                "'*-*-* 03:00:00', 'Mon..Fri 09:30', '*:0/15' or '2030-01-01 00:00:00'")
_DATE = re.compile(r"(?:([^-~:]+)-)?([^-~:]+)([-~])([^-~:]+)")
_TIME = re.compile(r"([^:]+):([^:]+)(?::([^:]+))?")
_WEEKDAY_WORDS = {w.lower(): i for i, w in enumerate(WEEKDAYS)} | {
    w: i for i, w in enumerate(("sunday", "monday", "tuesday", "wednesday", "thursday",
                                "friday", "saturday"))}


def check_calendar(expression: str, timezone: str = "UTC") -> tuple[str, ...]:
    """``(expression + timezone,)`` when ``expression`` reads as a systemd ``OnCalendar=``
    value without a timezone of its own; else a ``ValueError`` saying what is wrong."""
    words = expression.split()
    if len(words) == 1 and words[0].lower() in SHORTHANDS:
        return (f"{words[0]} {timezone}",)
    normal = " ".join(words)
    if not words:
        raise ValueError(f"{expression!r}: {CALENDAR_FIX}")
    if words[0][0].isalpha():
        _check_weekdays(words.pop(0), expression)
    zone = [w for w in words if w[0].isalpha()]
    if zone:
        raise ValueError(f"{expression!r}: '{zone[0]}' is no part of a calendar; give a "
                         f"timezone as the job's timezone:")
    dates = [w for w in words if ":" not in w]
    times = [w for w in words if ":" in w]
    if len(dates) > 1 or len(times) > 1 or words != dates + times:
        raise ValueError(f"{expression!r}: {CALENDAR_FIX}")
    if dates:
        _check_date(dates[0], expression)
    if times:
        _check_time(times[0], expression)
    return (f"{normal} {timezone}",)


def _check_weekdays(word: str, expression: str) -> None:
    for item in word.split(","):
        ends = item.split("..")
        if len(ends) > 2 or not all(end.lower() in _WEEKDAY_WORDS for end in ends):
            raise ValueError(f"{expression!r}: {item!r} is not a weekday such as 'Mon', a range "
                             f"'Mon..Fri' or a list of them; a timezone goes in timezone:")


def _check_date(word: str, expression: str) -> None:
    match = _DATE.fullmatch(word)
    if not match:
        raise ValueError(f"{expression!r}: date {word!r}: expected [year-]month-day, e.g. "
                         f"'*-*-01' or '2030-01-31' ('~' counts days from a month's end)")
    year, month, _, day = match.groups()
    for text, name, low, high in ((year, "year", 1970, 2199), (month, "month", 1, 12),
                                  (day, "day", 1, 31)):
        if text is not None:
            _check_component(text, name, low, high, expression)


def _check_time(word: str, expression: str) -> None:
    match = _TIME.fullmatch(word)
    if not match:
        raise ValueError(f"{expression!r}: time {word!r}: expected hour:minute[:second]")
    for text, name, high in zip(match.groups(), ("hour", "minute", "second"), (23, 59, 59),
                                strict=True):
        if text is not None:
            _check_component(text, name, 0, high, expression)


def _check_component(text: str, name: str, low: int, high: int, expression: str) -> None:
    """One date or time component: ``*``, or a list of ``v``, ``a..b``, ``v/step``."""
    if text == "*":
        return
    for item in text.split(","):
        value, _, step = item.partition("/")
        ends = value.split("..") if value != "*" or not step else [str(low)]
        ok = (len(ends) <= 2 and all(e.isdigit() and low <= int(e) <= high for e in ends)
              and (not step or step.isdigit() and int(step) >= 1)
              and (len(ends) == 1 or int(ends[0]) <= int(ends[1])))
        if not ok:
            raise ValueError(f"{expression!r}: {name} {item!r}: expected {low}-{high}, a range "
                             f"a..b, a repetition start/step, or a list of them")
