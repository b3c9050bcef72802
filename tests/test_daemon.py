"""`mailbot run` as a process: mail ingested, rules reloaded safely, SIGTERM stops it cleanly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select

from mailbot.store import Database
from mailbot.store.models import Ticket
from mailbot.testing import DovecotServer, NotifySocket, free_port

WAIT_S = 30.0


def mail(n: int, subject: str) -> bytes:
    return (f"From: c{n}@example.org\r\nTo: support@example.test\r\nSubject: {subject}\r\n"
            f"Message-ID: <daemon-{n}@example.org>\r\n\r\nbody\r\n").encode()


def write_config(path: Path, dovecot: DovecotServer, *, poll_interval: str = "1s",
                 more_mailboxes: str = "", more: str = "") -> None:
    (path / "rules").mkdir(exist_ok=True)
    (path / "rules" / "10.yaml").write_text(
        "rules:\n  - {id: alpha, severity: P1, when: {subject: alpha}}\n")
    (path / "config.yaml").write_text(f"""
mailboxes:
  - name: support
    imap: {dovecot.imap_config()}
    poll_interval: {poll_interval}
{more_mailboxes}
rules: {{path: rules}}
smtp: {{transport: file, dir: outgoing, from: "Support <support@example.test>"}}
storage: {{dir: state}}
logging: {{format: json, level: info}}
{more}
""")


@pytest.fixture
def workdir(tmp_path: Path, dovecot: DovecotServer) -> Path:
    write_config(tmp_path, dovecot)
    return tmp_path


def start_daemon(workdir: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with (workdir / "daemon.log").open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(workdir / "config.yaml"), "run"],
            stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


@pytest.fixture
def daemon(workdir: Path) -> Iterator[subprocess.Popen[bytes]]:
    process = start_daemon(workdir)
    yield process
    stop(process)


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
    wait_for_log(workdir, '"rules.reload_refused"')
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


def test_idle_answers_at_once_and_speaks_the_notify_protocol(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    """With polling an hour apart, only IDLE can bring the mail in within seconds."""
    write_config(tmp_path, dovecot, poll_interval="1h")
    notify = NotifySocket(str(tmp_path / "notify.sock"), str(tmp_path / "notify.sock"))
    process = start_daemon(tmp_path, {"NOTIFY_SOCKET": notify.address,
                                      "WATCHDOG_USEC": "2000000"})
    try:
        assert notify.wait_for("READY=1", seconds=WAIT_S)[-1].startswith("READY=1\nSTATUS=")
        status = notify.wait_for("support idle", seconds=WAIT_S)[-1]
        assert status.startswith("STATUS=support idle; 0 tickets")
        dovecot.append("INBOX", mail(1, "alpha outage"))
        started = time.monotonic()
        assert severities(tmp_path, 1) == ["P1"]
        assert time.monotonic() - started < 10
        assert "WATCHDOG=1" in notify.wait_for("WATCHDOG=1", seconds=5)
        notify.wait_for("1 tickets", seconds=10)
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
        assert "STOPPING=1" in "".join(notify.read(0.5))
    finally:
        stop(process)
        notify.close()


def test_a_broken_mailbox_stalls_no_other_and_health_names_it(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    write_config(tmp_path, dovecot, more_mailboxes=f"""
  - name: broken
    imap: {{host: 127.0.0.1, port: {free_port()}, security: none, username: x,
           password: y, timeout: 2s}}
    poll_interval: 1s
