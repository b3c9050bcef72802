"""Bytes → ParsedMessage: decoded headers, addresses, readable text, attachments, defects."""

from mailbot.parsing.filenames import sanitize_filename, unique_filenames
from mailbot.parsing.html import html_to_text
from mailbot.parsing.identity import idempotency_key, message_ids, normalize_message_id
from mailbot.parsing.model import Address, Attachment, MessageParseError, ParsedMessage
from mailbot.parsing.parse import files_in_mail, parse_headers_only, parse_message

__all__ = [
    "Address",
    "Attachment",
    "MessageParseError",
    "ParsedMessage",
    "files_in_mail",
    "html_to_text",
    "idempotency_key",
    "message_ids",
    "normalize_message_id",
    "parse_headers_only",
    "parse_message",
    "sanitize_filename",
    "unique_filenames",
]
