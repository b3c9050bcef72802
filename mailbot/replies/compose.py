"""Outgoing mail as bytes: our headers (Auto-Submitted, loop header), threading, Message-ID."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses

from mailbot.parsing import Attachment
from mailbot.replies.loops import LOOP_HEADER

AUTOMATIC_KINDS = {"auto_reply": "auto-replied", "notification": "auto-generated",
                   "confirmation": "auto-generated", "escalation": "auto-generated",
                   "alert": "auto-generated"}

# Lines up to RFC 5322's hard limit, so that a long Message-ID is never folded.
_POLICY = policy.SMTP.clone(max_line_length=998)


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


def compose(*, kind: str, message_id: str, from_address: str, to: tuple[str, ...], subject: str,
            text: str, html: str | None, date: datetime, ticket_number: int | None,
            in_reply_to: str | None = None, references: Sequence[str] = (),
            loop_id: str = "mailbot", reply_to: str | None = None,
            attachments: Sequence[Attachment] = ()) -> OutgoingMail:
    """A mail of ours; every kind but `relay` (an agent's words) is marked as automatic."""
    message = EmailMessage(policy=_POLICY)
    message["From"] = from_address
    if reply_to:
        message["Reply-To"] = reply_to
    message["To"] = ", ".join(to)
    message["Subject"] = subject
    message["Date"] = format_datetime(date)
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        chain = list(dict.fromkeys(r for r in (*references, in_reply_to) if r))
        message["References"] = " ".join(f"<{r}>" for r in chain[-20:])
    if kind in AUTOMATIC_KINDS:
        message["Auto-Submitted"] = AUTOMATIC_KINDS[kind]
        message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = loop_id
    if ticket_number is not None:
        message["X-Mailbot-Ticket"] = str(ticket_number)
    message.set_content(text)
    if html:
        message.add_alternative(html, subtype="html")
    for attachment in attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        message.add_attachment(attachment.data, maintype=maintype or "application",
                               subtype=subtype or "octet-stream", filename=attachment.filename)
    return OutgoingMail(kind, from_address, to, subject, message_id, message.as_bytes())
