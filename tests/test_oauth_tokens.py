"""The grant in the database against a real token endpoint on loopback: refresh, rotation,
temporary failures, revocation, and two instances sharing one grant."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from sqlmodel import select

from mailbot.alerts import AlertPolicy
from mailbot.clock import SystemClock
from mailbot.conversation.ids import ThreadSigner
from mailbot.oauth.alarm import RejectionAlarm
from mailbot.oauth.endpoint import TokenAnswer, TokenEndpoint
from mailbot.oauth.errors import GrantRejected, LoginNeeded, TemporaryOAuthError
from mailbot.oauth.grants import GrantSpec
from mailbot.oauth.providers import OAuthClient
from mailbot.oauth.tokens import RefreshRetry, TokenSource, store_login
from mailbot.store import Database
from mailbot.store.models import OAuthToken, OutboxMail
from mailbot.testing import OAuthProvider

USER = "support@example.test"
GRANT = "imap:support"
FAST = RefreshRetry(attempts=3, first_wait=0.01, max_wait=0.02)


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_ttl=30) as server:
        yield server


def client_of(provider: OAuthProvider) -> OAuthClient:
    return OAuthClient("generic", provider.client_id, provider.token_url, provider.device_url,
                       ("mail",), provider.client_secret, timeout=5)


def logged_in(db: Database, provider: OAuthProvider) -> None:
    """As after `mailbot oauth login`: a stored refresh token, no access token yet."""
    refresh = provider.grant(USER)
    store_login(db, GRANT, "generic", TokenAnswer("unused", 0, refresh), datetime.now(UTC))
    with db.transaction() as session:
        row = session.get(OAuthToken, GRANT)
        assert row is not None
        row.access_token = None
        session.add(row)


def source(db: Database, provider: OAuthProvider, **kwargs: object) -> TokenSource:
    return TokenSource(db, GRANT, TokenEndpoint(client_of(provider)), SystemClock(),
                       login_hint="mailbot oauth login support", retry=FAST, **kwargs)  # type: ignore[arg-type]


def stored(db: Database) -> OAuthToken:
    with db.session() as session:
        row = session.get(OAuthToken, GRANT)
    assert row is not None
    return row


def test_a_valid_access_token_is_reused_without_asking_the_provider(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    tokens = source(db, provider)
    first = tokens.token()
    assert (tokens.token(), provider.refreshes) == (first, 1)
    assert provider.valid(USER, first)


def test_a_rotated_refresh_token_is_committed_with_the_access_token(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    before = stored(db).refresh_token
    token = source(db, provider).token()
    row = stored(db)
    assert row.refresh_token == provider.refresh_token_of(USER) != before
    assert (row.access_token, row.rotated_at is not None) == (token, True)


def test_an_expired_access_token_is_refreshed_before_use(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.access_ttl = 0.5
    tokens = source(db, provider)
    first = tokens.token()
    threading.Event().wait(0.6)
    second = tokens.token()
    assert first != second and provider.refreshes == 2 and provider.valid(USER, second)


def test_temporary_failures_are_retried_with_backoff(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.fail_next(503, count=2)
    token = source(db, provider).token()
    assert provider.valid(USER, token) and provider.token_requests == 3


def test_a_provider_down_for_longer_gives_a_temporary_error_and_keeps_the_grant(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.fail_next(502, count=3)
    with pytest.raises(TemporaryOAuthError, match="HTTP 502"):
        source(db, provider).token()
    row = stored(db)
    assert (row.state, row.refresh_token, row.last_error) == (
        "active", provider.refresh_token_of(USER), f"{provider.token_url}: HTTP 502")


def test_a_refused_connection_is_a_temporary_error(db: Database,
                                                   provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.stop()
    with pytest.raises(TemporaryOAuthError, match="ConnectionError"):
        source(db, provider).token()


def test_a_revoked_grant_is_marked_alerted_once_and_not_hammered(
        db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.revoke(USER)
    spec = GrantSpec(GRANT, "imap", "support", USER, client_of(provider))
    alarm = RejectionAlarm({GRANT: spec}, AlertPolicy("Support <support@example.test>",
                                                      ("oncall@example.test",)),
                           ThreadSigner(b"k" * 32), SystemClock())
    tokens = source(db, provider, on_rejected=alarm)
    for _ in range(3):
        with pytest.raises(GrantRejected):
            tokens.token()
    with db.session() as session:
        alerts = session.exec(select(OutboxMail).where(OutboxMail.kind == "alert")).all()
    row = stored(db)
    assert (row.state, row.access_token, provider.token_requests) == ("revoked", None, 1)
    assert [(a.recipients, a.subject) for a in alerts] == [
        (["oncall@example.test"],
         "mailbot: the OAuth2 grant of mailbox support was revoked or expired")]


def test_a_new_login_clears_a_revocation(db: Database, provider: OAuthProvider) -> None:
    logged_in(db, provider)
    provider.revoke(USER)
    with pytest.raises(GrantRejected):
        source(db, provider).token()
    logged_in(db, provider)
    assert provider.valid(USER, source(db, provider).token())
    assert (stored(db).state, stored(db).alerted_at) == ("active", None)


def test_no_stored_grant_asks_for_a_login(db: Database, provider: OAuthProvider) -> None:
    with pytest.raises(LoginNeeded, match="mailbot oauth login support"):
        source(db, provider).token()


@pytest.mark.postgres
def test_two_instances_never_spend_the_same_refresh_token(
        postgres_url: str, provider: OAuthProvider) -> None:
    """Each instance has its own engine; the row lock lets one refresh, the other reuses it."""
    first_db, second_db = Database(postgres_url), Database(postgres_url)
    try:
        with first_db.transaction() as session:
            row = session.get(OAuthToken, GRANT)
            if row is not None:
                session.delete(row)
        logged_in(first_db, provider)
        start = threading.Barrier(2)
        results: dict[int, str | BaseException] = {}

        def run(index: int, db: Database) -> None:
            start.wait()
            try:
                results[index] = source(db, provider).token()
            except BaseException as exc:
                results[index] = exc

        threads = [threading.Thread(target=run, args=(i, d))
                   for i, d in enumerate((first_db, second_db))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert (provider.refreshes, results[0] == results[1]) == (1, True)
        assert provider.valid(USER, str(results[0]))
    finally:
        first_db.dispose()
        second_db.dispose()
