"""Auto-replies: exactly one useful answer to a customer, none to anything automatic."""

from __future__ import annotations

import dataclasses
import email
from datetime import UTC, datetime, timedelta
from email import policy
from pathlib import Path
from typing import Any

import pytest
from conftest import CORPUS, sqlite_plans
from sqlalchemy import event as sqlalchemy_event
from sqlmodel import select

from mailbot.app import App
from mailbot.autoreply import _AUTO_REPLIES_SINCE, _RECENT_AUTO_REPLIES
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.ingest import Incoming, Ingestor
from mailbot.parsing import Address, MessageParseError, parse_message
from mailbot.pipeline import DefaultSeverity
from mailbot.replies.loops import (
    Sender,
    automatic_reason,
    no_reply_reason,
    no_reply_reason_given,
)
from mailbot.replies.render import ReplyRenderer, TemplateProblem
from mailbot.store import Database
from mailbot.store.models import Event, OutboxMail

NOW = datetime(2026, 11, 20, 12, 30, tzinfo=UTC)  # Friday 18:00 in Colombo
COLOMBO = {"timezone": "Asia/Colombo",
           "hours": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
           "holidays": {"country": "LK"}}
SETTINGS = {
    "smtp": {"transport": "file", "dir": "out", "from": "Example Support <support@example.com>"},
    "agents": {"domains": ["support.example.com"]},
    "sla": {"calendars": {"colombo": COLOMBO}, "policies": {"standard": {
        "calendar": "colombo", "targets": {
            "P3": {"response": "3 working days", "resolution": "7 working days"}}}}},
    "notices": [{"id": "maint", "from": "2026-11-20T00:00:00+05:30",
                 "until": "2026-11-21T00:00:00+05:30", "text": "Planned maintenance tonight."}],
}


def ingestor(db: Database, clock: FrozenClock | None = None) -> Ingestor:
    settings = settings_from_mapping(SETTINGS, Path("/tmp"))
    return App(settings, db, clock or FrozenClock(NOW), DefaultSeverity("P3")).ingestor()


def mail(headers: str = "", sender: str = "Jane Doe <jane@customer.example>",
         n: int = 1, date: str = "Fri, 20 Nov 2026 13:30:00 +0100") -> bytes:
    return (f"From: {sender}\r\nTo: support@example.com\r\nSubject: Printer offline\r\n"
            f"Date: {date}\r\nMessage-ID: <m{n}@customer.example>\r\n{headers}\r\n"
            "The printer does not print.\r\n").encode()


def outbox(db: Database) -> list[OutboxMail]:
    with db.session() as session:
        return list(session.exec(select(OutboxMail)).all())


def events(db: Database, kind: str) -> list[Event]:
    with db.session() as session:
        return [e for e in session.exec(select(Event)).all() if e.kind == kind]


def test_customer_mail_gets_one_auto_reply_with_everything_it_needs(db: Database) -> None:
    """Ticket number, severity, due in words, the customer's time, hours, notice, ID request."""
    ingestor(db).ingest(mail(), source="t")
    (row,) = outbox(db)
    assert (row.kind, row.recipients, row.status) == ("auto_reply", ["jane@customer.example"],
                                                       "queued")
    message = email.message_from_bytes(row.raw, policy=policy.default)
    assert message["Subject"] == "[#1] Printer offline"
    assert message["Auto-Submitted"] == "auto-replied"
    assert message["X-Auto-Response-Suppress"] == "All"
    assert message["In-Reply-To"] == "<m1@customer.example>"
    assert message["Message-ID"] == f"<{row.message_id}>"
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    assert "ticket #1" in text
    assert "P3 Minor (non-critical bug)" in text
    # Received Friday 18:00 in Colombo: the clock starts Monday 08:00, Tuesday is a holiday.
    assert ("within 3 working days — by Friday 27 November 2026, 08:00 Sri Lanka Time "
            "(UTC+05:30)") in text
    assert "That is Friday 27 November 2026, 03:30 UTC+01:00 in your time zone." in text
    assert "Monday to Friday 08:00–17:00 Sri Lanka Time (UTC+05:30)" in text
    assert "arrived outside these hours" in text
    assert "Planned maintenance tonight." in text
    assert "Customer ID" in text
    assert message.get_body(("html",)) is not None


