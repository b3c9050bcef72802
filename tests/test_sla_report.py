"""`mailbot report sla`: met, breached and pending, and first responses in business hours."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import yaml
from conftest import COLOMBO_CONFIG, colombo
from sqlmodel import col, select
from test_cli import mailbot

from mailbot.app import open_app
from mailbot.clock import FrozenClock
from mailbot.config import load_settings
from mailbot.pipeline import DefaultSeverity
from mailbot.sla import BusinessCalendar
from mailbot.sla.report import TicketTimes, compliance
from mailbot.store.models import OutboxMail

COLOMBO = BusinessCalendar.from_config(COLOMBO_CONFIG)


TICKETS = [
    # Answered after 1.5 business hours, resolved in time.
    TicketTimes(1, "P1", "RC-1", None, colombo(23, 10), colombo(25, 10), colombo(23, 11, 30),
                colombo(26, 10), colombo(25, 12)),
    # Monday 16:00 to Thursday 09:00 with Tuesday a Poya holiday: 1 + 9 + 1 = 11 business
    # hours, after the due (Wednesday 16:00); unresolved past its due.
    TicketTimes(2, "P1", "RC-2", None, colombo(23, 16), colombo(25, 16), colombo(26, 9),
                colombo(26, 16), None),
    # Not answered yet, nothing due yet.
    TicketTimes(3, "P3", None, None, colombo(27, 10), colombo(2, 10) + timedelta(days=30),
                None, None, None),
]


def test_compliance_per_severity() -> None:
    rows = compliance(TICKETS, colombo(27, 12), lambda _: COLOMBO, lambda t: t.severity)
    p1, p3, every = (r.as_dict() for r in rows)
    assert (p1["group"], p1["tickets"], p1["response_met"], p1["response_breached"],
            p1["resolution_met"], p1["resolution_breached"]) == ("P1", 2, 1, 1, 1, 1)
    assert p1["median_first_response_business_hours"] == 6.25
    assert p1["p90_first_response_business_hours"] == 11.0
    assert p1["response_met_share"] == 0.5
    assert (p3["response_pending"], p3["resolution_met"], p3["resolution_pending"],
            p3["median_first_response_business_hours"]) == (1, 0, 0, None)
    assert (every["group"], every["tickets"], every["response_pending"]) == ("all", 3, 1)


def test_report_sla_command(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text(yaml.safe_dump({
        "storage": {"dir": str(tmp_path / "state")},
        "smtp": {"transport": "file", "dir": str(tmp_path / "out"),
                 "from": "Support <support@example.test>"},
        "agents": {"domains": ["support.example.test"], "notify": ["team@support.example.test"]},
        "sla": {"calendars": {"colombo": COLOMBO_CONFIG}, "policies": {"standard": {
            "calendar": "colombo", "targets": {
                "P2": {"response": "2 working days", "resolution": "5 working days"}}}}},
        "logging": {"level": "warning"}}))
    clock = FrozenClock(colombo(23, 10))
    app = open_app(load_settings(config), clock)
    app.classifier = DefaultSeverity("P2")
    ingestor = app.ingestor()
    ingestor.ingest(b"From: jane@customer.example\r\nSubject: Slow\r\n"
                    b"Message-ID: <s1@customer.example>\r\n\r\nCustomer ID: RC-10442\r\n",
                    source="t")
    with app.db.session() as session:
        notification = session.exec(select(OutboxMail).where(
            col(OutboxMail.kind) == "notification")).one()
    clock.set(colombo(23, 13))
    ingestor.ingest((f"From: ann@support.example.test\r\nSubject: Re: Slow\r\n"
                     f"Message-ID: <a1@support.example.test>\r\n"
                     f"In-Reply-To: <{notification.message_id}>\r\n\r\nLooking into it.\r\n")
                    .encode(), source="t")
    result = mailbot(config, "report", "sla", "--month", "2026-11", "--json")
    assert result.returncode == 0, result.stderr.decode()
    data = json.loads(result.stdout)
    assert (data["month"], data["time_zone"], data["tickets"]) == ("2026-11", "Asia/Colombo", 1)
    p2, every = data["by_severity"]
    assert every["group"] == "all"
    assert (p2["group"], p2["response_met"], p2["median_first_response_business_hours"]) == (
        "P2", 1, 3.0)
    assert [r["group"] for r in data["by_customer"]] == ["RC-10442", "all"]
    text = mailbot(config, "report", "sla", "--month", "2026-11").stdout.decode()
    assert "By severity:" in text and "By customer:" in text
    assert mailbot(config, "report", "sla", "--month", "11/2026").returncode != 0
