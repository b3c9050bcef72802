"""Polling a real Dovecot mailbox: tickets, acks after commit, UIDVALIDITY, failures."""

from __future__ import annotations

import logging
import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlmodel import select

from mailbot.app import open_app
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.identify import CustomerDirectory, compile_patterns
from mailbot.ingest import Ingestor
from mailbot.mail import imap
from mailbot.mail.imap import (
    PROCESSED_KEYWORD,
    ImapConnection,
    ImapEndpoint,
    MailboxUnavailable,
)
from mailbot.pipeline import DefaultSeverity, IngestPolicy
from mailbot.poller import MailboxPlan, MailboxPoller
from mailbot.store import Database
from mailbot.store.models import MailboxState, QuarantineEntry, Ticket
from mailbot.testing import DovecotServer

NOW = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)


def customer_mail(n: int) -> bytes:
    return (f"From: customer{n}@example.org\r\nTo: support@example.test\r\n"
            f"Subject: problem number {n}\r\nMessage-ID: <p{n}@example.org>\r\n"
            f"Date: Tue, 24 Nov 2026 09:00:00 +0000\r\n\r\nCustomer ID: RC-{10000 + n}\r\n"
            ).encode()


def poller_for(dovecot: DovecotServer, db: Database, *, processed: str | None = "Processed",
               port: int | None = None) -> MailboxPoller:
    endpoint = ImapEndpoint(host=dovecot.host, port=port or dovecot.port, security="none",
                            username=dovecot.username, password=dovecot.password, timeout=5)
    plan = MailboxPlan(name="support", endpoint=endpoint, processed_folder=processed,
                       batch_size=2)
    policy = IngestPolicy(10_000_000, compile_patterns([r"customer id:\s*([A-Z]+-\d+)"]))
    ingestor = Ingestor(db, policy, DefaultSeverity("P3"), FrozenClock(NOW),
                        CustomerDirectory())
    return MailboxPoller(plan, ingestor, db, FrozenClock(NOW))


def ticket_subjects(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(t.subject for t in session.exec(select(Ticket)).all())


def test_pass_turns_each_mail_into_a_ticket_and_moves_it(dovecot: DovecotServer,
                                                        db: Database) -> None:
    """Every mail becomes a ticket and lands in Processed; the inbox is empty after."""
    for n in range(5):
        dovecot.append("INBOX", customer_mail(n))
    poller = poller_for(dovecot, db)
    report = poller.run_pass()
    poller.close()
    assert (report.fetched, report.tickets) == (5, 5)
    assert ticket_subjects(db) == [f"problem number {n}" for n in range(5)]
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 5)


def test_unparseable_mail_is_moved_to_the_quarantine_folder(dovecot: DovecotServer,
                                                            db: Database) -> None:
    dovecot.append("INBOX", b"\x00\x01\x02\x03 binary junk")
    dovecot.append("INBOX", customer_mail(1))
    poller = poller_for(dovecot, db)
    report = poller.run_pass()
    poller.close()
    assert (report.tickets, report.quarantined) == (1, 1)
    assert (dovecot.count("Processed"), dovecot.count("Quarantine")) == (1, 1)
    with db.session() as session:
        assert session.exec(select(QuarantineEntry)).one().source.startswith("imap:support/")


def test_second_pass_finds_nothing_new(dovecot: DovecotServer, db: Database) -> None:
    dovecot.append("INBOX", customer_mail(1))
    poller = poller_for(dovecot, db)
    poller.run_pass()
    report = poller.run_pass()
    poller.close()
    assert report.fetched == 0 and len(ticket_subjects(db)) == 1


def test_mail_committed_but_never_moved_is_moved_without_a_second_ticket(
        dovecot: DovecotServer, db: Database) -> None:
    """The crash window between commit and move: the next pass only acks it."""
    raw = customer_mail(7)
    dovecot.append("INBOX", raw)
    poller = poller_for(dovecot, db)
    poller.ingestor.ingest(raw, source="earlier run")
    report = poller.run_pass()
    poller.close()
    assert (report.duplicates, report.tickets) == (1, 0)
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 1)
    assert len(ticket_subjects(db)) == 1


def test_uidvalidity_change_rescans_without_duplicating(dovecot: DovecotServer,
                                                         db: Database) -> None:
    """A rebuilt mailbox (new UIDVALIDITY, flags lost) is read again; nothing is doubled."""
    for n in range(3):
        dovecot.append("INBOX", customer_mail(n))
    poller = poller_for(dovecot, db, processed=None)
    poller.run_pass()
    client = dovecot.client()
    try:
        client.select_folder("INBOX")
        client.remove_flags(client.search(["ALL"]), [PROCESSED_KEYWORD])
    finally:
        client.logout()
    with db.transaction() as session:
        state = session.get(MailboxState, "support")
        assert state is not None and state.last_uid == 3
        state.uidvalidity = 1
        session.add(state)
    report = poller.run_pass()
    poller.close()
    assert (report.fetched, report.duplicates, report.tickets) == (3, 3, 0)
    assert len(ticket_subjects(db)) == 3


