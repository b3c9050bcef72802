"""Escalations: which level a ticket has earned and when, then mailed once each."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from conftest import COLOMBO_CONFIG, colombo
from hypothesis import given
from hypothesis import strategies as st
from sqlmodel import col, select

from mailbot.app import App
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.identify import CustomerRecord
from mailbot.pipeline import DefaultSeverity
from mailbot.sla import BusinessCalendar
from mailbot.sla.escalation import TicketClock, escalations_due, warning_moment
from mailbot.store import Database, writes
from mailbot.store.models import EscalationRecord, Event, OutboxMail
from mailbot.testing import SmtpCapture

COLOMBO = BusinessCalendar.from_config(COLOMBO_CONFIG)


# Received Monday 23 November 10:00; P1 response 1 working day: Tuesday 24 is a Poya holiday,
# so due Wednesday 25 10:00. 75 % of its 9 business hours is 6 h 45 min: Monday 16:45.
# Resolution 2 working days: Thursday 26 10:00.
P1 = TicketClock("open", colombo(23, 10), colombo(25, 10), None, colombo(26, 10))


def levels(ticket: TicketClock, at: datetime) -> list[int]:
    return [e.level for e in escalations_due(ticket, at, COLOMBO, 0.75)]


def test_levels_follow_the_business_calendar() -> None:
    assert warning_moment(COLOMBO, P1.created_at, colombo(25, 10), 0.75) == colombo(23, 16, 45)
    assert levels(P1, colombo(23, 16, 44)) == []
    assert levels(P1, colombo(23, 16, 45)) == [1]
    assert levels(P1, colombo(25, 10)) == [1]
    assert levels(P1, colombo(25, 10, 1)) == [1, 2]
    assert levels(P1, colombo(26, 10, 1)) == [1, 2, 3]


def test_answered_waiting_and_resolved_tickets_earn_less() -> None:
    answered = TicketClock("open", P1.created_at, P1.response_due, colombo(23, 11),
                           P1.resolution_due)
    assert levels(answered, colombo(26, 10, 1)) == [3]
    waiting = TicketClock("waiting", P1.created_at, P1.response_due, colombo(23, 11),
                          P1.resolution_due)
    assert levels(waiting, colombo(27, 10)) == []
    resolved = TicketClock("resolved", P1.created_at, P1.response_due, None, P1.resolution_due)
    assert levels(resolved, colombo(30, 10)) == []


@given(st.integers(min_value=0, max_value=14 * 24 * 60), st.integers(min_value=1, max_value=600))
def test_once_earned_an_escalation_stays_earned(minutes: int, later: int) -> None:
    at = P1.created_at + timedelta(minutes=minutes)
    assert set(levels(P1, at)) <= set(levels(P1, at + timedelta(minutes=later)))


def test_the_watcher_mails_each_level_once_at_its_time(tmp_path: Path, db: Database,
                                                       smtp_server: SmtpCapture) -> None:
    settings = settings_from_mapping({
        "smtp": {"host": smtp_server.host, "port": smtp_server.port, "security": "none",
                 "timeout": "5s", "from": "Support <support@example.test>"},
        "agents": {"notify": ["team@example.test"]},
        "escalation": {"level1": ["lead@example.test"], "level3": ["product@example.test"]},
        "sla": {"calendars": {"colombo": COLOMBO_CONFIG}, "policies": {"standard": {
            "calendar": "colombo", "targets": {
                "P1": {"response": "1 working day", "resolution": "2 working days"}}}}},
        "secret_key": "k" * 32}, tmp_path)
    clock = FrozenClock(colombo(23, 10))
    app = App(settings, db, clock, DefaultSeverity("P1"))
    with db.transaction() as session:
        writes.upsert_customers(session, [CustomerRecord(
            "RC-10442", "Acme", ("customer.example",), (), "am@example.test", None)])
    app.ingestor().ingest(b"From: jane@customer.example\r\nTo: support@example.test\r\n"
                          b"Subject: Everything is down\r\nMessage-ID: <w1@customer.example>"
                          b"\r\n\r\nCustomer ID: RC-10442\r\n", source="t")
    watcher = app.sla_watcher()
    sender = app.outbox_sender()
    assert watcher is not None and sender is not None

    def escalations_at(at: datetime) -> list[tuple[int, tuple[str, ...]]]:
        clock.set(at)
        watcher.run_once()
        sender.flush()
        with db.session() as session:
            rows = session.exec(select(EscalationRecord).order_by(
                col(EscalationRecord.level))).all()
            return [(r.level, tuple(r.recipients)) for r in rows]

    assert escalations_at(colombo(23, 16, 44)) == []
    assert escalations_at(colombo(23, 16, 45)) == [(1, ("lead@example.test",))]
    assert escalations_at(colombo(24, 12)) == [(1, ("lead@example.test",))]
    assert escalations_at(colombo(25, 10, 1)) == [(1, ("lead@example.test",)),
                                                  (2, ("am@example.test",))]
    assert len(escalations_at(colombo(26, 10, 1))) == 3
    assert len(escalations_at(colombo(30, 12))) == 3  # once per level, however often it runs
    delivered = smtp_server.wait_for(5)  # auto-reply, notification, three escalations
    escalation_mails = [r for r in delivered if "escalation" in r.message["Subject"]]
    assert [r.rcpt_tos for r in escalation_mails] == [
        ("lead@example.test",), ("am@example.test",), ("product@example.test",)]
    first = escalation_mails[0].message
    assert first["Auto-Submitted"] == "auto-generated"
    assert first["Subject"] == ("[#1] P1 escalation, Level 1 (support team): 75 % of the "
                                "response time used, no answer yet: Everything is down")
    assert "due Wednesday 25 November 2026, 10:00 Sri Lanka Time" in first.get_content()
    with db.session() as session:
        kinds = session.exec(select(OutboxMail.kind).order_by(col(OutboxMail.id))).all()
        assert kinds == ["auto_reply", "notification", "escalation", "escalation", "escalation"]
        assert len(session.exec(select(Event).where(col(Event.kind) == "escalated")).all()) == 3


def test_the_watcher_checks_every_open_ticket_page_by_page(tmp_path: Path,
                                                           db: Database) -> None:
    """More open tickets than a page holds: the last one is escalated too."""
    settings = settings_from_mapping({
        "smtp": {"transport": "file", "dir": str(tmp_path / "out"),
                 "from": "Support <support@example.test>"},
        "escalation": {"level1": ["lead@example.test"]},
        "sla": {"calendars": {"colombo": COLOMBO_CONFIG}, "policies": {"standard": {
            "calendar": "colombo", "targets": {
                "P1": {"response": "1 working day", "resolution": "2 working days"}}}}},
        "secret_key": "k" * 32}, tmp_path)
    clock = FrozenClock(colombo(23, 10))
    app = App(settings, db, clock, DefaultSeverity("P1"))
    ingestor = app.ingestor()
    for n in range(7):
        ingestor.ingest(f"From: c{n}@customer.example\r\nTo: support@example.test\r\n"
                        f"Subject: Down {n}\r\nMessage-ID: <p{n}@customer.example>\r\n\r\n"
                        "Everything is down\r\n".encode(), source="t")
    watcher = app.sla_watcher()
    assert watcher is not None
    clock.set(colombo(23, 16, 45))
    report = watcher.run_once(page=3)
    assert (report.checked, report.escalated) == (7, 7)
    assert watcher.run_once(page=3).escalated == 0
    with db.session() as session:
        assert sorted(r.ticket_id for r in session.exec(select(EscalationRecord)).all()) == [
            1, 2, 3, 4, 5, 6, 7]
