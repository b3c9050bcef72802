"""Auto-replies through a real SMTP server: exactly one, on time, retried while it is down."""

from __future__ import annotations

import json
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import col, select

from mailbot.app import App, open_app
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.mail.smtp import SmtpTransport
from mailbot.outbox import FlushWhileWorking, OutboxSender, RetrySchedule
from mailbot.store.models import Event, OutboxMail
from mailbot.testing import DovecotServer, SmtpCapture

NOW = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)  # Monday 10:00 in Colombo


def make_app(tmp_path: Path, dovecot: DovecotServer | None, smtp: SmtpCapture) -> App:
    mailboxes = [{"name": "support", "imap": {
        "host": dovecot.host, "port": dovecot.port, "security": "none",
        "username": dovecot.username, "password": dovecot.password}}] if dovecot else []
    settings = settings_from_mapping({
        "mailboxes": mailboxes,
        "smtp": {"host": smtp.host, "port": smtp.port, "security": "none", "timeout": "5s",
                 "from": "Support <support@example.test>"},
        "storage": {"dir": "state"},
        "sla": {"calendars": {"colombo": {
            "timezone": "Asia/Colombo",
            "hours": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
            "holidays": {"country": "LK"}}},
            "policies": {"standard": {"calendar": "colombo", "targets": {
                "P3": {"response": "3 working days", "resolution": "7 working days"}}}}},
        "logging": {"format": "json", "level": "warning"}}, tmp_path)
    return open_app(settings, FrozenClock(NOW))


def sender_for(app: App, smtp: SmtpCapture) -> OutboxSender:
    return OutboxSender(app.db, SmtpTransport(smtp.host, smtp.port, "none", timeout=5),
                        app.clock, tries_per_flush=2, first_wait=0.01, max_wait=0.02)


def customer_mail(n: int = 1) -> bytes:
    return (f"From: Jane <jane{n}@customer.example>\r\nTo: support@example.test\r\n"
            f"Subject: Printer offline\r\nMessage-ID: <p{n}@customer.example>\r\n"
            "Date: Mon, 23 Nov 2026 10:00:00 +0530\r\n\r\nCustomer ID: RC-10442\r\n").encode()


def test_mail_in_dovecot_gets_exactly_one_auto_reply_with_the_right_due(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture) -> None:
    """IMAP in, ticket stored, one auto-reply out over SMTP, correct to the minute."""
    dovecot.append("INBOX", customer_mail())
    app = make_app(tmp_path, dovecot, smtp_server)
    (poller,) = app.pollers()
    poller.run_pass()
    poller.close()
    sender = app.outbox_sender()
    assert sender is not None and sender.flush().sent == 1
    assert sender.flush().sent == 0
    (received,) = smtp_server.wait_for(1)
    assert received.rcpt_tos == ("jane1@customer.example",)
    message = received.message
    assert message["Subject"] == "[#1] Printer offline"
    assert message["In-Reply-To"] == "<p1@customer.example>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    # Monday 10:00 + 3 working days, Tuesday 24 November being a holiday: Friday 10:00.
    assert ("within 3 working days — by Friday 27 November 2026, 10:00 Sri Lanka Time "
            "(UTC+05:30)") in text
    with app.db.session() as session:
        row = session.exec(select(OutboxMail)).one()
        assert (row.status, f"<{row.message_id}>") == ("sent", message["Message-ID"])


