"""SQLModel tables: tickets, messages, attachments, blobs, customers, events, quarantine, state."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Column,
    ForeignKey,
    Index,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlmodel import Field, SQLModel

from mailbot.store.types import UtcDateTime


def _blob_ref() -> Any:
    return Field(sa_column=Column(String(64), ForeignKey("blobs.sha256"), nullable=False))


def _utc(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_column=Column(UtcDateTime(), nullable=nullable, index=index))


class Blob(SQLModel, table=True):
    """Raw bytes stored once, addressed by their SHA-256."""

    __tablename__ = "blobs"

    sha256: str = Field(sa_column=Column(String(64), primary_key=True))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    data: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class Customer(SQLModel, table=True):
    """One entry of the customer directory."""

    __tablename__ = "customers"

    customer_id: str = Field(sa_column=Column(String(64), primary_key=True))
    name: str = Field(default="", sa_column=Column(String(200), nullable=False, default=""))
    domains: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    contacts: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    account_manager: str | None = Field(default=None, sa_column=Column(String(320)))
    plan: str | None = Field(default=None, sa_column=Column(String(64)))


class Ticket(SQLModel, table=True):
    """A customer request; its id is the number people quote."""

    __tablename__ = "tickets"
    # A requester's recent tickets, without reading the older ones (the auto-reply rate limit).
    __table_args__ = (Index("ix_tickets_requester_created", "requester", "created_at"),)

    id: int | None = Field(default=None, primary_key=True)
    status: str = Field(default="open", sa_column=Column(String(16), nullable=False, index=True))
    severity: str = Field(sa_column=Column(String(2), nullable=False, index=True))
    customer_id: str | None = Field(default=None, sa_column=Column(String(64), index=True))
    customer_verified: bool = False
    customer_source: str = Field(default="missing", sa_column=Column(String(16), nullable=False))
    requester: str = Field(sa_column=Column(String(320), nullable=False))
    requester_name: str = Field(default="", sa_column=Column(String(200), nullable=False))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    mailbox: str | None = Field(default=None, sa_column=Column(String(64)))
    created_at: datetime = _utc(nullable=False, index=True)
    updated_at: datetime = _utc(nullable=False)
    response_due: datetime | None = _utc()
    resolution_due: datetime | None = _utc()
    first_response_at: datetime | None = _utc()
    resolved_at: datetime | None = _utc()
    matched_rules: list[dict[str, Any]] = Field(default_factory=list,
                                                sa_column=Column(JSON, nullable=False))
    tags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    message_count: int = 0
    attachment_count: int = 0
    parent_id: int | None = Field(default=None, foreign_key="tickets.id")
    assignee: str | None = Field(default=None, sa_column=Column(String(200)))
    waiting_since: datetime | None = _utc()
    sla_policy: str | None = Field(default=None, sa_column=Column(String(64)))


class Message(SQLModel, table=True):
    """One mail that belongs to a ticket, with its raw bytes kept as a blob."""

    __tablename__ = "messages"

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id", index=True)
    idempotency_key: str = Field(sa_column=Column(String(600), nullable=False, unique=True))
    message_id: str | None = Field(default=None, sa_column=Column(String(998), index=True))
    direction: str = Field(default="in", sa_column=Column(String(8), nullable=False))
    role: str = Field(default="customer", sa_column=Column(String(16), nullable=False,
                                                           default="customer"))
    source: str = Field(default="", sa_column=Column(String(400), nullable=False))
    sender: str = Field(default="", sa_column=Column(String(320), nullable=False))
    sender_name: str = Field(default="", sa_column=Column(String(200), nullable=False))
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    cc: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    sent_at: datetime | None = _utc()
    received_at: datetime = _utc(nullable=False)
    in_reply_to: str | None = Field(default=None, sa_column=Column(String(998)))
    references: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    body_text: str = Field(default="", sa_column=Column(Text, nullable=False))
    # The body without quoted history and signature; empty when that is the whole body.
    display_text: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    raw_sha256: str = _blob_ref()
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    truncated: bool = False
    defects: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Attachment(SQLModel, table=True):
    """A file that came with a message; its bytes are a blob."""

    __tablename__ = "attachments"

    id: int | None = Field(default=None, primary_key=True)
    message_id: int = Field(foreign_key="messages.id", index=True)
    filename: str = Field(sa_column=Column(String(255), nullable=False))
    content_type: str = Field(sa_column=Column(String(255), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    sha256: str = _blob_ref()
    inline: bool = False
    content_id: str | None = Field(default=None, sa_column=Column(String(998)))


class Event(SQLModel, table=True):
    """One line of a ticket's audit trail: what happened, when and why."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_ticket_at", "ticket_id", "at"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id")
    at: datetime = _utc(nullable=False)
    kind: str = Field(sa_column=Column(String(40), nullable=False))
    detail: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))