def test_flag_mode_marks_messages_and_fetches_only_newer_uids(dovecot: DovecotServer,
                                                              db: Database) -> None:
    """Without a processed folder, messages stay, get flagged, and are not fetched again."""
    dovecot.append("INBOX", customer_mail(1))
    poller = poller_for(dovecot, db, processed=None)
    poller.run_pass()
    dovecot.append("INBOX", customer_mail(2))
    report = poller.run_pass()
    poller.close()
    assert (report.fetched, report.tickets) == (1, 1)
    client = dovecot.client()
    try:
        client.select_folder("INBOX")
        flagged = client.search(["KEYWORD", PROCESSED_KEYWORD])
    finally:
        client.logout()
    assert len(flagged) == 2 and dovecot.count("INBOX") == 2


def test_unreachable_server_raises_and_records_the_error(dovecot: DovecotServer,
                                                          db: Database) -> None:
    dovecot.stop()
    poller = poller_for(dovecot, db)
    with pytest.raises(MailboxUnavailable):
        poller.run_pass()
    with db.session() as session:
        state = session.get(MailboxState, "support")
        assert state is not None and state.last_error and state.last_poll_at is None


def test_ingestion_resumes_after_the_server_restarts(dovecot: DovecotServer,
                                                     db: Database) -> None:
    dovecot.append("INBOX", customer_mail(1))
    poller = poller_for(dovecot, db)
    poller.run_pass()
    dovecot.restart()
    dovecot.append("INBOX", customer_mail(2))
    report = poller.run_pass()
    poller.close()
    assert report.tickets == 1 and len(ticket_subjects(db)) == 2


def test_sizes_of_a_backlog_come_in_bounded_commands(
        dovecot: DovecotServer, monkeypatch: pytest.MonkeyPatch) -> None:
    """Asked in commands of two UIDs each, the sizes of five messages all come back."""
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(5)])
    monkeypatch.setattr(imap, "MAX_UIDS_PER_COMMAND", 2)
    conn = ImapConnection(ImapEndpoint(host=dovecot.host, port=dovecot.port, security="none",
                                       username=dovecot.username, password=dovecot.password,
                                       timeout=5))
    conn.open()
    try:
        conn.select("INBOX")
        uids = conn.pending_uids(after_uid=0, keyword=None)
        sizes = conn.sizes(uids)
    finally:
        conn.close()
    assert sorted(sizes) == uids and len(uids) == 5
    assert all(size == len(customer_mail(0)) for size in sizes.values())


def test_a_backlog_asked_for_its_sizes_a_window_at_a_time_is_drained_whole(
        dovecot: DovecotServer, db: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    """With sizes asked two UIDs at a time, a pass still tickets and acks all seven mails."""
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(7)])
    monkeypatch.setattr(imap, "MAX_UIDS_PER_COMMAND", 2)
    poller = poller_for(dovecot, db)
    report = poller.run_pass()
    poller.close()
    assert (report.fetched, report.tickets, report.acked) == (7, 7, 7)
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 7)


class OneCommandAtATime(ImapConnection):
    """A real connection that records overlapping commands; its FETCHes are slow and the
    fifth fails (the first asks for the sizes, the next ones for batches)."""

    def __init__(self, endpoint: ImapEndpoint) -> None:
        super().__init__(endpoint)
        self.busy = threading.Lock()
        self.overlaps = 0
        self.fetches = 0

    def _call(self, fn: object, *args: object) -> object:
        if not self.busy.acquire(blocking=False):
            self.overlaps += 1
            self.busy.acquire()
        try:
            if getattr(fn, "__name__", "") == "fetch":
                self.fetches += 1
                if self.fetches == 5:
                    raise MailboxUnavailable("fetch: connection reset by peer")
                time.sleep(0.2)  # slow enough that an ack not waiting for it would overlap
            return super()._call(fn, *args)
        finally:
            self.busy.release()


def test_a_fetch_failing_while_the_batch_before_is_stored_loses_nothing(
        dovecot: DovecotServer, db: Database) -> None:
    """The next batch is fetched while one is stored. When the fourth batch's fetch fails,
    the second batch, stored meanwhile, is still acked; the third, fetched but not stored,
    stays in the folder; the pass reports the failure and the next pass takes the rest.
    No two commands were ever on the connection at once."""
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(7)])
    poller = poller_for(dovecot, db)
    connections: list[OneCommandAtATime] = []

    def connect(endpoint: ImapEndpoint) -> ImapConnection:
        connections.append(OneCommandAtATime(endpoint))
        return connections[-1]

    poller._connect = connect
    with pytest.raises(MailboxUnavailable, match="connection reset"):
        poller.run_pass()
    assert ticket_subjects(db) == [f"problem number {n}" for n in range(4)]
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (3, 4)
    report = poller_for(dovecot, db).run_pass()
    assert (report.fetched, report.tickets) == (3, 3)
    assert ticket_subjects(db) == sorted(f"problem number {n}" for n in range(7))
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 7)
    assert [c.overlaps for c in connections] == [0]


