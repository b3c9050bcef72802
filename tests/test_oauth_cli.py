"""`mailbot oauth login` (device-code flow against the loopback provider) and `oauth status`."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.oauth.device import device_login
from mailbot.oauth.endpoint import DeviceCode, TokenEndpoint
from mailbot.oauth.errors import GrantRejected
from mailbot.oauth.providers import OAuthClient
from mailbot.testing import DovecotServer, OAuthProvider

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_ttl=30, approve_after_polls=2) as server:
        yield server


def mailbot(config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "mailbot", "--config", str(config), *args],
                          capture_output=True, text=True, timeout=60, cwd=REPO)


def write_config(tmp_path: Path, dovecot: DovecotServer, provider: OAuthProvider) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(f"""
mailboxes:
  - name: support
    imap: {dovecot.imap_config(provider.login_config())}
  - name: sales
    imap: {dovecot.imap_config()}
storage: {{dir: state}}
logging: {{format: console, level: warning}}
""")
    return path


def tickets_of_a_poll(config: Path, dovecot: DovecotServer) -> list[int]:
    """Tickets per mailbox of `mailbot poll` after one mail arrived at the OAuth2 mailbox."""
    dovecot.append("INBOX", b"From: c@example.org\r\nSubject: hi\r\n"
                            b"Message-ID: <cli-1@example.org>\r\n\r\nbody\r\n")
    polled = mailbot(config, "poll", "--json")
    assert polled.returncode == 0, polled.stderr
    return [r["tickets"] for r in json.loads(polled.stdout)]


def test_oauth_login_prints_the_url_and_code_and_stores_a_grant_that_works(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with DovecotServer(oauth2_introspection_url=provider.introspection_url) as dovecot:
        config = write_config(tmp_path, dovecot, provider)
        login = mailbot(config, "oauth", "login", "support")
        assert login.returncode == 0, login.stderr
        assert f"{provider.base_url}/device" in login.stdout and "enter the code" in login.stdout
        assert "stored the grant for mailbox support" in login.stdout
        assert tickets_of_a_poll(config, dovecot) == [1, 0]


def test_oauth_status_shows_each_login_with_state_and_expiry(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with DovecotServer(oauth2_introspection_url=provider.introspection_url) as dovecot:
        config = write_config(tmp_path, dovecot, provider)
        before = mailbot(config, "oauth", "status", "--json")
        assert before.returncode == 1  # an OAuth2 mailbox without a grant is a problem
        assert [(r["for"], r["auth"], r["state"]) for r in json.loads(before.stdout)] == [
            ("mailbox support", "oauth2", "needs_login"), ("mailbox sales", "password", None)]
        mailbot(config, "oauth", "login", "support")
        after = mailbot(config, "oauth", "status", "--json")
        (support, _sales) = json.loads(after.stdout)
        assert after.returncode == 0
        assert (support["state"], support["provider"]) == ("active", "generic")
        assert support["access_expires_at"] and support["obtained_at"]
        assert provider.refresh_token_of(dovecot.username) not in after.stdout


def test_oauth_login_of_a_password_mailbox_is_refused_with_its_name(
        tmp_path: Path, provider: OAuthProvider) -> None:
    with DovecotServer() as dovecot:
        result = mailbot(write_config(tmp_path, dovecot, provider), "oauth", "login", "sales")
    assert result.returncode == 1
    assert "mailbox sales has no auth: oauth2 (configured for OAuth2: support)" in result.stderr


def client_of(provider: OAuthProvider) -> OAuthClient:
    return OAuthClient("generic", provider.client_id, provider.token_url, provider.device_url,
                       ("mail",), provider.client_secret, timeout=5)


def test_slow_down_lengthens_the_polling_interval_by_five_seconds(
        provider: OAuthProvider) -> None:
    provider.slow_down_polls, provider.approve_after_polls = 1, 1
    waits: list[float] = []
    shown: list[DeviceCode] = []
    answer = device_login(TokenEndpoint(client_of(provider)), shown.append, sleep=waits.append)
    assert waits == [0.05, 5.05] and answer.refresh_token and len(shown) == 1


def test_a_code_never_approved_expires_without_polling_past_its_end(
        provider: OAuthProvider) -> None:
    provider.approve_after_polls, provider.device_expires_in = 1000, 0.3
    with pytest.raises(GrantRejected, match="expired_token"):
        device_login(TokenEndpoint(client_of(provider)), lambda _code: None)
    assert provider.token_requests <= 6
