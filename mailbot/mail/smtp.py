"""Sending mail: SMTP (ssl / starttls / none on loopback) with timeouts, or files in a folder."""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from mailbot.mail.imap import AccessTokens, is_loopback
from mailbot.oauth.errors import OAuthUnavailable
from mailbot.oauth.sasl import choose_mechanism, oauthbearer, xoauth2


class TemporarySendFailure(Exception):
    """Try again later: the server is down, busy, or answered 4xx.

    `whole_server` is False when only this mail's recipients were deferred (a 4xx to RCPT);
    other mail may well go through now.
    """

    def __init__(self, message: str, *, whole_server: bool = True) -> None:
        super().__init__(message)
        self.whole_server = whole_server


class PermanentSendFailure(Exception):
    """The server refused for good (5xx); `code` and the reply are kept on the ticket."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code = code


class Transport(Protocol):
    """Delivers composed mail; `close` ends whatever session a run of sends kept open."""

    def send(self, sender: str, recipients: list[str], raw: bytes, message_id: str) -> None: ...

    def close(self) -> None: ...


class SmtpTransport:
    """SMTP with one session kept open across consecutive sends, until `close` or a failure.

    The TLS context (loading the system's CA store costs tens of milliseconds) is made once.
    Any error closes the session, so the next send starts on a fresh connection.
    """

    def __init__(self, host: str, port: int, security: str = "starttls", *,
                 username: str | None = None, password: str | None = None,
                 timeout: float = 30.0, ca_file: str | None = None,
                 oauth: AccessTokens | None = None) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.ca_file = ca_file
        self.oauth = oauth  # SASL XOAUTH2 / OAUTHBEARER with these tokens instead of a password
        self._context: ssl.SSLContext | None = None
        self._client: smtplib.SMTP | None = None

    def send(self, sender: str, recipients: list[str], raw: bytes, message_id: str) -> None:
        if self.security == "none" and not is_loopback(self.host):
            raise PermanentSendFailure(0, f"refusing plain SMTP to {self.host}")
        try:
            refused = self._session().sendmail(sender, recipients, raw)
        except smtplib.SMTPRecipientsRefused as exc:
            raise _classify(list(exc.recipients.values())) from exc
        except smtplib.SMTPResponseException as exc:
            self.close()
            message = exc.smtp_error.decode(errors="replace") if isinstance(
                exc.smtp_error, bytes) else str(exc.smtp_error)
            if exc.smtp_code >= 500:
                raise PermanentSendFailure(exc.smtp_code, message) from exc
            raise TemporarySendFailure(f"{exc.smtp_code} {message}") from exc
        except (smtplib.SMTPException, OSError) as exc:
            self.close()
            raise TemporarySendFailure(f"{type(exc).__name__}: {exc}") from exc
        if refused:
            raise _classify(list(refused.values()))

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.quit()
        except (smtplib.SMTPException, OSError):
            client.close()

    def _session(self) -> smtplib.SMTP:
        if self._client is not None:
            return self._client
        if self._context is None:
            self._context = ssl.create_default_context(cafile=self.ca_file)
        client: smtplib.SMTP = (
            smtplib.SMTP_SSL(self.host, self.port, timeout=self.timeout, context=self._context)
            if self.security == "ssl" else
            smtplib.SMTP(self.host, self.port, timeout=self.timeout))
        try:
            if self.security == "starttls":
                client.starttls(context=self._context)
            if self.oauth is not None:
                self._oauth_login(client, self.oauth)
            elif self.username:
                client.login(self.username, self.password or "")
        except BaseException:
            client.close()
            raise
        self._client = client
        return client


    def _oauth_login(self, client: smtplib.SMTP, oauth: AccessTokens) -> None:
        """AUTH OAUTHBEARER when offered, else XOAUTH2; a refused token is discarded.

        Both are temporary failures: the mail waits in the outbox until a login works.
        """
        try:
            token = oauth.token()
        except OAuthUnavailable as exc:
            raise TemporarySendFailure(f"oauth2: {exc}") from exc
        client.ehlo_or_helo_if_needed()
        user = self.username or ""
        mechanism = choose_mechanism(client.esmtp_features.get("auth", "").split())
        initial = (oauthbearer(user, token, self.host, self.port) if mechanism == "OAUTHBEARER"
                   else xoauth2(user, token))

        def respond(challenge: bytes | None = None) -> str:
            return initial if challenge is None else ""  # an error challenge gets an empty reply

        try:
            client.auth(mechanism, respond, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as exc:
            oauth.discard(token)
            raise TemporarySendFailure(f"AUTH {mechanism} refused: {exc.smtp_code} "
                                       f"{exc.smtp_error!r}") from exc


def _classify(replies: list[tuple[int, bytes]]) -> Exception:
    code, text = replies[0]
    message = text.decode(errors="replace")
    if all(c >= 500 for c, _ in replies):
        return PermanentSendFailure(code, message)
    return TemporarySendFailure(f"{code} {message}", whole_server=False)


@dataclass(frozen=True)
class FileTransport:
    """Writes each mail to `<dir>/<Message-ID>.eml` (demo, shadow-mode trials)."""

    directory: Path

    def send(self, sender: str, recipients: list[str], raw: bytes, message_id: str) -> None:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            name = "".join(c if c.isalnum() or c in "._-@" else "_" for c in message_id)
            fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".sending-")
            with os.fdopen(fd, "wb") as handle:
                handle.write(raw)
            os.replace(tmp, self.directory / f"{name}.eml")
        except OSError as exc:
            raise TemporarySendFailure(f"cannot write to {self.directory}: {exc}") from exc

    def close(self) -> None:
        """Nothing is kept open between files."""
