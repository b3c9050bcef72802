"""`mailbot run` under faults: instances killed, servers gone, connections cut, locks held.

Two instances on one database and one mailbox share the work: each mailbox is worked by one
instance at a time (a lease), outbox rows are claimed with SKIP LOCKED, and when the
instance working the mailbox is killed the other takes over. The drills stop Dovecot and
the SMTP server, cut every PostgreSQL connection, hold SQLite's write lock, and feed a
message whose processing fails; ingestion resumes by itself, nothing is lost or doubled,
and no message is acked (moved to Processed) without its ticket committed.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text

from mailbot.testing import DovecotServer, SmtpCapture, throwaway_database

COUNT = 500
WAIT_S = 120.0

pytestmark = [pytest.mark.postgres, pytest.mark.dovecot]


def customer_mail(n: int) -> bytes:
    return (f"From: Customer {n} <c{n}@example.org>\r\nTo: support@example.test\r\n"
            f"Subject: export fails ({n})\r\nMessage-ID: <cluster-{n}@example.org>\r\n\r\n"
            f"Customer ID: RC-{10000 + n}\r\n").encode()


@pytest.fixture
def database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


def write_config(path: Path, dovecot: DovecotServer, smtp: SmtpCapture, url: str,
                 more: str = "", database: str = "lease_ttl: 3s") -> Path:
    config = path / "config.yaml"
    config.write_text(f"""
mailboxes:
  - name: support
    imap: {dovecot.imap_config()}
    poll_interval: 1s
    batch_size: 50
database: {{url: "{url}", {database}}}
smtp: {{host: {smtp.host}, port: {smtp.port}, security: none,
        from: "Support <support@example.test>", retry: {{first_delay: 1s, max_delay: 2s}}}}
