"""The sending side on OAuth2: AUTH OAUTHBEARER or XOAUTH2 on a real SMTP server on loopback."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from mailbot.app import App, open_app
from mailbot.config import settings_from_mapping
from mailbot.mail.smtp import TemporarySendFailure
from mailbot.oauth.endpoint import TokenAnswer
from mailbot.oauth.tokens import store_login
from mailbot.testing import OAuthProvider, SmtpCapture

USER = "support@example.test"
RAW = (b"From: support@example.test\r\nTo: jane@customer.example\r\nSubject: hello\r\n"
       b"Message-ID: <smtp-oauth@example.test>\r\n\r\nbody\r\n")


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_ttl=30) as server:
        yield server


def make_app(tmp_path: Path, smtp: SmtpCapture, provider: OAuthProvider) -> App:
    settings = settings_from_mapping({
        "smtp": {"host": smtp.host, "port": smtp.port, "security": "none", "timeout": "5s",
                 "username": USER, "from": f"Support <{USER}>", "auth": "oauth2",
                 "provider": "generic", "client_id": provider.client_id,
                 "client_secret": provider.client_secret, "token_url": provider.token_url},
        "storage": {"dir": "state"}, "logging": {"format": "json", "level": "warning"}},
        tmp_path)
    app = open_app(settings)
    store_login(app.db, "smtp", "generic", TokenAnswer("x", 0, provider.grant(USER)),
                datetime.now(UTC))
    return app


def send(app: App) -> None:
    sender = app.outbox_sender()
    assert sender is not None
    try:
        sender.transport.send(USER, ["jane@customer.example"], RAW, "<smtp-oauth@example.test>")
    finally:
        sender.transport.close()


def test_mail_is_sent_after_auth_oauthbearer_with_a_refreshed_token(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with SmtpCapture(oauth=provider) as smtp:
        send(make_app(tmp_path, smtp, provider))
        assert [m.rcpt_tos for m in smtp.wait_for(1)] == [("jane@customer.example",)]
        assert (smtp.logins, provider.refreshes) == ([("OAUTHBEARER", USER)], 1)


def test_xoauth2_is_used_where_the_server_offers_only_it(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with SmtpCapture(oauth=provider, exclude=("OAUTHBEARER",)) as smtp:
        send(make_app(tmp_path, smtp, provider))
        smtp.wait_for(1)
        assert smtp.logins == [("XOAUTH2", USER)]


def test_a_refused_token_defers_the_mail_and_the_next_try_refreshes(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with SmtpCapture(oauth=provider) as smtp:
        app = make_app(tmp_path, smtp, provider)
        send(app)
        provider.expire_access_tokens()
        with pytest.raises(TemporarySendFailure, match="AUTH OAUTHBEARER refused: 535"):
            send(app)
        send(app)
        assert (len(smtp.wait_for(2)), provider.refreshes) == (2, 2)


def test_a_revoked_sending_grant_defers_mail_as_temporary(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with SmtpCapture(oauth=provider) as smtp:
        app = make_app(tmp_path, smtp, provider)
        provider.revoke(USER)
        with pytest.raises(TemporarySendFailure, match="oauth2: invalid_grant"):
            send(app)
        assert smtp.messages == []
