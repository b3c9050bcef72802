"""Whether a new ticket gets its auto-reply, and queueing it in the ticket's own transaction."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from email.utils import parseaddr

import structlog
from sqlalchemy import bindparam
from sqlmodel import Session, col, func, select

from mailbot.conversation.ids import ThreadSigner
from mailbot.parsing import ParsedMessage
from mailbot.pipeline import Analysis
from mailbot.replies.compose import compose, domain_of
from mailbot.replies.loops import Sender, no_reply_reason_given
from mailbot.replies.render import DueText, ReplyContext, ReplyRenderer
from mailbot.sla import Dues, SlaBook, Target
from mailbot.sla.wording import describe_due, describe_hours, local_moment
from mailbot.store.models import OutboxMail, Ticket
from mailbot.store.writes import add_event, queue_mail

log = structlog.get_logger("mailbot.autoreply")
RATE_WINDOW = timedelta(hours=1)
# An auto-reply is queued in the transaction that creates its ticket, at the same moment:
# a ticket created before `since` has none after it. Saying so lets the database read only
# the requester's recent tickets (ix_tickets_requester_created) instead of all they ever had.
_RECENT_FOR = (col(Ticket.created_at) >= bindparam("since"), col(OutboxMail.kind) == "auto_reply",
               col(OutboxMail.created_at) >= bindparam("since"))
_AUTO_REPLIES_SINCE = (  # built once: it runs for every new ticket
    select(func.count()).select_from(OutboxMail)
    .join(Ticket, col(Ticket.id) == col(OutboxMail.ticket_id))
    .where(col(Ticket.requester) == bindparam("requester"), *_RECENT_FOR))
_RECENT_AUTO_REPLIES = (  # the same, for the requesters of a whole transaction at once
    select(col(Ticket.requester), col(OutboxMail.created_at)).select_from(OutboxMail)
    .join(Ticket, col(Ticket.id) == col(OutboxMail.ticket_id))
    .where(col(Ticket.requester).in_(bindparam("requesters", expanding=True)), *_RECENT_FOR))
_RECENT = "mailbot.recent_auto_replies"  # session.info: requester → times of auto-replies


@dataclass(frozen=True, slots=True)
class Notice:
    """Known incident or planned maintenance, shown in auto-replies while it is active."""

    id: str
    starts: datetime
    ends: datetime
    text: str
    rules: tuple[str, ...] = ()

    def applies(self, now: datetime, rule_ids: set[str]) -> bool:
        return self.starts <= now < self.ends and (not self.rules or bool(rule_ids & set(
            self.rules)))


@dataclass(frozen=True)
class AutoReplyPolicy:
    """What the auto-replier needs from the configuration."""

    from_address: str
    who: Sender
    per_sender_per_hour: int = 5
    severities: dict[str, dict[str, str]] = field(default_factory=dict)
    notices: tuple[Notice, ...] = ()
    team_name: str | None = None

    @property
    def team(self) -> str:
        return self.team_name or parseaddr(self.from_address)[0] or "our support team"


class AutoReplier:
    """Decides and queues the one auto-reply of a new ticket, or records why there is none."""

    def __init__(self, policy: AutoReplyPolicy, renderer: ReplyRenderer, sla: SlaBook,
                 signer: ThreadSigner) -> None:
        self.policy = policy
        self.renderer = renderer
        self.sla = sla
        self.signer = signer
        self._team = policy.team

    def look_ahead(self, session: Session, requesters: Iterable[str], now: datetime) -> None:
        """Read the recent auto-replies of all these requesters at once, for the rate limit.

        For the messages about to share a transaction: each new ticket's check then costs
        no query, and the auto-replies the transaction queues are counted as it goes.
        """
        recent: dict[str, list[datetime]] = session.info.setdefault(_RECENT, {})
        wanted = sorted({r for r in requesters if r} - recent.keys())
        if not wanted:
            return
        for requester in wanted:
            recent[requester] = []
        for requester, created_at in session.execute(
                _RECENT_AUTO_REPLIES, {"requesters": wanted, "since": now - RATE_WINDOW}):
            recent[requester].append(created_at)

    def after_new_ticket(self, session: Session, ticket: Ticket, analysis: Analysis,
                         dues: Dues | None, now: datetime
                         ) -> tuple[str | None, str | None]:
        """Queue the auto-reply, or record why there is none; returns (its Message-ID, or
        why there is none)."""
        assert ticket.id is not None
        rule_ids = {h.rule_id for h in analysis.classification.hits}
        notices = [n for n in self.policy.notices if n.applies(now, rule_ids)]
        for notice in notices:
            add_event(session, ticket.id, now, "notice_linked", notice=notice.id)
        reason = self._reason(session, ticket, analysis, now)
        if reason is not None:
            add_event(session, ticket.id, now, "auto_reply_suppressed", reason=reason)
            log.info("auto_reply.suppressed", ticket=ticket.id, reason=reason,
                     message_id=analysis.message.message_id)
            return None, reason
        context = self._context(ticket, analysis, dues, now, [n.text for n in notices])
        rendered = self.renderer.render("auto_reply", context)
        mail = compose(kind="auto_reply",
                       message_id=self.signer.new_id(ticket.id, "auto_reply",
                                                     domain_of(self.policy.from_address)),
                       from_address=self.policy.from_address,
                       to=(ticket.requester,), subject=rendered.subject, text=rendered.text,
                       html=rendered.html, date=now, ticket_number=ticket.id,
                       in_reply_to=analysis.message.message_id,
                       references=analysis.message.references, loop_id=self.policy.who.loop_id)
        queue_mail(session, mail, ticket.id, now)
        recent: dict[str, list[datetime]] = session.info.get(_RECENT, {})
        if ticket.requester in recent:
            recent[ticket.requester].append(now)
        add_event(session, ticket.id, now, "auto_reply_queued", message_id=mail.message_id,
                  to=ticket.requester)
        return mail.message_id, None

    def _reason(self, session: Session, ticket: Ticket, analysis: Analysis,
                now: datetime) -> str | None:
        if not ticket.requester:
            return "no address to answer"
        reason = no_reply_reason_given(analysis.message, self.policy.who, analysis.automatic)
        if reason is not None:
            return reason
        cap = self.policy.per_sender_per_hour
        since = now - RATE_WINDOW
        recent: dict[str, list[datetime]] = session.info.get(_RECENT, {})
        if ticket.requester in recent:
            sent = sum(1 for at in recent[ticket.requester] if at >= since)
        else:
            sent = session.execute(_AUTO_REPLIES_SINCE, {
                "requester": ticket.requester, "since": since}).scalar_one()
        if sent >= cap:
            return f"rate limit: {sent} auto-replies to {ticket.requester} in the last hour"
        return None

    def _context(self, ticket: Ticket, analysis: Analysis, dues: Dues | None, now: datetime,
                 notices: list[str]) -> ReplyContext:
        policy = self.sla.policy_for(analysis.customer.customer.plan
                                     if analysis.customer.customer else None)
        calendar = self.sla.calendars[policy.calendar]
        zone = calendar.zone
        customer_zone = _sender_zone(analysis.message)

        def due_text(target: Target | None, due: datetime | None) -> DueText | None:
            if due is None or target is None:
                return None
            words = describe_due(target, due, zone)
            other = None
            if customer_zone is not None and customer_zone.utcoffset(due) != due.astimezone(
                    zone).utcoffset():
                other = local_moment(due, customer_zone)
            return DueText(words, other)

        severity = self.policy.severities.get(ticket.severity,
                                              {"name": ticket.severity, "meaning": ""})
        clock_start = dues.clock_start if dues else now
        return ReplyContext(
            ticket={"number": ticket.id, "subject": ticket.subject, "severity": ticket.severity,
                    "customer_id": ticket.customer_id},
            severity=severity,
            team=self._team,
            requester_name=ticket.requester_name,
            support_hours=describe_hours(calendar, now),
            response=due_text(dues.response_target, dues.response_due) if dues else None,
            resolution=due_text(dues.resolution_target, dues.resolution_due) if dues else None,
            out_of_hours=clock_start > now + timedelta(seconds=1),
            clock_start=local_moment(clock_start, zone),
            missing_customer_id=ticket.customer_id is None,
            notices=notices,
        )


def _sender_zone(message: ParsedMessage) -> timezone | None:
    """The fixed UTC offset of the sender's Date header, when it has one."""
    if message.date is None or message.date.utcoffset() is None:
        return None
    offset = message.date.utcoffset()
    assert offset is not None
    return timezone(offset)
