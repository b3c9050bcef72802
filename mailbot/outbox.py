"""The outbox sender: claims due mails, sends them, retries with backoff, records the outcome."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import bindparam, update
from sqlmodel import Session, SQLModel, col, func, select
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

CLAIM_PAGE = 200  # due mails listed per query
_OUTBOX = SQLModel.metadata.tables["outbox"]
_MARK_SENT = update(_OUTBOX).where(_OUTBOX.c.id == bindparam("row")).values(
    status="sent", sent_at=bindparam("now"), attempts=bindparam("attempts"), last_error=None)
STOP_TIMEOUT_S = 60.0  # how long the end of a pass waits for the mail being sent


@dataclass(frozen=True)
class RetrySchedule:
    """When a deferred mail is tried again, and when it is given up.

    The wait doubles with each deferred flush from `first_delay` up to `max_delay`; a mail
    still refused `give_up_after` its creation fails (as a mail server bounces after days).
    """

    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(minutes=30)
    give_up_after: timedelta = timedelta(days=2)

    def next_attempt(self, created_at: datetime, now: datetime,
                     deferrals: int) -> datetime | None:
        """The next try after the `deferrals`-th deferral (1 for the first); None: give up."""
        if now - created_at >= self.give_up_after:
            return None
        doublings = min(max(deferrals - 1, 0), 32)
        wait: timedelta = min(self.max_delay, self.first_delay * (2 ** doublings))
        return now + wait


@dataclass(frozen=True, slots=True)
class SentMail:
    """A mail the SMTP server took, to be marked sent."""

    outbox_id: int
    ticket_id: int | None
    kind: str
    message_id: str
    recipients: tuple[str, ...]
    attempts: int
    at: datetime

    @classmethod
    def of(cls, row: OutboxMail, attempts: int, at: datetime) -> SentMail:
        assert row.id is not None
        return cls(row.id, row.ticket_id, row.kind, row.message_id, tuple(row.recipients),
                   attempts, at)


@dataclass
class FlushReport:
    sent: int = 0
    deferred: int = 0
    failed: int = 0
    server_down_until: datetime | None = None  # when the server refused all mail, the retry


class OutboxSender:
    """Sends queued mail; each mail keeps its Message-ID and bytes across every attempt."""

    def __init__(self, db: Database, transport: Transport, clock: Clock, *,
                 tries_per_flush: int = 3, first_wait: float = 0.5, max_wait: float = 4.0,
                 schedule: RetrySchedule | None = None,
                 on_result: Callable[[str, str], None] | None = None) -> None:
        self.db = db
        self.on_result = on_result  # (kind, "sent" | "deferred" | "failed"), for metrics
        self.transport = transport
        self.clock = clock
        self.tries_per_flush = tries_per_flush
        self.first_wait = first_wait
        self.max_wait = max_wait
        self.schedule = schedule or RetrySchedule()

    def flush(self, limit: int = 500, *, stop: Callable[[], bool] | None = None,
              stop_after_deferral: bool = False) -> FlushReport:
        """Send what is due, at most `limit` mails, over one SMTP session.

        Due mails are listed a page at a time; each is then claimed again by its id and sent
        in a transaction of its own, so a crash can repeat at most the mail in hand, and an
        instance skips what another holds. `stop` is asked between mails; with
        `stop_after_deferral` the flush ends at the first mail deferred because the server
        took no mail at all (down, or refusing the session): the report's
        `server_down_until` says when that mail is due again, and the others wait with it.
        """
        report = FlushReport()
        try:
            while limit > 0:
                page = self.due_ids(min(limit, CLAIM_PAGE))
                if not page:
                    break
                for outbox_id in page:
                    if (stop is not None and stop()) or \
                            (stop_after_deferral and report.server_down_until):
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

    def due_ids(self, count: int) -> list[int]:
        """The ids of up to `count` mails due now, soonest first."""
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
            deferrals = -(-row.attempts // self.tries_per_flush) + 1
            row.attempts += tries
            row.last_error = str(exc)
            next_attempt = self.schedule.next_attempt(row.created_at, now, deferrals)
            if next_attempt is None:
                self._fail(session, row, now, f"gave up after {row.attempts} attempts "
                           f"since {row.created_at.isoformat()}: {exc}")
                report.failed += 1
            else:
                row.next_attempt_at = next_attempt
                report.deferred += 1
                if exc.whole_server:
                    report.server_down_until = next_attempt
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
        self._record_sent(session, [SentMail.of(row, row.attempts + tries, now)])
        report.sent += 1

    def record_sent(self, mails: Sequence[SentMail]) -> None:
        """Mark mails sent earlier, outside a claim, as sent: one transaction for them all."""
        if mails:
            with self.db.transaction() as session:
                self._record_sent(session, mails)

    def _record_sent(self, session: Session, mails: Sequence[SentMail]) -> None:
        # Plain UPDATEs: a claimed row object stays clean, so nothing is flushed for it.
        session.execute(_MARK_SENT, [{"row": m.outbox_id, "attempts": m.attempts, "now": m.at}
                                     for m in mails])
        for mail in mails:
            if mail.ticket_id is not None:
                add_event(session, mail.ticket_id, mail.at, "mail_sent", mail_kind=mail.kind,
                          message_id=mail.message_id, to=list(mail.recipients))
            self._report(mail.kind, "sent")
            log.info("outbox.sent", outbox_id=mail.outbox_id, ticket=mail.ticket_id,
                     message_id=mail.message_id, kind=mail.kind)

    def queued_mails(self, outbox_ids: Sequence[int]) -> list[OutboxMail]:
        """Those of these mails still queued, in the order given, read without claiming."""
        with self.db.session() as session:
            rows = {row.id: row for row in session.exec(select(OutboxMail).where(
                col(OutboxMail.id).in_(outbox_ids), col(OutboxMail.status) == "queued"))}
        return [rows[i] for i in outbox_ids if i in rows]

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


class FlushWhileWorking:
    """Sends queued mail on a thread of its own, woken by each commit, while a pass runs.

    For `mailbot poll`: auto-replies go out while the backlog is still being ingested,
    instead of waiting for the end. A server that takes no mail ends the thread; the
    flush after the pass deals with what is left, as it would have anyway.

    On SQLite, whose one write lock the pass holds nearly all the time, the thread only
    reads and sends: the pass's thread marks what it sent after each of its own commits
    (`after_commit`), at most MAX_UNMARKED mails at a time, so a crash can repeat at most
    those (with their Message-IDs). A mail the server defers or refuses is left to the
    flush after the pass, which records it. On PostgreSQL each mail is claimed, sent and
    marked in a transaction of its own, as in any flush.
    """

    MAX_UNMARKED = 25

    def __init__(self, sender: OutboxSender) -> None:
        self.sender = sender
        self.sent = 0
        self.marks_later = sender.db.dialect == "sqlite"
        self._wake = threading.Event()
        self._done = threading.Event()
        self._room = threading.Condition()
        self._unmarked: list[SentMail] = []
        self._tried: set[int] = set()
        self._thread = threading.Thread(target=self._loop, name="outbox", daemon=True)

    def wake(self) -> None:
        self._wake.set()

    def after_commit(self) -> None:
        """Called by the pass after each commit: mark what was sent, look for new mail."""
        if self.marks_later:
            self.record_sent()
        self.wake()

    def record_sent(self) -> None:
        with self._room:
            mails, self._unmarked = self._unmarked, []
            self._room.notify_all()
        try:
            self.sender.record_sent(mails)
        except Exception as exc:
            log.warning("outbox.not_marked_sent", count=len(mails), error=repr(exc),
                        detail="sent again by the next flush, with the same Message-IDs")

    def __enter__(self) -> FlushWhileWorking:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._wake.set()
        with self._room:
            self._room.notify_all()
        self._thread.join(timeout=STOP_TIMEOUT_S)
        self.record_sent()

    def _loop(self) -> None:
        while not self._done.is_set():
            self._wake.wait()
            self._wake.clear()
            if self._done.is_set():
                return
            try:
                if self.marks_later:
                    go_on = self._send_unmarked()
                else:
                    report = self.sender.flush(stop=self._done.is_set,
                                               stop_after_deferral=True)
                    self.sent += report.sent
                    go_on = report.server_down_until is None
            except Exception as exc:
                log.warning("outbox.background_flush_ended", error=repr(exc),
                            detail="what is queued is sent after the pass")
                return
            if not go_on:
                return

    def _send_unmarked(self) -> bool:
        """Send what is due and not tried yet; False once the server takes no mail."""
        sender = self.sender
        while not self._done.is_set():
            fresh = [i for i in sender.due_ids(CLAIM_PAGE + len(self._tried))
                     if i not in self._tried]
            if not fresh:
                return True
            for start in range(0, len(fresh), self.MAX_UNMARKED):
                if self._done.is_set():
                    return True
                part = fresh[start:start + self.MAX_UNMARKED]
                self._tried.update(part)
                if not self._send_each(sender.queued_mails(part)):
                    return False
        return True

    def _send_each(self, rows: list[OutboxMail]) -> bool:
        """Send these mails, each once; False once the server takes no mail."""
        sender = self.sender
        for row in rows:
            if not self._wait_for_room():
                return True
            try:
                sender.transport.send(row.sender, list(row.recipients), row.raw, row.message_id)
            except TemporarySendFailure as exc:
                if exc.whole_server:
                    return False
                continue
            except PermanentSendFailure:
                continue
            with self._room:
                self._unmarked.append(SentMail.of(row, row.attempts + 1, sender.clock.now()))
                self.sent += 1
        return True

    def _wait_for_room(self) -> bool:
        """Wait while MAX_UNMARKED mails wait to be marked; False once the pass is over."""
        with self._room:
            while len(self._unmarked) >= self.MAX_UNMARKED and not self._done.is_set():
                self._room.wait(timeout=1.0)
        return not self._done.is_set()


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
