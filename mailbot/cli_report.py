"""`mailbot report sla`: SLA compliance of a month's tickets, per severity and per customer."""

from __future__ import annotations

from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import click
from sqlmodel import col, select

from mailbot.cli_support import Context, fail, with_json
from mailbot.sla.report import Compliance, TicketTimes, compliance
from mailbot.store.models import Ticket
from mailbot.views import table

COLUMNS = [("group", ""), ("tickets", "tickets"), ("response_met", "resp met"),
           ("response_breached", "resp breached"), ("response_pending", "resp pending"),
           ("resolution_met", "resol met"), ("resolution_breached", "resol breached"),
           ("resolution_pending", "resol pending"),
           ("median_first_response_business_hours", "median 1st resp (bh)"),
           ("p90_first_response_business_hours", "p90 1st resp (bh)")]


@click.group("report")
def report_group() -> None:
    """Reports over stored tickets."""


@report_group.command("sla")
@click.option("--month", required=True, help="YYYY-MM; months follow the default calendar's "
              "time zone.")
@with_json
def report_sla(ctx: Context, month: str) -> None:
    """Response and resolution met or breached, per severity and per customer."""
    app = ctx.app()
    book = app.sla()
    zone = book.calendar_of(None).zone
    start, end = _month(month, zone)
    with app.db.session() as session:
        rows = session.exec(select(Ticket).where(col(Ticket.created_at) >= start,
                                                 col(Ticket.created_at) < end)).all()
    tickets = [TicketTimes(t.id or 0, t.severity, t.customer_id, t.sla_policy, t.created_at,
                           t.response_due, t.first_response_at, t.resolution_due,
                           t.resolved_at) for t in rows]

    now = app.clock.now()
    by_severity = compliance(tickets, now, book.calendar_of, lambda t: t.severity)
    by_customer = compliance(tickets, now, book.calendar_of,
                             lambda t: t.customer_id or "(no Customer ID)")
    data: dict[str, Any] = {
        "month": month, "time_zone": zone.key, "from": start.isoformat(),
        "until": end.isoformat(), "tickets": len(tickets),
        "by_severity": [r.as_dict() for r in by_severity],
        "by_customer": [r.as_dict() for r in by_customer]}
    ctx.emit(data, _text(month, zone.key, by_severity, by_customer))


def _month(text: str, zone: ZoneInfo) -> tuple[datetime, datetime]:
    try:
        first = datetime.strptime(text, "%Y-%m")
    except ValueError:
        fail(f"--month: expected YYYY-MM, got {text!r}")
    following = first.replace(year=first.year + first.month // 12, month=first.month % 12 + 1)
    return first.replace(tzinfo=zone), following.replace(tzinfo=zone)


def _text(month: str, zone: str, by_severity: list[Compliance],
          by_customer: list[Compliance]) -> str:
    severity_rows = [r.as_dict() for r in by_severity]
    customer_rows = [r.as_dict() for r in by_customer]
    return "\n".join([
        f"SLA report for {month} ({zone}); bh = business hours on the ticket's calendar",
        "", "By severity:", table(severity_rows, [("group", "severity"), *COLUMNS[1:]]),
        "", "By customer:", table(customer_rows, [("group", "customer"), *COLUMNS[1:]])])
