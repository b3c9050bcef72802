"""An SMTP server on loopback that keeps what it receives, and can refuse or go down on cue."""

from __future__ import annotations

import base64
import email
import json
import threading
import time
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from types import TracebackType
from typing import TYPE_CHECKING, Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult

from mailbot.testing.ports import free_port

if TYPE_CHECKING:
    from mailbot.testing.oauth_provider import OAuthProvider


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


class _OAuthHandler(_Handler):
    """Also takes AUTH XOAUTH2 and OAUTHBEARER, each token checked with the provider."""

    def __init__(self, capture: SmtpCapture, provider: OAuthProvider) -> None:
        super().__init__(capture)
        self.provider = provider

    async def auth_XOAUTH2(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "XOAUTH2")

    async def auth_OAUTHBEARER(self, server: SMTP, args: list[str]) -> AuthResult:
        return await self._bearer(server, args, "OAUTHBEARER")

    async def _bearer(self, server: SMTP, args: list[str], mechanism: str) -> AuthResult:
        if len(args) > 1:
            blob = base64.b64decode(args[1])
        else:
            answer = await server.challenge_auth("")
            if not isinstance(answer, bytes):
                return AuthResult(success=False, handled=True)
            blob = answer
        user, token = _bearer_fields(blob.decode(errors="replace"), mechanism)
        if self.provider.valid(user, token):
            self.capture.logins.append((mechanism, user))
            return AuthResult(success=True, auth_data=user)
        # As Gmail does: an error status as a challenge, answered with an empty line.
        status = json.dumps({"status": "401", "schemes": "bearer"})
        await server.challenge_auth(status)
        return AuthResult(success=False, handled=False)


def _bearer_fields(text: str, mechanism: str) -> tuple[str, str]:
    """(user, token) of an XOAUTH2 or OAUTHBEARER initial response."""
    parts = text.split("\x01")
    user = ""
    if mechanism == "OAUTHBEARER":
        header = parts[0].split(",")
        user = next((h[2:] for h in header if h.startswith("a=")), "")
        user = user.replace("=2C", ",").replace("=3D", "=")
    token = ""
    for part in parts:
        if part.startswith("user="):
            user = part[5:]
        elif part.startswith("auth=Bearer "):
            token = part[len("auth=Bearer "):]
    return user, token


class SmtpCapture:
    """aiosmtpd on 127.0.0.1; `fail_with = (451, "try later")` makes it refuse recipients.

    With `oauth`, it offers AUTH XOAUTH2 and OAUTHBEARER (less `exclude`) on the plain
    loopback connection and checks each bearer token with that provider; `logins` lists the
    (mechanism, user) of each accepted login.
    """

    def __init__(self, port: int | None = None, *, oauth: OAuthProvider | None = None,
                 exclude: tuple[str, ...] = ()) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self.fail_with: tuple[int, str] | None = None
        self.oauth = oauth
        self.exclude = exclude
        self.logins: list[tuple[str, str]] = []
        self._received: list[Received] = []
        self._condition = threading.Condition()
        self._controller: Controller | None = None

    def start(self) -> SmtpCapture:
        if self._controller is None:
            if self.oauth is None:
                self._controller = Controller(_Handler(self), hostname=self.host,
                                              port=self.port)
            else:
                self._controller = Controller(
                    _OAuthHandler(self, self.oauth), hostname=self.host, port=self.port,
                    auth_require_tls=False,
                    auth_exclude_mechanism=["PLAIN", "LOGIN", *self.exclude])
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

    def wait_for_distinct(self, count: int, timeout: float = 10.0) -> dict[str, int]:
        """Copies received per Message-ID, once `count` distinct ones have arrived.

        Sending is at-least-once: a connection lost between the SMTP server's 250 and the
        outbox row marked sent means the same mail, with the same Message-ID, goes again.
        """
        deadline = time.monotonic() + timeout
        with self._condition:
            while True:
                copies: dict[str, int] = {}
                for received in self._received:
                    key = str(received.message["Message-ID"])
                    copies[key] = copies.get(key, 0) + 1
                if len(copies) >= count:
                    return copies
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"{len(copies)} of {count} distinct mails arrived "
                                         f"within {timeout} s")
                self._condition.wait(left)
