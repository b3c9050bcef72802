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

from mailbot.app import open_app
from mailbot.config import settings_from_mapping
from mailbot.customers import parse_customer_yaml
from mailbot.logs import configure_logging
from mailbot.store import queries, writes
from mailbot.views import table, ticket_row

SAMPLES = "samples"
SHIPPED_RULES = Path(__file__).resolve().parents[1] / "rules"
DEMO_SETTINGS: dict[str, Any] = {
    "storage": {"dir": "."},
    "database": {"url": "sqlite:///mailbot.db"},
    "rules": {"path": str(SHIPPED_RULES)},
    "smtp": {"transport": "file", "dir": "outgoing",
             "from": "Example Support <support@support.example>"},
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
    replies: list[bytes]

    def as_dict(self) -> dict[str, Any]:
        return {"directory": str(self.directory), "database": str(self.database),
                "tickets": self.tickets, "quarantined": self.quarantined,
                "auto_replies": len(self.replies)}

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
            f"{len(self.replies)} auto-replies written to {self.directory / 'outgoing'}; "
            "the first one:",
            "",
            *_reply_text(self.replies[0]).splitlines(),
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
    sender = app.outbox_sender()
    assert sender is not None
    sender.flush()
    with app.db.session() as session:
        rows = [ticket_row(t) for t in queries.list_tickets(session)]
    app.db.dispose()
    replies = sorted((directory / "outgoing").glob("*.eml"))
    return DemoResult(directory, directory / "mailbot.db", rows, quarantined,
                      [r.read_bytes() for r in replies])


def _reply_text(raw: bytes) -> str:
    message = email.message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    body = message.get_body(("plain",))
    text = body.get_content() if isinstance(body, EmailMessage) else ""
    headers = [f"{name}: {message[name]}" for name in ("From", "To", "Subject")]
    return "\n".join(["  " + line for line in [*headers, "", *str(text).splitlines()]])
