"""A ticket as a conversation by mail: agents told, their replies relayed, commands applied.

Everything here runs inside the transaction of the message that causes it, so a follow-up,
its notifications and its status change are stored together or not at all.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.utils import formataddr, parseaddr

import structlog
from sqlmodel import Session, col, select

from mailbot.conversation.commands import Command, CommandKind, parse_commands
from mailbot.conversation.ids import ThreadSigner
from mailbot.conversation.routing import Route
from mailbot.parsing import Attachment
from mailbot.parsing.visible import visible_text
from mailbot.pipeline import Analysis
from mailbot.replies.compose import compose, domain_of
from mailbot.replies.loops import Sender, is_agent
from mailbot.replies.render import ReplyRenderer
from mailbot.sla import Dues, SlaBook
from mailbot.sla.wording import describe_due
from mailbot.store.models import Customer, Message, OutboxMail, Ticket
from mailbot.store.writes import add_event, add_message, notification_ids, queue_mail

log = structlog.get_logger("mailbot.correspondence")
EXCERPT_LINES = 40
EXCERPT_CHARS = 4000
_DIAGNOSTIC = re.compile(r"^(?:diagnostic-code|status|final-recipient|original-recipient)\s*:"
                         r"\s*(.+)$", re.IGNORECASE | re.MULTILINE)


@dataclass(frozen=True)
class CorrespondencePolicy:
    """What the conversation needs from the configuration."""

    from_address: str | None  # None: nothing is sent (no smtp section)
    notify: tuple[str, ...] = ()
    reopen_within: timedelta = timedelta(days=14)
    team: str = "Support"
    loop_id: str = "mailbot"
    severities: dict[str, dict[str, str]] = field(default_factory=dict)


class Correspondence:
    """Appends mail to tickets and writes the mails that follow from it."""

    def __init__(self, policy: CorrespondencePolicy, renderer: ReplyRenderer,
                 sla: SlaBook | None, signer: ThreadSigner, who: Sender) -> None:
        self.who = who
        self.policy = policy
        self.renderer = renderer
        self.sla = sla
        self.signer = signer

    def may_reopen(self, ticket: Ticket, now: datetime) -> bool:
        """A resolved ticket takes a customer's reply within the window; after it, a new one."""
        if ticket.status != "resolved" or ticket.resolved_at is None:
            return True
        return now - ticket.resolved_at <= self.policy.reopen_within

    # --- new tickets -------------------------------------------------------------------

    def announce(self, session: Session, ticket: Ticket, analysis: Analysis, dues: Dues | None,
                 auto_reply: str, now: datetime) -> None:
        """Tell `agents.notify` of a new ticket: severity, dues, customer, the first lines."""
        assert ticket.id is not None
        if not self.policy.notify or self.policy.from_address is None:
            return
        values = {
            "ticket": _ticket_values(ticket),
            "severity": self.policy.severities.get(ticket.severity, {"name": ""}),
            "reason": analysis.classification.reason,
            "response_due": self._due_words(dues, "response"),
            "resolution_due": self._due_words(dues, "resolution"),
            "attachments": [a.label for a in analysis.message.attachments],
            "auto_reply": auto_reply,
            "excerpt": _excerpt(analysis.message.body_text),
        }
        self._queue(session, ticket, "notification", "new_ticket", values,
                    to=self.policy.notify, in_reply_to=analysis.message.message_id,
                    references=analysis.message.references, now=now)
        add_event(session, ticket.id, now, "agents_notified", to=list(self.policy.notify))

    # --- follow-ups --------------------------------------------------------------------

    def follow_up(self, session: Session, ticket: Ticket, route: Route, analysis: Analysis,
                  raw: bytes, *, source: str, now: datetime) -> None:
        """The customer (or someone on the ticket) wrote again: append, reopen, tell agents.

        An agent's mail that reaches here was not threaded by our signed ids: it is kept as
        text, and its command lines are not applied.
        """
        assert ticket.id is not None
        role = "agent" if is_agent(analysis.message, self.who) else "customer"
        self._append(session, ticket, analysis, raw, source=source, now=now, role=role)
        reopened = role == "customer" and ticket.status == "resolved"
        resumed = role == "customer" and ticket.status == "waiting"
        if reopened:
            ticket.status, ticket.resolved_at = "open", None
            add_event(session, ticket.id, now, "reopened", by=_sender(analysis))
        elif resumed:
            self._resume_clock(session, ticket, now)
            ticket.status = "open"
        add_event(session, ticket.id, now, "follow_up", via=route.via,
                  message_id=analysis.message.message_id, sender=_sender(analysis))
        if self.policy.notify and self.policy.from_address is not None:
            values = {"ticket": _ticket_values(ticket), "author": _author(analysis),
                      "reopened": reopened, "resumed": resumed,
                      "attachments": [a.label for a in analysis.message.attachments],
                      "excerpt": _excerpt(analysis.message.body_text)}
            self._queue(session, ticket, "notification", "follow_up", values,
                        to=self.policy.notify, in_reply_to=analysis.message.message_id,
                        references=self._agent_thread(session, ticket.id), now=now)

    # --- agents ------------------------------------------------------------------------

    def agent_reply(self, session: Session, ticket: Ticket, analysis: Analysis, raw: bytes, *,
                    source: str, now: datetime) -> None:
        """An agent answered a signed mail of ours: commands, relay, first response."""
        assert ticket.id is not None
        agent = _sender(analysis)
        reply = parse_commands(analysis.message.body_text)
        note = reply.is_note
        text = visible_text(reply.text)
        self._append(session, ticket, analysis, raw, source=source, now=now,
                     role="note" if note else "agent", display_text=text)
        applied: list[str] = []
        refused: list[str] = []
        for command in reply.commands:
            if command.error is not None:
                refused.append(f"{command.line}: {command.error}")
                add_event(session, ticket.id, now, "command_refused", by=agent,
                          line=command.line, reason=command.error)
            else:
                applied.append(self._apply(session, ticket, command, agent, now))
        relayed = False
        if not note and text.strip() and ticket.requester:
            relayed = self._relay(session, ticket, analysis, text, now)
        if relayed and ticket.first_response_at is None:
            ticket.first_response_at = now
            met = ticket.response_due is None or now <= ticket.response_due
            add_event(session, ticket.id, now, "first_response", by=agent, met=met,
                      response_due=ticket.response_due.isoformat() if ticket.response_due
                      else None)
        add_event(session, ticket.id, now, "agent_reply", by=agent, relayed=relayed, note=note,
                  commands=[c.line for c in reply.commands])
        if reply.commands and self.policy.from_address is not None:
            summary = ", ".join(c.line for c in reply.commands)
            values = {"ticket": _ticket_values(ticket), "applied": applied, "refused": refused,
                      "relayed": relayed, "note": note, "summary": summary[:120]}
            self._queue(session, ticket, "confirmation", "confirmation", values, to=(agent,),
                        in_reply_to=analysis.message.message_id,
                        references=analysis.message.references, now=now)

    def _apply(self, session: Session, ticket: Ticket, command: Command, agent: str,
               now: datetime) -> str:
        assert ticket.id is not None
        if command.kind is CommandKind.SEVERITY:
            old = ticket.severity
            if old == command.argument:
                return f"severity is already {old}"
            ticket.severity = command.argument
            dues = self._redo_dues(session, ticket)
            add_event(session, ticket.id, now, "severity_changed", by=agent, old=old,
                      new=ticket.severity,
                      response_due=dues.response_due.isoformat() if dues and dues.response_due
                      else None,
                      resolution_due=(dues.resolution_due.isoformat()
                                      if dues and dues.resolution_due else None))
            return f"severity {old} → {ticket.severity}"
        if command.kind is CommandKind.STATUS:
            old = ticket.status
            if old == command.argument:
                return f"status is already {old}"
            if old == "waiting":
                self._resume_clock(session, ticket, now)
            ticket.status = command.argument
            if ticket.status == "waiting":
                ticket.waiting_since = now
            ticket.resolved_at = now if ticket.status == "resolved" else None
            add_event(session, ticket.id, now, "status_changed", by=agent, old=old,
                      new=ticket.status)
            return f"status {old} → {ticket.status}" + (
                " (the resolution clock is paused until the customer answers)"
                if ticket.status == "waiting" else "")
        if command.kind is CommandKind.ASSIGN:
            old_assignee = ticket.assignee
            ticket.assignee = command.argument
            add_event(session, ticket.id, now, "assigned", by=agent, old=old_assignee,
                      new=ticket.assignee)
            return f"assigned to {ticket.assignee}"
        return "kept as an internal note, not sent to the customer"

    def _redo_dues(self, session: Session, ticket: Ticket) -> Dues | None:
        """Dues for the ticket's new severity, counted from when it arrived."""
        if self.sla is None:
            return None
        customer = session.get(Customer, ticket.customer_id) if ticket.customer_id else None
        dues = self.sla.dues(ticket.created_at, ticket.severity,
                             customer.plan if customer else None)
        ticket.response_due, ticket.resolution_due = dues.response_due, dues.resolution_due
        ticket.sla_policy = dues.policy
        return dues

    def _resume_clock(self, session: Session, ticket: Ticket, now: datetime) -> None:
        """End a wait for the customer: the resolution due moves by the business time paused."""
        assert ticket.id is not None
        paused_from, ticket.waiting_since = ticket.waiting_since, None
        due = ticket.resolution_due
        if paused_from is None or due is None or self.sla is None or due <= paused_from:
            return
        calendar = self.sla.calendar_of(ticket.sla_policy)
        remaining = calendar.elapsed(paused_from, due)
        ticket.resolution_due = calendar.add(max(now, paused_from), remaining)
        add_event(session, ticket.id, now, "clock_resumed", paused_from=paused_from.isoformat(),
                  resolution_due=ticket.resolution_due.isoformat())

    def _relay(self, session: Session, ticket: Ticket, analysis: Analysis, text: str,
               now: datetime) -> bool:
        if self.policy.from_address is None:
            return False
        agent_name = analysis.message.from_.name if analysis.message.from_ else ""
        name, address = parseaddr(self.policy.from_address)
        sender = formataddr((f"{agent_name} via {name or self.policy.team}", address)) \
            if agent_name else self.policy.from_address
        thread = self._customer_thread(session, ticket.id or 0)
        values = {"ticket": _ticket_values(ticket), "text": text, "agent_name": agent_name,
                  "team": self.policy.team}
        files = [a for a in analysis.message.attachments if not a.inline]
        self._queue(session, ticket, "relay", "relay", values, to=(ticket.requester,),
                    in_reply_to=thread[-1] if thread else None, references=thread[:-1],
                    now=now, from_address=sender, attachments=files)
        return True

    # --- mail about our mail ----------------------------------------------------------

    def automatic_reply(self, session: Session, ticket: Ticket, route: Route,
                        analysis: Analysis, raw: bytes, *, source: str, now: datetime) -> None:
        """An out-of-office or similar answer to our mail: kept on the ticket, nothing more."""
        assert ticket.id is not None and route.ref is not None
        self._append(session, ticket, analysis, raw, source=source, now=now, role="automatic")
        add_event(session, ticket.id, now, "automatic_reply", reason=route.automatic,
                  in_reply_to=route.ref.message_id, sender=_sender(analysis))

    def bounce(self, session: Session, ticket: Ticket, route: Route, analysis: Analysis,
               raw: bytes, *, source: str, now: datetime) -> None:
        """A delivery failure of our mail: kept on its ticket, its outbox row marked failed."""
        assert ticket.id is not None and route.ref is not None
        self._append(session, ticket, analysis, raw, source=source, now=now, role="automatic")
        diagnostic = _diagnostic(raw)
        row = session.exec(select(OutboxMail).where(
            col(OutboxMail.message_id) == route.ref.message_id)).first()
        if row is not None:
            row.status, row.last_error = "failed", f"bounced: {diagnostic}"
            session.add(row)
        add_event(session, ticket.id, now, "bounce", returned=route.ref.message_id,
                  returned_kind=route.ref.kind, diagnostic=diagnostic,
                  outbox_id=row.id if row is not None else None)
        log.warning("mail.bounced", ticket=ticket.id, returned=route.ref.message_id,
                    diagnostic=diagnostic)

    # --- helpers -----------------------------------------------------------------------

    def _append(self, session: Session, ticket: Ticket, analysis: Analysis, raw: bytes, *,
                source: str, now: datetime, role: str,
                display_text: str | None = None) -> None:
        assert ticket.id is not None
        add_message(session, ticket.id, analysis, raw, source=source, received_at=now,
                    role=role, display_text=display_text)
        ticket.message_count += 1
        ticket.attachment_count += len(analysis.message.attachments)
        ticket.updated_at = now
        session.add(ticket)

    def _queue(self, session: Session, ticket: Ticket, kind: str, template: str,
               values: Mapping[str, object], *, to: tuple[str, ...], in_reply_to: str | None,
               references: tuple[str, ...] | list[str], now: datetime,
               from_address: str | None = None, attachments: Sequence[Attachment] = ()
               ) -> None:
        assert self.policy.from_address is not None and ticket.id is not None
        rendered = self.renderer.render_mail(template, values)
        mail = compose(kind=kind,
                       message_id=self.signer.new_id(ticket.id, kind,
                                                     domain_of(self.policy.from_address)),
                       from_address=from_address or self.policy.from_address,
                       reply_to=self.policy.from_address if from_address else None,
                       to=to, subject=rendered.subject, text=rendered.text,
                       html=rendered.html or None, date=now, ticket_number=ticket.id,
                       in_reply_to=in_reply_to, references=tuple(references),
                       loop_id=self.policy.loop_id,
                       attachments=attachments)
        queue_mail(session, mail, ticket.id, now)
        add_event(session, ticket.id, now, f"{kind}_queued", message_id=mail.message_id,
                  to=list(to))

    def _customer_thread(self, session: Session, ticket_id: int) -> list[str]:
        """The Message-IDs of the customer's mails on a ticket, oldest first."""
        ids = session.exec(select(Message.message_id).where(
            col(Message.ticket_id) == ticket_id, col(Message.role) == "customer")
            .order_by(col(Message.id))).all()
        return [i for i in ids if i][-20:]

    def _agent_thread(self, session: Session, ticket_id: int) -> list[str]:
        """Our notifications on a ticket, so agents' mail clients keep one thread."""
        return notification_ids(session, ticket_id)[-20:]

    def _due_words(self, dues: Dues | None, which: str) -> str | None:
        if dues is None or self.sla is None:
            return None
        target = dues.response_target if which == "response" else dues.resolution_target
        due = dues.response_due if which == "response" else dues.resolution_due
        if target is None or due is None:
            return None
        return describe_due(target, due, self.sla.calendars[dues.calendar].zone)


