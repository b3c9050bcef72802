"""Outgoing mail as bytes: our headers (Auto-Submitted, loop header), threading, Message-ID.

Built with the standard library's compat32 MIME classes: the policy-based EmailMessage API
parses every header it is given back into objects, which costs about three times as much
for mail whose every header we write ourselves.
"""

from __future__ import annotations

import binascii
import io
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email import encoders
from email.generator import BytesGenerator
from email.header import Header
from email.message import Message
from email.mime.base import MIMEBase
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from email.mime.text import MIMEText
from email.policy import Compat32
from email.utils import format_datetime, formataddr, getaddresses

from mailbot.parsing import Attachment
from mailbot.replies.loops import LOOP_HEADER

AUTOMATIC_KINDS = {"auto_reply": "auto-replied", "notification": "auto-generated",
                   "confirmation": "auto-generated", "escalation": "auto-generated",
                   "alert": "auto-generated"}

MAX_LINE = 998  # RFC 5322's hard limit; a long Message-ID is never folded


class WrittenAsSet(Compat32):
    """compat32 that writes an ASCII header value as it was set, its line breaks as CRLF.

    Every value compose sets is ASCII already (encoded words made when it was set) and is
    never wrapped (maxheaderlen 0), and for such a value compat32's Header folding gives the
    same bytes at many times the cost: it was half the time of composing an auto-reply.
    Anything else goes compat32's way.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        lines = value.split("\n") if isinstance(value, str) else []
        if (lines and value.isascii() and "\r" not in value and self.max_line_length == 0
                and all(line[:1] in (" ", "\t") for line in lines[1:])):
            return (f"{name}: " + self.linesep.join(lines) + self.linesep).encode()
        return super().fold_binary(name, value)


_WRITTEN_AS_SET = WrittenAsSet(linesep="\r\n")


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
    message = _body(text, html, attachments)
    message["From"] = _addresses([from_address])
    if reply_to:
        message["Reply-To"] = _addresses([reply_to])
    message["To"] = _addresses(to)
    message["Subject"] = _unstructured(subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = f"<{message_id}>"
    if in_reply_to:
        message["In-Reply-To"] = f"<{in_reply_to}>"
        chain = list(dict.fromkeys(r for r in (*references, in_reply_to) if r))
        message["References"] = "\n ".join(f"<{r}>" for r in chain[-20:])
    if kind in AUTOMATIC_KINDS:
        message["Auto-Submitted"] = AUTOMATIC_KINDS[kind]
        message["X-Auto-Response-Suppress"] = "All"
    message[LOOP_HEADER] = loop_id
    if ticket_number is not None:
        message["X-Mailbot-Ticket"] = str(ticket_number)
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0,
                   policy=_WRITTEN_AS_SET).flatten(message, linesep="\r\n")
    return OutgoingMail(kind, from_address, to, subject, message_id, out.getvalue())


def _body(text: str, html: str | None, attachments: Sequence[Attachment]) -> Message:
    body: Message = _text_part(text, "plain")
    if html:
        body = _multipart("alternative", [body, _text_part(html, "html")])
    if attachments:
        body = _multipart("mixed", [body, *(_attachment(a) for a in attachments)])
    return body


def _multipart(subtype: str, parts: list[Message]) -> Message:
    # Our own boundary: left unset, the generator compiles a regex per mail to pick one
    # that the parts do not contain; 96 fresh random bits will not be in them either.
    container = MIMEMultipart(subtype, boundary=f"=_mailbot_{secrets.token_hex(12)}")
    for part in parts:
        del part["MIME-Version"]
        container.attach(part)
    return container


def _text_part(text: str, subtype: str) -> Message:
    """7bit when the text allows it (ASCII, short lines), quoted-printable UTF-8 otherwise."""
    text = text if text.endswith("\n") else text + "\n"
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= MAX_LINE:
        plain = MIMEText(text, subtype, "us-ascii")
        plain.set_param("charset", "utf-8")
        return plain
    # binascii's quoted-printable encoder is C; the email package's is Python, per character.
    encoded = MIMENonMultipart("text", subtype, charset="utf-8")
    encoded["Content-Transfer-Encoding"] = "quoted-printable"
    encoded.set_payload(binascii.b2a_qp(text.encode(), istext=True).decode("ascii"))
    return encoded


def _attachment(attachment: Attachment) -> Message:
    maintype, _, subtype = attachment.content_type.partition("/")
    part: Message = MIMEBase(maintype or "application", subtype or "octet-stream")
    part.set_payload(attachment.data)
    encoders.encode_base64(part)
    name = attachment.filename
    part.add_header("Content-Disposition", "attachment",
                    filename=name if name.isascii() else ("utf-8", "", name))
    return part


def _addresses(values: Sequence[str]) -> str:
    """Display names encoded when they are not ASCII; addresses as they are."""
    return ", ".join(formataddr(pair, charset="utf-8") for pair in getaddresses(list(values)))


def _unstructured(value: str) -> str:
    value = " ".join(value.split())
    return value if value.isascii() else Header(value, "utf-8").encode()