def test_idle_sees_mail_that_arrived_in_the_instant_before_it_began(
        dovecot: DovecotServer, db: Database) -> None:
    """Dovecot sends that news right behind IDLE's continuation; it must not wait 30 s."""
    poller = poller_for(dovecot, db)
    try:
        poller.run_pass()
        assert poller.supports_idle()
        for n in range(3):
            conn = poller._conn
            assert conn is not None
            conn.forget_announcements()
            assert conn.uids_after(n) == []
            dovecot.append("INBOX", customer_mail(n))
            started = time.monotonic()
            assert conn.idle_wait(20, lambda: False) is True
            assert time.monotonic() - started < 5
    finally:
        poller.close()


def test_wait_for_mail_wakes_on_arrival_times_out_and_stops_on_request(
        dovecot: DovecotServer, db: Database) -> None:
    poller = poller_for(dovecot, db)
    try:
        poller.run_pass()
        started = time.monotonic()
        assert poller.wait_for_mail(1.5, lambda: False) is False
        assert 1.4 < time.monotonic() - started < 5
        assert poller.wait_for_mail(30, lambda: True) is False  # asked to stop
        dovecot.append("INBOX", customer_mail(1))
        assert poller.wait_for_mail(30, lambda: False) is True  # found by the search first
        poller.run_pass()
        appender = threading.Timer(0.5, dovecot.append, ("INBOX", customer_mail(2)))
        appender.start()
        started = time.monotonic()
        assert poller.wait_for_mail(30, lambda: False) is True  # announced during IDLE
        assert time.monotonic() - started < 10
        appender.join()
    finally:
        poller.close()


def test_idle_raises_when_the_server_goes_away(dovecot: DovecotServer, db: Database) -> None:
    poller = poller_for(dovecot, db)
    poller.run_pass()
    stopper = threading.Timer(0.5, dovecot.stop)
    stopper.start()
    with pytest.raises(MailboxUnavailable):
        poller.wait_for_mail(30, lambda: False)
    stopper.join()
    assert poller._conn is None  # closed, so the next pass reconnects


@pytest.mark.parametrize("processed", ["Processed", None])
def test_a_message_failing_three_passes_is_quarantined_the_rest_flow(
        dovecot: DovecotServer, tmp_path: Path, processed: str | None) -> None:
    """A template that breaks on one subject: the others are ticketed at once, that one is
    left in place for two more passes (in flag mode too, though later UIDs went past it),
    then quarantined with the reason."""
    templates = tmp_path / "templates"
    templates.mkdir()
    (templates / "auto_reply.subject.j2").write_text(
        "{% if ticket.subject == 'problem number 2' %}{{ ticket.nothing }}{% endif %}Re")
    settings = settings_from_mapping({
        "mailboxes": [{"name": "support", "processed_folder": processed, "imap": {
            "host": dovecot.host, "port": dovecot.port, "security": "none",
            "username": dovecot.username, "password": dovecot.password}}],
        "smtp": {"transport": "file", "dir": "out", "from": "support@example.test"},
        "templates": {"path": str(templates)}, "storage": {"dir": "state"}}, tmp_path)
    app = open_app(settings, FrozenClock(NOW))
    for n in (1, 2, 3):
        dovecot.append("INBOX", customer_mail(n))
    (poller,) = app.pollers()
    reports = [poller.run_pass() for _ in range(3)]
    poller.close()
    assert [(r.tickets, r.failed, r.quarantined) for r in reports] == [
        (2, 1, 0), (0, 1, 0), (0, 0, 1)]
    assert poller.failing == 0
    assert ticket_subjects(app.db) == ["problem number 1", "problem number 3"]
    with app.db.session() as session:
        (entry,) = session.exec(select(QuarantineEntry)).all()
    assert entry.reason.startswith("processing failed 3 times: TemplateProblem: ")
    assert dovecot.count("Quarantine") == 1
    assert dovecot.count("INBOX") == (0 if processed else 2)


@pytest.mark.parametrize("level", [logging.INFO, logging.DEBUG])
def test_imaplibs_trace_is_made_only_when_its_logger_writes_it(
        dovecot: DovecotServer, caplog: pytest.LogCaptureFixture, level: int) -> None:
    dovecot.append_many("INBOX", [customer_mail(1)])
    caplog.set_level(level, logger=imap.IMAPLIB_TRACE_LOGGER)
    conn = ImapConnection(ImapEndpoint(host=dovecot.host, port=dovecot.port, security="none",
                                       username=dovecot.username, password=dovecot.password,
                                       timeout=5))
    conn.open()
    try:
        tracing = conn.client._imap.debug  # imaplib formats its trace from this level on
        conn.select("INBOX")
        fetched = conn.fetch(conn.pending_uids(after_uid=0, keyword=None))
    finally:
        conn.close()
    assert [m.raw for m in fetched] == [customer_mail(1)]
    traced = [r for r in caplog.records if r.name == imap.IMAPLIB_TRACE_LOGGER]
    if level == logging.DEBUG:
        assert tracing > 0 and any("FETCH" in r.getMessage() for r in traced)
    else:
        assert tracing == 0 and traced == []
