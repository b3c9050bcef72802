"""Who the customer is: Customer ID from the text, checked against the directory, else by sender."""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

import regex

from mailbot.parsing.model import ParsedMessage
from mailbot.pickled import pickled_by_fields

HEAD_CHARS = 20_000


class CustomerSource(StrEnum):
    """How the customer was found; only directory-backed sources count as verified."""

    DIRECTORY = "directory"  # ID in the mail, found in the directory
    CONTACT = "contact"  # no usable ID; the sender is a known contact
    DOMAIN = "domain"  # no usable ID; the sender's domain belongs to one customer
    UNKNOWN_ID = "unknown_id"  # an ID in the mail that the directory does not know
    MISSING = "missing"  # nothing found


VERIFIED_SOURCES = frozenset({CustomerSource.DIRECTORY, CustomerSource.CONTACT,
                              CustomerSource.DOMAIN})


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CustomerRecord:
    """One customer of the directory, as identification needs it."""

    customer_id: str
    name: str = ""
    domains: tuple[str, ...] = ()
    contacts: tuple[str, ...] = ()
    account_manager: str | None = None
    plan: str | None = None


@pickled_by_fields
@dataclass(frozen=True, slots=True)
class CustomerMatch:
    """The outcome of identification, with the text that gave it away."""

    customer_id: str | None
    source: CustomerSource
    claimed_id: str | None = None
    customer: CustomerRecord | None = None

    @property
    def verified(self) -> bool:
        return self.source in VERIFIED_SOURCES

    @property
    def missing_id(self) -> bool:
        """True when the mail itself carried no Customer ID (the auto-reply asks for one)."""
        return self.claimed_id is None


class CustomerDirectory:
    """An in-memory snapshot of the directory, indexed by id, contact and domain."""

    def __init__(self, records: Iterable[CustomerRecord] = ()) -> None:
        self._by_id: dict[str, CustomerRecord] = {}
        self._by_contact: dict[str, CustomerRecord] = {}
        self._by_domain: dict[str, list[CustomerRecord]] = {}
        self._by_number: dict[str, list[CustomerRecord]] = {}
        for record in records:
            self._by_id[normalize_customer_id(record.customer_id)] = record
            number = _number_part(record.customer_id)
            if number:
                self._by_number.setdefault(number, []).append(record)
            for contact in record.contacts:
                self._by_contact[contact.strip().lower()] = record
            for domain in record.domains:
                self._by_domain.setdefault(domain.strip().lower().lstrip("@"), []).append(record)

    def __len__(self) -> int:
        return len(self._by_id)

    def by_id(self, customer_id: str) -> CustomerRecord | None:
        """Exact match, or a bare number ("10442") that one directory ID ends in ("RC-10442")."""
        key = normalize_customer_id(customer_id)
        record = self._by_id.get(key)
        if record is None and key.isdigit():
            owners = self._by_number.get(key, [])
            record = owners[0] if len(owners) == 1 else None
        return record

    def by_contact(self, email: str) -> CustomerRecord | None:
        return self._by_contact.get(email.lower())

    def by_domain(self, domain: str) -> CustomerRecord | None:
        """The customer owning a domain, only when exactly one customer claims it."""
        owners = self._by_domain.get(domain.lower(), [])
        return owners[0] if len(owners) == 1 else None


def _number_part(customer_id: str) -> str | None:
    match = re.search(r"(\d+)$", normalize_customer_id(customer_id))
    return match.group(1) if match else None


def normalize_customer_id(raw: str) -> str:
    return re.sub(r"\s+", "", raw).upper()


def compile_patterns(patterns: Sequence[str]) -> tuple[regex.Pattern[str], ...]:
    """Compiled with `regex`, as the rules are: it finds the default pattern in a long body
    in about two fifths of the time `re` takes."""
    return tuple(regex.compile(p, regex.IGNORECASE) for p in patterns)


def find_customer_ids(text: str, patterns: Sequence[regex.Pattern[str]]) -> list[str]:
    """Every Customer ID the patterns find in the text, normalized, first occurrence first.

    The GIL is kept while matching (`concurrent=False`). By default the regex module lets
    it go for every search of a string and then waits to take it back, behind whichever
    thread took it meanwhile: 3,000 short searches beside one busy thread took 1.3 s, and
    14 ms with the GIL kept.
    """
    found: list[str] = []
    for pattern in patterns:
        for match in pattern.finditer(text, concurrent=False):
            value = normalize_customer_id(match.group(1))
            if value and value not in found:
                found.append(value)
    return found


def identify_customer(message: ParsedMessage, patterns: Sequence[regex.Pattern[str]],
                      directory: CustomerDirectory) -> CustomerMatch:
    """Customer ID from subject then body; prefer an ID the directory knows; else the sender."""
    claimed = find_customer_ids(message.subject, patterns) or find_customer_ids(
        message.body_text[:HEAD_CHARS], patterns)
    for candidate in claimed:
        record = directory.by_id(candidate)
        if record is not None:
            return CustomerMatch(record.customer_id, CustomerSource.DIRECTORY, candidate, record)
    first_claim = claimed[0] if claimed else None
    sender = message.from_
    if sender is not None:
        record = directory.by_contact(sender.email) or directory.by_domain(sender.domain)
        if record is not None:
            source = (CustomerSource.CONTACT if directory.by_contact(sender.email)
                      else CustomerSource.DOMAIN)
            return CustomerMatch(record.customer_id, source, first_claim, record)
    if first_claim is not None:
        return CustomerMatch(first_claim, CustomerSource.UNKNOWN_ID, first_claim)
    return CustomerMatch(None, CustomerSource.MISSING)