def _ticket_values(ticket: Ticket) -> dict[str, object]:
    return {"number": ticket.id, "subject": ticket.subject, "severity": ticket.severity,
            "status": ticket.status, "customer_id": ticket.customer_id,
            "customer_verified": ticket.customer_verified, "requester": ticket.requester,
            "requester_name": ticket.requester_name, "assignee": ticket.assignee}


def _sender(analysis: Analysis) -> str:
    return analysis.message.from_.email if analysis.message.from_ else ""


def _author(analysis: Analysis) -> str:
    sender = analysis.message.from_
    if sender is None:
        return "someone"
    return f"{sender.name} <{sender.email}>" if sender.name else sender.email


def _excerpt(body: str) -> str:
    lines = visible_text(body).splitlines()
    text = "\n".join(lines[:EXCERPT_LINES])[:EXCERPT_CHARS]
    if len(lines) > EXCERPT_LINES or len(text) >= EXCERPT_CHARS:
        text += "\n[…]"
    return text or "(no text)"


def _diagnostic(raw: bytes) -> str:
    """What the delivery report says went wrong: its Diagnostic-Code, else its Status."""
    text = raw[:200_000].decode("utf-8", "replace")
    found: dict[str, str] = {}
    for match in _DIAGNOSTIC.finditer(text):
        name = match.group(0).split(":", 1)[0].strip().lower()
        found.setdefault(name, " ".join(match.group(1).split())[:300])
    for name in ("diagnostic-code", "status"):
        if name in found:
            recipient = found.get("final-recipient") or found.get("original-recipient")
            return found[name] + (f" ({recipient})" if recipient else "")
    return "delivery failed (no diagnostic in the report)"
