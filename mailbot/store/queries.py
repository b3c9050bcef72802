"""Named reads the commands need: ticket lists, one ticket's story, quarantine, customers."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlmodel import Session, col, select

from mailbot.parsing import files_in_mail
from mailbot.store.models import (
    Attachment,
    Blob,
    Customer,
    Event,
    Message,
    OutboxMail,
    QuarantineEntry,
    Ticket,
)


def list_tickets(session: Session, *, status: str | None = None, severity: str | None = None,
                 customer: str | None = None, limit: int | None = None) -> Sequence[Ticket]:
    query = select(Ticket).order_by(col(Ticket.id))
    if status:
        query = query.where(col(Ticket.status) == status)
    if severity:
        query = query.where(col(Ticket.severity) == severity.upper())
    if customer:
        query = query.where(col(Ticket.customer_id) == customer.upper())
    if limit:
        query = query.limit(limit)
    return session.exec(query).all()


@dataclass(frozen=True)
class TicketStory:
    """A ticket with its messages, their attachments and its audit trail."""

    ticket: Ticket
    messages: Sequence[Message]
    attachments: dict[int, list[Attachment]]
    events: Sequence[Event]
    mail_contents: dict[int, tuple[str, ...]]  # attachment id of an attached mail → its files


def ticket_story(session: Session, number: int) -> TicketStory | None:
    ticket = session.get(Ticket, number)
    if ticket is None:
        return None
    messages = session.exec(select(Message).where(col(Message.ticket_id) == number)
                            .order_by(col(Message.id))).all()
    ids = [m.id for m in messages]
    attachments: dict[int, list[Attachment]] = {}
    for row in session.exec(select(Attachment).where(col(Attachment.message_id).in_(ids))
                            .order_by(col(Attachment.id))):
        attachments.setdefault(row.message_id, []).append(row)
    events = session.exec(select(Event).where(col(Event.ticket_id) == number)
                          .order_by(col(Event.at), col(Event.id))).all()
    contents = {row.id: _files_of_attached_mail(session, row)
                for rows in attachments.values() for row in rows
                if row.content_type == "message/rfc822" and row.id is not None}
    return TicketStory(ticket, messages, attachments, events, contents)


def _files_of_attached_mail(session: Session, row: Attachment) -> tuple[str, ...]:
    data = blob_bytes(session, row.sha256)
    return files_in_mail(data) if data else ()


def list_quarantine(session: Session, *, include_done: bool = False
                    ) -> Sequence[QuarantineEntry]:
    query = select(QuarantineEntry).order_by(col(QuarantineEntry.id))
    if not include_done:
        query = query.where(col(QuarantineEntry.status) == "held")
    return session.exec(query).all()


def blob_bytes(session: Session, sha256: str) -> bytes | None:
    blob = session.get(Blob, sha256)
    return None if blob is None else bytes(blob.data)


def list_outbox(session: Session, *, status: str | None = None) -> Sequence[OutboxMail]:
    query = select(OutboxMail).order_by(col(OutboxMail.id))
    if status:
        query = query.where(col(OutboxMail.status) == status)
    return session.exec(query).all()


def list_customers(session: Session) -> Sequence[Customer]:
    return session.exec(select(Customer).order_by(col(Customer.customer_id))).all()
