"""The mailbot command as an operator uses it: exit codes, --json fields, errors."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.testing import free_port

SAMPLES = Path(__file__).resolve().parents[1] / "mailbot" / "samples"
TICKET_FIELDS = {"number", "status", "severity", "customer_id", "customer_verified",
                 "requester", "subject", "created_at", "response_due", "resolution_due",
                 "first_response_at", "resolved_at", "matched_rules", "message_count",
                 "attachment_count"}


def mailbot(config: Path | None, *args: str, stdin: bytes | None = None
            ) -> subprocess.CompletedProcess[bytes]:
    base = [sys.executable, "-m", "mailbot"] + (["--config", str(config)] if config else [])
    return subprocess.run([*base, *args], input=stdin, capture_output=True, timeout=120,
                          check=False)


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text("storage: {dir: state}\nlogging: {format: json, level: warning}\n")
    return path


def test_ingest_files_then_list_tickets_as_json(config: Path) -> None:
    """Each sample becomes a ticket; the list carries the documented fields."""
    files = sorted(str(p) for p in SAMPLES.glob("*.eml"))
    ingested = mailbot(config, "ingest", "--json", *files)
    assert ingested.returncode == 0, ingested.stderr
    assert [r["outcome"] for r in json.loads(ingested.stdout)] == ["ticket"] * len(files)
    listed = json.loads(mailbot(config, "tickets", "list", "--json").stdout)
    assert len(listed) == len(files)
    assert set(listed[0]) >= TICKET_FIELDS
    assert listed[1]["attachment_count"] == 1


def test_ingest_from_stdin_as_an_mta_pipe(config: Path) -> None:
    raw = (SAMPLES / "01-outage.eml").read_bytes()
    first = mailbot(config, "ingest", stdin=raw)
    again = mailbot(config, "ingest", stdin=raw)
    assert (first.returncode, again.returncode) == (0, 0)
    assert b"ticket #1" in first.stdout and b"already stored (ticket #1)" in again.stdout


def test_ingest_exits_75_when_the_database_is_unreachable(tmp_path: Path) -> None:
    """An MTA retries on 75; nothing may be lost by answering otherwise."""
    config = tmp_path / "config.yaml"
    config.write_text(f"database: {{url: 'postgresql+psycopg://nobody@127.0.0.1:{free_port()}"
                      "/none'}\n")
    result = mailbot(config, "ingest", stdin=(SAMPLES / "01-outage.eml").read_bytes())
    assert result.returncode == 75, result.stderr


def test_bad_config_stops_with_the_key_and_exit_78(tmp_path: Path) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("mailboxes:\n  - name: support\n    imap: {host: h, username: u, "
                      "port: nine}\n")
    result = mailbot(config, "tickets", "list")
    assert result.returncode == 78
    assert b"mailboxes[0].imap.port" in result.stderr


def test_show_unknown_ticket_fails_clearly(config: Path) -> None:
    result = mailbot(config, "tickets", "show", "42")
    assert (result.returncode, result.stderr.strip()) == (1, b"mailbot: no ticket #42")


def test_show_ticket_with_messages_and_audit_trail(config: Path) -> None:
    mailbot(config, "ingest", str(SAMPLES / "02-bug-with-screenshot.eml"))
    shown = json.loads(mailbot(config, "tickets", "show", "1", "--json").stdout)
    (message,) = shown["messages"]
    assert message["attachments"][0]["filename"] == "export totals.png"
    assert [e["kind"] for e in shown["events"]][:1] == ["created"]


def test_customers_import_then_ticket_is_verified(config: Path, tmp_path: Path) -> None:
    directory = tmp_path / "customers.csv"
    directory.write_text("customer_id,name,domains,contacts,account_manager,plan\n"
                         "RC-10442,Acme,acme.example,ops@acme.example,am@s.example,standard\n")
    imported = mailbot(config, "customers", "import", str(directory))
    assert imported.stdout.strip() == b"1 customer(s) added, 0 updated"
    mailbot(config, "ingest", str(SAMPLES / "01-outage.eml"))
    (ticket,) = json.loads(mailbot(config, "tickets", "list", "--json").stdout)
    assert (ticket["customer_id"], ticket["customer_verified"]) == ("RC-10442", True)
    listed = json.loads(mailbot(config, "customers", "list", "--json").stdout)
    assert listed[0]["domains"] == ["acme.example"]


def test_customers_import_of_a_bad_file_names_the_line(config: Path, tmp_path: Path) -> None:
    directory = tmp_path / "customers.yaml"
    directory.write_text("- customer_id: A-1\n- customer_id: A-2\n  contacts: [nope]\n")
    result = mailbot(config, "customers", "import", str(directory))
    assert result.returncode == 1 and b"customers.yaml:2: not an email address" in result.stderr


def test_quarantine_list_replay_and_drop(config: Path, tmp_path: Path) -> None:
    junk = tmp_path / "junk.eml"
    junk.write_bytes(b"\x89PNG\r\n\x1a\n not a mail")
    size = junk.stat().st_size
    result = mailbot(config, "ingest", str(junk))
    assert result.returncode == 0 and b"quarantined as 1" in result.stdout
    (entry,) = json.loads(mailbot(config, "quarantine", "list", "--json").stdout)
    assert {"id", "reason", "received_at", "source", "size"} <= set(entry)
    assert entry["reason"].startswith("unparseable") and entry["size"] == size
    replayed = mailbot(config, "quarantine", "replay", "1")
    assert replayed.returncode == 1 and b"quarantined" in replayed.stdout
    assert mailbot(config, "quarantine", "drop", "1").returncode == 0
    assert json.loads(mailbot(config, "quarantine", "list", "--json").stdout) == []


def test_db_upgrade_reports_the_schema(config: Path) -> None:
    first = mailbot(config, "db", "upgrade")
    second = mailbot(config, "db", "upgrade")
    assert first.stdout.startswith(b"schema: empty -> ")
    assert second.stdout.startswith(b"schema already at ")


def test_demo_prints_the_sample_tickets(tmp_path: Path) -> None:
    result = mailbot(None, "demo", "--dir", str(tmp_path / "demo"))
    assert result.returncode == 0, result.stderr
    assert b"4 sample mails ingested" in result.stdout
    assert b"RC-10442" in result.stdout and (tmp_path / "demo" / "mailbot.db").exists()


def test_demo_plays_a_conversation_on_ticket_one(tmp_path: Path) -> None:
    result = mailbot(None, "demo", "--dir", str(tmp_path / "demo"), "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert [m["role"] for m in data["conversation"]] == ["customer", "agent", "customer",
                                                         "agent"]
    assert not any(m["text"].startswith("#") for m in data["conversation"])
    kinds = [m["kind"] for m in data["outgoing"]]
    assert kinds.count("auto_reply") == 4 and kinds.count("relay") == 2
    assert kinds.count("confirmation") == 2
    (ticket,) = [t for t in data["tickets"] if t["number"] == 1]
    show = json.loads(mailbot(tmp_path / "demo" / "config.yaml", "tickets", "show", "1",
                              "--json").stdout)
    assert (show["status"], show["assignee"], ticket["severity"]) == ("resolved", "Nimal", "P1")
    assert show["first_response_at"] is not None


def test_sla_due_in_words_and_as_instants(tmp_path: Path) -> None:
    """The example configuration's Colombo policy: a P1 received on Friday evening."""
    config = Path(__file__).resolve().parents[1] / "config.example.yaml"
    env_config = tmp_path / "config.yaml"
    env_config.write_text(config.read_text().replace(
        "password_file: /run/credentials/mailbot.service/imap", "password: x").replace(
        "password_file: /run/credentials/mailbot.service/smtp", "password: y"))
    result = mailbot(env_config, "sla", "due", "--severity", "P1", "--received",
                     "2026-11-20T18:00:00+05:30", "--json")
    assert result.returncode == 0, result.stderr
    due = json.loads(result.stdout)
    assert (due["policy"], due["clock_start"]) == ("standard", "2026-11-23T08:00:00+05:30")
    assert due["response"]["due"] == "2026-11-25T08:00:00+05:30"
    assert due["response"]["words"] == ("within 1 working day — by Wednesday 25 November 2026, "
                                        "08:00 Sri Lanka Time (UTC+05:30)")
    assert due["resolution"]["due"] == "2026-11-26T08:00:00+05:30"


