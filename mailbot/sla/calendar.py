"""Business time on a team's calendar: weekly hours in a time zone, minus holidays.

Conventions (those of Request Tracker's Business::Hours, Zammad/biz and pandas):
- the clock starts at the first business moment at or after receipt;
- `add(t, d)` is the instant when `d` of business time has elapsed; a due that lands
  exactly on a closing time is the next opening;
- `add_working_days(t, n)` is n business dates after the first business moment, at the
  same local time, moved to the next business moment if that time is closed that day;
- `elapsed(start, end, pauses)` counts business seconds in [start, end), less the pauses;
  0 for a reversed pair.
All take and return timezone-aware datetimes.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import holidays as holiday_data

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MAX_SCAN_DAYS = 3 * 366
DAYS_KEPT = 4 * 366  # days whose intervals a calendar keeps
Interval = tuple[datetime, datetime]


class CalendarError(ValueError):
    """A calendar that cannot be used (no business hours at all, a bad interval)."""


def parse_interval(text: str) -> tuple[time, time | None]:
    """`08:00-17:00` → (08:00, 17:00); an end of `24:00` is None (midnight after)."""
    start_text, dash, end_text = text.partition("-")
    try:
        if not dash:
            raise ValueError
        start = time.fromisoformat(start_text.strip())
        end_text = end_text.strip()
        end = None if end_text == "24:00" else time.fromisoformat(end_text)
    except ValueError:
        raise CalendarError(f"not an interval: {text!r} (write '08:00-17:00')") from None
    if end is not None and end <= start:
        raise CalendarError(f"the interval {text!r} ends before it starts")
    return start, end


class BusinessCalendar:
    """Weekly business hours in one time zone, with public and extra holidays."""

    def __init__(self, timezone: str, week: Mapping[int, Sequence[tuple[time, time | None]]],
                 *, country: str | None = None, subdivision: str | None = None,
                 extra_holidays: Iterable[date] = (), working_exceptions: Iterable[date] = ()
                 ) -> None:
        self.zone = ZoneInfo(timezone)
        self.timezone = timezone
        self.week = {day: tuple(sorted(spans)) for day, spans in week.items() if spans}
        if not self.week:
            raise CalendarError("a calendar needs business hours on at least one day")
        self.country = country
        self.subdivision = subdivision
        self.extra_holidays = frozenset(extra_holidays)
        self.working_exceptions = frozenset(working_exceptions)
        self._days: dict[date, tuple[Interval, ...]] = {}

    @classmethod
    def from_config(cls, mapping: Mapping[str, Any]) -> BusinessCalendar:
        """From the YAML shape: {timezone, hours: '24x7' | {mon: ['08:00-17:00']}, holidays}."""
        hours = mapping["hours"]
        if hours == "24x7":
            week: dict[int, list[tuple[time, time | None]]] = {
                day: [(time(0, 0), None)] for day in range(7)}
        else:
            week = {WEEKDAYS.index(day): [parse_interval(i) for i in spans]
                    for day, spans in hours.items()}
        holidays = mapping.get("holidays") or {}
        return cls(mapping["timezone"], week,
                   country=holidays.get("country"), subdivision=holidays.get("subdivision"),
                   extra_holidays=[_as_date(d) for d in holidays.get("dates", ())],
                   working_exceptions=[_as_date(d) for d in holidays.get("except", ())])

    def holiday_data_gaps(self, years: Iterable[int]) -> list[int]:
        """Years for which the holidays package knows no public holiday of the country."""
        if self.country is None:
            return []
        return [y for y in years if not _public_holidays(self.country, self.subdivision, y)]

    def is_holiday(self, day: date) -> bool:
        if day in self.working_exceptions:
            return False
        if day in self.extra_holidays:
            return True
        if self.country is None:
            return False
        return day in _public_holidays(self.country, self.subdivision, day.year)

    def is_business_day(self, day: date) -> bool:
        return day.weekday() in self.week and not self.is_holiday(day)

    def intervals_on(self, day: date) -> tuple[Interval, ...]:
        """The day's business intervals as UTC instants (none on a holiday).

        Worked out once per day and kept (a calendar does not change): every due, every
        check of the SLA watcher walks the same few days.
        """
        known = self._days.get(day)
        if known is None:
            if len(self._days) >= DAYS_KEPT:
                self._days.clear()
            known = self._days[day] = tuple(self._work_out_intervals(day))
        return known

    def _work_out_intervals(self, day: date) -> list[Interval]:
        if not self.is_business_day(day):
            return []
        spans = []
        for start, end in self.week[day.weekday()]:
            opens = datetime.combine(day, start, self.zone).astimezone(UTC)
            closes = (datetime.combine(day + timedelta(days=1), time(0), self.zone) if end is None
                      else datetime.combine(day, end, self.zone)).astimezone(UTC)
            if closes > opens:
                spans.append((opens, closes))
        return spans

    def intervals_from(self, t: datetime) -> Iterator[Interval]:
        """Business intervals that end after `t`, in order, for at most MAX_SCAN_DAYS days."""
        day = t.astimezone(self.zone).date() - timedelta(days=1)
        for offset in range(MAX_SCAN_DAYS):
            for opens, closes in self.intervals_on(day + timedelta(days=offset)):
                if closes > t:
                    yield opens, closes
        raise CalendarError(f"no business time within {MAX_SCAN_DAYS} days of {t.isoformat()}")

    def first_business_moment(self, t: datetime) -> datetime:
        """`t` itself when the team is working then, else the next opening."""
        t = _aware(t)
        for opens, _closes in self.intervals_from(t):
            return max(opens, t).astimezone(self.zone)
        raise CalendarError("unreachable")  # pragma: no cover - intervals_from raises first

    def add(self, t: datetime, delta: timedelta,
            pauses: Iterable[tuple[datetime, datetime]] = ()) -> datetime:
        """The instant at which `delta` of business time has passed since `t`, pauses excluded."""
        if delta < timedelta(0):
            raise ValueError("business time cannot be negative")
        t = _aware(t)
        remaining = delta
        landed_on_close = False
        for opens, closes in _without(self.intervals_from(t), _merged(pauses)):
            if landed_on_close:
                if opens >= t:
                    return opens.astimezone(self.zone)
                continue
            start = max(opens, t)
            available = closes - start
            if remaining < available:
                return (start + remaining).astimezone(self.zone)
            remaining -= available
            t = closes
            landed_on_close = remaining == timedelta(0)
        raise CalendarError("unreachable")  # pragma: no cover

    def add_working_days(self, t: datetime, days: int) -> datetime:
        """`days` business dates after the first business moment, at the same local time."""
        if days < 0:
            raise ValueError("working days cannot be negative")
        start = self.first_business_moment(t)
        if days == 0:
            return start
        local = start.astimezone(self.zone)
        day = local.date()
        for _ in range(MAX_SCAN_DAYS):
            day += timedelta(days=1)
            if self.is_business_day(day):
                days -= 1
                if days == 0:
                    target = datetime.combine(day, local.time(), self.zone)
                    return self.first_business_moment(target)
        raise CalendarError(f"fewer than {days} working days within {MAX_SCAN_DAYS} days")

    def elapsed(self, start: datetime, end: datetime,
                pauses: Iterable[tuple[datetime, datetime]] = ()) -> timedelta:
        """Business time in [start, end), less the pauses; 0 when end is not after start."""
        start, end = _aware(start), _aware(end)
        if end <= start:
            return timedelta(0)
        total = self._business_between(start, end)
        for pause_start, pause_end in _merged(pauses):
            lo, hi = max(_aware(pause_start), start), min(_aware(pause_end), end)
            if hi > lo:
                total -= self._business_between(lo, hi)
        return total

    def _business_between(self, start: datetime, end: datetime) -> timedelta:
        total = timedelta(0)
        for opens, closes in self.intervals_from(start):
            if opens >= end:
                break
            lo, hi = max(opens, start), min(closes, end)
            if hi > lo:
                total += hi - lo
        return total


@lru_cache(maxsize=256)
def _public_holidays(country: str, subdivision: str | None, year: int) -> Any:
    return holiday_data.country_holidays(country, subdiv=subdivision, years=year)


def _aware(t: datetime) -> datetime:
    if t.tzinfo is None:
        raise ValueError(f"expected a timezone-aware datetime, got {t.isoformat()}")
    return t


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value))


def _without(intervals: Iterable[Interval], pauses: list[Interval]) -> Iterator[Interval]:
    """The intervals with the (merged, sorted) pauses cut out."""
    for opens, closes in intervals:
        start = opens
        for lo, hi in pauses:
            if hi <= start or lo >= closes:
                continue
            if lo > start:
                yield start, lo
            start = max(start, hi)
            if start >= closes:
                break
        if start < closes:
            yield start, closes


def _merged(pauses: Iterable[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for lo, hi in sorted((_aware(a), _aware(b)) for a, b in pauses if b > a):
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged
