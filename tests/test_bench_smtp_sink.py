"""bench/smtp_sink.py, the benchmarks' receiving SMTP server, counts each mail mailbot sends."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "bench"))

from smtp_sink import SmtpSink

from mailbot.mail.smtp import SmtpTransport


def test_every_mail_sent_over_one_session_is_counted_once() -> None:
    bodies = [
        b"Subject: one\r\n\r\nHello.\r\n",
        b"Subject: dots\r\n\r\n.a line that starts with a dot\r\n..\r\n.\r\nend\r\n",
        b"Subject: empty\r\n\r\n",
        b"Subject: large\r\n\r\n" + (b"y" * 76 + b"\r\n") * 5000,
    ]
    with SmtpSink() as sink:
        transport = SmtpTransport(sink.host, sink.port, "none", timeout=5)
        try:
            for n, body in enumerate(bodies):
                transport.send("support@example.test", ["jane@customer.example"], body, f"m{n}")
        finally:
            transport.close()
        assert sink.received == len(bodies)
