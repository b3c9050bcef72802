"""The grant kept in the database: access tokens handed out, refreshed in time, rotation saved.

A refresh happens inside one transaction that holds the grant's row (`SELECT ... FOR UPDATE`
on PostgreSQL), so two instances never spend the same refresh token: the second finds the
first one's fresh access token when the lock is released. The provider's answer is written and
committed before anything else happens, before its access token is used; the only moment a
crash can lose a rotated refresh token is between the answer's arrival and that commit.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from sqlmodel import Session
from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception_type,
    stop_after_attempt,
    wait_exponential_jitter,
)

from mailbot.clock import Clock
from mailbot.oauth.endpoint import TokenAnswer, TokenEndpoint
from mailbot.oauth.errors import GrantRejected, LoginNeeded, TemporaryOAuthError
from mailbot.oauth.timing import REJECTED_RETRY_AFTER, expiry, refresh_due
from mailbot.store import Database
from mailbot.store.models import OAuthToken

log = structlog.get_logger("mailbot.oauth")

# (session, grant name, error) in the transaction that records a rejection, once per rejection
OnRejected = Callable[[Session, str, GrantRejected], None]


@dataclass(frozen=True, slots=True)
class RefreshRetry:
    """How a refresh that failed for a temporary reason is retried before giving up for now."""

    attempts: int = 4
    first_wait: float = 0.5
    max_wait: float = 8.0


class TokenSource:
    """Access tokens for one grant (`imap:<mailbox>` or `smtp`), shared through the database."""

    def __init__(self, db: Database, name: str, endpoint: TokenEndpoint, clock: Clock, *,
                 login_hint: str, on_rejected: OnRejected | None = None,
                 retry: RefreshRetry | None = None,
                 after_save: Callable[[], None] | None = None) -> None:
        self.db = db
        self.name = name
        self.endpoint = endpoint
        self.clock = clock
        self.login_hint = login_hint  # the command that stores a grant, for error texts
        self.on_rejected = on_rejected
        self.retry = retry or RefreshRetry()
        self.after_save = after_save  # told once a refreshed grant is committed
        self._lock = threading.Lock()

    def token(self) -> str:
        """A valid access token; refreshes (and saves) when the stored one is near its end.

        Raises LoginNeeded, GrantRejected (at once while a rejected grant waits for its
        retry) or TemporaryOAuthError after the bounded retries.
        """
        with self._lock:
            row = self._read()
            now = self.clock.now()
            if _usable(row, now):
                assert row.access_token is not None
                return row.access_token
            _refuse_if_waiting(row, now)
            retrying = Retrying(
                retry=retry_if_exception_type(TemporaryOAuthError),
                stop=stop_after_attempt(self.retry.attempts),
                wait=wait_exponential_jitter(multiplier=self.retry.first_wait,
                                             max=self.retry.max_wait),
                before_sleep=self._log_retry, reraise=True)
            try:
                return retrying(self._refresh)
            except TemporaryOAuthError as exc:
                self._note_error(str(exc))
                raise

    def discard(self, access_token: str) -> None:
        """The server refused this access token: the next `token()` refreshes."""
        with self.db.transaction() as session:
            row = session.get(OAuthToken, self.name, with_for_update=True)
            if row is not None and row.access_token == access_token:
                row.access_token, row.access_expires_at = None, None
                session.add(row)
        log.warning("oauth.token_refused", grant=self.name,
                    detail="the server refused the access token; the next login refreshes it")

    def _read(self) -> OAuthToken:
        with self.db.session() as session:
            row = session.get(OAuthToken, self.name)
        if row is None:
            raise LoginNeeded(f"no OAuth2 grant stored for {self.name}: run `{self.login_hint}`")
        return row

    def _refresh(self) -> str:
        rejected: GrantRejected | None = None
        rotated = False
        with self.db.transaction() as session:
            row = session.get(OAuthToken, self.name, with_for_update=True)
            if row is None:
                raise LoginNeeded(f"no OAuth2 grant stored for {self.name}: "
                                  f"run `{self.login_hint}`")
            now = self.clock.now()
            if _usable(row, now):  # another instance refreshed while we waited for the lock
                assert row.access_token is not None
                return row.access_token
            _refuse_if_waiting(row, now)
            try:
                answer = self.endpoint.refresh(row.refresh_token)
            except GrantRejected as exc:
                rejected = exc
                self._record_rejection(session, row, exc, self.clock.now())
            else:
                rotated = apply_answer(row, answer, self.clock.now())
                row.state, row.last_error, row.retry_after, row.alerted_at = \
                    "active", None, None, None
            session.add(row)
        # committed: the rotated refresh token is safe before its access token is used
        if rejected is not None:
            raise rejected
        if self.after_save is not None:
            self.after_save()
        log.info("oauth.refreshed", grant=self.name, rotated=rotated,
                 expires_at=row.access_expires_at.isoformat() if row.access_expires_at
                 else None)
        assert row.access_token is not None
        return row.access_token

    def _record_rejection(self, session: Session, row: OAuthToken, exc: GrantRejected,
                          now: datetime) -> None:
        first = row.state == "active"
        row.state = "revoked" if exc.revoked else "rejected"
        row.last_error = str(exc)
        row.access_token, row.access_expires_at = None, None
        row.retry_after = now + REJECTED_RETRY_AFTER
        if first:
            row.alerted_at = now
            if self.on_rejected is not None:
                self.on_rejected(session, self.name, exc)
        log.error("oauth.grant_rejected", grant=self.name, error=str(exc), state=row.state,
                  first=first, retry_after=row.retry_after.isoformat(),
                  detail=f"run `{self.login_hint}` to log in again")

    def _note_error(self, error: str) -> None:
        try:
            with self.db.transaction() as session:
                row = session.get(OAuthToken, self.name)
                if row is not None:
                    row.last_error = error
                    session.add(row)
        except Exception as exc:  # the error is logged anyway
            log.warning("oauth.state_not_saved", grant=self.name, error=str(exc))

    def _log_retry(self, state: RetryCallState) -> None:
        error = state.outcome.exception() if state.outcome else None
        log.warning("oauth.refresh_retry", grant=self.name, attempt=state.attempt_number,
                    error=str(error), retry_in_s=round(state.upcoming_sleep, 2))


def apply_answer(row: OAuthToken, answer: TokenAnswer, now: datetime) -> bool:
    """Put a token answer on the grant's row; True when the refresh token was rotated."""
    rotated = bool(answer.refresh_token) and answer.refresh_token != row.refresh_token
    if rotated:
        assert answer.refresh_token is not None
        row.refresh_token = answer.refresh_token
        row.rotated_at = now
    row.access_token = answer.access_token
    row.access_expires_at = expiry(now, answer.expires_in)
    row.refreshed_at = now
    return rotated


