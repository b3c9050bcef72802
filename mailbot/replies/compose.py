"""Outgoing mail as bytes: our headers (Auto-Submitted, loop header), threading, Message-ID.

Built with the standard library's compat32 MIME classes: the policy-based EmailMessage API
parses every header it is given back into objects, which costs about three times as much
for mail whose every header we write ourselves. Mail without attachments, most of ours, is
written straight to bytes: the same bytes the generator writes for it, at a fraction of the
cost (an auto-reply was a sixth of storing a new ticket).
"""

from __future__ import annotations

import binascii
import functools
import io
import re
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
_LINE_BREAK = re.compile(r"\r\n|\r|\n")  # what the generator writes as CRLF
Headers = list[tuple[str, str]]


class WrittenAsSet(Compat32):
    """compat32 that writes an ASCII header value as it was set, its line breaks as CRLF.

    Every value compose sets is ASCII already (encoded words made when it was set) and is
    never wrapped (maxheaderlen 0), and for such a value compat32's Header folding gives the
    same bytes at many times the cost: it was half the time of composing an auto-reply.
    Anything else goes compat32's way.
    """

    def fold_binary(self, name: str, value: str) -> bytes:
        if isinstance(value, str) and self.max_line_length == 0 and _as_set(value):
            return (f"{name}: " + self.linesep.join(value.split("\n")) + self.linesep).encode()
        return super().fold_binary(name, value)


def _as_set(value: str) -> bool:
    """Whether compat32 writes this value as it is, but for CRLF line breaks: ASCII, and
    when folded, every line has words, no trailing blanks, and the later ones an indent."""
    if not value.isascii() or "\r" in value:
        return False
    if "\n" not in value:
        return True
    first, *rest = value.split("\n")
    return bool(first.strip()) and first == first.rstrip() and all(
        line[:1] in (" ", "\t") and line.strip() and line == line.rstrip() for line in rest)


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


@functools.lru_cache(maxsize=16)
def domain_of(address: str) -> str:
    """The domain of an address (of ours: the From of every mail we send), for Message-IDs."""
    pairs = getaddresses([address])
    email = pairs[0][1] if pairs else address
    return email.rpartition("@")[2] or "localhost"


def compose(*, kind: str, message_id: str, from_address: str, to: tuple[str, ...], subject: str,
            text: str, html: str | None, date: datetime, ticket_number: int | None,
            in_reply_to: str | None = None, references: Sequence[str] = (),
            loop_id: str = "mailbot", reply_to: str | None = None,
            attachments: Sequence[Attachment] = ()) -> OutgoingMail:
    """A mail of ours; every kind but `relay` (an agent's words) is marked as automatic."""
    headers: Headers = [("From", _addresses([from_address]))]
    if reply_to:
        headers.append(("Reply-To", _addresses([reply_to])))
    headers += [("To", _addresses(to)), ("Subject", _unstructured(subject)),
                ("Date", format_datetime(date)), ("Message-ID", f"<{message_id}>")]
    if in_reply_to:
        chain = list(dict.fromkeys(r for r in (*references, in_reply_to) if r))
        headers += [("In-Reply-To", f"<{in_reply_to}>"),
                    ("References", "\n ".join(f"<{r}>" for r in chain[-20:]))]
    if kind in AUTOMATIC_KINDS:
        headers += [("Auto-Submitted", AUTOMATIC_KINDS[kind]),
                    ("X-Auto-Response-Suppress", "All")]
    headers.append((LOOP_HEADER, loop_id))
    if ticket_number is not None:
        headers.append(("X-Mailbot-Ticket", str(ticket_number)))
    boundary = _new_boundary()
    raw = None if attachments else written_directly(headers, text, html, boundary)
    if raw is None:
        raw = generated(headers, text, html, attachments, boundary)
    return OutgoingMail(kind, from_address, to, subject, message_id, raw)


def generated(headers: Headers, text: str, html: str | None,
              attachments: Sequence[Attachment], boundary: str) -> bytes:
    """The mail as the standard library's generator writes it."""
    message = _body(text, html, attachments, boundary)
    for name, value in headers:
        message[name] = value
    out = io.BytesIO()
    BytesGenerator(out, mangle_from_=False, maxheaderlen=0,
                   policy=_WRITTEN_AS_SET).flatten(message, linesep="\r\n")
    return out.getvalue()


