"""Ingestion into SQLite and PostgreSQL: tickets, attachments, idempotency, quarantine."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import sqlite_plans
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import insert
from sqlmodel import Session, col, select

from mailbot.app import sla_book
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.identify import CustomerDirectory, CustomerRecord, compile_patterns
from mailbot.ingest import Incoming, Ingestor, Outcome, OutcomeKind
from mailbot.parsing import idempotency_key
from mailbot.pipeline import DefaultSeverity, IngestPolicy
from mailbot.quarantine import replay
from mailbot.store import Database, writes
from mailbot.store.models import Attachment, Blob, Event, Message, QuarantineEntry, Ticket
from mailbot.store.queries import blob_bytes

NOW = datetime(2026, 11, 24, 4, 30, tzinfo=UTC)
PATTERNS = compile_patterns([r"\b(?:customer\s*id|cid)\b[\s:#]*([A-Z]{1,6}-?\d{3,}|\d{3,})"])


def ingestor(db: Database, max_bytes: int = 10_000_000,
             directory: CustomerDirectory | None = None) -> Ingestor:
    return Ingestor(db, IngestPolicy(max_bytes, PATTERNS), DefaultSeverity("P3"),
                    FrozenClock(NOW), directory or CustomerDirectory())


def mail(subject: str = "Printer on fire", body: str = "It burns.\n",
         message_id: str | None = "<m1@customer.example>",
         sender: str = "Jane <jane@customer.example>") -> bytes:
    mid = f"Message-ID: {message_id}\r\n" if message_id else ""
    return (f"From: {sender}\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
            f"Date: Tue, 24 Nov 2026 09:00:00 +0530\r\n{mid}"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{body}").encode()


def with_attachment() -> bytes:
    return (b"From: jane@customer.example\r\nTo: support@example.test\r\n"
            b"Subject: screenshot\r\nMessage-ID: <att@customer.example>\r\n"
            b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            b"--XX\r\nContent-Type: text/plain\r\n\r\nSee attached. CID 10442\r\n"
            b"--XX\r\nContent-Type: application/pdf; name=\"../../etc/report.pdf\"\r\n"
            b"Content-Disposition: attachment; filename=\"../../etc/report.pdf\"\r\n"
            b"Content-Transfer-Encoding: base64\r\n\r\nJVBERi0xLjQKJcOkw7zDtsOf\r\n--XX--\r\n")


def test_new_mail_becomes_a_ticket_with_its_message_and_raw_bytes(db: Database) -> None:
    """A customer mail is stored as ticket, message, raw blob and a 'created' event."""
    raw = mail()
    outcome = ingestor(db).ingest(raw, source="test")
    assert outcome.kind == OutcomeKind.TICKET
    with db.session() as session:
        ticket = session.get(Ticket, outcome.ticket_number)
        assert ticket is not None
        assert (ticket.subject, ticket.requester, ticket.severity, ticket.status) == (
            "Printer on fire", "jane@customer.example", "P3", "open")
        assert ticket.created_at == NOW
        message = session.exec(select(Message)).one()
        assert message.body_text.strip() == "It burns."
        assert blob_bytes(session, message.raw_sha256) == raw
        assert message.raw_sha256 == hashlib.sha256(raw).hexdigest()
        kinds = [e.kind for e in session.exec(select(Event)).all()]
        assert "created" in kinds and "customer_id_missing" in kinds


def test_new_ticket_stores_its_response_and_resolution_due(db: Database) -> None:
    """With the built-in policy (Mon-Fri 09-17 UTC), a Tuesday 04:30 UTC mail of P3."""
    book = sla_book(settings_from_mapping({}, Path(".")).sla)
    engine = Ingestor(db, IngestPolicy(10_000_000, PATTERNS), DefaultSeverity("P3"),
                      FrozenClock(NOW), CustomerDirectory(), sla=book)
    outcome = engine.ingest(mail(), source="test")
    with db.session() as session:
        ticket = session.get(Ticket, outcome.ticket_number)
        assert ticket is not None
        assert ticket.response_due == datetime(2026, 11, 27, 9, 0, tzinfo=UTC)
        assert ticket.resolution_due == datetime(2026, 12, 3, 9, 0, tzinfo=UTC)
        sla_event = next(e for e in session.exec(select(Event)).all() if e.kind == "sla")
        assert sla_event.detail["response"] == "3 working days"


def test_same_message_twice_is_one_ticket(db: Database) -> None:
    """Re-ingesting a message (same Message-ID) is a no-op that names the existing ticket."""
    first = ingestor(db).ingest(mail(), source="a")
    second = ingestor(db).ingest(mail(body="resent by a relay"), source="b")
    assert (second.kind, second.ticket_number) == (OutcomeKind.DUPLICATE, first.ticket_number)
    with db.session() as session:
        assert len(session.exec(select(Ticket)).all()) == 1


def test_message_without_message_id_is_deduplicated_by_its_bytes(db: Database) -> None:
    raw = mail(message_id=None)
    first = ingestor(db).ingest(raw, source="a")
    again = ingestor(db).ingest(raw, source="a")
    other = ingestor(db).ingest(mail(message_id=None, body="different"), source="a")
    assert first.key == "sha256:" + hashlib.sha256(raw).hexdigest()
    assert again.kind == OutcomeKind.DUPLICATE
    assert other.kind == OutcomeKind.TICKET


def test_attachments_are_stored_as_content_addressed_blobs(db: Database) -> None:
    outcome = ingestor(db).ingest(with_attachment(), source="test")
    with db.session() as session:
        attachment = session.exec(select(Attachment)).one()
        assert "/" not in attachment.filename and attachment.filename.endswith("report.pdf")
        assert attachment.content_type == "application/pdf"
        data = blob_bytes(session, attachment.sha256)
        assert data is not None and data.startswith(b"%PDF-1.4")
        ticket = session.get(Ticket, outcome.ticket_number)
        assert ticket is not None and ticket.attachment_count == 1


def test_identical_attachments_are_stored_once(db: Database) -> None:
    raw = with_attachment()
    ingestor(db).ingest(raw, source="a")
    ingestor(db).ingest(raw.replace(b"<att@", b"<att2@"), source="b")
    with db.session() as session:
        assert len(session.exec(select(Attachment)).all()) == 2
        pdf_blobs = [b for b in session.exec(select(Blob)).all() if b.data.startswith(b"%PDF")]
        assert len(pdf_blobs) == 1


def test_customer_found_in_directory_is_verified(db: Database) -> None:
    directory = CustomerDirectory([CustomerRecord("10442", "Acme")])
    outcome = ingestor(db, directory=directory).ingest(with_attachment(), source="t")
    with db.session() as session:
        ticket = session.get(Ticket, outcome.ticket_number)
        assert ticket is not None
        assert (ticket.customer_id, ticket.customer_verified, ticket.customer_source) == (
            "10442", True, "directory")


def test_oversize_message_is_kept_raw_and_ticketed_with_a_note(db: Database) -> None:
    raw = mail(body="x" * 5000)
    outcome = ingestor(db, max_bytes=1000).ingest(raw, source="t")
    assert outcome.kind == OutcomeKind.TICKET
    with db.session() as session:
        message = session.exec(select(Message)).one()
        assert message.truncated and blob_bytes(session, message.raw_sha256) == raw
        notes = [e.detail["text"] for e in session.exec(select(Event)).all() if e.kind == "note"]
        assert any("exceeds the limit" in n for n in notes)


def test_unparseable_message_goes_to_quarantine_with_its_reason(db: Database) -> None:
    raw = b"\x00\x01\x02 this is not mail \xff\xfe"
    outcome = ingestor(db).ingest(raw, source="test")
    assert outcome.kind == OutcomeKind.QUARANTINED and outcome.quarantined
    with db.session() as session:
        entry = session.exec(select(QuarantineEntry)).one()
        assert entry.reason.startswith("unparseable")
        assert blob_bytes(session, entry.raw_sha256) == raw
        assert session.exec(select(Ticket)).all() == []


def test_quarantined_message_arriving_again_is_one_entry(db: Database) -> None:
    raw = b"\x00\x01 garbage"
    ingestor(db).ingest(raw, source="a")
    ingestor(db).ingest(raw, source="a")
    with db.session() as session:
        entry = session.exec(select(QuarantineEntry)).one()
        assert entry.attempts == 2


def test_text_with_nul_characters_is_stored(db: Database) -> None:
    """PostgreSQL refuses NUL in text; the message must still be ticketed."""
    outcome = ingestor(db).ingest(mail(subject="nul", body="before\x00after"), source="t")
    assert outcome.kind == OutcomeKind.TICKET
    with db.session() as session:
        assert "beforeafter" in session.exec(select(Message)).one().body_text


def test_replay_of_a_held_message_that_now_ingests_makes_a_ticket(db: Database) -> None:
    """A held entry (here: quarantined after a storage failure) leaves quarantine on replay."""
    raw = mail(message_id="<held@customer.example>")
    sha = hashlib.sha256(raw).hexdigest()
    with db.transaction() as session:
        entry = writes.quarantine(session, raw, sha, "mid:held@customer.example",
                                  "cannot be stored: disk full", source="imap:x", now=NOW)
        entry_id = entry.id
    assert entry_id is not None
    outcome = replay(db, ingestor(db), entry_id)
    assert outcome.kind == OutcomeKind.TICKET
    with db.session() as session:
        held = session.get(QuarantineEntry, entry_id)
        assert held is not None and held.status == "replayed"
        kinds = [e.kind for e in session.exec(select(Event)).all()]
        assert "replayed_from_quarantine" in kinds


def test_replay_of_a_still_broken_message_keeps_it_held(db: Database) -> None:
    first = ingestor(db).ingest(b"\x00 garbage", source="t")
    assert first.quarantine_id is not None
    outcome = replay(db, ingestor(db), first.quarantine_id)
    assert outcome.quarantined
    with db.session() as session:
        entry = session.get(QuarantineEntry, first.quarantine_id)
        assert entry is not None and (entry.status, entry.attempts) == ("held", 2)


def _customer_mails(count: int) -> list[bytes]:
    return [mail(subject=f"Question {n}", message_id=f"<batch{n}@customer.example>")
            for n in range(count)]


def test_messages_sharing_a_transaction_are_reported_once_committed(db: Database) -> None:
    """A batch commits once; every message is reported, and only after that commit."""
    committed_when_reported: list[int] = []

    def stored(item: Incoming, outcome: Outcome) -> None:
        with db.session() as session:  # a separate connection sees only committed rows
            committed_when_reported.append(len(session.exec(select(Ticket)).all()))

    items = [Incoming(raw, f"test:{n}") for n, raw in enumerate(_customer_mails(3))]
    ingestor(db).ingest_many(items, stored=stored)
    assert committed_when_reported == [3, 3, 3]


class _TickingClock:
    """A minute later at every reading."""

    def __init__(self) -> None:
        self.readings = 0

    def now(self) -> datetime:
        self.readings += 1
        return NOW + timedelta(minutes=self.readings)


def test_messages_sharing_a_transaction_share_its_moment_and_dues(db: Database) -> None:
    """Committed together, stamped together: one arrival time and the same due times."""
    book = sla_book(settings_from_mapping({}, Path(".")).sla)
    clock = _TickingClock()
    engine = Ingestor(db, IngestPolicy(10_000_000, PATTERNS), DefaultSeverity("P3"), clock,
                      CustomerDirectory(), sla=book)
    items = [Incoming(raw, f"test:{n}") for n, raw in enumerate(_customer_mails(3))]
    engine.ingest_many(items, stored=lambda *_: None)
    engine.ingest(mail(message_id="<later@customer.example>"), source="later")
    with db.session() as session:
        tickets = session.exec(select(Ticket).order_by(col(Ticket.id))).all()
        stamps = [(t.created_at, t.response_due, t.resolution_due) for t in tickets]
        received = [m.received_at for m in session.exec(
            select(Message).order_by(col(Message.id))).all()]
    assert len(set(stamps[:3])) == 1 and received[:3] == [stamps[0][0]] * 3
    assert stamps[3][0] > stamps[0][0] and received[3] == stamps[3][0]
    assert stamps[0][1] is not None and stamps[3][1] is not None


def test_a_failing_batch_is_stored_again_one_message_a_transaction(db: Database) -> None:
    """A transient error in a shared transaction loses and doubles nothing."""
    failures = ["once"]

    def fails_once(session: Session) -> None:
        if failures:
            failures.pop()
            raise ValueError("a fault in the middle of the batch")

    reported: list[tuple[str, OutcomeKind]] = []
    raws = _customer_mails(3)
    items = [Incoming(raws[0], "a"), Incoming(raws[1], "b", fails_once), Incoming(raws[2], "c")]
    ingestor(db).ingest_many(items, stored=lambda item, o: reported.append((item.source, o.kind)))
    assert reported == [("a", OutcomeKind.TICKET), ("b", OutcomeKind.TICKET),
                        ("c", OutcomeKind.TICKET)]
    with db.session() as session:
        assert sorted(t.subject for t in session.exec(select(Ticket)).all()) == [
            "Question 0", "Question 1", "Question 2"]
        assert len(session.exec(select(Message)).all()) == 3


def test_a_message_that_keeps_failing_stops_after_the_ones_before_it(db: Database) -> None:
    """Replayed alone, the messages before a failing one are committed and reported; the
    failing one leaves nothing behind and the error reaches the caller."""
    def always_fails(session: Session) -> None:
        raise ValueError("this message cannot be handled")

    reported: list[str] = []
    raws = _customer_mails(3)
    items = [Incoming(raws[0], "a"), Incoming(raws[1], "b", always_fails),
             Incoming(raws[2], "c")]
    with pytest.raises(ValueError, match="cannot be handled"):
        ingestor(db).ingest_many(items, stored=lambda item, _: reported.append(item.source))
    assert reported == ["a"]
    with db.session() as session:
        assert [t.subject for t in session.exec(select(Ticket)).all()] == ["Question 0"]


def test_a_stored_row_is_the_validated_object_and_its_changes_are_written(
        db: Database) -> None:
    values: dict[str, Any] = dict(status="open", severity="P2", customer_source="missing",
                                  requester="jane@customer.example", requester_name="Jane",
                                  subject="Printer on fire", created_at=NOW, updated_at=NOW,
                                  matched_rules=[{"id": "fire"}], tags=[])
    with db.transaction() as session:
        number = session.execute(insert(Ticket).values(**values)).inserted_primary_key[0]
        ticket = writes.stored_row(Ticket, id=number, **values)
        assert ticket.model_dump() == Ticket(id=number, **values).model_dump()
        assert ticket.assignee is None and ticket.message_count == 0  # the defaults
        session.add(ticket)
        assert session.get(Ticket, number) is ticket  # in the identity map, no query
        ticket.severity = "P1"
    with db.session() as session:
        stored = session.get(Ticket, number)
        assert stored is not None
        assert (stored.severity, stored.matched_rules) == ("P1", [{"id": "fire"}])


def _mail_with_file(number: int) -> bytes:
    return (f"From: jane@customer.example\r\nTo: support@example.test\r\n"
            f"Subject: screenshot {number}\r\nMessage-ID: <file{number}@customer.example>\r\n"
            f"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
            f"--XX\r\nContent-Type: text/plain\r\n\r\nSee attached.\r\n"
            f"--XX\r\nContent-Type: text/plain; name=\"shot{number}.txt\"\r\n"
            f"Content-Disposition: attachment; filename=\"shot{number}.txt\"\r\n\r\n"
            f"file {number}\r\n--XX--\r\n").encode()


def test_mails_with_files_wait_with_the_transactions_other_rows(db: Database) -> None:
    """On SQLite a mail with files no longer writes the pending rows for its row's id."""
    statements: list[tuple[str, bool]] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any,
               executemany: bool) -> None:
        statements.append((" ".join(statement.split()[:3]), executemany))

    store = ingestor(db)
    store.ingest(mail(message_id="<before@customer.example>"), source="t:0")  # message 1
    raws = [mail(subject="a", message_id="<a@customer.example>"), _mail_with_file(1),
            mail(subject="b", message_id="<b@customer.example>"), _mail_with_file(2)]
    items = [Incoming(raw, f"t:{n}") for n, raw in enumerate(raws, start=1)]
    outcomes: list[Outcome] = []
    sqlalchemy_event.listen(db.engine, "before_cursor_execute", record)
    try:
        store.ingest_many(items, stored=lambda _, outcome: outcomes.append(outcome))
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", record)
    assert [o.kind for o in outcomes] == [OutcomeKind.TICKET] * 4
    message_inserts = [many for text, many in statements if text == "INSERT INTO messages"]
    file_inserts = [many for text, many in statements if text == "INSERT INTO attachments"]
    if db.dialect == "sqlite":  # one INSERT each for the transaction, at its commit
        assert (message_inserts, file_inserts) == ([True], [True])
    else:  # each mail with a file inserted alone for its id, the one pending before it first
        assert (message_inserts, file_inserts) == ([False] * 4, [False, False])
    with db.session() as session:
        messages = session.exec(select(Message).order_by(col(Message.id))).all()
        assert [m.id for m in messages] == [1, 2, 3, 4, 5]
        files = {a.filename: a.message_id for a in session.exec(select(Attachment)).all()}
        subjects = {m.id: m.subject for m in messages}
        assert {name: subjects[number] for name, number in files.items()} == {
            "shot1.txt": "screenshot 1", "shot2.txt": "screenshot 2"}
        for ticket in session.exec(select(Ticket)).all():
            mine = [m for m in messages if m.ticket_id == ticket.id]
            assert [m.subject for m in mine] == [ticket.subject]


