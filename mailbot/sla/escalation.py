"""Which escalations a ticket has earned by now: pure, from its dues and its calendar.

Level 1 (the support team) when a share of the response time (`warn_at`, 75 %) is used with
no answer yet; level 2 (the customer's account manager) when the response target is
breached; level 3 (the product team) when the resolution target is breached. A ticket that
is resolved earns nothing more; one waiting for the customer has its resolution clock paused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

from mailbot.sla.calendar import BusinessCalendar


@dataclass(frozen=True, slots=True)
class TicketClock:
    """What the watcher reads of a ticket."""

    status: str
    created_at: datetime
    response_due: datetime | None
    first_response_at: datetime | None
    resolution_due: datetime | None


@dataclass(frozen=True, slots=True)
class Escalation:
    """One escalation a ticket has earned: its level, why, and the moment it became due."""

    level: int
    reason: str
    at: datetime


@lru_cache(maxsize=4096)
def warning_moment(calendar: BusinessCalendar, created_at: datetime, response_due: datetime,
                   warn_at: float) -> datetime:
    """When `warn_at` of the business time between arrival and the response due is used.

    Kept for tickets that share their arrival and due (those stored in one transaction):
    the watcher asks it of every open ticket at every pass.
    """
    total = calendar.elapsed(created_at, response_due)
    if total.total_seconds() <= 0:
        return response_due
    return calendar.add(calendar.first_business_moment(created_at), total * warn_at)


def escalations_due(ticket: TicketClock, now: datetime, calendar: BusinessCalendar,
                    warn_at: float = 0.75) -> list[Escalation]:
    """Every escalation the ticket has earned by `now`, lowest level first."""
    if ticket.status == "resolved":
        return []
    earned: list[Escalation] = []
    if ticket.first_response_at is None and ticket.response_due is not None:
        warn = warning_moment(calendar, ticket.created_at, ticket.response_due, warn_at)
        if now >= warn:
            earned.append(Escalation(1, f"{round(warn_at * 100)} % of the response time used, "
                                        "no answer yet", warn))
        if now > ticket.response_due:
            earned.append(Escalation(2, "response target breached", ticket.response_due))
    if ticket.resolution_due is not None and ticket.status != "waiting" and \
            now > ticket.resolution_due:
        earned.append(Escalation(3, "resolution target breached", ticket.resolution_due))
    return earned
