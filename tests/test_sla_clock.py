"""The SLA clock, hand-checked: two support policies, holidays, closing times, DST, year ends.

Each case was worked out on a paper calendar: Colombo works Mon-Fri 08:00-17:00 (UTC+05:30)
with Sri Lanka's public holidays (Tue 24 Nov, Wed 23 Dec, Fri 25 Dec 2026) and 31 Dec 2026
as an extra day off; Dhaka works Sat-Thu 09:00-21:00 (UTC+06), Friday off.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from mailbot.sla import BusinessCalendar, Target
from mailbot.sla.policy import Policy, SlaBook, apply_target
from mailbot.sla.wording import describe_due

CMB = ZoneInfo("Asia/Colombo")
DAC = ZoneInfo("Asia/Dhaka")
LON = ZoneInfo("Europe/London")
NYC = ZoneInfo("America/New_York")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri")

COLOMBO = BusinessCalendar.from_config({
    "timezone": "Asia/Colombo", "hours": {d: ["08:00-17:00"] for d in WEEKDAYS},
    "holidays": {"country": "LK", "dates": ["2026-12-31"], "except": []}})
DHAKA = BusinessCalendar.from_config({
    "timezone": "Asia/Dhaka",
    "hours": {d: ["09:00-21:00"] for d in ("sat", "sun", "mon", "tue", "wed", "thu")}})
ALWAYS = BusinessCalendar.from_config({"timezone": "UTC", "hours": "24x7"})
LONDON = BusinessCalendar.from_config({"timezone": "Europe/London",
                                       "hours": {d: ["09:00-17:00"] for d in WEEKDAYS}})
NEW_YORK = BusinessCalendar.from_config({"timezone": "America/New_York",
                                         "hours": {d: ["09:00-17:00"] for d in WEEKDAYS}})
NEW_YORK_24X7 = BusinessCalendar.from_config({"timezone": "America/New_York", "hours": "24x7"})


def at(zone: ZoneInfo, month: int, day: int, hour: int, minute: int = 0, year: int = 2026,
       second: int = 0) -> datetime:
    return datetime(year, month, day, hour, minute, second, tzinfo=zone)


@pytest.mark.parametrize(("received", "expected"), [
    (at(CMB, 11, 23, 10), at(CMB, 11, 23, 10)),               # Monday, open
    (at(CMB, 11, 23, 7, 59), at(CMB, 11, 23, 8)),             # a minute before opening
    (at(CMB, 11, 23, 8), at(CMB, 11, 23, 8)),                 # exactly at opening
    (at(CMB, 11, 23, 17), at(CMB, 11, 25, 8)),                # at closing; Tuesday is Poya
    (at(CMB, 11, 23, 16, 59, second=59), at(CMB, 11, 23, 16, 59, second=59)),
    (at(CMB, 11, 20, 18), at(CMB, 11, 23, 8)),                # Friday evening
    (at(CMB, 11, 21, 12), at(CMB, 11, 23, 8)),                # Saturday
    (at(CMB, 11, 24, 10), at(CMB, 11, 25, 8)),                # received on a holiday
    (datetime(2026, 11, 23, 3, 0, tzinfo=UTC), at(CMB, 11, 23, 8, 30)),   # given in UTC
    (datetime(2026, 11, 22, 23, 0, tzinfo=UTC), at(CMB, 11, 23, 8)),      # Sunday night UTC
    (at(DAC, 11, 27, 23), at(DAC, 11, 28, 9)),                # Dhaka: Friday off
    (at(DAC, 11, 26, 21), at(DAC, 11, 28, 9)),                # Dhaka: Thursday closing
])
def test_first_business_moment(received: datetime, expected: datetime) -> None:
    calendar = DHAKA if received.tzinfo is DAC else COLOMBO
    assert calendar.first_business_moment(received) == expected


@pytest.mark.parametrize(("received", "days", "expected"), [
    (at(CMB, 11, 23, 10), 1, at(CMB, 11, 25, 10)),            # over the Poya holiday
    (at(CMB, 11, 25, 10), 1, at(CMB, 11, 26, 10)),
    (at(CMB, 11, 27, 16, 55), 1, at(CMB, 11, 30, 16, 55)),    # Friday to Monday
    (at(CMB, 11, 20, 18), 1, at(CMB, 11, 25, 8)),             # Friday evening, Poya Tuesday
    (at(CMB, 11, 28, 9), 1, at(CMB, 12, 1, 8)),               # Saturday
    (at(CMB, 12, 22, 15), 1, at(CMB, 12, 24, 15)),            # over Unduvap Poya (23 Dec)
    (at(CMB, 12, 24, 11), 1, at(CMB, 12, 28, 11)),            # over Christmas and the weekend
    (at(CMB, 12, 30, 9), 1, at(CMB, 1, 1, 9, year=2027)),     # over the extra 31 Dec
    (at(CMB, 12, 30, 9), 2, at(CMB, 1, 4, 9, year=2027)),     # into the new year
    (at(CMB, 11, 23, 10), 2, at(CMB, 11, 26, 10)),            # P2 response
    (at(CMB, 11, 23, 10), 5, at(CMB, 12, 1, 10)),             # P2 resolution
    (at(CMB, 11, 23, 10), 3, at(CMB, 11, 27, 10)),            # P3 response
    (at(CMB, 11, 23, 10), 7, at(CMB, 12, 3, 10)),             # P3 resolution
    (at(CMB, 12, 18, 12), 3, at(CMB, 12, 24, 12)),            # P4 response
    (at(CMB, 11, 27, 17), 1, at(CMB, 12, 1, 8)),              # received exactly at closing
    (at(CMB, 11, 30, 8), 1, at(CMB, 12, 1, 8)),               # received exactly at opening
    (at(CMB, 11, 23, 10), 0, at(CMB, 11, 23, 10)),
    (at(LON, 10, 23, 10), 1, at(LON, 10, 26, 10)),            # over the end of summer time
    (datetime(2026, 11, 28, 10, tzinfo=UTC), 1, datetime(2026, 11, 29, 10, tzinfo=UTC)),
])
def test_working_days(received: datetime, days: int, expected: datetime) -> None:
    zone = received.tzinfo
    calendar = {CMB: COLOMBO, LON: LONDON}.get(zone, ALWAYS)  # type: ignore[call-overload]
    assert calendar.add_working_days(received, days) == expected


@pytest.mark.parametrize(("calendar", "start", "delta", "expected"), [
    (COLOMBO, at(CMB, 11, 23, 16), timedelta(hours=2), at(CMB, 11, 25, 9)),
    (COLOMBO, at(CMB, 11, 23, 8), timedelta(hours=9), at(CMB, 11, 25, 8)),  # lands on closing
    (COLOMBO, at(CMB, 11, 23, 8), timedelta(hours=8, minutes=59), at(CMB, 11, 23, 16, 59)),
    (COLOMBO, at(CMB, 11, 27, 16, 30), timedelta(minutes=30), at(CMB, 11, 30, 8)),
    (COLOMBO, at(CMB, 11, 27, 16, 30), timedelta(minutes=31), at(CMB, 11, 30, 8, 1)),
    (COLOMBO, at(CMB, 11, 28, 12), timedelta(minutes=90), at(CMB, 11, 30, 9, 30)),
    (COLOMBO, at(CMB, 11, 28, 12), timedelta(0), at(CMB, 11, 30, 8)),
    (DHAKA, at(DAC, 11, 26, 20), timedelta(hours=12), at(DAC, 11, 28, 20)),  # over Friday
    (DHAKA, at(DAC, 11, 27, 10), timedelta(hours=12), at(DAC, 11, 29, 9)),   # Friday receipt
    (DHAKA, at(DAC, 11, 28, 9), timedelta(hours=12), at(DAC, 11, 29, 9)),    # full day
    (DHAKA, at(DAC, 11, 29, 15), timedelta(hours=12), at(DAC, 11, 30, 15)),
    (DHAKA, at(DAC, 11, 25, 8, 59), timedelta(hours=12), at(DAC, 11, 26, 9)),
    (DHAKA, at(DAC, 11, 26, 21), timedelta(hours=12), at(DAC, 11, 29, 9)),
    (DHAKA, datetime(2026, 11, 26, 14, 30, tzinfo=UTC), timedelta(hours=12),
     datetime(2026, 11, 28, 14, 30, tzinfo=UTC)),
    (DHAKA, at(DAC, 11, 26, 9), timedelta(hours=12), at(DAC, 11, 28, 9)),    # skips Friday
    (ALWAYS, datetime(2026, 11, 28, 3, tzinfo=UTC), timedelta(hours=4),
     datetime(2026, 11, 28, 7, tzinfo=UTC)),
    (ALWAYS, datetime(2026, 11, 28, 23, tzinfo=UTC), timedelta(hours=24),
     datetime(2026, 11, 29, 23, tzinfo=UTC)),
    (LONDON, at(LON, 3, 27, 16), timedelta(hours=2), at(LON, 3, 30, 10)),   # into summer time
    (NEW_YORK, at(NYC, 3, 6, 16, 30), timedelta(hours=1), at(NYC, 3, 9, 9, 30)),
    (NEW_YORK, at(NYC, 10, 30, 16), timedelta(hours=2), at(NYC, 11, 2, 10)),
    (NEW_YORK_24X7, at(NYC, 3, 7, 12), timedelta(hours=24), at(NYC, 3, 8, 13)),  # 23-hour day
])
def test_business_time_added(calendar: BusinessCalendar, start: datetime, delta: timedelta,
                             expected: datetime) -> None:
    assert calendar.add(start, delta) == expected


@pytest.mark.parametrize(("calendar", "start", "end", "expected"), [
    (COLOMBO, at(CMB, 11, 20, 16), at(CMB, 11, 23, 9), timedelta(hours=2)),
    (COLOMBO, at(CMB, 11, 23, 9), at(CMB, 11, 25, 9), timedelta(hours=9)),
    (COLOMBO, at(CMB, 11, 25, 9), at(CMB, 11, 23, 9), timedelta(0)),        # reversed
    (COLOMBO, at(CMB, 11, 23, 9), at(CMB, 11, 23, 9), timedelta(0)),
    (COLOMBO, at(CMB, 11, 21, 9), at(CMB, 11, 22, 18), timedelta(0)),       # weekend
    (DHAKA, at(DAC, 11, 26, 20), at(DAC, 11, 28, 10), timedelta(hours=2)),
    (DHAKA, at(DAC, 11, 28, 9), at(DAC, 12, 5, 9), timedelta(hours=72)),   # a whole week
    (ALWAYS, datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 3, tzinfo=UTC),
     timedelta(hours=48)),
    (LONDON, at(LON, 3, 27, 9), at(LON, 3, 30, 17), timedelta(hours=16)),   # over the change
    (LONDON, at(LON, 10, 23, 10), at(LON, 10, 26, 10), timedelta(hours=8)),
    (NEW_YORK_24X7, at(NYC, 3, 7, 0), at(NYC, 3, 9, 0), timedelta(hours=47)),
])
def test_elapsed_business_time(calendar: BusinessCalendar, start: datetime, end: datetime,
                               expected: timedelta) -> None:
    assert calendar.elapsed(start, end) == expected


def test_pause_is_removed_from_elapsed_time() -> None:
    pause = (at(CMB, 11, 23, 12), at(CMB, 11, 23, 14))
    assert COLOMBO.elapsed(at(CMB, 11, 23, 9), at(CMB, 11, 25, 9), [pause]) == \
        timedelta(hours=7)


def test_pause_pushes_the_due_later() -> None:
    pause = (at(CMB, 11, 23, 12), at(CMB, 11, 23, 14))
    assert COLOMBO.add(at(CMB, 11, 23, 9), timedelta(hours=4), [pause]) == at(CMB, 11, 23, 15)


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="timezone-aware"):
        COLOMBO.first_business_moment(datetime(2026, 11, 23, 10))


def test_missing_holiday_data_is_reported() -> None:
    """The holidays package knows Sri Lanka's Poya days only for years already published."""
    assert COLOMBO.holiday_data_gaps([2026, 2040]) == [2040]
    assert DHAKA.holiday_data_gaps([2040]) == []  # no country configured: nothing missing


