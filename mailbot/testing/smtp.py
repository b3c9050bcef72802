"""An SMTP server on loopback that keeps what it receives, and can refuse or go down on cue."""

from __future__ import annotations

import email
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from types import TracebackType
from typing import Any

from aiosmtpd.controller import Controller

from mailbot.testing.ports import free_port


@dataclass(frozen=True)
class Received:
    """One mail as the server got it: envelope and bytes."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    data: bytes
    at: float = field(default_factory=time.monotonic)  # when DATA completed

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class _Handler:
    def __init__(self, capture: SmtpCapture) -> None:
        self.capture = capture

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        refusal = self.capture.fail_with
        if refusal is not None:
            return f"{refusal[0]} {refusal[1]}"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.capture.add(Received(envelope.mail_from, tuple(envelope.rcpt_tos),
                                  bytes(envelope.original_content or envelope.content)))
        return "250 Message accepted"


class SmtpCapture:
    """aiosmtpd on 127.0.0.1; `fail_with = (451, "try later")` makes it refuse recipients."""

    def __init__(self, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.fail_with: tuple[int, str] | None = None
        self._received: list[Received] = []
        self._condition = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpCapture:
        if self._controller is None:
            self._controller = Controller(_Handler(self), hostname=self.host, port=self.port)
            self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def __enter__(self) -> SmtpCapture:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    def add(self, received: Received) -> None:
        with self._condition:
            self._received.append(received)
            self._condition.notify_all()

    @property
    def messages(self) -> list[Received]:
        with self._condition:
            return list(self._received)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """The first `count` mails, waiting at most `timeout` seconds for them."""
        deadline = time.monotonic() + timeout
        with self._condition:
            while len(self._received) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(self._received)} of {count} mails arrived "
                                         f"within {timeout} s")
                self._condition.wait(left)
            return list(self._received)
