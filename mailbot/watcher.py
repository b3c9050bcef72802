"""The SLA watcher: finds tickets that have earned an escalation and mails the right level.

Each escalation is one transaction: its row (unique per ticket and level, so two instances
can never both send it), the mail in the outbox and the audit event.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlalchemy import bindparam
from sqlalchemy import select as sa_select
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, or_, select

from mailbot.clock import Clock
from mailbot.conversation.ids import ThreadSigner
from mailbot.replies.compose import compose, domain_of
from mailbot.replies.render import ReplyRenderer
from mailbot.sla import SlaBook
from mailbot.sla.escalation import Escalation, TicketClock, escalations_due
from mailbot.sla.wording import local_moment
from mailbot.store import Database
from mailbot.store.models import Customer, EscalationRecord, Ticket
from mailbot.store.writes import add_event, queue_mail

# What the watcher reads of the open tickets, a page at a time: their clocks, not the whole
# rows (a backlog leaves thousands of them open, and each poll looks at every one).
_OPEN_CLOCKS = sa_select(
    col(Ticket.id), col(Ticket.status), col(Ticket.created_at), col(Ticket.response_due),
    col(Ticket.first_response_at), col(Ticket.resolution_due), col(Ticket.sla_policy),
).where(
    col(Ticket.id) > bindparam("after"),
    col(Ticket.status) != "resolved",
    or_(col(Ticket.first_response_at).is_(None), col(Ticket.resolution_due).is_not(None)),
).order_by(col(Ticket.id)).limit(bindparam("page"))

log = structlog.get_logger("mailbot.watcher")
LEVEL_NAMES = {1: "Level 1 (support team)", 2: "Level 2 (account manager)",
               3: "Level 3 (product team)"}


@dataclass(frozen=True)
class EscalationPolicy:
    """Who each level is, and when level 1 is warned."""

    from_address: str
    level1: tuple[str, ...]
    level2: str | tuple[str, ...]  # "account_manager": the customer's, from the directory
    level3: tuple[str, ...]
    warn_at: float = 0.75


@dataclass
class WatchReport:
    checked: int = 0
    escalated: int = 0


class SlaWatcher:
    """Checks open tickets against their dues and sends each escalation once."""

    def __init__(self, db: Database, sla: SlaBook, policy: EscalationPolicy,
                 renderer: ReplyRenderer, signer: ThreadSigner, clock: Clock) -> None:
        self.db = db
        self.sla = sla
        self.policy = policy
        self.renderer = renderer
        self.signer = signer
        self.clock = clock

    def run_once(self, page: int = 500) -> WatchReport:
        """Check every open ticket, `page` at a time, and send what each has earned."""
        now = self.clock.now()
        report = WatchReport()
        after = 0
        while True:
            with self.db.session() as session:
                tickets = session.execute(_OPEN_CLOCKS, {"after": after, "page": page}).all()
                if not tickets:
                    return report
                after = tickets[-1].id
                sent = set(session.exec(
                    select(EscalationRecord.ticket_id, EscalationRecord.level)
                    .where(col(EscalationRecord.ticket_id).in_([t.id for t in tickets]))).all())
            for ticket in tickets:
                report.checked += 1
                clock = TicketClock(ticket.status, ticket.created_at, ticket.response_due,
                                    ticket.first_response_at, ticket.resolution_due)
                earned = [e for e in escalations_due(clock, now,
                                                     self.sla.calendar_of(ticket.sla_policy),
                                                     self.policy.warn_at)
                          if (ticket.id, e.level) not in sent]
                for escalation in earned:
                    if self._escalate(ticket.id, escalation, now):
                        report.escalated += 1
            if len(tickets) < page:
                return report

    def _escalate(self, ticket_id: int, escalation: Escalation, now: datetime) -> bool:
        try:
            with self.db.transaction() as session:
                ticket = session.get(Ticket, ticket_id)
                if ticket is None:
                    return False
                to, note = self._recipients(session, ticket, escalation.level)
                session.add(EscalationRecord(ticket_id=ticket_id, level=escalation.level,
                                             reason=escalation.reason, due_at=escalation.at,
                                             sent_at=now, recipients=list(to)))
                session.flush()
                if to:
                    self._queue(session, ticket, escalation, to, note, now)
                add_event(session, ticket_id, now, "escalated", level=escalation.level,
                          reason=escalation.reason, to=list(to), note=note)
        except IntegrityError:
            return False  # another instance sent it first
        log.warning("sla.escalated", ticket=ticket_id, level=escalation.level,
                    reason=escalation.reason)
        return True

    def _recipients(self, session: Session, ticket: Ticket,
                    level: int) -> tuple[tuple[str, ...], str | None]:
        policy = self.policy
        if level == 1:
            return policy.level1, None
        if level == 3:
            return (policy.level3, None) if policy.level3 else (
                policy.level1, "no level 3 recipients are configured")
        if isinstance(policy.level2, tuple):
            return policy.level2, None
        customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
        if customer is not None and customer.account_manager:
            return (customer.account_manager,), None
        why = (f"customer {ticket.customer_id} has no account manager in the directory"
               if ticket.customer_id else "the ticket has no known customer")
        return policy.level1, f"{why}: sent to level 1 instead"

    def _queue(self, session: Session, ticket: Ticket, escalation: Escalation,
               to: tuple[str, ...], note: str | None, now: datetime) -> None:
        assert ticket.id is not None
        zone = self.sla.calendar_of(ticket.sla_policy).zone
        values = {
            "ticket": {"number": ticket.id, "subject": ticket.subject,
                       "severity": ticket.severity, "status": ticket.status,
                       "customer_id": ticket.customer_id, "requester": ticket.requester,
                       "assignee": ticket.assignee},
            "level": escalation.level, "level_name": LEVEL_NAMES[escalation.level],
            "reason": escalation.reason, "note": note,
            "created": local_moment(ticket.created_at, zone),
            "response_due": local_moment(ticket.response_due, zone)
            if ticket.response_due else None,
            "first_response": local_moment(ticket.first_response_at, zone)
            if ticket.first_response_at else None,
            "resolution_due": local_moment(ticket.resolution_due, zone)
            if ticket.resolution_due else None,
        }
        rendered = self.renderer.render_mail("escalation", values)
        mail = compose(kind="escalation",
                       message_id=self.signer.new_id(ticket.id, "escalation",
                                                     domain_of(self.policy.from_address)),
                       from_address=self.policy.from_address, to=to,
                       subject=rendered.subject, text=rendered.text,
                       html=rendered.html or None, date=now, ticket_number=ticket.id)
        queue_mail(session, mail, ticket.id, now)