storage: {{dir: state}}
secret_key: "0123456789abcdef0123456789abcdef"
logging: {{format: json, level: info}}
{more}
""")
    subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), "db", "upgrade"],
                   check=True, capture_output=True, timeout=120)
    return config


def start(config: Path, name: str) -> subprocess.Popen[bytes]:
    with (config.parent / f"{name}.log").open("wb") as log:
        return subprocess.Popen([sys.executable, "-m", "mailbot", "--config", str(config), "run"],
                                stdout=log, stderr=subprocess.STDOUT)


def count(url: str, query: str) -> int:
    return int(scalar(url, query))


def scalar(url: str, query: str) -> str:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return str(connection.execute(text(query)).scalar_one())
    finally:
        engine.dispose()


def wait_until(predicate: object, what: str) -> None:
    assert callable(predicate)
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    raise AssertionError(f"not within {WAIT_S} s: {what}")


def mailbox_holder_pid(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            holder = connection.execute(text(
                "SELECT holder FROM leases WHERE name = 'mailbox:support'")).scalar_one()
    finally:
        engine.dispose()
    return int(holder.split(":")[1])


def check_exactly_once(url: str, smtp: SmtpCapture, dovecot: DovecotServer) -> None:
    wait_until(lambda: count(url, "SELECT count(*) FROM outbox WHERE status = 'sent'") >= COUNT,
               f"{COUNT} auto-replies sent")
    assert count(url, "SELECT count(*) FROM tickets") == COUNT
    assert count(url, "SELECT count(DISTINCT requester) FROM tickets") == COUNT
    assert count(url, "SELECT count(*) FROM outbox WHERE kind = 'auto_reply'") == COUNT
    assert count(url, "SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
    received = Counter(r.message["Message-ID"] for r in smtp.wait_for(COUNT, timeout=WAIT_S))
    assert len(received) == COUNT
    assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == COUNT


def stop_all(*processes: subprocess.Popen[bytes]) -> None:
    for process in processes:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in processes:
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


def test_two_instances_make_each_ticket_and_auto_reply_once(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    config = write_config(tmp_path, dovecot, smtp_server, database)
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(COUNT)])
    first, second = start(config, "first"), start(config, "second")
    try:
        check_exactly_once(database, smtp_server, dovecot)
        assert len(smtp_server.messages) == COUNT
    finally:
        stop_all(first, second)
    assert (first.returncode, second.returncode) == (0, 0)


def test_the_other_instance_finishes_when_the_working_one_is_killed(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    config = write_config(tmp_path, dovecot, smtp_server, database)
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(COUNT)])
    processes = {p.pid: p for p in (start(config, "first"), start(config, "second"))}
    try:
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") >= COUNT // 4,
                   "a quarter of the tickets")
        victim = mailbox_holder_pid(database)
        os.kill(victim, signal.SIGKILL)
        processes[victim].wait(timeout=10)
        check_exactly_once(database, smtp_server, dovecot)
        # At-least-once sending: a mail accepted by the server in the instant before the
        # killed instance could record it is sent again, with the same Message-ID.
        assert COUNT <= len(smtp_server.messages) <= COUNT + 1
        survivor = next(p for pid, p in processes.items() if pid != victim)
        assert survivor.poll() is None
        assert mailbox_holder_pid(database) == survivor.pid
    finally:
        stop_all(*processes.values())


def test_drill_dovecot_stopped_and_restarted_mid_run(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    config = write_config(tmp_path, dovecot, smtp_server, database)
    dovecot.append_many("INBOX", [customer_mail(n) for n in range(10)])
    process = start(config, "daemon")
    try:
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") == 10, "10 tickets")
        dovecot.stop()
        wait_until(lambda: "mailbox.unavailable" in (tmp_path / "daemon.log").read_text(),
                   "the outage noticed")
        dovecot.start()
        dovecot.append_many("INBOX", [customer_mail(n) for n in range(10, 20)])
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") == 20,
                   "20 tickets after the restart")
        assert process.poll() is None
        assert dovecot.count("INBOX") == 0 and dovecot.count("Processed") == 20
        assert len(smtp_server.wait_for_distinct(20)) == 20
    finally:
        stop_all(process)
    assert process.returncode == 0


def test_drill_database_connections_cut_mid_run(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    """As if PostgreSQL restarted, over and over for a few seconds while mail arrives."""
    config = write_config(tmp_path, dovecot, smtp_server, database)
    process = start(config, "daemon")
    name = database.rsplit("/", 1)[1]
    admin = create_engine(database, isolation_level="AUTOCOMMIT")
    try:
        wait_until(lambda: "mailbox.lease_taken" in (tmp_path / "daemon.log").read_text(),
                   "the daemon at work")
        with admin.connect() as connection:
            for n in range(30):
                dovecot.append("INBOX", customer_mail(n))
                connection.execute(text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
                time.sleep(0.1)
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") == 30, "30 tickets")
        wait_until(lambda: dovecot.count("INBOX") == 0, "every message acked")
        assert dovecot.count("Processed") == 30
        assert count(database, "SELECT count(*) FROM messages") == 30
        assert count(database, "SELECT count(*) FROM quarantine") == 0
        assert len(smtp_server.wait_for_distinct(30)) == 30
        assert process.poll() is None
    finally:
        admin.dispose()
        stop_all(process)
    assert process.returncode == 0


def test_drill_smtp_server_down_then_up(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    """Mail keeps being ticketed while the SMTP server is down; then each reply goes once."""
    config = write_config(tmp_path, dovecot, smtp_server, database)
    smtp_server.stop()
    process = start(config, "daemon")
    try:
        dovecot.append_many("INBOX", [customer_mail(n) for n in range(20)])
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") == 20, "20 tickets")
        wait_until(lambda: count(database, "SELECT count(*) FROM outbox "
                                           "WHERE attempts > 0") >= 2,
                   "two tries while the server is down")
        assert count(database, "SELECT count(*) FROM outbox WHERE status = 'sent'") == 0
        smtp_server.start()
        wait_until(lambda: count(database, "SELECT count(*) FROM outbox "
                                           "WHERE status = 'sent'") == 20, "20 mails sent")
        received = Counter(r.message["Message-ID"] for r in smtp_server.wait_for(20))
        assert len(received) == 20 and set(received.values()) == {1}
        assert count(database, "SELECT count(*) FROM outbox WHERE status <> 'sent'") == 0
        assert process.poll() is None
    finally:
        stop_all(process)
    assert process.returncode == 0


def test_drill_message_failing_three_times_is_quarantined_and_the_rest_flow(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture,
        database: str) -> None:
    """An admin's template breaks on one subject: that message alone is tried three times."""
    templates = tmp_path / "templates"
    templates.mkdir()
    shipped = (Path(__file__).parents[1] / "mailbot" / "templates" / "auto_reply.txt.j2")
    (templates / "auto_reply.txt.j2").write_text(
        "{% if ticket.subject == 'poison' %}{{ ticket.no_such_field }}{% endif %}"
        + shipped.read_text())
    config = write_config(tmp_path, dovecot, smtp_server, database,
                          more=f"templates: {{path: {templates}}}")
    poison = (b"From: c99@example.org\r\nTo: support@example.test\r\nSubject: poison\r\n"
              b"Message-ID: <poison@example.org>\r\n\r\nCustomer ID: RC-10099\r\n")
    dovecot.append_many("INBOX", [customer_mail(0), poison, customer_mail(1)])
    process = start(config, "daemon")
    try:
        wait_until(lambda: count(database, "SELECT count(*) FROM quarantine") == 1,
                   "the failing message quarantined")
        log = (tmp_path / "daemon.log").read_text()
        assert log.count('"message.processing_failed"') == 3
        assert count(database, "SELECT count(*) FROM tickets") == 2
        reason = scalar(database, "SELECT reason FROM quarantine")
        assert reason == (f"processing failed 3 times: TemplateProblem: "
                          f"{templates / 'auto_reply.txt.j2'}:1: "
                          "'dict object' has no attribute 'no_such_field'")
        dovecot.append("INBOX", customer_mail(2))
        wait_until(lambda: count(database, "SELECT count(*) FROM tickets") == 3,
                   "later mail ticketed")
        wait_until(lambda: dovecot.count("INBOX") == 0, "every message acked")
        assert (dovecot.count("Processed"), dovecot.count("Quarantine")) == (3, 1)
        assert process.poll() is None
    finally:
        stop_all(process)
    assert process.returncode == 0


