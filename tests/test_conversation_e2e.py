"""A conversation through real servers: Dovecot in, aiosmtpd out, agents who only use mail."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

from sqlmodel import col, select

from mailbot.app import App, open_app
from mailbot.clock import FrozenClock
from mailbot.config import settings_from_mapping
from mailbot.store.models import Event, Ticket
from mailbot.testing import DovecotServer, SmtpCapture

NOW = datetime(2026, 11, 23, 4, 30, tzinfo=UTC)  # Monday 10:00 in Colombo


def make_app(tmp_path: Path, dovecot: DovecotServer, smtp: SmtpCapture) -> App:
    settings = settings_from_mapping({
        "mailboxes": [{"name": "support", "imap": {
            "host": dovecot.host, "port": dovecot.port, "security": "none",
            "username": dovecot.username, "password": dovecot.password}}],
        "smtp": {"host": smtp.host, "port": smtp.port, "security": "none", "timeout": "5s",
                 "from": "Example Support <support@example.test>"},
        "agents": {"domains": ["support.example.test"],
                   "notify": ["team@support.example.test"]},
        "storage": {"dir": "state"},
        "logging": {"format": "json", "level": "warning"}}, tmp_path)
    return open_app(settings, FrozenClock(NOW))


def run_once(app: App) -> None:
    """What `mailbot poll` does: one pass over the mailbox, then the outbox."""
    (poller,) = app.pollers()
    try:
        poller.run_pass()
    finally:
        poller.close()
    sender = app.outbox_sender()
    assert sender is not None
    sender.flush()


def answer(to: EmailMessage, sender: str, text: str, n: int) -> bytes:
    return (f"From: {sender}\r\nTo: support@example.test\r\nSubject: Re: {to['Subject']}\r\n"
            f"Message-ID: <e2e{n}@mail.example>\r\nIn-Reply-To: {to['Message-ID']}\r\n"
            f"References: {to['Message-ID']}\r\n\r\n{text}\r\n\r\n"
            f"On Monday, Example Support wrote:\r\n> earlier text\r\n").encode()


def delivered(smtp: SmtpCapture, before: int, new: int) -> dict[str, EmailMessage]:
    """The `new` mails delivered after the first `before`, by recipient."""
    received = smtp.wait_for(before + new)
    assert len(received) == before + new
    return {r.rcpt_tos[0]: r.message for r in received[before:]}


def test_customer_agent_customer_through_dovecot_and_smtp(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture) -> None:
    app = make_app(tmp_path, dovecot, smtp_server)
    dovecot.append("INBOX", (
        b"From: Jane <jane@customer.example>\r\nTo: support@example.test\r\n"
        b"Subject: Printer offline\r\nMessage-ID: <c1@customer.example>\r\n\r\n"
        b"Customer ID: RC-10442\r\nNothing prints since this morning.\r\n"))
    run_once(app)
    first = delivered(smtp_server, 0, 2)
    auto_reply, notification = first["jane@customer.example"], first["team@support.example.test"]
    assert auto_reply["Subject"] == "[#1] Printer offline"
    assert "Nothing prints since this morning." in notification.get_content()

    # The agent answers from their mail client, with a command line on top.
    app.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    dovecot.append("INBOX", answer(notification, "Ann <ann@support.example.test>",
                                   "#severity P1\nJane, we are restarting the print server.", 1))
    run_once(app)
    second = delivered(smtp_server, 2, 2)
    relay, confirmation = second["jane@customer.example"], second["ann@support.example.test"]
    text = relay.get_content()
    assert "Jane, we are restarting the print server." in text
    assert "#severity" not in text and "earlier text" not in text
    assert relay["In-Reply-To"] == "<c1@customer.example>"
    assert "severity P3 → P1" in confirmation.get_content()
    with app.db.session() as session:
        ticket = session.get(Ticket, 1)
        assert ticket is not None
        assert (ticket.severity, ticket.first_response_at) == ("P1", app.clock.now())

    # The customer answers the relay: same ticket, agents told, no second auto-reply.
    app.clock.advance(timedelta(minutes=30))  # type: ignore[attr-defined]
    dovecot.append("INBOX", answer(relay, "Jane <jane@customer.example>", "It works, thanks!", 2))
    run_once(app)
    third = delivered(smtp_server, 4, 1)
    assert "It works, thanks!" in third["team@support.example.test"].get_content()

    # A forged agent mail: the agent's From, the ticket's tag, no signed reference.
    dovecot.append("INBOX", (
        b"From: ann@support.example.test\r\nTo: support@example.test\r\n"
        b"Subject: [#1] Printer offline\r\nMessage-ID: <forged@elsewhere.example>\r\n\r\n"
        b"#severity P4\r\n#status resolved\r\n"))
    run_once(app)
    with app.db.session() as session:
        ticket = session.get(Ticket, 1)
        assert ticket is not None
        assert (ticket.severity, ticket.status, ticket.message_count) == ("P1", "open", 4)
        changes = session.exec(select(Event.kind).where(
            col(Event.kind).in_(["severity_changed", "status_changed"]))).all()
        assert changes == ["severity_changed"]
    assert all(r.rcpt_tos != ("jane@customer.example",) for r in smtp_server.messages[5:])