class QuarantineEntry(SQLModel, table=True):
    """A message that could not be ticketed, kept with its reason until replayed or dropped."""

    __tablename__ = "quarantine"

    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(sa_column=Column(String(600), nullable=False, index=True))
    raw_sha256: str = _blob_ref()
    reason: str = Field(sa_column=Column(Text, nullable=False))
    source: str = Field(default="", sa_column=Column(String(400), nullable=False))
    size: int = Field(sa_column=Column(BigInteger, nullable=False))
    received_at: datetime = _utc(nullable=False)
    status: str = Field(default="held", sa_column=Column(String(16), nullable=False, index=True))
    attempts: int = 1


class MailboxState(SQLModel, table=True):
    """Where a mailbox's folder was read up to, and how its last poll went."""

    __tablename__ = "mailbox_state"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    uidvalidity: int | None = Field(default=None, sa_column=Column(BigInteger))
    last_uid: int = Field(default=0, sa_column=Column(BigInteger, nullable=False, default=0))
    last_poll_at: datetime | None = _utc()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    stall_alerted_at: datetime | None = _utc()


class OutboxMail(SQLModel, table=True):
    """An outgoing mail, composed once (its Message-ID fixed) and sent until it goes or fails."""

    __tablename__ = "outbox"
    # A ticket's mails of one kind, and when they were queued, read from the index alone.
    __table_args__ = (Index("ix_outbox_status_next", "status", "next_attempt_at"),
                      Index("ix_outbox_ticket_kind", "ticket_id", "kind", "created_at"))

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int | None = Field(default=None, foreign_key="tickets.id")
    kind: str = Field(sa_column=Column(String(16), nullable=False))
    sender: str = Field(sa_column=Column(String(320), nullable=False))
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    subject: str = Field(default="", sa_column=Column(Text, nullable=False))
    message_id: str = Field(sa_column=Column(String(998), nullable=False, unique=True))
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))
    status: str = Field(default="queued", sa_column=Column(String(16), nullable=False))
    attempts: int = 0
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    created_at: datetime = _utc(nullable=False)
    next_attempt_at: datetime = _utc(nullable=False)
    sent_at: datetime | None = _utc()


class InstallationSecret(SQLModel, table=True):
    """A secret made once per installation and shared by every instance (the threading key)."""

    __tablename__ = "installation_secrets"

    name: str = Field(sa_column=Column(String(64), primary_key=True))
    value: str = Field(sa_column=Column(String(200), nullable=False))


class EscalationRecord(SQLModel, table=True):
    """An escalation sent for a ticket: at most one per ticket and level."""

    __tablename__ = "escalations"
    __table_args__ = (UniqueConstraint("ticket_id", "level", name="uq_escalations_ticket_level"),)

    id: int | None = Field(default=None, primary_key=True)
    ticket_id: int = Field(foreign_key="tickets.id")
    level: int
    reason: str = Field(sa_column=Column(Text, nullable=False))
    due_at: datetime = _utc(nullable=False)
    sent_at: datetime = _utc(nullable=False)
    recipients: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Lease(SQLModel, table=True):
    """Who works a shared duty (a mailbox, the SLA watcher) and until when, unless renewed."""

    __tablename__ = "leases"

    name: str = Field(sa_column=Column(String(80), primary_key=True))
    holder: str = Field(sa_column=Column(String(200), nullable=False))
    expires_at: datetime = _utc(nullable=False)
    acquired_at: datetime = _utc(nullable=False)


class OAuthToken(SQLModel, table=True):
    """One OAuth2 grant (a mailbox's IMAP login, or the SMTP login): its tokens and its state.

    `state` is `active`, `revoked` (the provider answered invalid_grant) or `rejected` (it
    refused the client); a grant not `active` is tried again only after `retry_after`.
    """

    __tablename__ = "oauth_tokens"

    name: str = Field(sa_column=Column(String(80), primary_key=True))
    provider: str = Field(sa_column=Column(String(16), nullable=False))
    state: str = Field(default="active", sa_column=Column(String(16), nullable=False))
    refresh_token: str = Field(sa_column=Column(Text, nullable=False), repr=False)
    access_token: str | None = Field(default=None, sa_column=Column(Text), repr=False)
    access_expires_at: datetime | None = _utc()
    refreshed_at: datetime | None = _utc()
    obtained_at: datetime = _utc(nullable=False)
    rotated_at: datetime | None = _utc()
    last_error: str | None = Field(default=None, sa_column=Column(Text))
    retry_after: datetime | None = _utc()
    alerted_at: datetime | None = _utc()
