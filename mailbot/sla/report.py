"""SLA compliance over a month: met and breached per severity and per customer (pure)."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime

from mailbot.sla.calendar import BusinessCalendar


@dataclass(frozen=True, slots=True)
class TicketTimes:
    """The instants of one ticket the report reads."""

    number: int
    severity: str
    customer_id: str | None
    policy: str | None
    created_at: datetime
    response_due: datetime | None
    first_response_at: datetime | None
    resolution_due: datetime | None
    resolved_at: datetime | None


@dataclass
class Compliance:
    """One row of the report."""

    group: str
    tickets: int = 0
    response_met: int = 0
    response_breached: int = 0
    response_pending: int = 0
    resolution_met: int = 0
    resolution_breached: int = 0
    resolution_pending: int = 0
    first_response_hours: list[float] = field(default_factory=list)

    def as_dict(self) -> dict[str, object]:
        hours = sorted(self.first_response_hours)
        return {
            "group": self.group, "tickets": self.tickets,
            "response_met": self.response_met, "response_breached": self.response_breached,
            "response_pending": self.response_pending,
            "resolution_met": self.resolution_met,
            "resolution_breached": self.resolution_breached,
            "resolution_pending": self.resolution_pending,
            "response_met_share": _share(self.response_met, self.response_breached),
            "median_first_response_business_hours":
                round(statistics.median(hours), 2) if hours else None,
            "p90_first_response_business_hours": round(_nearest_rank(hours, 0.9), 2)
            if hours else None,
        }


def outcome(due: datetime | None, done: datetime | None, now: datetime) -> str | None:
    """`met`, `breached` or `pending` for one target; None when there is no target."""
    if due is None:
        return None
    if done is not None:
        return "met" if done <= due else "breached"
    return "breached" if now > due else "pending"


def compliance(tickets: Iterable[TicketTimes], now: datetime,
               calendar_for: Callable[[str | None], BusinessCalendar],
               group_by: Callable[[TicketTimes], str]) -> list[Compliance]:
    """One row per group (sorted), then a last row `all` over every ticket."""
    rows: dict[str, Compliance] = {}
    total = Compliance("all")
    for ticket in tickets:
        key = group_by(ticket)
        for row in (rows.setdefault(key, Compliance(key)), total):
            _count(row, ticket, now, calendar_for)
    return [rows[k] for k in sorted(rows)] + [total]


def _count(row: Compliance, ticket: TicketTimes, now: datetime,
           calendar_for: Callable[[str | None], BusinessCalendar]) -> None:
    row.tickets += 1
    response = outcome(ticket.response_due, ticket.first_response_at, now)
    if response is not None:
        setattr(row, f"response_{response}", getattr(row, f"response_{response}") + 1)
    resolution = outcome(ticket.resolution_due, ticket.resolved_at, now)
    if resolution is not None:
        setattr(row, f"resolution_{resolution}", getattr(row, f"resolution_{resolution}") + 1)
    if ticket.first_response_at is not None:
        calendar = calendar_for(ticket.policy)
        worked = calendar.elapsed(ticket.created_at, ticket.first_response_at)
        row.first_response_hours.append(worked.total_seconds() / 3600)


def _nearest_rank(ordered: list[float], share: float) -> float:
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def _share(met: int, breached: int) -> float | None:
    decided = met + breached
    return round(met / decided, 4) if decided else None
