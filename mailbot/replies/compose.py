"""Outgoing mail as bytes: our headers (Auto-Submitted, loop header), threading, Message-ID."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from mailbot.replies.loops import LOOP_HEADER


@dataclass(frozen=True, slots=True)
class OutgoingMail:
    """A composed mail ready for the outbox: who gets it and its exact bytes."""

    kind: str
    sender: str
    recipients: tuple[str, ...]
    subject: str
    message_id: str
    raw: bytes


def domain_of(address: str) -> str:
    pairs = getaddresses([address])
    email = pairs[0][1] if pairs else address
    return email.rpartition("@")[2] or "localhost"


def new_message_id(from_address: str, ticket_number: int | None, kind: str) -> str:
    """`mailbot.42.auto_reply.1f3a…@example.com`: unique, and says which ticket it is about."""
    number = ticket_number if ticket_number is not None else 0
    return f"mailbot.{number}.{kind}.{secrets.token_hex(8)}@{domain_of(from_address)}"


def compose(*, kind: str, from_address: str, to: tuple[str, ...], subject: str, text: str,
            html: str | None, date: datetime, ticket_number: int | None,
            in_reply_to: str | None = None, references: tuple[str, ...] = (),
            loop_id: str = "mailbot") -> OutgoingMail:
    message = EmailMessage(policy=policy.SMTP)
    message_id = new_message_id(from_address, ticket_number, kind)
    message["From"] = from_address
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        message["References"] = " ".join(f"<{r}>" for r in (*references, in_reply_to)
                                         if r)
    message["Auto-Submitted"] = "auto-replied" if kind == "auto_reply" else "auto-generated"
    message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = loop_id
    if ticket_number is not None:
        message["X-Mailbot-Ticket"] = str(ticket_number)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    return OutgoingMail(kind, from_address, to, subject, message_id, message.as_bytes())