def test_drill_sqlite_write_lock_held_by_another_process(
        tmp_path: Path, dovecot: DovecotServer, smtp_server: SmtpCapture) -> None:
    """Another program holds SQLite's write lock for seconds: nothing is acked till it lets go."""
    path = tmp_path / "state" / "mailbot.db"
    url = f"sqlite:///{path}"
    config = write_config(tmp_path, dovecot, smtp_server, url, database="busy_timeout: 1s")
    process = start(config, "daemon")
    try:
        wait_until(lambda: '"mailbox.pass"' in (tmp_path / "daemon.log").read_text(),
                   "the daemon at work")
        holder = sqlite3.connect(path, isolation_level=None, timeout=10)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            dovecot.append_many("INBOX", [customer_mail(n) for n in range(10)])
            wait_until(lambda: "database is locked" in (tmp_path / "daemon.log").read_text(),
                       "the lock felt")
            time.sleep(3)
            assert dovecot.count("Processed") == 0 and dovecot.count("INBOX") == 10
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        wait_until(lambda: count(url, "SELECT count(*) FROM tickets") == 10, "10 tickets")
        wait_until(lambda: dovecot.count("INBOX") == 0, "every message acked")
        assert dovecot.count("Processed") == 10
        assert count(url, "SELECT count(*) FROM quarantine") == 0
        assert len(smtp_server.wait_for_distinct(10)) == 10
        assert process.poll() is None
    finally:
        stop_all(process)
    assert process.returncode == 0
