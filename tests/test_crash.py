"""SIGKILL during a poll, before the commit or between commit and move: nothing lost or doubled."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from mailbot.testing import DovecotServer

KILLER = """
import os, signal, sys
mode = sys.argv[1]
if mode == "before-commit":
    import mailbot.store.writes as writes
    original = writes.create_ticket
    calls = []
    def create_ticket(*args, **kwargs):
        ticket = original(*args, **kwargs)
        calls.append(1)
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGKILL)
        return ticket
    writes.create_ticket = create_ticket
elif mode == "after-commit":
    from mailbot.mail.imap import ImapConnection
    def move(self, uids, folder):
        os.kill(os.getpid(), signal.SIGKILL)
    ImapConnection.move = move
from mailbot.cli import run
sys.argv = ["mailbot", "--config", sys.argv[2], *sys.argv[3:]]
run()
"""


def write_config(tmp_path: Path, dovecot: DovecotServer) -> Path:
    config = tmp_path / "config.yaml"
    config.write_text(f"""
mailboxes:
  - name: support
    imap: {dovecot.imap_config()}
    batch_size: 4
database: {{url: "sqlite:///{tmp_path / 'mailbot.db'}"}}
storage: {{dir: "{tmp_path / 'var'}"}}
logging: {{format: json, level: warning}}
""")
    return config


def mailbot(config: Path, *args: str, mode: str = "none") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", KILLER, mode, str(config), *args],
                          capture_output=True, text=True, timeout=120, check=False)


def mails(count: int) -> list[bytes]:
    return [(f"From: c{n}@example.org\r\nTo: support@example.test\r\nSubject: crash {n}\r\n"
             f"Message-ID: <crash-{n}@example.org>\r\n\r\nbody {n}\r\n").encode()
            for n in range(count)]


@pytest.mark.parametrize("mode", ["before-commit", "after-commit"])
def test_killed_poll_then_rerun_loses_nothing_and_duplicates_nothing(
        tmp_path: Path, dovecot: DovecotServer, mode: str) -> None:
    """After a SIGKILL at either crash point, one more poll gives exactly one ticket per mail."""
    dovecot.append_many("INBOX", mails(10))
    config = write_config(tmp_path, dovecot)
    killed = mailbot(config, "poll", mode=mode)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert dovecot.count("INBOX") + dovecot.count("Processed") == 10
    rerun = mailbot(config, "poll")
    assert rerun.returncode == 0, rerun.stderr
    listed = mailbot(config, "tickets", "list", "--json")
    subjects = sorted(t["subject"] for t in json.loads(listed.stdout))
    assert subjects == sorted(f"crash {n}" for n in range(10))
    assert (dovecot.count("INBOX"), dovecot.count("Processed")) == (0, 10)
