"""Message-IDs that name their ticket and prove mailbot wrote them.

`mailbot.42.relay.1f3a5c7e9b2d.3c9d…@example.com`: ticket number, kind, a random nonce
and an HMAC-SHA256 over the three, keyed with the installation's secret. A reply's
In-Reply-To or References then names its ticket with certainty; nobody without the secret
can make an id that attaches mail to somebody else's ticket.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

_SIGNATURE_HEX = 20
SIGNED_ID = re.compile(
    r"mailbot\.(\d{1,12})\.([a-z_]{1,16})\.([0-9a-f]{12})\.([0-9a-f]{20})@[^\s<>\"]+",
    re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class SignedRef:
    """A Message-ID of ours, verified: which ticket it belongs to and what kind of mail it was."""

    ticket_number: int
    kind: str
    message_id: str


class ThreadSigner:
    """Makes and checks signed Message-IDs with one secret key."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the secret key must be at least 16 bytes long")
        self._secret = secret

    def _signature(self, ticket_number: int, kind: str, nonce: str) -> str:
        payload = f"{ticket_number}.{kind}.{nonce}".encode()
        return hmac.new(self._secret, payload, hashlib.sha256).hexdigest()[:_SIGNATURE_HEX]

    def new_id(self, ticket_number: int | None, kind: str, domain: str) -> str:
        """A fresh signed Message-ID (without angle brackets)."""
        number = ticket_number or 0
        nonce = secrets.token_hex(6)
        return (f"mailbot.{number}.{kind}.{nonce}."
                f"{self._signature(number, kind, nonce)}@{domain}")

    def verify(self, message_id: str) -> SignedRef | None:
        """The ticket a Message-ID names, when the id is ours and its signature holds."""
        match = SIGNED_ID.fullmatch(message_id.strip().strip("<>"))
        if match is None:
            return None
        number, kind, nonce, signature = match.groups()
        expected = self._signature(int(number), kind.lower(), nonce.lower())
        if not hmac.compare_digest(expected, signature.lower()) or int(number) == 0:
            return None
        return SignedRef(int(number), kind.lower(), match.group(0))

    def first_ref(self, message_ids: Iterable[str]) -> SignedRef | None:
        """The first of these ids that is ours and verified."""
        for message_id in message_ids:
            ref = self.verify(message_id)
            if ref is not None:
                return ref
        return None

    def refs_in(self, text: str) -> list[SignedRef]:
        """Every verified id of ours anywhere in a text (a bounce quotes the mail it returns)."""
        found: list[SignedRef] = []
        for match in SIGNED_ID.finditer(text):
            ref = self.verify(match.group(0))
            if ref is not None and ref not in found:
                found.append(ref)
        return found