def test_a_transactions_blobs_and_messages_are_one_insert_each_and_seen_by_its_queries(
        db: Database) -> None:
    statements: list[tuple[str, bool]] = []
    seen_by_a_query: list[int] = []

    def record(_conn: Any, _cursor: Any, statement: str, _params: Any, _context: Any,
               executemany: bool) -> None:
        statements.append((" ".join(statement.split()[:3]), executemany))

    def look(session: Session) -> None:
        keys = [idempotency_key(f"<batch{n}@customer.example>", b"") for n in range(4)]
        seen_by_a_query.extend(sorted(n for _, n in writes.stored_keys(session, keys).values()))

    raws = [*_customer_mails(4), with_attachment()]
    items = [Incoming(raw, f"t:{n}", look if n == 3 else None) for n, raw in enumerate(raws)]
    outcomes: list[Outcome] = []
    sqlalchemy_event.listen(db.engine, "before_cursor_execute", record)
    try:
        ingestor(db).ingest_many(items, stored=lambda _, outcome: outcomes.append(outcome))
    finally:
        sqlalchemy_event.remove(db.engine, "before_cursor_execute", record)
    assert [o.kind for o in outcomes] == [OutcomeKind.TICKET] * 5
    assert seen_by_a_query == [1, 2, 3, 4]  # in the same transaction, before its commit
    message_inserts = [many for text, many in statements if text == "INSERT INTO messages"]
    assert message_inserts == [True, False]  # four mails at once; the one with a file alone
    assert [o.ticket_number for o in outcomes] == [1, 2, 3, 4, 5]
    ticket_inserts = [many for text, many in statements if text == "INSERT INTO tickets"]
    # SQLite: the first ticket takes the write lock, the next numbers wait with the pending
    # rows (three until the query, the fifth until its file's row); PostgreSQL: one each.
    assert ticket_inserts == ([False, True, False] if db.dialect == "sqlite" else [False] * 5)
    with db.session() as session:
        assert len(session.exec(select(Message)).all()) == 5
        assert len(session.exec(select(Blob)).all()) == 6  # five mails and one file