def test_smtp_down_then_up_delivers_the_reply_once_with_the_same_message_id(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    app.ingestor().ingest(customer_mail(), source="t")
    sender = sender_for(app, smtp_server)
    smtp_server.stop()
    report = sender.flush()
    assert (report.sent, report.deferred) == (0, 1)
    with app.db.session() as session:
        row = session.exec(select(OutboxMail)).one()
        assert row.status == "queued" and row.attempts == 2 and row.last_error
        message_id, retry_at = row.message_id, row.next_attempt_at
    smtp_server.start()
    assert sender.flush().sent == 0  # not due yet: the backoff is honoured
    assert isinstance(app.clock, FrozenClock)
    app.clock.set(retry_at)
    assert sender.flush().sent == 1
    (received,) = smtp_server.wait_for(1)
    assert received.message["Message-ID"] == f"<{message_id}>"
    assert sender.flush().sent == 0 and len(smtp_server.messages) == 1


def test_temporary_refusal_is_retried_later(tmp_path: Path, smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    app.ingestor().ingest(customer_mail(), source="t")
    smtp_server.fail_with = (451, "4.3.0 try again later")
    assert sender_for(app, smtp_server).flush().deferred == 1
    with app.db.session() as session:
        row = session.exec(select(OutboxMail)).one()
        assert row.status == "queued" and "451" in (row.last_error or "")


def test_permanent_refusal_is_recorded_on_the_ticket(tmp_path: Path,
                                                     smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    app.ingestor().ingest(customer_mail(), source="t")
    smtp_server.fail_with = (550, "5.1.1 no such user")
    assert sender_for(app, smtp_server).flush().failed == 1
    with app.db.session() as session:
        row = session.exec(select(OutboxMail)).one()
        assert row.status == "failed" and row.attempts == 1
        failed = [e for e in session.exec(select(Event)).all() if e.kind == "mail_failed"]
        assert failed[0].ticket_id == 1 and "550" in failed[0].detail["reason"]


def test_outbox_list_and_retry_from_the_command_line(tmp_path: Path,
                                                     smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    app.ingestor().ingest(customer_mail(), source="t")
    smtp_server.fail_with = (550, "5.1.1 no such user")
    sender_for(app, smtp_server).flush()
    config = tmp_path / "config.yaml"
    config.write_text(f"storage: {{dir: state}}\nsmtp: {{host: {smtp_server.host}, port: "
                      f"{smtp_server.port}, security: none, from: support@example.test}}\n"
                      "logging: {level: error}\n")

    def mailbot(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), *args],
                              capture_output=True, text=True, timeout=60, check=False)

    (row,) = json.loads(mailbot("outbox", "list", "--json").stdout)
    assert {"id", "kind", "ticket_number", "to", "subject", "message_id", "status",
            "attempts", "created_at", "sent_at"} <= set(row)
    assert (row["kind"], row["status"], row["to"]) == ("auto_reply", "failed",
                                                        ["jane1@customer.example"])
    smtp_server.fail_with = None
    assert mailbot("outbox", "retry", str(row["id"])).returncode == 0
    flushed = mailbot("poll")
    assert "outbox: 1 sent" in flushed.stdout, flushed.stderr
    (received,) = smtp_server.wait_for(1)
    assert received.message["Message-ID"] == f"<{row['message_id']}>"


def test_file_transport_writes_each_mail_once(tmp_path: Path) -> None:
    settings = settings_from_mapping({
        "smtp": {"transport": "file", "dir": "out", "from": "support@example.test"},
        "storage": {"dir": "state"}}, tmp_path)
    app = open_app(settings, FrozenClock(NOW))
    app.ingestor().ingest(customer_mail(), source="t")
    sender = app.outbox_sender()
    assert sender is not None and sender.flush().sent == 1
    (written,) = (tmp_path / "out").glob("*.eml")
    assert b"Auto-Submitted: auto-replied" in written.read_bytes()
    assert sender.flush().sent == 0


def test_retry_schedule_doubles_from_the_first_delay_up_to_the_cap() -> None:
    schedule = RetrySchedule(timedelta(seconds=30), timedelta(minutes=30), timedelta(days=2))
    waits = [schedule.next_attempt(NOW, NOW, deferrals) for deferrals in range(1, 10)]
    assert [(w - NOW).total_seconds() for w in waits if w is not None] == [
        30, 60, 120, 240, 480, 960, 1800, 1800, 1800]
    assert schedule.next_attempt(NOW, NOW + timedelta(days=2), 40) is None


@given(deferrals=st.integers(min_value=0, max_value=10_000),
       age=st.timedeltas(min_value=timedelta(0), max_value=timedelta(days=3)))
def test_retry_waits_stay_between_first_delay_and_cap(deferrals: int, age: timedelta) -> None:
    schedule = RetrySchedule(timedelta(seconds=5), timedelta(minutes=10), timedelta(days=2))
    now = NOW + age
    retry_at = schedule.next_attempt(NOW, now, deferrals)
    if age >= schedule.give_up_after:
        assert retry_at is None
    else:
        assert retry_at is not None
        assert schedule.first_delay <= retry_at - now <= schedule.max_delay
        later = schedule.next_attempt(NOW, now, deferrals + 1)
        assert later is not None and later >= retry_at


def test_a_mail_refused_for_longer_than_give_up_after_fails(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    app.ingestor().ingest(customer_mail(), source="t")
    smtp_server.fail_with = (451, "4.3.0 try again later")
    sender = sender_for(app, smtp_server)
    assert sender.flush().deferred == 1
    assert isinstance(app.clock, FrozenClock)
    app.clock.set(NOW + timedelta(days=2))
    assert sender.flush().failed == 1
    with app.db.session() as session:
        row = session.exec(select(OutboxMail)).one()
        assert row.status == "failed" and (row.last_error or "").startswith(
            "gave up after 4 attempts since 2026-11-23T04:30:00+00:00: ")


def test_a_dead_server_ends_the_flush_but_a_deferred_recipient_does_not(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, None, smtp_server)
    for n in (1, 2, 3):
        app.ingestor().ingest(customer_mail(n), source="t")
    sender = sender_for(app, smtp_server)
    smtp_server.fail_with = (451, "4.2.0 greylisted")
    report = sender.flush(stop_after_deferral=True)
    assert (report.deferred, report.server_down_until) == (3, None)
    smtp_server.fail_with = None
    smtp_server.stop()
    assert isinstance(app.clock, FrozenClock)
    app.clock.set(NOW + timedelta(hours=1))
    report = sender.flush(stop_after_deferral=True)
    assert report.deferred == 1 and report.server_down_until is not None
    with app.db.session() as session:
        due = session.exec(select(OutboxMail).where(
            col(OutboxMail.next_attempt_at) <= app.clock.now())).all()
        assert len(due) == 2  # left for when the server is back


def test_mail_sent_while_a_pass_runs_is_sent_once_and_the_rest_after_it(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture) -> None:
    """The sender beside a pass and the flush after it share the queue: each mail goes once."""
    for n in range(30):
        dovecot.append("INBOX", customer_mail(n))
    app = make_app(tmp_path, dovecot, smtp_server)
    sender = sender_for(app, smtp_server)
    (poller,) = app.pollers()
    with FlushWhileWorking(sender) as background:
        poller.on_commit = background.after_commit
        report = poller.run_pass()
    poller.close()
    after = sender.flush()
    assert report.tickets == 30
    assert background.sent + after.sent == 30
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == 30
    with app.db.session() as session:
        statuses = set(session.exec(select(OutboxMail.status)).all())
    assert statuses == {"sent"}


def test_beside_a_pass_on_sqlite_the_sender_only_sends_and_the_pass_marks(
        tmp_path: Path, smtp_server: SmtpCapture) -> None:
    """SQLite's one write lock stays with the pass: the sending thread never writes, and it
    sends at most MAX_UNMARKED mails before the pass marks them after its next commit."""
    app = make_app(tmp_path, None, smtp_server)
    cap = FlushWhileWorking.MAX_UNMARKED
    for n in range(cap + 15):
        app.ingestor().ingest(customer_mail(n), source="t")
    sender = sender_for(app, smtp_server)

    def statuses() -> list[str]:
        with app.db.session() as session:
            return list(session.exec(select(OutboxMail.status)).all())

    with FlushWhileWorking(sender) as background:
        assert background.marks_later
        background.wake()
        smtp_server.wait_for(cap)
        with pytest.raises(AssertionError):  # waits for the pass to mark them
            smtp_server.wait_for(cap + 1, timeout=0.5)
        assert statuses().count("queued") == cap + 15
        background.after_commit()  # as the pass does after each of its commits
        smtp_server.wait_for(cap + 15)
        assert statuses().count("sent") == cap
    assert background.sent == cap + 15 and statuses() == ["sent"] * (cap + 15)
    assert sender.flush().sent == 0
    ids = [m.message["Message-ID"] for m in smtp_server.messages]
    assert len(ids) == len(set(ids)) == cap + 15
    with app.db.session() as session:
        sent_events = session.exec(select(Event).where(col(Event.kind) == "mail_sent")).all()
    assert sorted(e.ticket_id for e in sent_events) == list(range(1, cap + 16))
