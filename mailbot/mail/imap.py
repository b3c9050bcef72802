"""A thin IMAP adapter over imapclient: connect with timeouts, fetch in batches, move or flag."""

from __future__ import annotations

import contextlib
import imaplib
import ipaddress
import logging
import socket
import ssl
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from imapclient import IMAPClient
from imapclient.exceptions import IMAPClientError, LoginError

from mailbot.oauth.errors import OAuthUnavailable
from mailbot.oauth.sasl import choose_mechanism

IMAPLIB_TRACE_LOGGER = "imapclient.imaplib"  # where imapclient sends imaplib's trace

log = structlog.get_logger("mailbot.imap")

PROCESSED_KEYWORD = "$MailbotProcessed"
MAX_BATCH_BYTES = 32 * 1024 * 1024
MAX_UIDS_PER_COMMAND = 1000  # a command line of about 8 KB, well under servers' limits


class MailboxUnavailable(Exception):
    """The mailbox cannot be worked now: connection, login, folder or protocol trouble."""


class AccessTokens(Protocol):
    """OAuth2 access tokens for one login: `token()` may refresh; `discard` one refused."""

    def token(self) -> str: ...

    def discard(self, access_token: str) -> None: ...


@dataclass(frozen=True, slots=True)
class ImapEndpoint:
    """Where and how to log in: with `password`, or SASL XOAUTH2/OAUTHBEARER with `oauth`."""

    host: str
    port: int
    security: str  # ssl | starttls | none
    username: str
    password: str
    timeout: float = 30.0
    tls_verify: bool = True
    ca_file: str | None = None
    oauth: AccessTokens | None = None


@dataclass(frozen=True, slots=True)
class FetchedMessage:
    uid: int
    raw: bytes
    internal_date: datetime | None