def test_sla_due_refuses_a_time_without_offset() -> None:
    result = mailbot(None, "sla", "due", "--severity", "P2", "--received", "2026-11-20T18:00")
    assert result.returncode == 1 and b"needs a UTC offset" in result.stderr


def test_show_lists_the_files_inside_a_forwarded_mail(config: Path) -> None:
    raw = (b"From: Jane <jane@customer.example>\r\nTo: support@example.com\r\n"
           b"Subject: Fwd: the failing export\r\nMessage-ID: <fwd-1@customer.example>\r\n"
           b'MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="o"\r\n\r\n'
           b"--o\r\nContent-Type: text/plain\r\n\r\nSee the mail below.\r\n"
           b"--o\r\nContent-Type: message/rfc822\r\n\r\n"
           b"From: ops@customer.example\r\nSubject: Export log\r\nMIME-Version: 1.0\r\n"
           b'Content-Type: multipart/mixed; boundary="i"\r\n\r\n'
           b"--i\r\nContent-Type: text/plain\r\n\r\nLog attached.\r\n"
           b"--i\r\nContent-Type: text/plain\r\nContent-Disposition: attachment; "
           b"filename=export.log\r\n\r\nERROR 42\r\n--i--\r\n--o--\r\n")
    assert mailbot(config, "ingest", stdin=raw).returncode == 0
    shown = json.loads(mailbot(config, "tickets", "show", "1", "--json").stdout)
    (attached,) = shown["messages"][0]["attachments"]
    assert (attached["filename"], attached["contents"]) == ("Export log.eml", ["export.log"])
    text = mailbot(config, "tickets", "show", "1").stdout.decode()
    assert "Export log.eml (message/rfc822" in text and "holds export.log" in text


def test_the_command_hands_the_gil_over_to_a_waiting_thread_within_a_tenth_of_a_ms() -> None:
    """The ingest loop waits for the GIL behind the IMAP, outbox and pool threads."""
    script = ("import sys\nfrom mailbot import cli\nsys.argv = ['mailbot', '--help']\n"
              "try:\n    cli.run()\nexcept SystemExit:\n    pass\n"
              "print(sys.getswitchinterval(), file=sys.stderr)")
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=120,
                            check=False)
    assert b"Usage" in result.stdout
    assert float(result.stderr.decode().split()[-1]) == pytest.approx(0.0001)