def test_quarantine_is_looked_up_by_key_however_many_copies_it_holds(tmp_path: Path) -> None:
    """The held copies of a transaction's messages, and the one of a message quarantined,
    are found through the key's index, not by reading every held copy."""
    database = Database(f"sqlite:///{tmp_path / 'mailbot.db'}")
    database.upgrade()
    sha = hashlib.sha256(b"not a mail").hexdigest()
    with database.transaction() as session:
        writes.put_blob(session, sha, b"not a mail")
        session.execute(insert(QuarantineEntry), [
            {"idempotency_key": f"sha256:{n}", "raw_sha256": sha, "reason": "r",
             "source": "s", "size": 1, "received_at": NOW, "status": status, "attempts": 1}
            for n, status in enumerate(["held", "replayed", "held"])])

    found: list[object] = []

    def run() -> None:
        with database.session() as session:
            found.append(writes.held_quarantine_keys(session, ["sha256:0", "sha256:1", "x"]))
            held = writes.find_held_quarantine(session, "sha256:2")
            found.append(held.idempotency_key if held else None)
            found.append(writes.find_held_quarantine(session, "sha256:1"))

    plans = sqlite_plans(database, run)
    assert found == [{"sha256:0"}, "sha256:2", None]
    assert len(plans) == 3
    assert all("USING INDEX ix_quarantine_idempotency_key (idempotency_key=?)" in plan
               for plan in plans), plans
    database.dispose()