_NETWORK_ERRORS: tuple[type[BaseException], ...] = (
    OSError, imaplib.IMAP4.error, IMAPClientError, ssl.SSLError, EOFError)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class ImapConnection:
    """One logged-in IMAP session on one folder."""

    def __init__(self, endpoint: ImapEndpoint) -> None:
        self.endpoint = endpoint
        self._client: IMAPClient | None = None
        self.uid_next = 0

    @property
    def client(self) -> IMAPClient:
        if self._client is None:
            raise MailboxUnavailable("not connected")
        return self._client

    def open(self) -> None:
        ep = self.endpoint
        if ep.security == "none" and not is_loopback(ep.host):
            raise MailboxUnavailable(f"refusing unencrypted IMAP to non-loopback host {ep.host}")
        context = self._tls_context()
        try:
            client = IMAPClient(ep.host, port=ep.port, ssl=ep.security == "ssl",
                                ssl_context=context if ep.security == "ssl" else None,
                                timeout=ep.timeout)
            _nodelay(client)
            _without_unlogged_trace(client)
            if ep.security == "starttls":
                client.starttls(context)
            if ep.oauth is not None:
                self._oauth_login(client, ep.oauth)
            else:
                client.login(ep.username, ep.password)
        except _NETWORK_ERRORS as exc:
            raise MailboxUnavailable(f"{ep.host}:{ep.port}: {_describe(exc)}") from exc
        self._client = client

    def _oauth_login(self, client: IMAPClient, oauth: AccessTokens) -> None:
        """SASL OAUTHBEARER when offered, else XOAUTH2; a refused token is discarded."""
        ep = self.endpoint
        try:
            token = oauth.token()
        except OAuthUnavailable as exc:
            with contextlib.suppress(*_NETWORK_ERRORS):
                client.shutdown()
            raise MailboxUnavailable(f"{ep.host}:{ep.port}: oauth2: {exc}") from exc
        offered = [c.decode(errors="replace").removeprefix("AUTH=")
                   for c in client.capabilities() if c.upper().startswith(b"AUTH=")]
        try:
            if choose_mechanism(offered) == "OAUTHBEARER":
                client.oauthbearer_login(ep.username, token)
            else:
                client.oauth2_login(ep.username, token)
        except LoginError:
            oauth.discard(token)
            raise

    def close(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            client.logout()
        except _NETWORK_ERRORS:
            with contextlib.suppress(*_NETWORK_ERRORS):
                client.shutdown()

    def __enter__(self) -> ImapConnection:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def has(self, capability: str) -> bool:
        return bool(self._call(self.client.has_capability, capability))

    def ensure_folder(self, name: str) -> None:
        if not self._call(self.client.folder_exists, name):
            try:
                self._call(self.client.create_folder, name)
            except MailboxUnavailable:
                if not self._call(self.client.folder_exists, name):
                    raise

    def select(self, folder: str) -> int:
        """Select a folder for writing; returns its UIDVALIDITY (`uid_next` holds UIDNEXT)."""
        info = self._call(self.client.select_folder, folder)
        self.uid_next = int(info.get(b"UIDNEXT", 0))
        return int(info[b"UIDVALIDITY"])

    def pending_uids(self, *, after_uid: int, keyword: str | None) -> list[int]:
        """UIDs still to handle: all undeleted ones, or those above `after_uid` not flagged."""
        if keyword is None:
            uids = self._call(self.client.search, ["UNDELETED"])
            return sorted(int(u) for u in uids)
        uids = self._call(self.client.search,
                          ["UID", f"{after_uid + 1}:*", "UNDELETED", "UNKEYWORD", keyword])
        return sorted(int(u) for u in uids if int(u) > after_uid)

    def uids_after(self, uid: int) -> list[int]:
        """Undeleted messages with a UID above `uid` (what arrived since a pass saw `uid`)."""
        found = self._call(self.client.search, ["UID", f"{uid + 1}:*", "UNDELETED"])
        return sorted(int(u) for u in found if int(u) > uid)

    def forget_announcements(self) -> None:
        """Drop the server's EXISTS/RECENT news so far; `idle_wait` reports only later news."""
        pending = self.client._imap.untagged_responses  # imaplib keeps them here
        pending.pop("EXISTS", None)
        pending.pop("RECENT", None)

    def _buffered_news(self) -> bool:
        """Whether lines already sit in imaplib's read buffer, where polling cannot see them.

        A server may send news right behind IDLE's continuation in one packet; the reader
        buffered it along with the continuation. Any such line ends IDLE for a pass.
        """
        imap = self.client._imap
        sock = imap.sock
        timeout = sock.gettimeout()
        try:
            sock.setblocking(False)
            return bool(imap.file.peek(1))
        except OSError:  # nothing buffered, nothing to read now
            return False
        finally:
            sock.settimeout(timeout)

    def sizes(self, uids: Sequence[int]) -> dict[int, int]:
        """Each message's size; a backlog of any length is asked for in bounded commands."""
        found: dict[int, int] = {}
        for start in range(0, len(uids), MAX_UIDS_PER_COMMAND):
            chunk = list(uids[start:start + MAX_UIDS_PER_COMMAND])
            result = self._call(self.client.fetch, chunk, ["RFC822.SIZE"])
            found.update((int(uid), int(data.get(b"RFC822.SIZE", 0)))
                         for uid, data in result.items())
        return found

    def fetch(self, uids: Sequence[int]) -> list[FetchedMessage]:
        result = self._call(self.client.fetch, list(uids), ["BODY.PEEK[]", "INTERNALDATE"])
        fetched = [FetchedMessage(int(uid), bytes(data.get(b"BODY[]") or b""),
                                  data.get(b"INTERNALDATE"))
                   for uid, data in result.items() if b"BODY[]" in data]
        return sorted(fetched, key=lambda m: m.uid)

    def move(self, uids: Sequence[int], folder: str) -> None:
        """Move exactly these messages; COPY + \\Deleted + UID EXPUNGE without MOVE."""
        if not uids:
            return
        if self.has("MOVE"):
            self._call(self.client.move, list(uids), folder)
            return
        self._call(self.client.copy, list(uids), folder)
        self._call(self.client.add_flags, list(uids), [b"\\Deleted"])
        if self.has("UIDPLUS"):
            self._call(self.client.uid_expunge, list(uids))
        else:
            log.warning("imap.no_uidplus", detail="messages flagged \\Deleted, not expunged")

    def flag(self, uids: Sequence[int], keyword: str) -> None:
        if uids:
            self._call(self.client.add_flags, list(uids), [keyword.encode(), b"\\Seen"])

    def noop(self) -> None:
        self._call(self.client.noop)

    def idle_wait(self, seconds: float, stop: Callable[[], bool], tick: float = 1.0) -> bool:
        """IDLE on the selected folder until mail arrives (True), or `seconds` pass or `stop`.

        News of mail since the last `forget_announcements` counts as arrival. `stop` is asked
        every `tick` seconds. A connection that the server closed (BYE, or a socket that
        reads as ready but gives nothing, three ticks running) raises MailboxUnavailable.
        """
        client = self.client
        self._call(client.idle)
        # News since `forget_announcements` came with an earlier command's response (imaplib
        # kept it) or right behind IDLE's continuation (in the read buffer).
        pending = client._imap.untagged_responses
        arrived = bool(pending.pop("EXISTS", None) or pending.pop("RECENT", None)) or \
            self._buffered_news()
        deadline = time.monotonic() + seconds
        empty_wakes = 0
        while not arrived and not stop():
            left = deadline - time.monotonic()
            if left <= 0:
                break
            started = time.monotonic()
            responses = self._call(client.idle_check, min(tick, left))
            if any(len(r) > 1 and r[1] in (b"EXISTS", b"RECENT") for r in responses):
                arrived = True
            elif any(r and r[0] == b"BYE" for r in responses):
                raise MailboxUnavailable("the server ended the session (BYE)")
            elif not responses and time.monotonic() - started < min(tick, left) / 2:
                empty_wakes += 1
                if empty_wakes >= 3:
                    raise MailboxUnavailable("the server closed the connection")
            else:
                empty_wakes = 0
        self._call(client.idle_done)
        return arrived

    def _call(self, fn: Any, *args: Any) -> Any:
        try:
            return fn(*args)
        except _NETWORK_ERRORS as exc:
            raise MailboxUnavailable(f"{getattr(fn, '__name__', 'imap')}: {_describe(exc)}") \
                from exc

    def _tls_context(self) -> ssl.SSLContext:
        ep = self.endpoint
        context = ssl.create_default_context(cafile=ep.ca_file)
        if not ep.tls_verify:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context


def batches_by_size(uids: Sequence[int], sizes: dict[int, int], *, max_count: int,
                    max_bytes: int = MAX_BATCH_BYTES) -> Iterator[list[int]]:
    """Group UIDs so a fetch holds at most `max_count` messages and about `max_bytes` bytes."""
    batch: list[int] = []
    held = 0
    for uid in uids:
        size = sizes.get(uid, 0)
        if batch and (len(batch) >= max_count or held + size > max_bytes):
            yield batch
            batch, held = [], 0
        batch.append(uid)
        held += size
    if batch:
        yield batch


def _nodelay(client: IMAPClient) -> None:
    sock = getattr(client, "socket", None)
    try:
        raw = sock() if callable(sock) else None
        if raw is not None:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except (OSError, AttributeError):
        pass


def _without_unlogged_trace(client: IMAPClient) -> None:
    """imaplib's protocol trace off, unless its logger would write it.

    imapclient sets imaplib's debug level to 5 and hands the trace to the logger
    `imapclient.imaplib`; imaplib then formats every response line and literal, and at the
    end of a FETCH the repr of all its mails, before the logger drops it: three quarters of
    the CPU of fetching a mail (0.33 ms of 0.44).
    """
    if not logging.getLogger(IMAPLIB_TRACE_LOGGER).isEnabledFor(logging.DEBUG):
        client._imap.debug = 0


def _describe(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
