"""The outbox sender: claims due mails, sends them, retries with backoff, records the outcome."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlmodel import Session, col, func, select
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mailbot.clock import Clock
from mailbot.mail.smtp import PermanentSendFailure, TemporarySendFailure, Transport
from mailbot.store import Database
from mailbot.store.models import OutboxMail
from mailbot.store.writes import add_event

log = structlog.get_logger("mailbot.outbox")

MAX_ATTEMPTS = 8
MAX_DELAY = timedelta(hours=1)
CLAIM_PAGE = 200  # due mails listed per query


@dataclass
class FlushReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0


class OutboxSender:
    """Sends queued mail; each mail keeps its Message-ID and bytes across every attempt."""

    def __init__(self, db: Database, transport: Transport, clock: Clock, *,
                 tries_per_flush: int = 3, first_wait: float = 0.5, max_wait: float = 4.0,
                 max_attempts: int = MAX_ATTEMPTS,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.db = db
        self.on_result = on_result  # (kind, "sent" | "deferred" | "failed"), for metrics
        self.transport = transport
        self.clock = clock
        self.tries_per_flush = tries_per_flush
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.max_attempts = max_attempts

    def flush(self, limit: int = 500, *, stop: Callable[[], bool] | None = None,
              stop_after_deferral: bool = False) -> FlushReport:
        """Send what is due, at most `limit` mails, over one SMTP session.

        Due mails are listed a page at a time; each is then claimed again by its id and sent
        in a transaction of its own, so a crash can repeat at most the mail in hand, and an
        instance skips what another holds. `stop` is asked between mails; with
        `stop_after_deferral` the flush ends at the first mail the server would not take
        now (it is probably down; the daemon comes back on its next tick).
        """
        report = FlushReport()
        try:
            while limit > 0:
                page = self._due_ids(min(limit, CLAIM_PAGE))
                if not page:
                    break
                for outbox_id in page:
                    if (stop is not None and stop()) or \
                            (stop_after_deferral and report.deferred):
                        return report
                    with self.db.transaction() as session:
                        row = self._claim(session, outbox_id)
                        if row is not None:
                            self._send(session, row, report)
                limit -= len(page)
                if len(page) < CLAIM_PAGE:
                    break
        finally:
            self.transport.close()
        return report

    def due(self) -> int:
        """How many queued mails are due now."""
        with self.db.session() as session:
            return session.exec(
                select(func.count()).select_from(OutboxMail)
                .where(col(OutboxMail.status) == "queued",
                       col(OutboxMail.next_attempt_at) <= self.clock.now())).one()

    def _due_ids(self, count: int) -> list[int]:
        with self.db.session() as session:
            return [outbox_id for outbox_id in session.exec(
                select(OutboxMail.id)
                .where(col(OutboxMail.status) == "queued",
                       col(OutboxMail.next_attempt_at) <= self.clock.now())
                .order_by(col(OutboxMail.next_attempt_at), col(OutboxMail.id))
                .limit(count)).all() if outbox_id is not None]

    def _claim(self, session: Session, outbox_id: int) -> OutboxMail | None:
        query = select(OutboxMail).where(col(OutboxMail.id) == outbox_id,
                                         col(OutboxMail.status) == "queued")
        if session.get_bind().dialect.name == "postgresql":
            query = query.with_for_update(skip_locked=True)
        return session.exec(query).first()

    def _send(self, session: Session, row: OutboxMail, report: FlushReport) -> None:
        tries = 0

        def attempt() -> None:
            nonlocal tries
            tries += 1
            self.transport.send(row.sender, list(row.recipients), row.raw, row.message_id)

        now = self.clock.now()
        try:
            Retrying(retry=retry_if_exception_type(TemporarySendFailure),
                     stop=stop_after_attempt(self.tries_per_flush),
                     wait=wait_exponential_jitter(multiplier=self.first_wait, max=self.max_wait),
                     before_sleep=_log_retry(row), reraise=True)(attempt)
        except TemporarySendFailure as exc:
            row.attempts += tries
            row.last_error = str(exc)
            if row.attempts >= self.max_attempts:
                self._fail(session, row, now, f"gave up after {row.attempts} attempts: {exc}")
                report.failed += 1
            else:
                row.next_attempt_at = now + min(MAX_DELAY, timedelta(minutes=2 ** row.attempts))
                report.deferred += 1
                self._report(row.kind, "deferred")
                log.warning("outbox.deferred", outbox_id=row.id, ticket=row.ticket_id,
                            message_id=row.message_id, error=str(exc),
                            next_attempt=row.next_attempt_at.isoformat())
            session.add(row)
            return
        except PermanentSendFailure as exc:
            row.attempts += tries
            self._fail(session, row, now, str(exc))
            report.failed += 1
            return
        row.attempts += tries
        row.status, row.sent_at, row.last_error = "sent", now, None
        session.add(row)
        if row.ticket_id is not None:
            add_event(session, row.ticket_id, now, "mail_sent", mail_kind=row.kind,
                      message_id=row.message_id, to=list(row.recipients))
        report.sent += 1
        self._report(row.kind, "sent")
        log.info("outbox.sent", outbox_id=row.id, ticket=row.ticket_id,
                 message_id=row.message_id, kind=row.kind)

    def _report(self, kind: str, result: str) -> None:
        if self.on_result is not None:
            self.on_result(kind, result)

    def _fail(self, session: Session, row: OutboxMail, now: datetime, reason: str) -> None:
        self._report(row.kind, "failed")
        row.status, row.last_error = "failed", reason
        session.add(row)
        if row.ticket_id is not None:
            add_event(session, row.ticket_id, now, "mail_failed", mail_kind=row.kind,
                      message_id=row.message_id, reason=reason)
        log.error("outbox.failed", outbox_id=row.id, ticket=row.ticket_id,
                  message_id=row.message_id, reason=reason)


def _log_retry(row: OutboxMail) -> Callable[[RetryCallState], None]:
    def before_sleep(state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("outbox.retry", outbox_id=row.id, message_id=row.message_id,
                    attempt=state.attempt_number, error=str(error))
    return before_sleep


def retry_now(db: Database, outbox_id: int, now: datetime) -> OutboxMail:
    """Queue a failed or deferred mail for the next flush; it keeps its Message-ID."""
    with db.transaction() as session:
        row = session.get(OutboxMail, outbox_id)
        if row is None:
            raise LookupError(f"no outbox mail {outbox_id}")
        if row.status == "sent":
            raise LookupError(f"outbox mail {outbox_id} was sent at {row.sent_at}")
        row.status, row.next_attempt_at = "queued", now
        session.add(row)
        return row
