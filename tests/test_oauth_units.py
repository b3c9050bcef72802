"""OAuth2 without servers: configuration, provider endpoints and scopes, SASL strings, timing."""

from __future__ import annotations

import base64
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from mailbot.config import ConfigError, Settings, settings_from_mapping
from mailbot.oauth.alarm import alert_text
from mailbot.oauth.errors import GrantRejected
from mailbot.oauth.grants import grants
from mailbot.oauth.providers import oauth_client
from mailbot.oauth.sasl import choose_mechanism, oauthbearer, xoauth2
from mailbot.oauth.timing import expiry, refresh_due

NOW = datetime(2026, 11, 25, 9, 0, tzinfo=UTC)


def oauth_imap(**keys: object) -> dict[str, object]:
    return {"host": "outlook.office365.com", "username": "support@example.com",
            "auth": "oauth2", "client_id": "app-id", **keys}


def settings(imap: dict[str, object], smtp: dict[str, object] | None = None,
             environ: dict[str, str] | None = None, base: Path = Path("/srv")) -> Settings:
    mapping: dict[str, object] = {"mailboxes": [{"name": "support", "imap": imap}]}
    if smtp is not None:
        mapping["smtp"] = smtp
    return settings_from_mapping(mapping, base, environ)


def errors_of(imap: dict[str, object]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        settings(imap)
    return caught.value.errors


def test_microsoft_tenant_gives_its_token_and_device_endpoints() -> None:
    client = oauth_client(settings(oauth_imap(provider="microsoft", tenant="contoso.onmicrosoft.com"
                                              )).mailboxes[0].imap, "imap")
    assert (client.token_url, client.device_authorization_url) == (
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/devicecode")


def test_microsoft_scopes_default_per_protocol_with_offline_access() -> None:
    config = settings(oauth_imap(provider="microsoft", tenant="organizations"),
                      smtp={"host": "smtp.office365.com", "username": "support@example.com",
                            "from": "support@example.com", "auth": "oauth2",
                            "provider": "microsoft", "tenant": "organizations",
                            "client_id": "app-id"})
    assert {g.protocol: g.client.scopes for g in grants(config)} == {
        "imap": ("https://outlook.office365.com/IMAP.AccessAsUser.All", "offline_access"),
        "smtp": ("https://outlook.office365.com/SMTP.Send", "offline_access")}


def test_google_gives_its_endpoints_and_the_mail_scope() -> None:
    client = oauth_client(settings(oauth_imap(provider="google", host="imap.gmail.com")
                                   ).mailboxes[0].imap, "imap")
    assert (client.token_url, client.device_authorization_url, client.scopes) == (
        "https://oauth2.googleapis.com/token", "https://oauth2.googleapis.com/device/code",
        ("https://mail.google.com/",))


def test_generic_provider_uses_the_configured_urls_and_scopes() -> None:
    client = oauth_client(settings(oauth_imap(
        provider="generic", token_url="https://id.example.com/token",
        device_authorization_url="https://id.example.com/device", scopes=["imap", "offline"])
    ).mailboxes[0].imap, "imap")
    assert (client.token_url, client.device_authorization_url, client.scope) == (
        "https://id.example.com/token", "https://id.example.com/device", "imap offline")


def test_microsoft_without_tenant_names_the_key() -> None:
    (error,) = errors_of(oauth_imap(provider="microsoft"))
    assert error.startswith("mailboxes[0].imap.tenant: required with provider: microsoft")


def test_generic_without_token_url_names_the_key() -> None:
    (error,) = errors_of(oauth_imap(provider="generic"))
    assert error.startswith("mailboxes[0].imap.token_url: required with provider: generic")


def test_oauth2_without_provider_names_the_key() -> None:
    (error,) = errors_of(oauth_imap())
    assert error.startswith("mailboxes[0].imap.provider: required with auth: oauth2")


def test_plain_http_token_url_is_refused_off_loopback() -> None:
    (error,) = errors_of(oauth_imap(provider="generic", token_url="http://id.example.com/t"))
    assert error.startswith("mailboxes[0].imap.token_url: must be an https:// URL")


def test_oauth_keys_without_auth_oauth2_are_refused() -> None:
    (error,) = errors_of({"host": "h.example", "username": "u", "password": "p",
                          "client_id": "x"})
    assert error.startswith("mailboxes[0].imap.client_id: only with auth: oauth2")


def test_oauth2_needs_no_password() -> None:
    imap = settings(oauth_imap(provider="google")).mailboxes[0].imap
    assert (imap.auth, imap.password) == ("oauth2", None)


def test_client_secret_file_is_read_and_never_shown(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("s3cret-value\n")
    config = settings(oauth_imap(provider="google", client_secret_file="secret"), base=tmp_path)
    client = oauth_client(config.mailboxes[0].imap, "imap")
    assert client.client_secret == "s3cret-value"
    assert "s3cret-value" not in repr(config) and "s3cret-value" not in repr(client)


def test_client_secret_env_var_wins_over_the_file(tmp_path: Path) -> None:
    (tmp_path / "secret").write_text("from-file")
    config = settings(oauth_imap(provider="google", client_secret_file="secret"),
                      environ={"MAILBOT_SUPPORT_IMAP_CLIENT_SECRET": "from-env"}, base=tmp_path)
    assert oauth_client(config.mailboxes[0].imap, "imap").client_secret == "from-env"


def test_unreadable_client_secret_file_names_the_key(tmp_path: Path) -> None:
    (error,) = errors_of(oauth_imap(provider="google",
                                    client_secret_file=str(tmp_path / "missing")))
    assert error.startswith("mailboxes[0].imap.client_secret_file: cannot read")


def test_smtp_oauth2_needs_a_username() -> None:
    with pytest.raises(ConfigError) as caught:
        settings(oauth_imap(provider="google"), smtp={
            "host": "smtp.gmail.com", "from": "support@example.com", "auth": "oauth2",
            "provider": "google", "client_id": "app-id"})
    assert caught.value.errors == ["smtp.username: required with auth: oauth2"]


def test_xoauth2_string_is_user_and_bearer_separated_by_ctrl_a() -> None:
    assert xoauth2("support@example.com", "tok") == \
        "user=support@example.com\x01auth=Bearer tok\x01\x01"


def test_oauthbearer_string_has_the_gs2_header_host_and_port() -> None:
    assert oauthbearer("a,b=c@example.com", "tok", "imap.example.com", 993) == (
        "n,a=a=2Cb=3Dc@example.com,\x01host=imap.example.com\x01port=993\x01"
        "auth=Bearer tok\x01\x01")


def test_oauthbearer_is_preferred_when_offered() -> None:
    assert [choose_mechanism(["PLAIN", "XOAUTH2", "OAUTHBEARER"]),
            choose_mechanism(["XOAUTH2"]), choose_mechanism([])] == \
        ["OAUTHBEARER", "XOAUTH2", "XOAUTH2"]


def test_xoauth2_matches_the_published_example_once_encoded() -> None:
    """Google's documented example: user=someuser@example.com, token ya29.vF9dft4..."""
    token = "ya29.vF9dft4qmTc2Nvb3RlckBhdHRhdmlzdGEuY29tCg"
    encoded = base64.b64encode(xoauth2("someuser@example.com", token).encode())
    assert encoded == (b"dXNlcj1zb21ldXNlckBleGFtcGxlLmNvbQFhdXRoPUJlYXJlciB5YTI5LnZGOWRmdDRxbVRj"
                       b"Mk52YjNSbGNrQmhkSFJoZG1semRHRXVZMjl0Q2cBAQ==")


def test_an_hour_token_is_refreshed_in_its_last_five_minutes() -> None:
    issued, expires = NOW, NOW + timedelta(hours=1)
    assert [refresh_due(expires, issued, NOW + timedelta(minutes=m)) for m in (54, 56, 61)] == \
        [False, True, True]


def test_a_short_token_is_refreshed_in_its_last_fifth() -> None:
    issued, expires = NOW, NOW + timedelta(seconds=10)
    assert [refresh_due(expires, issued, NOW + timedelta(seconds=s)) for s in (7, 8.5)] == \
        [False, True]


def test_a_token_without_known_expiry_is_refreshed() -> None:
    assert refresh_due(None, NOW, NOW)


def test_expiry_comes_from_expires_in_with_a_fallback() -> None:
    assert (expiry(NOW, 3599), expiry(NOW, "60"), expiry(NOW, None)) == (
        NOW + timedelta(seconds=3599), NOW + timedelta(seconds=60), NOW + timedelta(hours=1))


def test_revocation_alert_says_what_happened_and_the_command_that_fixes_it() -> None:
    spec = grants(settings(oauth_imap(provider="google")))[0]
    subject, text = alert_text(spec, GrantRejected("invalid_grant", "Token has been revoked."))
    assert subject == "mailbot: the OAuth2 grant of mailbox support was revoked or expired"
    assert "mailbot oauth login support" in text and "Token has been revoked." in text


def test_the_command_loads_the_oauth_client_only_when_it_asks_for_a_token() -> None:
    probe = ("import sys\nimport mailbot.cli\n"
             "print(sorted({'authlib', 'requests'} & set(sys.modules)))")
    result = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                            timeout=60, check=True)
    assert result.stdout.strip() == "[]"
