"""A rejected grant alerts level 1 once, in the very transaction that records the rejection."""

from __future__ import annotations

from collections.abc import Mapping

import structlog
from sqlmodel import Session

from mailbot.alerts import AlertPolicy, queue_alert
from mailbot.clock import Clock
from mailbot.conversation.ids import ThreadSigner
from mailbot.oauth.errors import GrantRejected
from mailbot.oauth.grants import GrantSpec
from mailbot.store.models import MailboxState

log = structlog.get_logger("mailbot.oauth")


class RejectionAlarm:
    """Told by a TokenSource when its grant is first rejected; queues one alert mail.

    For a mailbox the stall alarm is told the mailbox is already alerted, so the stall that
    follows a revoked grant does not send a second mail about the same trouble.
    """

    def __init__(self, specs: Mapping[str, GrantSpec], policy: AlertPolicy,
                 signer: ThreadSigner, clock: Clock) -> None:
        self.specs = specs
        self.policy = policy
        self.signer = signer
        self.clock = clock

    def __call__(self, session: Session, name: str, exc: GrantRejected) -> None:
        spec = self.specs.get(name)
        if spec is None:
            return
        now = self.clock.now()
        subject, text = alert_text(spec, exc)
        queued = queue_alert(session, self.policy, self.signer, subject, text, now)
        if spec.mailbox is not None:
            state = session.get(MailboxState, spec.mailbox) or MailboxState(name=spec.mailbox)
            state.stall_alerted_at = now
            session.add(state)
        log.error("oauth.alerted", grant=name, alerted=list(self.policy.level1) if queued
                  else [], error=str(exc))


def alert_text(spec: GrantSpec, exc: GrantRejected) -> tuple[str, str]:
    what = "revoked or expired" if exc.revoked else "refused"
    subject = f"mailbot: the OAuth2 grant of {spec.who} was {what}"
    work = ("No tickets are made from this mailbox until then; the mail stays safe on the "
            "server." if spec.mailbox else
            "No mail (auto-replies, notifications, alerts) is sent until then; it waits in "
            "the outbox.")
    lines = [
        f"The provider ({spec.client.provider}) answered {exc.error} when mailbot asked for a "
        f"new access token for {spec.who} ({spec.username}).",
        "",
        f"Provider's words: {exc.description or 'none'}",
        "",
        "Someone with access to the account must log in again:",
        "",
        f"    {spec.login_command}",
        "",
        work,
        "The other mailboxes keep running. mailbot tries this grant again once an hour;",
        "`mailbot oauth status` and `mailbot health` show its state.",
        "This alert is sent once; the next comes only after a new login and a new refusal.",
    ]
    return subject, "\n".join(lines) + "\n"
