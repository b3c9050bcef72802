"""One pass over one IMAP mailbox: fetch what is pending, ingest each, ack after its commit."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlmodel import Session
from tenacity import (
    RetryCallState,
    retry,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mailbot.analysis import PendingAnalysis
from mailbot.clock import Clock
from mailbot.ingest import Incoming, Ingestor, Outcome, TemporaryFailure
from mailbot.mail import imap
from mailbot.mail.imap import (
    PROCESSED_KEYWORD,
    FetchedMessage,
    ImapConnection,
    ImapEndpoint,
    MailboxUnavailable,
    batches_by_size,
)
from mailbot.store import Database, writes
from mailbot.store.models import MailboxState

log = structlog.get_logger("mailbot.poller")

PROCESSING_TRIES = 3  # a message that fails this many passes in a row is quarantined
# Messages sharing a database transaction: a whole fetched batch. Its analysis goes to the
# workers in jobs (analysis.JOB_MAILS) while the batch before it is stored.
COMMIT_EVERY = 100


@dataclass(frozen=True, slots=True)
class MailboxPlan:
    """What a pass needs to know about one mailbox."""

    name: str
    endpoint: ImapEndpoint
    folder: str = "INBOX"
    processed_folder: str | None = "Processed"
    quarantine_folder: str = "Quarantine"
    batch_size: int = 100
    commit_every: int = COMMIT_EVERY


@dataclass(slots=True)
class PassReport:
    """Counts of one pass, for logs, the CLI and metrics."""

    mailbox: str
    fetched: int = 0
    tickets: int = 0
    follow_ups: int = 0
    duplicates: int = 0
    quarantined: int = 0
    failed: int = 0  # left in the folder after a processing error, to be tried again
    acked: int = 0
    error: str | None = None
    analysis_wait: float = 0.0  # seconds spent waiting for worker processes' analysis
    analysed_here: int = 0  # mails the main process analysed itself, no worker having begun

    def count(self, outcome: Outcome) -> None:
        if outcome.quarantined:
            self.quarantined += 1
        elif outcome.kind == "duplicate":
            self.duplicates += 1
        elif outcome.kind == "ticket":
            self.tickets += 1
        else:
            self.follow_ups += 1


def _log_retry(state: RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("imap.connect_retry", attempt=state.attempt_number, error=str(exc))


_connect_with_retry = retry(
    retry=retry_if_exception_type(MailboxUnavailable),
    stop=stop_after_attempt(3),
    wait=wait_exponential_jitter(multiplier=0.5, max=5),
    before_sleep=_log_retry,
    reraise=True,
)


class MailboxPoller:
    """Works one mailbox: keeps its connection between passes, reconnects when it drops."""

    def __init__(self, plan: MailboxPlan, ingestor: Ingestor, db: Database, clock: Clock,
                 connect: Callable[[ImapEndpoint], ImapConnection] = ImapConnection) -> None:
        self.plan = plan
        self.ingestor = ingestor
        self.db = db
        self.clock = clock
        self._connect = connect
        self._conn: ImapConnection | None = None
        self._stop: Callable[[], bool] = _never
        self._highest_seen = 0  # the highest UID in the folder when the last pass searched
        self._failures: dict[tuple[int, int], int] = {}  # (uidvalidity, uid) → failed passes
        # Told of each message once its transaction has committed, and after each commit.
        self.on_stored: Callable[[Outcome, datetime | None], None] | None = None
        self.on_commit: Callable[[], None] | None = None

    def supports_idle(self) -> bool:
        """Whether the server offers IDLE, from the capabilities of the open connection."""
        if self._conn is None:
            raise MailboxUnavailable("not connected")
        return self._conn.has("IDLE")

    def wait_for_mail(self, seconds: float, stop: Callable[[], bool]) -> bool:
        """IDLE on the folder of the last pass for up to `seconds`; True when mail arrived.

        Mail that arrived while the pass ran is found by a search first; news of mail after
        that search comes with IDLE's start or during it, so nothing waits for the renewal.
        """
        if self._conn is None:
            raise MailboxUnavailable("not connected")
        try:
            self._conn.forget_announcements()
            waiting = self._conn.uids_after(self._highest_seen)
            if waiting:
                log.debug("mailbox.arrived_during_pass", mailbox=self.plan.name, uids=waiting)
                return True
            arrived = self._conn.idle_wait(seconds, stop)
            log.debug("mailbox.idle_ended", mailbox=self.plan.name, arrived=arrived,
                      after_uid=self._highest_seen)
            return arrived
        except MailboxUnavailable:
            self.close()
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def run_pass(self, stop: Callable[[], bool] | None = None) -> PassReport:
        """Drain the folder once. Raises MailboxUnavailable or TemporaryFailure on trouble.

        `stop` is asked between messages; when it says yes, the pass ends after acking what
        has been committed.
        """
        report = PassReport(self.plan.name)
        self._stop = stop or _never
        try:
            conn = self._connection()
            self._drain(conn, report)
        except (MailboxUnavailable, TemporaryFailure) as exc:
            report.error = str(exc)
            self._record_poll(error=report.error)
            if isinstance(exc, MailboxUnavailable):
                self.close()
            raise
        self._record_poll(error=None)
        log.info("mailbox.pass", mailbox=self.plan.name, fetched=report.fetched,
                 tickets=report.tickets, follow_ups=report.follow_ups,
                 duplicates=report.duplicates,
                 quarantined=report.quarantined, failed=report.failed,
                 analysis_wait_s=round(report.analysis_wait, 3),
                 analysed_here=report.analysed_here)
        return report

    def _connection(self) -> ImapConnection:
        if self._conn is not None:
            try:
                self._conn.noop()
                return self._conn
            except MailboxUnavailable:
                self.close()
        self._conn = _connect_with_retry(self._open)()
        return self._conn

    def _open(self) -> ImapConnection:
        conn = self._connect(self.plan.endpoint)
        conn.open()
        try:
            for folder in (self.plan.processed_folder, self.plan.quarantine_folder):
                if folder:
                    conn.ensure_folder(folder)
        except MailboxUnavailable:
            conn.close()
            raise
        return conn

    def _drain(self, conn: ImapConnection, report: PassReport) -> None:
        plan = self.plan
        uidvalidity = conn.select(plan.folder)
        last_uid = self._check_uidvalidity(uidvalidity)
        keyword = None if plan.processed_folder else PROCESSED_KEYWORD
        failing = [uid for validity, uid in self._failures if validity == uidvalidity]
        if failing:  # later messages moved last_uid past them
            last_uid = min(last_uid, min(failing) - 1)
        uids = conn.pending_uids(after_uid=last_uid, keyword=keyword)
        if self._failures:  # forget messages since removed from the folder, or renumbered
            pending = set(uids)
            self._failures = {key: tries for key, tries in self._failures.items()
                              if key[0] == uidvalidity and key[1] in pending}
        self._highest_seen = max([conn.uid_next - 1, *uids])
        if not uids:
            return
        parallel = self.ingestor.parallel(len(uids))
        if parallel:  # the workers start while the first batch is fetched
            self.ingestor.workers_ready()
        ahead: _FetchedBatch | None = None
        with _ServerSide(conn, _batches(conn, uids, plan.batch_size), self._ack,
                         report) as server:
            while not self._stop():
                fetched = server.next()
                if fetched is None:
                    break
                report.fetched += len(fetched)
                # This batch is analysed (in a worker, for a backlog) while the one before is
                # stored, the one after fetched, and the one before that acked.
                current = self._prepare(fetched, uidvalidity, parallel)
                server.start()
                if ahead is not None:
                    self._ingest_batch(ahead, report, server.ack)
                ahead = current
            if ahead is not None:
                self._ingest_batch(ahead, report, server.ack)

    def _prepare(self, fetched: list[FetchedMessage], uidvalidity: int,
                 parallel: bool) -> _FetchedBatch:
        batch = _FetchedBatch(uidvalidity)
        items: list[Incoming] = []
        for message in fetched:
            item = Incoming(message.raw,
                            f"imap:{self.plan.name}/{self.plan.folder};uid={message.uid}",
                            _advance(self.plan.name, uidvalidity, message.uid))
            batch.messages[id(item)] = message
            items.append(item)
        # Until the workers have started, this process analyses the chunks itself.
        to_workers = parallel and self.ingestor.workers_ready()
        batch.chunks = [(chunk, self.ingestor.prepare(chunk, parallel=to_workers))
                        for chunk in _chunks(items, self.plan.commit_every)]
        return batch

    def _ingest_batch(self, batch: _FetchedBatch, report: PassReport,
                      ack: Callable[[list[int], list[int]], None]) -> None:
        """Store a fetched batch, sharing commits; ack exactly what has been committed.

        `ack` is given the UIDs to file as processed and as quarantined once every
        transaction holding them has committed.
        """
        processed: list[int] = []
        quarantined: list[int] = []

        def stored(item: Incoming, outcome: Outcome) -> None:
            report.count(outcome)
            message = batch.messages[id(item)]
            (quarantined if outcome.quarantined else processed).append(message.uid)
            if self.on_stored is not None:
                self.on_stored(outcome, message.internal_date)

        def failed(item: Incoming, exc: Exception) -> None:
            message = batch.messages[id(item)]
            outcome = self._processing_failed(item, message.uid, batch.uidvalidity, exc)
            if outcome is None:
                report.failed += 1
            else:
                stored(item, outcome)

        try:
            for chunk, prepared in batch.chunks:
                if self._stop():
                    break
                self.ingestor.ingest_many(chunk, mailbox=self.plan.name, stored=stored,
                                          failed=failed, prepared=prepared)
                report.analysis_wait += prepared.waited
                report.analysed_here += prepared.analysed_here
                if self.on_commit is not None:
                    self.on_commit()
        finally:
            ack(processed, quarantined)

    def _processing_failed(self, item: Incoming, uid: int, uidvalidity: int,
                           exc: Exception) -> Outcome | None:
        """Count a failed try; the last one quarantines the message (None: try again later)."""
        key = (uidvalidity, uid)
        tries = self._failures.get(key, 0) + 1
        log.error("message.processing_failed", mailbox=self.plan.name, uid=uid,
                  source=item.source, attempt=tries, of=PROCESSING_TRIES, error=repr(exc),
                  exc_info=exc)
        if tries < PROCESSING_TRIES:
            self._failures[key] = tries
            return None
        outcome = self.ingestor.quarantine(
            item, f"processing failed {tries} times: {type(exc).__name__}: {exc}",
            mailbox=self.plan.name)
        self._failures.pop(key, None)
        return outcome

    @property
    def failing(self) -> int:
        """Messages left in the folder after a processing error, waiting for another try."""
        return len(self._failures)

    def _ack(self, conn: ImapConnection, processed: list[int], quarantined: list[int]) -> int:
        """File committed messages away from the folder; returns how many."""
        plan = self.plan
        if plan.processed_folder:
            conn.move(processed, plan.processed_folder)
        else:
            conn.flag(processed, PROCESSED_KEYWORD)
        conn.move(quarantined, plan.quarantine_folder)
        return len(processed) + len(quarantined)

    def _check_uidvalidity(self, uidvalidity: int) -> int:
        """The last UID already committed, reset to 0 when the folder's UIDVALIDITY changed."""
        with self.db.transaction() as session:
            state = session.get(MailboxState, self.plan.name)
            if state is None:
                state = MailboxState(name=self.plan.name, uidvalidity=uidvalidity, last_uid=0)
            elif state.uidvalidity != uidvalidity:
                log.warning("mailbox.uidvalidity_changed", mailbox=self.plan.name,
                            old=state.uidvalidity, new=uidvalidity,
                            detail="rescanning; stored messages are recognised, not duplicated")
                state.uidvalidity, state.last_uid = uidvalidity, 0
            session.add(state)
            return state.last_uid

    def _record_poll(self, *, error: str | None) -> None:
        try:
            with self.db.transaction() as session:
                state = session.get(MailboxState, self.plan.name) or MailboxState(
                    name=self.plan.name)
                if error is None:
                    state.last_poll_at = self.clock.now()
                    state.stall_alerted_at = None
                state.last_error = error
                session.add(state)
        except Exception as exc:
            log.error("mailbox.state_not_saved", mailbox=self.plan.name, error=str(exc))


