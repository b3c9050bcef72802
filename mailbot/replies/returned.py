"""What a bounce says about the mail it returns: where it quotes it, and that mail's ids.

MTAs return the failed mail in many shapes: a message/rfc822 part, its headers only
(text/rfc822-headers), base64 or quoted-printable text, or lines quoted in the body. The
text searched is all of them decoded, beside the raw bytes.
"""

from __future__ import annotations

import re

from mailbot.parsing import ParsedMessage, normalize_message_id

SCAN_BYTES = 1_000_000  # per piece: a bounce quotes the headers near the top
RETURNED_TYPES = {"message/rfc822", "text/rfc822-headers", "message/rfc822-headers"}
_MESSAGE_ID_FIELD = re.compile(  # a header line, maybe folded, maybe quoted with ">"
    r"^[ \t>]*Message-ID:[ \t]*(?:\r?\n[ \t>]+)?(<[^<>\s]+>)", re.IGNORECASE | re.M)
_JSON_MESSAGE_ID = re.compile(  # Amazon SES/SNS notifications list the headers as JSON
    r'"name"\s*:\s*"Message-ID"\s*,\s*"value"\s*:\s*"(<[^"<>\s]+>)"', re.IGNORECASE)


def returned_text(message: ParsedMessage, raw: bytes) -> str:
    """The raw bytes, the decoded body and the decoded parts a returned mail may sit in."""
    pieces = [raw[:SCAN_BYTES].decode("utf-8", "replace"), message.body_text[:SCAN_BYTES]]
    for attachment in message.attachments:
        if attachment.content_type in RETURNED_TYPES or \
                attachment.content_type.startswith("text/"):
            pieces.append(attachment.data[:SCAN_BYTES].decode("utf-8", "replace"))
    return "\n".join(pieces)


def returned_message_ids(message: ParsedMessage, raw: bytes) -> list[str]:
    """The Message-IDs of the mail a bounce returns, as far as the bounce quotes them."""
    found: list[str] = []
    text = returned_text(message, raw)
    for value in _MESSAGE_ID_FIELD.findall(text) + _JSON_MESSAGE_ID.findall(text):
        message_id = normalize_message_id(value)
        if message_id and message_id != message.message_id and message_id not in found:
            found.append(message_id)
    return found