BOOK = SlaBook(
    {"colombo": COLOMBO, "dhaka": DHAKA, "always": ALWAYS},
    {"standard": Policy("standard", "colombo", {
        "P1": (Target(1, "working_days"), Target(2, "working_days")),
        "P4": (Target(3, "working_days"), None)}),
     "six_day": Policy("six_day", "dhaka", {"P1": (Target(12, "business_hours"), None)}),
     "extended": Policy("extended", "always", {
         "P1": (Target(4, "business_hours"), Target(2, "working_days"))})},
    "standard", {"extended": "extended", "six": "six_day"})


def test_policy_dues_for_a_p1_received_friday_evening() -> None:
    dues = BOOK.dues(at(CMB, 11, 20, 18), "P1")
    assert (dues.policy, dues.clock_start) == ("standard", at(CMB, 11, 23, 8))
    assert (dues.response_due, dues.resolution_due) == (at(CMB, 11, 25, 8), at(CMB, 11, 26, 8))


def test_extended_plan_is_covered_around_the_clock() -> None:
    dues = BOOK.dues(at(CMB, 11, 20, 18), "P1", plan="extended")
    assert (dues.policy, dues.response_due) == ("extended", at(CMB, 11, 20, 22))


def test_six_day_team_answers_within_twelve_business_hours() -> None:
    dues = BOOK.dues(at(DAC, 11, 26, 20), "P1", plan="six")
    assert (dues.response_due, dues.resolution_due) == (at(DAC, 11, 28, 20), None)