@dataclass(slots=True)
class _FetchedBatch:
    """Messages fetched together, in chunks that share a transaction, their analysis begun."""

    uidvalidity: int
    messages: dict[int, FetchedMessage] = field(default_factory=dict)  # id(Incoming) → mail
    chunks: list[tuple[list[Incoming], PendingAnalysis]] = field(default_factory=list)


Acker = Callable[[ImapConnection, list[int], list[int]], int]


class _ServerSide:
    """A pass's IMAP commands, sent from a thread of their own, one at a time, in order.

    The next batch is fetched while the current one is stored, and a committed batch is
    acked while the next one is stored: the pass waits for the server only when it needs a
    batch that has not arrived. Every command of the pass (the sizes of the pending mails,
    the fetches, the acks) goes through this thread, so the connection carries one command
    at a time. A failed command's error is raised by the `next` after it, or on leaving the
    block; what was acked before it is counted in the report.
    """

    def __init__(self, conn: ImapConnection, batches: Iterator[list[int]], acker: Acker,
                 report: PassReport) -> None:
        self._conn = conn
        self._batches = batches  # asks the server for sizes as it goes
        self._acker = acker
        self._report = report
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="imap")
        self._fetching: Future[list[FetchedMessage] | None] | None = None
        self._acks: list[Future[int]] = []
        self._done = False

    def __enter__(self) -> _ServerSide:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, *_: object) -> None:
        try:
            if self._fetching is not None:
                wait([self._fetching])
            self._settle(wait_for_all=True, raising=exc_type is None)
        finally:
            self._thread.shutdown(wait=True)

    def start(self) -> None:
        """Begin fetching the next batch, if there is one and no fetch is under way."""
        if self._fetching is None and not self._done:
            self._fetching = self._thread.submit(self._fetch_next)

    def next(self) -> list[FetchedMessage] | None:
        """The next batch's messages; None when every batch has been fetched."""
        self.start()
        fetching, self._fetching = self._fetching, None
        fetched = None if fetching is None else fetching.result()
        self._done = fetched is None
        self._settle(wait_for_all=False, raising=True)
        return fetched

    def ack(self, processed: list[int], quarantined: list[int]) -> None:
        """File these committed messages away, after the commands already asked for."""
        if processed or quarantined:
            self._acks.append(self._thread.submit(self._acker, self._conn, processed,
                                                  quarantined))

    def _fetch_next(self) -> list[FetchedMessage] | None:
        uids = next(self._batches, None)
        return None if uids is None else self._conn.fetch(uids)

    def _settle(self, *, wait_for_all: bool, raising: bool) -> None:
        """Count the acks that are over; raise the first one's error if `raising`."""
        if wait_for_all:
            wait(self._acks)
        error: BaseException | None = None
        while self._acks and self._acks[0].done():
            finished = self._acks.pop(0)
            failure = finished.exception()
            if failure is None:
                self._report.acked += finished.result()
            elif error is None:
                error = failure
        if error is not None and raising:
            raise error


def _batches(conn: ImapConnection, uids: list[int], batch_size: int) -> Iterator[list[int]]:
    """The pending UIDs in fetch batches, their sizes asked a window at a time as they come.

    A backlog's sizes are never all held at once: memory stays the same for 10,000 mails
    and for 100,000.
    """
    window = imap.MAX_UIDS_PER_COMMAND
    for start in range(0, len(uids), window):
        part = uids[start:start + window]
        yield from batches_by_size(part, conn.sizes(part), max_count=batch_size)


def _chunks(items: list[Incoming], size: int) -> list[list[Incoming]]:
    return [items[start:start + size] for start in range(0, len(items), max(1, size))]


def _never() -> bool:
    return False


def _advance(name: str, uidvalidity: int, uid: int) -> Callable[[Session], None]:
    def advance(session: Session) -> None:
        writes.advance_mailbox(session, name, uidvalidity, uid)
    return advance
