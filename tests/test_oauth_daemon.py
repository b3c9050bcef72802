"""`mailbot run` with two mailboxes, one on OAuth2 whose grant is revoked: the other goes on,
health names the revoked one, and level 1 gets exactly one alert."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email import message_from_bytes
from email.message import Message
from pathlib import Path

from sqlmodel import col, select

from mailbot.app import open_app
from mailbot.config import load_settings
from mailbot.oauth.endpoint import TokenAnswer
from mailbot.oauth.tokens import store_login
from mailbot.store import Database
from mailbot.store.models import Ticket
from mailbot.testing import DovecotServer, OAuthProvider

WAIT_S = 30.0


def mail(n: int) -> bytes:
    return (f"From: c{n}@example.org\r\nTo: sales@example.test\r\nSubject: order {n}\r\n"
            f"Message-ID: <revoked-{n}@example.org>\r\n\r\nbody\r\n").encode()


def wait_until(check: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.2)
    raise AssertionError(f"{what} not within {WAIT_S} s")


def test_a_revoked_mailbox_alerts_once_and_the_other_mailbox_goes_on(tmp_path: Path) -> None:
    with OAuthProvider() as provider, \
            DovecotServer(oauth2_introspection_url=provider.introspection_url) as oauth_box, \
            DovecotServer(username="sales@example.test") as sales_box:
        config = tmp_path / "config.yaml"
        config.write_text(f"""
mailboxes:
  - name: support
    imap: {oauth_box.imap_config(provider.login_config())}
    poll_interval: 1s
  - name: sales
    imap: {sales_box.imap_config()}
    poll_interval: 1s
smtp: {{transport: file, dir: outgoing, from: "Support <support@example.test>"}}
escalation: {{level1: [oncall@example.test]}}
storage: {{dir: state}}
logging: {{format: json, level: info}}
""")
        app = open_app(load_settings(config))
        store_login(app.db, "imap:support", "generic",
                    TokenAnswer("x", 0, provider.grant(oauth_box.username)), datetime.now(UTC))
        provider.revoke(oauth_box.username)
        with (tmp_path / "daemon.log").open("ab") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "mailbot", "--config", str(config), "run"],
                stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ))
        try:
            sales_box.append("INBOX", mail(1))

            wait_until(lambda: tickets(app.db) == ["sales"], "a ticket from the sales mailbox")
            wait_until(lambda: bool(alerts(tmp_path / "outgoing")), "the alert mail")
            time.sleep(3)  # the revoked mailbox retries meanwhile: no second alert, no refresh
            sales_box.append("INBOX", mail(2))
            wait_until(lambda: tickets(app.db) == ["sales", "sales"], "a second sales ticket")
            health = subprocess.run(
                [sys.executable, "-m", "mailbot", "--config", str(config), "health", "--json"],
                capture_output=True, text=True, timeout=60)
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=15) == 0
        finally:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=10)
        assert [(a["To"], a["Subject"]) for a in alerts(tmp_path / "outgoing")] == [
            ("oncall@example.test",
             "mailbot: the OAuth2 grant of mailbox support was revoked or expired")]
        assert provider.token_requests == 1
        assert health.returncode == 1
        report = json.loads(health.stdout)
        assert [p for p in report["problems"] if "OAuth2" in p] == [
            "mailbox support: OAuth2 grant revoked (invalid_grant: the refresh token is "
            "revoked, expired or was already used): run `mailbot oauth login support`"]



def tickets(db: Database) -> list[str | None]:
    with db.session() as session:
        return [t.mailbox for t in session.exec(select(Ticket).order_by(col(Ticket.id))).all()]


def alerts(outgoing: Path) -> list[Message]:
    """The alert mails among those written out (auto-replies go there too)."""
    found = [message_from_bytes(p.read_bytes()) for p in sorted(outgoing.glob("*.eml"))] \
        if outgoing.exists() else []
    return [m for m in found if m["To"] == "oncall@example.test"]