@pytest.mark.parametrize(("headers", "sender"), [
    ("Auto-Submitted: auto-replied\r\n", "jane@customer.example"),
    ("Precedence: bulk\r\n", "jane@customer.example"),
    ("List-Id: <users.lists.example>\r\n", "jane@customer.example"),
    ("X-Auto-Response-Suppress: OOF, AutoReply\r\n", "jane@customer.example"),
    ("Return-Path: <>\r\n", "jane@customer.example"),
    ("Content-Type: multipart/report; report-type=delivery-status; boundary=x\r\n",
     "jane@customer.example"),
    ("", "MAILER-DAEMON@mx.customer.example"),
    ("", "no-reply@customer.example"),
    ("", "support@example.com"),
    ("", "agent@support.example.com"),
    ("X-Mailbot-Loop: mailbot\r\n", "jane@customer.example"),
])
def test_automatic_mail_gets_no_auto_reply_and_the_reason_is_recorded(
        db: Database, headers: str, sender: str) -> None:
    ingestor(db).ingest(mail(headers, sender), source="t")
    assert outbox(db) == []
    (suppressed,) = events(db, "auto_reply_suppressed")
    assert suppressed.detail["reason"]


def test_out_of_office_subject_gets_no_auto_reply(db: Database) -> None:
    raw = mail().replace(b"Subject: Printer offline", b"Subject: Automatic reply: Printer")
    ingestor(db).ingest(raw, source="t")
    assert outbox(db) == []


def test_a_sender_gets_at_most_five_auto_replies_an_hour(db: Database) -> None:
    clock = FrozenClock(NOW)
    engine = ingestor(db, clock)
    for n in range(7):
        engine.ingest(mail(n=n), source="t")
        clock.advance(timedelta(minutes=5))
    assert len(outbox(db)) == 5
    reasons = [e.detail["reason"] for e in events(db, "auto_reply_suppressed")]
    assert len(reasons) == 2 and reasons[0].startswith("rate limit")


def test_the_rate_limit_holds_across_transactions_and_within_one(db: Database) -> None:
    """Mails sharing a transaction read the sender's recent auto-replies once, and count
    the ones they queue themselves; an auto-reply over an hour old no longer counts."""
    clock = FrozenClock(NOW)
    engine = ingestor(db, clock)
    engine.ingest(mail(n=0), source="t")
    engine.ingest(mail(n=1, sender="Joe <joe@customer.example>"), source="t")
    clock.advance(timedelta(minutes=30))
    engine.ingest(mail(n=2), source="t")
    clock.advance(timedelta(minutes=31))  # the first of jane's is over an hour old now
    batch = [Incoming(mail(n=n, sender=sender), "t") for n, sender in enumerate(
        ["Jane Doe <jane@customer.example>"] * 6 + ["Joe <joe@customer.example>"] * 3, 10)]
    inserts: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        inserts.extend(["outbox"] if statement.startswith("INSERT INTO outbox") else [])

    sqlalchemy_event.listen(db.engine, "before_cursor_execute", record)
    try:
        engine.ingest_many(batch, stored=lambda *_: None)
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", record)
    assert inserts == ["outbox"]  # the transaction's seven auto-replies in one INSERT
    replies = [row.recipients for row in outbox(db)]
    assert replies.count(["jane@customer.example"]) == 1 + 5  # 5 within the last hour
    assert replies.count(["joe@customer.example"]) == 4


def test_active_notice_is_linked_to_the_ticket(db: Database) -> None:
    ingestor(db).ingest(mail(), source="t")
    assert [e.detail["notice"] for e in events(db, "notice_linked")] == ["maint"]


AUTOMATIC_FOLDERS = ("bounces", "autoreplies")


