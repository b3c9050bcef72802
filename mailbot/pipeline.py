"""From raw bytes to a decision about one message: parse, identify, classify; no I/O."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Protocol

import regex

from mailbot.identify import CustomerDirectory, CustomerMatch, identify_customer
from mailbot.parsing import (
    MessageParseError,
    ParsedMessage,
    idempotency_key,
    parse_headers_only,
    parse_message,
)
from mailbot.parsing.visible import visible_text
from mailbot.pickled import pickled_by_fields
from mailbot.replies.loops import automatic_reason

SEVERITIES = ("P1", "P2", "P3", "P4")


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class RuleHit:
    """One rule that matched, and what in the message made it match."""

    rule_id: str
    severity: str
    matched: str = ""


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Classification:
    """The severity a message gets and every rule hit behind it."""

    severity: str
    hits: tuple[RuleHit, ...] = ()
    tags: tuple[str, ...] = ()
    reason: str = ""


class Classifier(Protocol):
    """Decides a message's severity."""

    def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification: ...


class DefaultSeverity:
    """The classifier used when no rule set is loaded: every message gets one severity."""

    def __init__(self, severity: str = "P3") -> None:
        if severity not in SEVERITIES:
            raise ValueError(f"severity must be one of {', '.join(SEVERITIES)}")
        self.severity = severity

    def classify(self, message: ParsedMessage, customer: CustomerMatch) -> Classification:
        return Classification(self.severity, reason="default severity (no rule matched)")


@dataclass(frozen=True, slots=True)
class IngestPolicy:
    """The settings the pipeline reads."""

    max_message_bytes: int
    customer_id_patterns: tuple[regex.Pattern[str], ...]


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Analysis:
    """Everything decided about a message that will become (part of) a ticket."""

    raw_sha256: str
    key: str
    message: ParsedMessage
    customer: CustomerMatch
    classification: Classification
    notes: tuple[str, ...] = field(default=())
    visible_text: str | None = None  # what the sender wrote in this mail, when worked out
    automatic: str | None = None  # why a machine wrote it (`automatic_reason`), or None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class Rejection:
    """A message that cannot be ticketed, with the reason it goes to quarantine."""

    raw_sha256: str
    key: str
    reason: str


def analyze(raw: bytes, policy: IngestPolicy, directory: CustomerDirectory,
            classifier: Classifier) -> Analysis | Rejection:
    """Decide what one raw message is; never raises for bad input."""
    sha = hashlib.sha256(raw).hexdigest()
    notes: list[str] = []
    try:
        if len(raw) > policy.max_message_bytes:
            message = parse_headers_only(raw)
            notes.append(
                f"message of {len(raw):,} bytes exceeds the limit of "
                f"{policy.max_message_bytes:,} bytes: kept raw, body and attachments not parsed")
        else:
            message = parse_message(raw)
    except MessageParseError as exc:
        return Rejection(sha, "sha256:" + sha, f"unparseable: {exc.reason}")
    key = idempotency_key(message.message_id, raw)
    customer = identify_customer(message, policy.customer_id_patterns, directory)
    classification = classifier.classify(message, customer)
    return Analysis(sha, key, message, customer, classification, tuple(notes),
                    visible_text(message.body_text), automatic_reason(message))
