"""Arrival to auto-reply: the daemon in IMAP IDLE, one message at a time.

    .venv/bin/python bench/latency.py [--count 200] [--database sqlite|postgresql]

`mailbot run` with the shipped configuration, rules and templates works a throwaway Dovecot
in IDLE (polling an hour apart, so only IDLE can bring mail in) and delivers to an SMTP
server on loopback. Each of `count` support mails, from a sender of its own, is APPENDed
on an open IMAP connection once the previous one's auto-reply has arrived; the time from
just before the APPEND to the auto-reply's DATA at the SMTP server is one sample. Prints
p50, p90, p99 and max.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import ExitStack
from pathlib import Path

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))

from ingest import mailbot_config

from mailbot.testing import DovecotServer, NotifySocket, SmtpCapture, throwaway_database

WAIT_S = 30.0


def support_mail(number: int) -> bytes:
    return (f"From: Customer {number} <customer{number}@example.org>\r\n"
            f"To: support@example.test\r\nSubject: Export fails with error {number}\r\n"
            f"Message-ID: <latency-{number}@example.org>\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\n"
            "Hello, our nightly export fails since this morning. Customer ID: RC-10442.\r\n"
            "Screenshots attached later. Thanks, Dana\r\n").encode()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=200)
    parser.add_argument("--database", choices=["sqlite", "postgresql"], default="sqlite")
    args = parser.parse_args()
    with ExitStack() as stack:
        dovecot = stack.enter_context(DovecotServer())
        smtp = stack.enter_context(SmtpCapture())
        work = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="mblatency-")))
        url = (stack.enter_context(throwaway_database()) if args.database == "postgresql"
               else f"sqlite:///{work / 'mailbot.db'}")
        config = mailbot_config(dovecot, smtp, work, url, notify_agents=False)
        config["mailboxes"][0].update(idle=True, poll_interval="1h")
        config["logging"]["level"] = "info"
        (work / "config.yaml").write_text(yaml.safe_dump(config))
        notify = NotifySocket(str(work / "notify.sock"), str(work / "notify.sock"))
        stack.callback(notify.close)
        log = stack.enter_context((work / "daemon.log").open("wb"))
        daemon = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(work / "config.yaml"), "run"],
            stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "NOTIFY_SOCKET": notify.address})

        stack.callback(stop, daemon)
        notify.wait_for("READY=1", seconds=WAIT_S)
        notify.wait_for("support idle", seconds=WAIT_S)
        drain = threading.Thread(target=notify.read, args=(3600.0,), daemon=True)
        drain.start()  # a service manager reads every datagram
        client = dovecot.client()
        stack.callback(client.logout)
        samples = []
        for number in range(1, args.count + 1):
            started = time.monotonic()
            client.append("INBOX", support_mail(number))
            try:
                received = smtp.wait_for(number, timeout=WAIT_S)[-1]
            except AssertionError:
                sys.exit(f"mail {number}: no auto-reply within {WAIT_S} s; the daemon's log "
                         f"ends:\n{(work / 'daemon.log').read_text()[-4000:]}")
            samples.append(received.at - started)
        daemon.terminate()
        code = daemon.wait(timeout=15)
    assert code == 0, f"mailbot run exited {code}"
    samples.sort()
    quantiles = statistics.quantiles(samples, n=100, method="inclusive")
    print(f"{len(samples)} mails ({args.database}), APPEND to auto-reply received: "
          f"p50 {quantiles[49]:.3f} s, p90 {quantiles[89]:.3f} s, p99 {quantiles[98]:.3f} s, "
          f"max {samples[-1]:.3f} s")


def stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is None:
        process.kill()
        process.wait(timeout=10)


if __name__ == "__main__":
    main()
