"""Alert mails to escalation level 1 about mailbot itself (a stalled mailbox, a revoked grant)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlmodel import Session

from mailbot.conversation.ids import ThreadSigner
from mailbot.replies.compose import compose
from mailbot.store.writes import queue_mail


@dataclass(frozen=True, slots=True)
class AlertPolicy:
    """Who alerts are from and to; without either, alerts are only logged."""

    from_address: str | None
    level1: tuple[str, ...]


def queue_alert(session: Session, policy: AlertPolicy, signer: ThreadSigner, subject: str,
                text: str, now: datetime) -> bool:
    """Put an alert in the outbox within the caller's transaction; False when nobody to tell."""
    if not policy.from_address or not policy.level1:
        return False
    domain = policy.from_address.rpartition("@")[2].strip(">") or "localhost"
    mail = compose(kind="alert", message_id=signer.new_id(None, "alert", domain),
                   from_address=policy.from_address, to=policy.level1, subject=subject,
                   text=text, html=None, date=now, ticket_number=None)
    queue_mail(session, mail, None, now)
    return True