def store_login(db: Database, name: str, provider: str, answer: TokenAnswer,
                now: datetime) -> OAuthToken:
    """Keep the grant a login obtained, replacing any earlier one and its rejection."""
    if not answer.refresh_token:
        raise GrantRejected("no_refresh_token", "the provider sent no refresh token "
                            "(is offline_access among the scopes?)")
    with db.transaction() as session:
        row = session.get(OAuthToken, name, with_for_update=True)
        if row is None:
            row = OAuthToken(name=name, provider=provider, refresh_token=answer.refresh_token,
                             obtained_at=now)
        row.provider, row.refresh_token, row.obtained_at = provider, answer.refresh_token, now
        row.state, row.last_error, row.retry_after, row.alerted_at, row.rotated_at = \
            "active", None, None, None, None
        apply_answer(row, answer, now)
        session.add(row)
    return row


def _usable(row: OAuthToken, now: datetime) -> bool:
    return row.state == "active" and row.access_token is not None and not refresh_due(
        row.access_expires_at, row.refreshed_at, now)


def _refuse_if_waiting(row: OAuthToken, now: datetime) -> None:
    if row.state != "active" and row.retry_after is not None and now < row.retry_after:
        raise GrantRejected(row.state, f"{row.last_error}; tried again after "
                            f"{row.retry_after.isoformat(timespec='seconds')}")
