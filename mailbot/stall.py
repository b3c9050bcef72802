"""The stall alarm: a mailbox without a successful poll for `stall_after` gets one alert mail."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog

from mailbot.alerts import AlertPolicy, queue_alert
from mailbot.clock import Clock
from mailbot.conversation.ids import ThreadSigner
from mailbot.health import MailboxCheck, check_health
from mailbot.store import Database
from mailbot.store.models import MailboxState

log = structlog.get_logger("mailbot.stall")


@dataclass(frozen=True, slots=True)
class StallPolicy:
    stall_after: Mapping[str, timedelta]
    from_address: str | None
    level1: tuple[str, ...]


class StallAlarm:
    """Alerts level 1 once per stall; a successful poll clears it (see MailboxPoller)."""

    def __init__(self, db: Database, policy: StallPolicy, signer: ThreadSigner, clock: Clock,
                 started_at: datetime) -> None:
        self.db = db
        self.policy = policy
        self.signer = signer
        self.clock = clock
        self.started_at = started_at

    def check(self) -> list[str]:
        """Mailboxes alerted for now; each stall is alerted once, by whichever instance."""
        now = self.clock.now()
        report = check_health(self.db, self.policy.stall_after, now, started_at=self.started_at)
        alerted = []
        for mailbox in report.mailboxes:
            if mailbox.stalled and mailbox.alerted_at is None and self._alert(mailbox, now):
                alerted.append(mailbox.name)
        return alerted

    def _alert(self, mailbox: MailboxCheck, now: datetime) -> bool:
        policy = self.policy
        limit = policy.stall_after[mailbox.name]
        with self.db.transaction() as session:
            state = session.get(MailboxState, mailbox.name, with_for_update=True)
            if state is None:
                state = MailboxState(name=mailbox.name)
            elif state.stall_alerted_at is not None:
                return False
            state.stall_alerted_at = now
            session.add(state)
            subject, text = _alert_text(mailbox, limit)
            queue_alert(session, AlertPolicy(policy.from_address, policy.level1), self.signer,
                        subject, text, now)
        log.error("mailbox.stalled", mailbox=mailbox.name,
                  last_poll_at=mailbox.last_poll_at.isoformat() if mailbox.last_poll_at
                  else None, last_error=mailbox.last_error, alerted=list(policy.level1))
        return True


def _alert_text(mailbox: MailboxCheck, limit: timedelta) -> tuple[str, str]:
    minutes = int(limit.total_seconds() // 60)
    span = f"{minutes} minutes" if minutes else f"{int(limit.total_seconds())} seconds"
    subject = f"mailbot: mailbox {mailbox.name} has not been read for {span}"
    last = (mailbox.last_poll_at.strftime("%Y-%m-%d %H:%M:%S UTC") if mailbox.last_poll_at
            else "never")
    lines = [
        f"mailbot has not read the mailbox {mailbox.name} successfully for {span}.",
        "Mail sent to it is safe on the mail server but no tickets are being made from it.",
        "",
        f"Last successful poll: {last}",
        f"Last error: {mailbox.last_error or 'none recorded'}",
        "",
        "mailbot keeps retrying by itself. Check the IMAP server, the account's password",
        "and the network; `mailbot health` shows the state, and the log says more.",
        "This alert is sent once; the next comes only after the mailbox recovers and",
        "stalls again.",
    ]
    return subject, "\n".join(lines) + "\n"