""")
    process = start_daemon(tmp_path)
    try:
        dovecot.append("INBOX", mail(1, "alpha outage"))
        assert severities(tmp_path, 1) == ["P1"]
        wait_for_log(tmp_path, '"mailbox.unavailable"')
        dovecot.append("INBOX", mail(2, "alpha again"))
        assert severities(tmp_path, 2) == ["P1", "P1"]
        health = subprocess.run(
            [sys.executable, "-m", "mailbot", "--config", str(tmp_path / "config.yaml"),
             "health", "--json"], capture_output=True, timeout=60, check=False)
        assert health.returncode == 1, health.stderr
        report = json.loads(health.stdout)
        assert [(m["name"], m["stalled"]) for m in report["mailboxes"]] == [
            ("support", False), ("broken", True)]
        assert report["problems"][0].startswith("mailbox broken: never polled (")
        assert {lease["name"] for lease in report["leases"]} >= {"mailbox:support"}
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        stop(process)
    errors = [json.loads(line) for line in (tmp_path / "daemon.log").read_text().splitlines()
              if '"mailbox.unavailable"' in line]
    assert {e["mailbox"] for e in errors} == {"broken"}


def test_metrics_and_healthz_on_the_loopback_listener(
        tmp_path: Path, dovecot: DovecotServer) -> None:
    port = free_port()
    write_config(tmp_path, dovecot,
                 more=f'metrics: {{enabled: true, listen: "127.0.0.1:{port}"}}')
    process = start_daemon(tmp_path)
    try:
        dovecot.append("INBOX", mail(1, "alpha outage"))
        assert severities(tmp_path, 1) == ["P1"]
        # The auto-reply can be counted sent before its mark is committed, and go out before
        # the pass that stored its mail has recorded its end: wait for all three.
        last_poll = 'mailbot_mailbox_last_poll_timestamp_seconds{mailbox="support"}'
        none_queued = 'mailbot_outbox_mails{status="queued"} 0.0'
        metrics = http_get(port, "/metrics", lambda body: last_poll in body and
                           none_queued in body and
                           'mailbot_mails_sent_total{kind="auto_reply"}' in body)
        assert 'mailbot_messages_total{mailbox="support",outcome="ticket"} 1.0' in metrics
        assert "mailbot_arrival_to_ticket_seconds_count{mailbox=\"support\"} 1.0" in metrics
        assert 'mailbot_auto_replies_queued_total 1.0' in metrics
        assert "mailbot_database_up 1.0" in metrics
        assert none_queued in metrics
        assert "mailbot_quarantine_held 0.0" in metrics
        assert 'mailbot_lease_held{name="mailbox:support"} 1.0' in metrics
        assert last_poll in metrics
        health = json.loads(http_get(port, "/healthz", lambda body: True))
        assert health["ok"] is True and health["mailboxes"][0]["name"] == "support"
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=10) == 0
    finally:
        stop(process)


def http_get(port: int, path: str, ready: Callable[[str], bool]) -> str:
    """The body at `path` once `ready` accepts it (bounded wait)."""
    deadline = time.monotonic() + WAIT_S
    body = ""
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as reply:
                body = reply.read().decode()
            if ready(body):
                return body
        except OSError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"{path} not ready within {WAIT_S} s; last body:\n{body}")


def test_a_bad_config_on_sighup_is_refused_with_its_key_and_work_goes_on(
        workdir: Path, dovecot: DovecotServer, daemon: subprocess.Popen[bytes]) -> None:
    dovecot.append("INBOX", mail(1, "alpha one"))
    assert severities(workdir, 1) == ["P1"]
    config = workdir / "config.yaml"
    good = config.read_text()
    config.write_text(good + "auto_reply: {per_sender_per_hour: lots}\n")
    daemon.send_signal(signal.SIGHUP)
    wait_for_log(workdir, '"config.reload_refused"')
    dovecot.append("INBOX", mail(2, "alpha two"))
    assert severities(workdir, 2) == ["P1", "P1"]
    daemon.send_signal(signal.SIGTERM)
    assert daemon.wait(timeout=10) == 0
    (refused,) = [json.loads(line) for line in (workdir / "daemon.log").read_text().splitlines()
                  if '"config.reload_refused"' in line]
    assert "auto_reply.per_sender_per_hour" in refused["error"]
