"""`mailbot demo`: the sample mails through the real pipeline into a local SQLite file."""

from __future__ import annotations

import email
import shutil
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from importlib import resources
from pathlib import Path
from typing import Any

import yaml
from sqlmodel import col, select

from mailbot.app import open_app
from mailbot.config import settings_from_mapping
from mailbot.customers import parse_customer_yaml
from mailbot.ingest import Ingestor
from mailbot.logs import configure_logging
from mailbot.store import Database, queries, writes
from mailbot.store.models import Message, OutboxMail
from mailbot.views import table, ticket_row

SAMPLES = "samples"
SHIPPED_RULES = Path(__file__).resolve().parents[1] / "rules"
DEMO_SETTINGS: dict[str, Any] = {
    "storage": {"dir": "."},
    "database": {"url": "sqlite:///mailbot.db"},
    "rules": {"path": str(SHIPPED_RULES)},
    "smtp": {"transport": "file", "dir": "outgoing",
             "from": "Example Support <support@support.example>"},
    "agents": {"domains": ["support.example"], "notify": ["team@support.example"]},
    "sla": {"calendars": {"colombo": {
        "timezone": "Asia/Colombo",
        "hours": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
        "holidays": {"country": "LK"}}},
        "policies": {"standard": {"calendar": "colombo", "targets": {
            "P1": {"response": "1 working day", "resolution": "2 working days"},
            "P2": {"response": "2 working days", "resolution": "5 working days"},
            "P3": {"response": "3 working days", "resolution": "7 working days"},
            "P4": {"response": "3 working days"}}}}},
    "logging": {"format": "console", "level": "error"},
}


@dataclass(frozen=True)
class DemoResult:
    """What the demo did, to print as a table or as JSON."""

    directory: Path
    database: Path
    tickets: list[dict[str, Any]]
    quarantined: int
    first_auto_reply: bytes
    outgoing: list[dict[str, Any]]
    conversation: list[dict[str, Any]]

    def as_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "database": str(self.database),
                "tickets": self.tickets, "quarantined": self.quarantined,
                "outgoing": self.outgoing, "conversation": self.conversation}

    def text(self) -> str:
        columns = [("number", "#"), ("severity", "sev"), ("matched_rules", "why"),
                   ("customer_id", "customer"),
                   ("customer_source", "found by"), ("requester", "requester"),
                   ("subject", "subject"), ("attachment_count", "files")]
        return "\n".join([
            f"mailbot demo: {len(self.tickets)} sample mails ingested into {self.database}",
            "",
            table(self.tickets, columns),
            "",
            f"{len(self.outgoing)} mails written to {self.directory / 'outgoing'}; "
            "the first auto-reply:",
            "",
            *_reply_text(self.first_auto_reply).splitlines(),
            "",
            "Then ticket #1 as a conversation: the agent answers the notification by mail "
            "with commands on top, the customer answers the relay, the agent resolves it:",
            "",
            table(self.conversation, [("role", "role"), ("sender", "from"),
                                      ("text", "text")], max_width=70),
            "",
            "Mails sent:",
            "",
            table(self.outgoing, [("kind", "kind"), ("to", "to"), ("subject", "subject")],
                  max_width=70),
            "",
            f"Look closer: mailbot --config {self.directory / 'config.yaml'} tickets show 1",
        ])


def sample_mails() -> list[tuple[str, bytes]]:
    folder = resources.files("mailbot").joinpath(SAMPLES)
    return sorted((entry.name, entry.read_bytes()) for entry in folder.iterdir()
                  if entry.name.endswith(".eml"))


def run_demo(directory: Path) -> DemoResult:
    """Start from an empty demo folder, ingest the samples, return the tickets."""
    directory = directory.resolve()
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    config_file = directory / "config.yaml"
    config_file.write_text(
        "# Written by `mailbot demo`; point --config at it to explore the demo data.\n"
        + yaml.safe_dump(DEMO_SETTINGS, sort_keys=False), encoding="utf-8")
    settings = settings_from_mapping(DEMO_SETTINGS, base_dir=directory)
    configure_logging(settings.logging.format, settings.logging.level)
    app = open_app(settings)
    directory_text = resources.files("mailbot").joinpath(SAMPLES, "customers.yaml").read_text(
        encoding="utf-8")
    with app.db.transaction() as session:
        writes.upsert_customers(session, parse_customer_yaml(directory_text, "customers.yaml"))
    ingestor = app.ingestor()
    quarantined = sum(ingestor.ingest(raw, source=f"sample:{name}").quarantined
                      for name, raw in sample_mails())
    with app.db.session() as session:
        rows = [ticket_row(t) for t in queries.list_tickets(session)]
    _play_conversation(app.db, ingestor)
    sender = app.outbox_sender()
    assert sender is not None
    sender.flush()
    with app.db.session() as session:
        mails = list(session.exec(select(OutboxMail).order_by(col(OutboxMail.id))).all())
        messages = session.exec(select(Message).where(col(Message.ticket_id) == 1)
                                .order_by(col(Message.id))).all()
        conversation = [{"role": m.role, "sender": m.sender,
                         "text": " ".join((m.display_text or m.body_text).split())}
                        for m in messages]
    app.db.dispose()
    outgoing = [{"kind": m.kind, "to": ", ".join(m.recipients), "subject": m.subject}
                for m in mails]
    first = next(m.raw for m in mails if m.kind == "auto_reply")
    return DemoResult(directory, directory / "mailbot.db", rows, quarantined, first, outgoing,
                      conversation)


def _play_conversation(db: Database, ingestor: Ingestor) -> None:
    """Ticket #1 by mail: agent answers with commands, customer answers, agent resolves."""
    def latest(kind: str, ticket: int = 1) -> OutboxMail:
        with db.session() as session:
            found = session.exec(select(OutboxMail).where(
                col(OutboxMail.kind) == kind, col(OutboxMail.ticket_id) == ticket)
                .order_by(col(OutboxMail.id).desc())).first()
        assert found is not None
        return found

    def reply(to: OutboxMail, sender: str, n: int, text: str) -> None:
        raw = (f"From: {sender}\r\nTo: support@support.example\r\n"
               f"Subject: Re: {to.subject}\r\nMessage-ID: <demo-{n}@mail.example>\r\n"
               f"In-Reply-To: <{to.message_id}>\r\nReferences: <{to.message_id}>\r\n"
               f"Content-Type: text/plain; charset=utf-8\r\n\r\n{text}\r\n").encode()
        ingestor.ingest(raw, source=f"demo:reply-{n}")

    agent = "Nimal Fernando <nimal@support.example>"
    reply(latest("notification"), agent, 1, "#assign Nimal\r\n\r\nHello Dilan,\r\n\r\n"
          "we found the cause: an expired certificate on the payment gateway. It has been\r\n"
          "renewed; please try a sale and tell us whether checkout works again.")
    reply(latest("relay"), "Dilan Perera <ops@acme.example>", 2,
          "Checkout works again in every store. Thank you!\r\n\r\n> Hello Dilan,\r\n")
    reply(latest("notification"), agent, 3, "#status resolved\r\n\r\nGreat to hear. "
          "We are closing the ticket; just reply if it happens again.")


def _reply_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    headers = [f"{name}: {message[name]}" for name in ("From", "To", "Subject")]
    return "\n".join(["  " + line for line in [*headers, "", *str(text).splitlines()]])
