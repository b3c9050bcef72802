"""Due times in words for people: `within 1 working day — by Wednesday 25 November 2026, 08:00
Sri Lanka Time (UTC+05:30)`."""

from __future__ import annotations

from datetime import datetime, time, timedelta, tzinfo
from functools import lru_cache
from zoneinfo import ZoneInfo

from babel.dates import format_datetime, get_timezone_name

from mailbot.sla.calendar import BusinessCalendar
from mailbot.sla.targets import Target

LOCALE = "en_GB"
EN_DASH = "\u2013"


def utc_offset(at: datetime) -> str:
    offset = at.utcoffset() or timedelta(0)
    sign = "-" if offset < timedelta(0) else "+"
    minutes = abs(int(offset.total_seconds())) // 60
    return f"UTC{sign}{minutes // 60:02d}:{minutes % 60:02d}"


def zone_label(zone: tzinfo, at: datetime) -> str:
    """`Sri Lanka Time (UTC+05:30)`; plain `UTC` for UTC; the offset alone for a fixed one."""
    if not isinstance(zone, ZoneInfo):
        return utc_offset(at.astimezone(zone))
    if zone.key in ("UTC", "Etc/UTC", "Etc/GMT"):
        return "UTC"
    return f"{_zone_name(zone)} ({utc_offset(at.astimezone(zone))})"


@lru_cache(maxsize=64)
def _zone_name(zone: ZoneInfo) -> str:
    """The zone's generic name (`Sri Lanka Time`): the same at any moment, so looked up once."""
    return get_timezone_name(zone, locale=LOCALE)


def local_moment(at: datetime, zone: tzinfo) -> str:
    """`Wednesday 25 November 2026, 08:00 Sri Lanka Time (UTC+05:30)`."""
    return _minute_in_words(at.astimezone(zone).replace(second=0, microsecond=0), zone)


@lru_cache(maxsize=1024)
def _minute_in_words(local: datetime, zone: tzinfo) -> str:
    """Said to the minute, so the mails of one minute (a backlog's) share the wording."""
    return f"{format_datetime(local, 'EEEE d MMMM y, HH:mm', locale=LOCALE)} " \
           f"{zone_label(zone, local)}"


def describe_due(target: Target, due: datetime, zone: ZoneInfo) -> str:
    """`within 1 working day — by Wednesday 25 November 2026, 08:00 Sri Lanka Time (...)`."""
    return f"within {target} — by {local_moment(due, zone)}"


DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


@lru_cache(maxsize=64)
def describe_hours(calendar: BusinessCalendar, at: datetime) -> str:
    """`Monday to Friday 08:00-17:00 Sri Lanka Time (UTC+05:30), public holidays excepted`.

    Kept for repeated moments: a transaction's auto-replies share its moment.
    """
    if len(calendar.week) == 7 and all(spans == ((time(0), None),)
                                       for spans in calendar.week.values()):
        hours = "around the clock, every day"
    else:
        groups: list[tuple[list[int], str]] = []
        starts = [d for d in range(7) if d in calendar.week and (d - 1) % 7 not in calendar.week]
        first = 0 if 0 in starts or not starts else starts[0]
        for day in ((first + i) % 7 for i in range(7)):
            if day not in calendar.week:
                continue
            spans = ", ".join(f"{s:%H:%M}{EN_DASH}{'24:00' if e is None else f'{e:%H:%M}'}"
                              for s, e in calendar.week[day])
            if groups and groups[-1][1] == spans and groups[-1][0][-1] == (day - 1) % 7:
                groups[-1][0].append(day)
            else:
                groups.append(([day], spans))
        parts = [(f"{DAY_NAMES[days[0]]} to {DAY_NAMES[days[-1]]}" if len(days) > 2 else
                  " and ".join(DAY_NAMES[d] for d in days)) + f" {spans}"
                 for days, spans in groups]
        hours = "; ".join(parts) + f" {zone_label(calendar.zone, at)}"
    if calendar.country or calendar.extra_holidays:
        hours += ", public holidays excepted"
    return hours