def automatic_corpus() -> list[Path]:
    files = [p for folder in AUTOMATIC_FOLDERS for p in sorted((CORPUS / folder).rglob("*"))
             if p.is_file() and p.suffix not in (".json", ".yml", ".md")]
    return files + sorted((CORPUS / "discourse").glob("auto_*"))


def test_no_bounce_or_auto_reply_of_the_corpus_gets_an_auto_reply() -> None:
    """Every DSN, out-of-office, list and no-reply mail is recognised as automatic."""
    files = automatic_corpus()
    assert len(files) > 350
    answered = []
    for path in files:
        try:
            message = parse_message(path.read_bytes())
        except MessageParseError:
            continue
        if no_reply_reason(message, Sender()) is None:
            answered.append(path.name)
    assert answered == []


def test_the_reason_given_the_automatic_one_is_the_reason_worked_out_whole() -> None:
    """The main process checks only the sender when the worker found no machine behind a
    mail, and gets the reason the whole list of checks gives, for every mail of the corpus
    sent by a customer, an agent or mailbot itself."""
    files = sorted(CORPUS.rglob("*.eml"))
    assert len(files) > 350
    people = (Sender(), Sender(agent_domains=("customer.example",)),
              Sender(own_addresses=("jane@customer.example",)))
    compared = 0
    for path in files:
        try:
            message = parse_message(path.read_bytes())
        except MessageParseError:
            continue
        for sender in (message.from_, Address("Jane", "jane@customer.example")):
            shown = dataclasses.replace(message, from_=sender)
            for who in people:
                assert no_reply_reason_given(shown, who, automatic_reason(shown)) == \
                    no_reply_reason(shown, who), path.name
                compared += 1
    assert compared > 2000


def test_a_template_failing_while_rendering_is_named_with_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "note.subject.j2").write_text("Ticket {{ ticket.number }}")
    (tmp_path / "note.txt.j2").write_text(
        "Hello\n{% if ticket.number > 1 %}{{ ticket.missing }}{% endif %}\n")
    renderer = ReplyRenderer(tmp_path)
    assert renderer.render_mail("note", {"ticket": {"number": 1}}).text == "Hello\n"
    with pytest.raises(TemplateProblem) as caught:
        renderer.render_mail("note", {"ticket": {"number": 2}})
    assert str(caught.value) == (f"{tmp_path / 'note.txt.j2'}:2: "
                                 "'dict object' has no attribute 'missing'")


def test_templates_are_read_once_and_again_by_the_renderer_a_reload_builds(
        tmp_path: Path) -> None:
    (tmp_path / "note.subject.j2").write_text("Ticket {{ ticket.number }}")
    (tmp_path / "note.txt.j2").write_text("Old words\n")
    renderer = ReplyRenderer(tmp_path)
    assert renderer.render_mail("note", {"ticket": {"number": 1}}).text == "Old words\n"
    (tmp_path / "note.txt.j2").write_text("New words\n")
    assert renderer.render_mail("note", {"ticket": {"number": 1}}).text == "Old words\n"
    assert ReplyRenderer(tmp_path).render_mail("note", {"ticket": {"number": 1}}).text == \
        "New words\n"


def test_the_rate_limit_reads_only_the_requesters_last_hour(tmp_path: Path) -> None:
    """Its queries find a requester's tickets by creation time and read the outbox from an
    index alone: what they cost does not grow with the requester's history."""
    database = Database(f"sqlite:///{tmp_path / 'mailbot.db'}")
    database.upgrade()
    since = NOW - timedelta(hours=1)

    def run() -> None:
        with database.session() as session:
            session.execute(_RECENT_AUTO_REPLIES, {
                "requesters": ["a@x.example", "b@x.example"], "since": since}).all()
            session.execute(_AUTO_REPLIES_SINCE, {"requester": "a@x.example",
                                                  "since": since}).scalar_one()

    plans = sqlite_plans(database, run)
    assert len(plans) == 2
    for plan in plans:
        assert "ix_tickets_requester_created (requester=? AND created_at>?)" in plan, plan
        assert "COVERING INDEX ix_outbox_ticket_kind" in plan, plan
    database.dispose()
