"""Plain values a parsed message is made of: addresses, attachments, the message itself."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from mailbot.pickled import pickled_by_fields


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Address:
    """One mailbox: display name and lower-cased addr-spec."""

    name: str
    email: str

    @property
    def domain(self) -> str:
        return self.email.rpartition("@")[2]

    def __str__(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Attachment:
    """A decoded MIME part kept as a file: sanitized name, type and bytes."""

    filename: str
    content_type: str
    data: bytes = field(repr=False)
    inline: bool = False
    content_id: str | None = None
    contents: tuple[str, ...] = ()  # an attached mail's own files, `inner.eml/file` deeper
    digest: str = field(default="", repr=False, compare=False)  # of `data`, from the parser

    @property
    def size(self) -> int:
        return len(self.data)

    @property
    def label(self) -> str:
        """The file name, with what an attached mail holds: `Fwd.eml (holds a.pdf, b.png)`."""
        if not self.contents:
            return self.filename
        return f"{self.filename} (holds {', '.join(self.contents)})"

    @property
    def sha256(self) -> str:
        """The bytes' SHA-256: worked out by the parser (in a worker, for a backlog), so that
        storing does not hash a file again, once for its blob and once for its row."""
        return self.digest or hashlib.sha256(self.data).hexdigest()


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class ParsedMessage:
    """What the pipeline knows about one message after parsing; headers are decoded text."""

    message_id: str | None
    subject: str
    from_: Address | None
    reply_to: tuple[Address, ...]
    to: tuple[Address, ...]
    cc: tuple[Address, ...]
    date: datetime | None
    in_reply_to: str | None
    references: tuple[str, ...]
    headers: Mapping[str, tuple[str, ...]]
    body_text: str
    body_html: str | None
    attachments: tuple[Attachment, ...]
    defects: tuple[str, ...]
    size: int
    truncated: bool = False

    def header(self, name: str) -> str | None:
        """The first value of a header, by case-insensitive name."""
        values = self.headers.get(name.lower())
        return values[0] if values else None


class MessageParseError(Exception):
    """The bytes cannot be understood as a mail; the reason says why."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
