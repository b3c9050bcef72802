"""Throughput of `mailbot poll` draining a Dovecot mailbox of N synthetic support mails.

    .venv/bin/python bench/poll.py --count 5000 [--database postgresql]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from synthetic import support_mails

from mailbot.testing import DovecotServer, throwaway_database


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=5000)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        dovecot = stack.enter_context(DovecotServer(mail_location="sdbox:~/sdbox"))
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mbbench-")))
        url = (stack.enter_context(throwaway_database()) if args.database == "postgresql"
               else f"sqlite:///{work / 'mailbot.db'}")
        started = time.perf_counter()
        appended = dovecot.append_many("INBOX", support_mails(args.count))
        append_s = time.perf_counter() - started
        config = work / "config.yaml"
        config.write_text(json.dumps({
            "mailboxes": [{"name": "support", "imap": {
                "host": dovecot.host, "port": dovecot.port, "security": "none",
                "username": dovecot.username, "password": dovecot.password}}],
            "database": {"url": url}, "storage": {"dir": str(work)},
            "logging": {"format": "json", "level": "warning"}}))
        subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), "db",
                        "upgrade"], check=True, capture_output=True, timeout=120)
        started = time.perf_counter()
        result = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config),
                                 "poll", "--json"], capture_output=True, timeout=3600,
                                check=True)
        poll_s = time.perf_counter() - started
        (report,) = json.loads(result.stdout)
        assert report["tickets"] == appended, report
        assert dovecot.count("INBOX") == 0
    print(f"appended {appended} mails in {append_s:.1f} s")
    print(f"mailbot poll ({args.database}): {report['tickets']} tickets in {poll_s:.1f} s "
          f"= {report['tickets'] / poll_s:.0f} messages/s (including process start-up)")


if __name__ == "__main__":
    main()
