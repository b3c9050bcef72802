"""`mailbot run` as a process: mail ingested, rules reloaded safely, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailbot.store import Database
from mailbot.store.models import Ticket
from mailbot.testing import DovecotServer

WAIT_S = 30.0


def mail(n: int, subject: str) -> bytes:
    return (f"From: c{n}@example.org\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <daemon-{n}@example.org>\r\n\r\nbody\r\n").encode()


@pytest.fixture
def workdir(tmp_path: Path, dovecot: DovecotServer) -> Path:
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "10.yaml").write_text(
        "rules:\n  - {id: alpha, severity: P1, when: {subject: alpha}}\n")
    (tmp_path / "config.yaml").write_text(f"""
mailboxes:
  - name: support
    imap: {{host: {dovecot.host}, port: {dovecot.port}, security: none,
           username: "{dovecot.username}", password: "{dovecot.password}", timeout: 10s}}
    poll_interval: 1s
rules: {{path: rules}}
smtp: {{transport: file, dir: outgoing, from: "Support <support@example.test>"}}
storage: {{dir: state}}
logging: {{format: json, level: info}}
""")
    return tmp_path


@pytest.fixture
def daemon(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    log = (workdir / "daemon.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-m", "mailbot", "--config", str(workdir / "config.yaml"), "run"],
        stdout=log, stderr=subprocess.STDOUT)
    yield process
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)
    log.close()


def severities(workdir: Path, count: int) -> list[str]:
    """Severities of the first `count` tickets, waiting (bounded) for them to exist."""
    db = Database(f"sqlite:///{workdir / 'state' / 'mailbot.db'}")
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            if (workdir / "state" / "mailbot.db").exists():
                try:
                    with db.session() as session:
                        rows = session.exec(select(Ticket).order_by(col(Ticket.id))).all()
                    if len(rows) >= count:
                        return [t.severity for t in rows]
                except Exception:
                    pass
            time.sleep(0.2)
    finally:
        db.dispose()
    raise AssertionError(f"fewer than {count} tickets after {WAIT_S} s")


def wait_for_log(workdir: Path, text: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if text in (workdir / "daemon.log").read_text():
            return
        time.sleep(0.1)
    raise AssertionError(f"{text} not logged within {WAIT_S} s")


def test_run_ingests_mail_and_stops_on_sigterm(workdir: Path, dovecot: DovecotServer,
                                               daemon: subprocess.Popen[bytes]) -> None:
    dovecot.append("INBOX", mail(1, "alpha problem"))
    assert severities(workdir, 1) == ["P1"]
    deadline = time.monotonic() + WAIT_S
    while not list((workdir / "outgoing").glob("*.eml")) and time.monotonic() < deadline:
        time.sleep(0.1)
    (reply,) = (workdir / "outgoing").glob("*.eml")
    assert b"Subject: [#1] alpha problem" in reply.read_bytes()
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    log = (workdir / "daemon.log").read_text()
    assert '"daemon.stopped"' in log


def test_broken_rules_are_refused_and_good_ones_take_effect(
        workdir: Path, dovecot: DovecotServer, daemon: subprocess.Popen[bytes]) -> None:
    """A broken edit keeps the old rules (logged with file:line); a good one applies."""
    rule_file = workdir / "rules" / "10.yaml"
    dovecot.append("INBOX", mail(1, "alpha one"))
    assert severities(workdir, 1) == ["P1"]
    rule_file.write_text("rules:\n  - {id: alpha, severity: P9, when: {subject: alpha}}\n")
    daemon.send_signal(signal.SIGHUP)
    dovecot.append("INBOX", mail(2, "alpha two"))
    assert severities(workdir, 2) == ["P1", "P1"]
    rule_file.write_text("rules:\n  - {id: alpha, severity: P4, when: {subject: alpha}}\n")
    daemon.send_signal(signal.SIGHUP)
    wait_for_log(workdir, '"rules.reloaded"')
    dovecot.append("INBOX", mail(3, "alpha three"))
    assert severities(workdir, 3) == ["P1", "P1", "P4"]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    refused = [json.loads(line) for line in (workdir / "daemon.log").read_text().splitlines()
               if '"rules.reload_refused"' in line]
    assert refused and refused[0]["errors"][0].endswith(
        "10.yaml:2: severity must be one of P1, P2, P3, P4, not 'P9'")