def test_p4_has_no_resolution_target() -> None:
    assert BOOK.dues(at(CMB, 12, 18, 12), "P4").resolution_due is None


def test_due_in_words_names_the_zone_and_offset() -> None:
    due = apply_target(COLOMBO, at(CMB, 11, 23, 10, 30), Target(1, "working_days"))
    assert describe_due(Target(1, "working_days"), due, CMB) == (
        "within 1 working day — by Wednesday 25 November 2026, 10:30 Sri Lanka Time "
        "(UTC+05:30)")


instants = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2027, 12, 1),
                        timezones=st.just(UTC))
durations = st.timedeltas(min_value=timedelta(0), max_value=timedelta(hours=300))
calendars = st.sampled_from([COLOMBO, DHAKA, ALWAYS, LONDON, NEW_YORK, NEW_YORK_24X7])


@given(calendars, instants, durations, durations)
def test_due_is_monotone_in_the_target(calendar: BusinessCalendar, start: datetime,
                                       a: timedelta, b: timedelta) -> None:
    low, high = sorted((a, b))
    assert calendar.add(start, low) <= calendar.add(start, high)


@given(calendars, instants, durations)
def test_elapsed_until_the_due_is_the_target(calendar: BusinessCalendar, start: datetime,
                                             delta: timedelta) -> None:
    assert calendar.elapsed(start, calendar.add(start, delta)) == delta