def written_directly(headers: Headers, text: str, html: str | None,
                     boundary: str) -> bytes | None:
    """The bytes `generated` writes for a mail without attachments; None when a header
    needs compat32's folding (a value that is not ASCII, or that breaks lines itself)."""
    if not all(_as_set(value) for _, value in headers):
        return None
    plain = _text_headers_and_payload(text, "plain")
    if not html:
        part_headers, payload = plain
        return _lines([*part_headers, *headers], payload)
    top = [("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
           ("MIME-Version", "1.0"), *headers]
    parts = [_lines([h for h in part_headers if h[0] != "MIME-Version"], payload)
             for part_headers, payload in (plain, _text_headers_and_payload(html, "html"))]
    separator = f"\r\n--{boundary}\r\n".encode()
    return (_lines(top, "") + separator[2:] + separator.join(parts)
            + f"\r\n--{boundary}--\r\n".encode())


def _lines(headers: Headers, payload: str) -> bytes:
    head = "".join(f"{name}: " + "\r\n".join(value.split("\n")) + "\r\n"
                   for name, value in headers)
    lines = payload.replace("\n", "\r\n") if "\r" not in payload \
        else "\r\n".join(_LINE_BREAK.split(payload))
    return (head + "\r\n" + lines).encode("ascii")


def _text_headers_and_payload(text: str, subtype: str) -> tuple[Headers, str]:
    """A text part's headers, in the order the MIME classes set them, and its payload."""
    text, encoding = _text_encoding(text)
    content_type = ("Content-Type", f'text/{subtype}; charset="utf-8"')
    if encoding == "7bit":
        return [("MIME-Version", "1.0"), ("Content-Transfer-Encoding", "7bit"),
                content_type], text
    return [content_type, ("MIME-Version", "1.0"),
            ("Content-Transfer-Encoding", "quoted-printable")], _quoted_printable(text)


def _body(text: str, html: str | None, attachments: Sequence[Attachment],
          boundary: str) -> Message:
    body: Message = _text_part(text, "plain")
    if html:
        body = _multipart("alternative", [body, _text_part(html, "html")], boundary)
    if attachments:
        body = _multipart("mixed", [body, *(_attachment(a) for a in attachments)],
                          _new_boundary() if html else boundary)
    return body


def _new_boundary() -> str:
    # Our own boundary: left unset, the generator compiles a regex per mail to pick one
    # that the parts do not contain; 96 fresh random bits will not be in them either.
    return f"=_mailbot_{secrets.token_hex(12)}"


def _multipart(subtype: str, parts: list[Message], boundary: str) -> Message:
    container = MIMEMultipart(subtype, boundary=boundary)
    for part in parts:
        del part["MIME-Version"]
        container.attach(part)
    return container


def _text_part(text: str, subtype: str) -> Message:
    text, encoding = _text_encoding(text)
    if encoding == "7bit":
        plain = MIMEText(text, subtype, "us-ascii")
        plain.set_param("charset", "utf-8")
        return plain
    encoded = MIMENonMultipart("text", subtype, charset="utf-8")
    encoded["Content-Transfer-Encoding"] = "quoted-printable"
    encoded.set_payload(_quoted_printable(text))
    return encoded


def _text_encoding(text: str) -> tuple[str, str]:
    """The text ending in a line break, and its encoding: 7bit when it allows it (ASCII,
    short lines), quoted-printable UTF-8 otherwise."""
    text = text if text.endswith("\n") else text + "\n"
    if text.isascii() and max(map(len, text.splitlines()), default=0) <= MAX_LINE:
        return text, "7bit"
    return text, "quoted-printable"


def _quoted_printable(text: str) -> str:
    # binascii's quoted-printable encoder is C; the email package's is Python, per character.
    return binascii.b2a_qp(text.encode(), istext=True).decode("ascii")


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
    return _formatted_addresses(tuple(values))


@functools.lru_cache(maxsize=4096)  # our own address, and the requesters writing again
def _formatted_addresses(values: tuple[str, ...]) -> str:
    return ", ".join(formataddr(pair, charset="utf-8") for pair in getaddresses(list(values)))


def _unstructured(value: str) -> str:
    value = " ".join(value.split())
    return value if value.isascii() else Header(value, "utf-8").encode()
