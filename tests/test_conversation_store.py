"""A ticket as a conversation, stored: follow-ups, agents' replies and commands, bounces."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from sqlalchemy import event as sqlalchemy_event
from sqlmodel import col, select
from structlog.testing import capture_logs

from mailbot.app import App
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.ingest import Incoming, Ingestor, Outcome, OutcomeKind
from mailbot.pipeline import DefaultSeverity
from mailbot.store import Database
from mailbot.store.models import Event, Message, OutboxMail, Ticket

MONDAY = datetime(2026, 11, 16, 4, 0, tzinfo=UTC)  # Monday 09:30 in Colombo
SETTINGS = {
    "smtp": {"transport": "file", "dir": "out", "from": "Example Support <support@example.com>"},
    "agents": {"domains": ["support.example.com"], "notify": ["team@support.example.com"]},
    "tickets": {"reopen_within": "7d"},
    "secret_key": "s" * 32,
}


class Desk:
    """A mailbot with a movable clock, and the mails it has queued so far."""

    def __init__(self, db: Database) -> None:
        self.db = db
        self.clock = FrozenClock(MONDAY)
        settings = settings_from_mapping(SETTINGS, Path("/tmp"))
        self.ingestor: Ingestor = App(settings, db, self.clock, DefaultSeverity("P3")).ingestor()
        self.seen = 0

    def new_mail(self) -> list[tuple[OutboxMail, EmailMessage]]:
        with self.db.session() as session:
            rows = list(session.exec(select(OutboxMail).where(col(OutboxMail.id) > self.seen)
                                     .order_by(col(OutboxMail.id))).all())
        if rows:
            self.seen = rows[-1].id or self.seen
        return [(r, email.message_from_bytes(r.raw, policy=policy.default))  # type: ignore[misc]
                for r in rows]

    def ticket(self, number: int) -> Ticket:
        with self.db.session() as session:
            found = session.get(Ticket, number)
            assert found is not None
            return found

    def events(self, number: int, kind: str) -> list[Event]:
        with self.db.session() as session:
            return list(session.exec(select(Event).where(
                col(Event.ticket_id) == number, col(Event.kind) == kind)).all())


def reply_to(original: EmailMessage, sender: str, text: str, n: int,
             headers: str = "") -> bytes:
    return (f"From: {sender}\r\nTo: support@example.com\r\n"
            f"Subject: Re: {original['Subject']}\r\nMessage-ID: <r{n}@mail.example>\r\n"
            f"In-Reply-To: {original['Message-ID']}\r\nReferences: {original['Message-ID']}\r\n"
            f"{headers}\r\n{text}\r\n\r\nOn Monday someone wrote:\r\n> quoted history\r\n"
            ).encode()


FIRST = (b"From: Jane Doe <jane@customer.example>\r\nTo: support@example.com\r\n"
         b"Subject: Printer offline\r\nMessage-ID: <m1@customer.example>\r\n\r\n"
         b"Customer ID: RC-10442\r\nThe printer does not print.\r\n")


def test_a_whole_conversation_by_mail(db: Database) -> None:
    desk = Desk(db)
    assert desk.ingestor.ingest(FIRST, source="t").kind is OutcomeKind.TICKET
    (auto_reply, _), (note_row, notification) = desk.new_mail()
    assert (auto_reply.kind, note_row.kind) == ("auto_reply", "notification")
    assert note_row.recipients == ["team@support.example.com"]
    assert notification["Subject"] == "[#1] P3 new ticket from RC-10442: Printer offline"
    assert "The printer does not print." in notification.get_content()
    assert notification["Auto-Submitted"] == "auto-generated"

    # An agent answers the notification with a command and text.
    desk.clock.advance(timedelta(hours=1))
    agent = reply_to(notification, "Ann Silva <ann@support.example.com>",
                     "#severity P1\nHello Jane, we are on it.", 1)
    assert desk.ingestor.ingest(agent, source="t").kind is OutcomeKind.AGENT_REPLY
    ticket = desk.ticket(1)
    assert ticket.severity == "P1" and ticket.first_response_at == desk.clock.now()
    assert ticket.response_due is not None and ticket.response_due > desk.clock.now()
    (relay_row, relay), (confirm_row, confirmation) = desk.new_mail()
    assert (relay_row.kind, relay_row.recipients) == ("relay", ["jane@customer.example"])
    body = relay.get_content()
    assert "Hello Jane, we are on it." in body
    assert "#severity" not in body and "quoted history" not in body
    assert relay["From"] == "Ann Silva via Example Support <support@example.com>"
    assert relay["In-Reply-To"] == "<m1@customer.example>"
    assert relay["Auto-Submitted"] is None
    assert (confirm_row.kind, confirm_row.recipients) == ("confirmation",
                                                           ["ann@support.example.com"])
    assert confirmation["Subject"] == "[#1] Done: #severity P1"
    assert "severity P3 → P1" in confirmation.get_content()

    # The customer answers the relay: same ticket, the agents are told, no second auto-reply.
    desk.clock.advance(timedelta(hours=1))
    answer = reply_to(relay, "Jane Doe <jane@customer.example>", "Thanks, it prints now.", 2)
    assert desk.ingestor.ingest(answer, source="t").kind is OutcomeKind.FOLLOW_UP
    ((told_row, told),) = desk.new_mail()
    assert told_row.kind == "notification"
    assert "Thanks, it prints now." in told.get_content()
    assert desk.ticket(1).message_count == 3

    # A forged agent reply: right From, subject tag, no signed reference: plain text only.
    forged = (b"From: ann@support.example.com\r\nTo: support@example.com\r\n"
              b"Subject: Re: [#1] Printer offline\r\nMessage-ID: <f1@evil.example>\r\n\r\n"
              b"#status resolved\r\n#severity P4\r\n")
    outcome = desk.ingestor.ingest(forged, source="t")
    assert (outcome.kind, outcome.ticket_number) == (OutcomeKind.FOLLOW_UP, 1)
    assert (desk.ticket(1).status, desk.ticket(1).severity) == ("open", "P1")
    assert [r.kind for r, _ in desk.new_mail()] == ["notification"]  # no relay, no confirmation

    # A bad command is refused with its reason; a note is not relayed.
    note = reply_to(notification, "ann@support.example.com", "#note\n#severity P9\nInternal.", 3)
    desk.ingestor.ingest(note, source="t")
    ((row, refusal),) = desk.new_mail()
    assert row.kind == "confirmation" and refusal["Subject"].startswith("[#1] Partly done")
    assert "#severity needs one of P1, P2, P3, P4, not 'P9'" in refusal.get_content()
    with db.session() as session:
        roles = session.exec(select(Message.role).order_by(col(Message.id))).all()
    assert roles == ["customer", "agent", "customer", "agent", "note"]


def test_waiting_pauses_the_resolution_clock_until_the_customer_answers(db: Database) -> None:
    desk = Desk(db)
    desk.ingestor.ingest(FIRST, source="t")
    _, (_, notification) = desk.new_mail()
    due_before = desk.ticket(1).resolution_due
    assert due_before is not None
    desk.ingestor.ingest(reply_to(notification, "ann@support.example.com",
                                  "#status waiting\nWhich model is it?", 1), source="t")
    assert desk.ticket(1).status == "waiting"
    relay = next(m for r, m in desk.new_mail() if r.kind == "relay")
    # Default calendar: Mon-Fri 09:00-17:00 UTC. Received Monday 04:00, so the 7 working days
    # run from Monday 09:00 to Wednesday 25 November 09:00. The wait lasts from Monday 04:00 to
    # Wednesday 04:00: two whole working days, so the due moves to Friday 27 November 09:00.
    desk.clock.advance(timedelta(days=2))
    desk.ingestor.ingest(reply_to(relay, "jane@customer.example", "Model X1.", 2), source="t")
    ticket = desk.ticket(1)
    assert ticket.status == "open" and ticket.waiting_since is None
    assert ticket.resolution_due is not None
    assert due_before == datetime(2026, 11, 25, 9, 0, tzinfo=UTC)
    assert ticket.resolution_due == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
    assert desk.events(1, "clock_resumed")


def test_a_reply_to_a_resolved_ticket_reopens_it_within_the_window(db: Database) -> None:
    desk = Desk(db)
    desk.ingestor.ingest(FIRST, source="t")
    _, (_, notification) = desk.new_mail()
    desk.ingestor.ingest(reply_to(notification, "ann@support.example.com",
                                  "#status resolved\nFixed: the driver was updated.", 1),
                         source="t")
    ticket = desk.ticket(1)
    assert ticket.status == "resolved" and ticket.resolved_at is not None
    relay = next(m for r, m in desk.new_mail() if r.kind == "relay")
    desk.clock.advance(timedelta(days=3))
    desk.ingestor.ingest(reply_to(relay, "jane@customer.example", "It broke again.", 2),
                         source="t")
    assert (desk.ticket(1).status, desk.ticket(1).resolved_at) == ("open", None)
    assert desk.events(1, "reopened")
    assert not [r for r, _ in desk.new_mail() if r.kind == "auto_reply"]


def test_a_reply_long_after_resolution_opens_a_linked_ticket(db: Database) -> None:
    desk = Desk(db)
    desk.ingestor.ingest(FIRST, source="t")
    _, (_, notification) = desk.new_mail()
    desk.ingestor.ingest(reply_to(notification, "ann@support.example.com",
                                  "#status resolved\nDone.", 1), source="t")
    relay = next(m for r, m in desk.new_mail() if r.kind == "relay")
    desk.clock.advance(timedelta(days=30))
    outcome = desk.ingestor.ingest(reply_to(relay, "jane@customer.example", "Again!", 2),
                                   source="t")
    assert outcome.kind is OutcomeKind.TICKET
    assert desk.ticket(2).parent_id == 1 and desk.ticket(1).status == "resolved"
    assert [r.kind for r, _ in desk.new_mail()] == ["auto_reply", "notification"]


def test_out_of_office_and_bounces_of_our_mail_stay_on_their_ticket(db: Database) -> None:
    desk = Desk(db)
    desk.ingestor.ingest(FIRST, source="t")
    (auto_row, auto), _ = desk.new_mail()
    away = reply_to(auto, "jane@customer.example", "I am away until Monday.", 1,
                    "Auto-Submitted: auto-replied\r\n")
    assert desk.ingestor.ingest(away, source="t").kind is OutcomeKind.AUTOMATIC_REPLY
    assert desk.new_mail() == []
    bounce = ("From: MAILER-DAEMON@mx.customer.example\r\nTo: support@example.com\r\n"
              "Subject: Undelivered Mail Returned to Sender\r\nMessage-ID: <b1@mx>\r\n"
              "Content-Type: multipart/report; report-type=delivery-status; boundary=b\r\n\r\n"
              "--b\r\nContent-Type: text/plain\r\n\r\nGone.\r\n"
              "--b\r\nContent-Type: message/delivery-status\r\n\r\n"
              "Reporting-MTA: dns; mx.customer.example\r\n\r\n"
              "Final-Recipient: rfc822; jane@customer.example\r\nAction: failed\r\n"
              "Status: 5.1.1\r\nDiagnostic-Code: smtp; 550 5.1.1 user unknown\r\n\r\n"
              "--b\r\nContent-Type: text/rfc822-headers\r\n\r\n"
              f"Message-ID: {auto['Message-ID']}\r\nSubject: x\r\n\r\n--b--\r\n").encode()
    assert desk.ingestor.ingest(bounce, source="t").kind is OutcomeKind.BOUNCE
    with db.session() as session:
        row = session.get(OutboxMail, auto_row.id)
        assert row is not None
        assert (row.status, row.last_error) == (
            "failed", "bounced: smtp; 550 5.1.1 user unknown (rfc822; jane@customer.example)")
    assert desk.new_mail() == []
    ticket = desk.ticket(1)
    assert (ticket.message_count, ticket.status, ticket.first_response_at) == (3, "open", None)


def test_a_reply_in_the_transaction_of_its_ticket_finds_that_ticket(db: Database) -> None:
    """New tickets' rows may wait with the transaction's other rows; a reply read after them
    in the same transaction still finds its ticket, its requester and its first mail."""
    desk = Desk(db)
    other = FIRST.replace(b"jane@customer.example", b"raj@customer.example").replace(
        b"<m1@customer.example>", b"<m2@customer.example>")
    third = other.replace(b"raj@", b"mia@").replace(b"<m2@", b"<m3@")
    answer = (b"From: Raj <raj@customer.example>\r\nTo: support@example.com\r\n"
              b"Subject: Re: [#2] Printer offline\r\nMessage-ID: <m4@customer.example>\r\n"
              b"In-Reply-To: <m2@customer.example>\r\nReferences: <m2@customer.example>\r\n"
              b"\r\nIt is the one on the second floor.\r\n")
    items = [Incoming(raw, f"t:{n}") for n, raw in enumerate([FIRST, other, third, answer])]
    outcomes: list[Outcome] = []
    with capture_logs() as logs:
        desk.ingestor.ingest_many(items, stored=lambda _, outcome: outcomes.append(outcome))
    assert "ingest.batch_replayed" not in [entry["event"] for entry in logs]  # one transaction
    assert [(o.kind, o.ticket_number) for o in outcomes] == [
        (OutcomeKind.TICKET, 1), (OutcomeKind.TICKET, 2), (OutcomeKind.TICKET, 3),
        (OutcomeKind.FOLLOW_UP, 2)]
    assert [desk.ticket(n).requester for n in (1, 2, 3)] == [
        "jane@customer.example", "raj@customer.example", "mia@customer.example"]
    assert desk.ticket(2).message_count == 2
    with db.session() as session:
        assert session.exec(select(Message.ticket_id).order_by(col(Message.id))).all() == [
            1, 2, 3, 2]


def test_replies_to_stored_tickets_leave_the_transactions_other_rows_pending(
        db: Database) -> None:
    """Routing a reply reads its ticket before the transaction's unrelated pending rows are
    written; once the transaction holds a mail of that ticket, the reply sees it."""
    desk = Desk(db)
    assert desk.ingestor.ingest(FIRST, source="t").ticket_number == 1
    other = FIRST.replace(b"jane@customer.example", b"raj@customer.example").replace(
        b"<m1@customer.example>", b"<m2@customer.example>")
    copied = (b"From: Jane Doe <jane@customer.example>\r\nTo: support@example.com\r\n"
              b"Cc: Bob <bob@customer.example>\r\nSubject: [#1] Printer offline\r\n"
              b"Message-ID: <m3@customer.example>\r\n\r\nBob sees it too.\r\n")
    # Bob is on ticket 1 only through the copy of the mail before his, in this transaction.
    from_bob = (b"From: Bob <bob@customer.example>\r\nTo: support@example.com\r\n"
                b"Subject: [#1] Printer offline\r\nMessage-ID: <m4@customer.example>\r\n"
                b"\r\nSecond floor.\r\n")
    third = other.replace(b"raj@", b"mia@").replace(b"<m2@", b"<m5@")
    items = [Incoming(raw, f"t:{n}") for n, raw in enumerate([other, copied, from_bob, third])]
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_: Any) -> None:
        statements.append(" ".join(statement.split()[:3]))

    outcomes: list[Outcome] = []
    sqlalchemy_event.listen(db.engine, "before_cursor_execute", record)
    try:
        with capture_logs() as logs:
            desk.ingestor.ingest_many(items, stored=lambda _, outcome: outcomes.append(outcome))
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", record)
    assert "ingest.batch_replayed" not in [entry["event"] for entry in logs]
    assert [(o.kind, o.ticket_number) for o in outcomes] == [
        (OutcomeKind.TICKET, 2), (OutcomeKind.FOLLOW_UP, 1), (OutcomeKind.FOLLOW_UP, 1),
        (OutcomeKind.TICKET, 3)]
    reads = [n for n, s in enumerate(statements)
             if s == "SELECT tickets.requester, messages.sender,"]
    writes = [n for n, s in enumerate(statements) if s == "INSERT INTO messages"]
    # Jane's reply is routed before Raj's mail is written; Bob's after Jane's reply is.
    assert len(reads) == 2 and len(writes) == 2
    assert reads[0] < writes[0] < reads[1] < writes[1]
    assert desk.ticket(1).message_count == 3
    with db.session() as session:
        assert session.exec(select(Message.ticket_id).order_by(col(Message.id))).all() == [
            1, 2, 1, 1, 3]