@given(calendars, instants, durations, durations)
def test_elapsed_is_additive_at_any_split(calendar: BusinessCalendar, start: datetime,
                                          a: timedelta, b: timedelta) -> None:
    middle, end = start + min(a, b), start + max(a, b)
    assert calendar.elapsed(start, end) == (calendar.elapsed(start, middle)
                                            + calendar.elapsed(middle, end))


@given(calendars, instants, durations, instants, durations)
def test_pauses_only_push_the_due_later(calendar: BusinessCalendar, start: datetime,
                                        delta: timedelta, pause_start: datetime,
                                        pause_length: timedelta) -> None:
    pause = (pause_start, pause_start + pause_length)
    assert calendar.add(start, delta, [pause]) >= calendar.add(start, delta)


def _fresh_book() -> SlaBook:
    return SlaBook(BOOK.calendars, BOOK.policies, BOOK.default_policy, BOOK.plans)


@given(st.lists(st.tuples(st.sampled_from([at(CMB, 11, 20, 18), at(CMB, 11, 23, 10, 30),
                                           at(DAC, 11, 26, 20)]) | instants,
                          st.sampled_from(["P1", "P2", "P4"]),
                          st.sampled_from([None, "extended", "six"])),
                min_size=1, max_size=150))
def test_dues_asked_again_are_the_dues_worked_out_afresh(
        asked: list[tuple[datetime, str, str | None]]) -> None:
    """Dues kept for repeated arrivals match a new book's, before and after it forgets some."""
    book = _fresh_book()
    for received, severity, plan in asked:
        assert book.dues(received, severity, plan) == _fresh_book().dues(received, severity,
                                                                          plan)
