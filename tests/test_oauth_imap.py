"""OAuth2 mailboxes against Dovecot's oauth2 passdb and a provider on loopback: login, expiry
and refresh, rotation, a crash right after a rotation, and revocation."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from mailbot.app import App, open_app
from mailbot.config import settings_from_mapping
from mailbot.health import check_health
from mailbot.oauth.endpoint import TokenAnswer
from mailbot.oauth.grants import grants
from mailbot.oauth.tokens import store_login
from mailbot.service import stall_limits
from mailbot.store.models import OAuthToken
from mailbot.testing import DovecotServer, OAuthProvider

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_ttl=30) as server:
        yield server


@pytest.fixture
def oauth_dovecot(provider: OAuthProvider) -> Iterator[DovecotServer]:
    with DovecotServer(oauth2_introspection_url=provider.introspection_url) as server:
        yield server


def mail(n: int) -> bytes:
    return (f"From: c{n}@example.org\r\nTo: support@example.test\r\nSubject: help {n}\r\n"
            f"Message-ID: <oauth-{n}@example.org>\r\n\r\nCustomer ID: RC-1044{n}\r\n").encode()


def write_config(tmp_path: Path, dovecot: DovecotServer, provider: OAuthProvider) -> Path:
    config = {"mailboxes": [{"name": "support", "imap": {
        "host": dovecot.host, "port": dovecot.port, "security": "none",
        "username": dovecot.username, "timeout": "10s", "auth": "oauth2",
        "provider": "generic", "client_id": provider.client_id,
        "client_secret": provider.client_secret, "token_url": provider.token_url,
        "device_authorization_url": provider.device_url, "scopes": ["mail"]}}],
        "storage": {"dir": "state"}, "logging": {"format": "json", "level": "info"}}
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


def make_app(config: Path) -> App:
    raw = yaml.safe_load(config.read_text())
    return open_app(settings_from_mapping(raw, config.parent))


def log_in(app: App, provider: OAuthProvider, username: str) -> None:
    """What `mailbot oauth login support` leaves behind: a grant with a fresh token."""
    status, body = provider._refresh(provider.grant(username))
    assert status == 200
    store_login(app.db, "imap:support", "generic",
                TokenAnswer(body["access_token"], body["expires_in"], body["refresh_token"]),
                datetime.now(UTC))


def poll(app: App) -> int:
    (poller,) = app.pollers()
    try:
        return poller.run_pass().tickets
    finally:
        poller.close()


def stored(app: App) -> OAuthToken:
    with app.db.session() as session:
        row = session.get(OAuthToken, "imap:support")
    assert row is not None
    return row


@pytest.mark.parametrize(("offered", "used"), [(("xoauth2", "oauthbearer"), "OAUTHBEARER"),
                                              (("xoauth2",), "XOAUTH2")])
def test_an_oauth_mailbox_logs_in_with_oauthbearer_else_xoauth2_and_makes_tickets(
        tmp_path: Path, provider: OAuthProvider, offered: tuple[str, ...], used: str) -> None:
    with DovecotServer(oauth2_introspection_url=provider.introspection_url,
                       oauth2_mechanisms=offered) as dovecot:
        dovecot.append("INBOX", mail(1))
        app = make_app(write_config(tmp_path, dovecot, provider))
        log_in(app, provider, dovecot.username)
        assert poll(app) == 1
        assert f"method={used}" in dovecot.read_log()


def test_an_expired_access_token_is_refreshed_and_the_rotation_saved(
        tmp_path: Path, oauth_dovecot: DovecotServer, provider: OAuthProvider) -> None:
    provider.access_ttl = 1.0
    app = make_app(write_config(tmp_path, oauth_dovecot, provider))
    log_in(app, provider, oauth_dovecot.username)
    poll(app)
    first = stored(app)
    time.sleep(1.2)
    oauth_dovecot.append("INBOX", mail(2))
    assert poll(app) == 1
    second = stored(app)
    assert provider.refreshes == 2  # the login's, then the one before this poll
    assert second.refresh_token == provider.refresh_token_of(oauth_dovecot.username) \
        != first.refresh_token
    assert second.access_token != first.access_token


def test_a_token_the_server_refuses_is_dropped_and_refreshed_on_the_next_login(
        tmp_path: Path, oauth_dovecot: DovecotServer, provider: OAuthProvider) -> None:
    app = make_app(write_config(tmp_path, oauth_dovecot, provider))
    log_in(app, provider, oauth_dovecot.username)
    provider.expire_access_tokens()  # dead at the provider, still "valid" in our database
    oauth_dovecot.append("INBOX", mail(3))
    assert poll(app) == 1
    assert provider.refreshes == 2


CRASH_AFTER_SAVE = textwrap.dedent("""
    import os, signal, sys, yaml
    from pathlib import Path
    from mailbot.app import open_app
    from mailbot.config import settings_from_mapping
    config = Path(sys.argv[1])
    app = open_app(settings_from_mapping(yaml.safe_load(config.read_text()), config.parent))
    source = app.token_sources()["imap:support"]
    source.after_save = lambda: os.kill(os.getpid(), signal.SIGKILL)
    source.token()
    print("not killed")
""")


def test_a_rotated_refresh_token_survives_a_crash(
        tmp_path: Path, oauth_dovecot: DovecotServer, provider: OAuthProvider) -> None:
    """Killed right after the rotated grant was committed: the next start logs in with it."""
    config = write_config(tmp_path, oauth_dovecot, provider)
    app = make_app(config)
    log_in(app, provider, oauth_dovecot.username)
    provider.expire_access_tokens()
    with app.db.transaction() as session:  # make the stored access token due for refresh
        row = session.get(OAuthToken, "imap:support")
        assert row is not None
        row.access_expires_at = datetime.now(UTC)
        session.add(row)
    before = stored(app).refresh_token
    crashed = subprocess.run([sys.executable, "-c", CRASH_AFTER_SAVE, str(config)],
                             capture_output=True, timeout=60, cwd=REPO,
                             env={**os.environ, "PYTHONPATH": str(REPO)})
    assert crashed.returncode == -signal.SIGKILL, crashed.stderr.decode()
    assert provider.refreshes == 2  # the provider rotated: `before` is dead now
    assert stored(app).refresh_token == provider.refresh_token_of(oauth_dovecot.username) \
        != before
    provider.expire_access_tokens()
    oauth_dovecot.append("INBOX", mail(4))
    polled = subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), "poll",
                             "--json"], capture_output=True, timeout=60, cwd=REPO)
    assert polled.returncode == 0, polled.stderr.decode()
    assert '"tickets": 1' in polled.stdout.decode()


def test_a_revoked_grant_stops_that_mailbox_and_health_names_it(
        tmp_path: Path, oauth_dovecot: DovecotServer, provider: OAuthProvider) -> None:
    app = make_app(write_config(tmp_path, oauth_dovecot, provider))
    log_in(app, provider, oauth_dovecot.username)
    provider.revoke(oauth_dovecot.username)
    (poller,) = app.pollers()
    with pytest.raises(Exception, match="invalid_grant"):
        poller.run_pass()
    poller.close()
    report = check_health(app.db, stall_limits(app.settings), datetime.now(UTC),
                          grants=grants(app.settings))
    assert stored(app).state == "revoked"
    assert any(p.startswith("mailbox support: OAuth2 grant revoked (invalid_grant")
               and "mailbot oauth login support" in p for p in report.problems)
