"""The browser login without servers: flows and URLs per provider, PKCE, the request, the answer."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from test_oauth_units import errors_of, oauth_imap, settings

from mailbot.oauth.authorize import (
    authorization_url,
    code_from_paste,
    code_from_query,
    new_pkce,
    s256,
)
from mailbot.oauth.errors import GrantRejected, LoginFailed
from mailbot.oauth.providers import OAuthClient, oauth_client

STATE = "st4te"
REDIRECT = "http://127.0.0.1:50123/"


def client(**keys: object) -> OAuthClient:
    return oauth_client(settings(oauth_imap(**keys)).mailboxes[0].imap, "imap")


def query_of(url: str) -> dict[str, list[str]]:
    return parse_qs(urlsplit(url).query)


def test_google_logs_in_in_the_browser_at_its_authorization_endpoint() -> None:
    google = client(provider="google", host="imap.gmail.com")
    assert (google.login_flow, google.authorization_url, google.scopes) == (
        "browser", "https://accounts.google.com/o/oauth2/v2/auth",
        ("https://mail.google.com/",))


def test_microsoft_keeps_the_device_flow_and_knows_its_authorization_endpoint() -> None:
    microsoft = client(provider="microsoft", tenant="contoso.onmicrosoft.com")
    assert (microsoft.login_flow, microsoft.authorization_url) == (
        "device",
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/authorize")


def test_login_flow_browser_overrides_microsofts_default() -> None:
    assert client(provider="microsoft", tenant="organizations",
                  login_flow="browser").login_flow == "browser"


def test_login_flow_device_overrides_googles_default() -> None:
    assert client(provider="google", login_flow="device").login_flow == "device"


def test_generic_prefers_the_device_flow_when_it_has_both_urls() -> None:
    generic = client(provider="generic", token_url="https://id.example.com/token",
                     device_authorization_url="https://id.example.com/device",
                     authorization_url="https://id.example.com/authorize")
    assert (generic.login_flow, generic.authorization_url) == (
        "device", "https://id.example.com/authorize")


def test_generic_with_only_an_authorization_url_logs_in_in_the_browser() -> None:
    assert client(provider="generic", token_url="https://id.example.com/token",
                  authorization_url="https://id.example.com/authorize").login_flow == "browser"


def test_login_flow_browser_without_authorization_url_names_the_key() -> None:
    (error,) = errors_of(oauth_imap(provider="generic", token_url="https://id.example.com/t",
                                    login_flow="browser"))
    assert error.startswith(
        "mailboxes[0].imap.authorization_url: required with login_flow: browser")


def test_login_flow_device_without_device_url_names_the_key() -> None:
    (error,) = errors_of(oauth_imap(provider="generic", token_url="https://id.example.com/t",
                                    authorization_url="https://id.example.com/a",
                                    login_flow="device"))
    assert error.startswith(
        "mailboxes[0].imap.device_authorization_url: required with login_flow: device")


def test_plain_http_authorization_url_is_refused_off_loopback() -> None:
    (error,) = errors_of(oauth_imap(provider="generic", token_url="https://id.example.com/t",
                                    authorization_url="http://id.example.com/authorize"))
    assert error.startswith("mailboxes[0].imap.authorization_url: must be an https:// URL")


def test_authorization_url_is_refused_for_a_known_provider() -> None:
    (error,) = errors_of(oauth_imap(provider="google",
                                    authorization_url="https://accounts.example/auth"))
    assert error.startswith("mailboxes[0].imap.authorization_url: only with provider: generic")


def test_an_unknown_login_flow_is_refused_naming_the_key() -> None:
    (error,) = errors_of(oauth_imap(provider="google", login_flow="popup"))
    assert error.startswith("mailboxes[0].imap.login_flow")


def test_s256_challenge_matches_rfc_7636_appendix_b() -> None:
    assert s256("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk") == \
        "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_a_new_verifier_is_long_unreserved_and_fresh() -> None:
    first, second = new_pkce(), new_pkce()
    assert 43 <= len(first.verifier) <= 128 and first.verifier != second.verifier
    assert set(first.verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                                      "0123456789-._~")
    assert (first.challenge, first.method) == (s256(first.verifier), "S256")
    assert first.verifier not in repr(first)


def test_authorization_url_carries_client_redirect_scope_state_challenge_and_hint() -> None:
    url = authorization_url(client(provider="generic", token_url="https://id.example.com/t",
                                   authorization_url="https://id.example.com/authorize",
                                   scopes=["imap", "offline"]),
                            REDIRECT, STATE, "chal", "support@example.com")
    assert url.startswith("https://id.example.com/authorize?")
    assert "scope=imap%20offline" in url
    assert query_of(url) == {
        "response_type": ["code"], "client_id": ["app-id"], "redirect_uri": [REDIRECT],
        "scope": ["imap offline"], "state": [STATE], "code_challenge": ["chal"],
        "code_challenge_method": ["S256"], "login_hint": ["support@example.com"]}


def test_google_authorization_url_asks_for_offline_access_with_consent() -> None:
    query = query_of(authorization_url(client(provider="google"), REDIRECT, STATE, "chal",
                                       "support@example.com"))
    assert (query["access_type"], query["prompt"], query["scope"]) == (
        ["offline"], ["consent"], ["https://mail.google.com/"])


def test_microsoft_authorization_url_has_no_google_parameters() -> None:
    query = query_of(authorization_url(client(provider="microsoft", tenant="organizations"),
                                       REDIRECT, STATE, "chal"))
    assert "access_type" not in query and "prompt" not in query
    assert query["scope"] == ["https://outlook.office365.com/IMAP.AccessAsUser.All "
                              "offline_access"]


def test_authorization_url_keeps_a_query_the_endpoint_already_has() -> None:
    url = authorization_url(client(provider="generic", token_url="https://id.example.com/t",
                                   authorization_url="https://id.example.com/auth?tenant=x"),
                            REDIRECT, STATE, "chal")
    assert url.startswith("https://id.example.com/auth?tenant=x&response_type=code&")


def test_the_code_is_read_from_a_redirect_with_this_logins_state() -> None:
    assert code_from_query(f"code=4%2F0Abc&state={STATE}&scope=mail", STATE) == "4/0Abc"


def test_a_request_without_code_or_error_is_no_answer() -> None:
    assert code_from_query("", STATE) is None


def test_a_redirect_with_another_state_is_refused() -> None:
    with pytest.raises(LoginFailed, match="state_mismatch"):
        code_from_query("code=abc&state=other", STATE)


def test_a_redirect_without_state_is_refused() -> None:
    with pytest.raises(LoginFailed, match="state_mismatch"):
        code_from_query("code=abc", STATE)


def test_access_denied_says_the_consent_was_refused_with_the_providers_words() -> None:
    with pytest.raises(GrantRejected) as caught:
        code_from_query(f"error=access_denied&error_description=No+thanks&state={STATE}", STATE)
    assert str(caught.value) == ("access_denied: the consent was refused (or the sign-in "
                                 "cancelled) in the browser (provider: No thanks)")


def test_an_unknown_error_is_reported_with_its_code() -> None:
    with pytest.raises(GrantRejected) as caught:
        code_from_query(f"error=weird&state={STATE}", STATE)
    assert str(caught.value) == "weird: the provider refused the authorization"


def test_a_pasted_address_gives_its_code() -> None:
    assert code_from_paste(f"  http://127.0.0.1:50123/?state={STATE}&code=abc&scope=x \n",
                           STATE) == "abc"


def test_a_pasted_query_gives_its_code() -> None:
    assert code_from_paste(f"code=abc&state={STATE}", STATE) == "abc"


def test_a_pasted_bare_code_is_taken_as_it_is() -> None:
    assert code_from_paste("4%2F0AbcDef", STATE) == "4/0AbcDef"


def test_a_pasted_address_with_another_state_is_refused() -> None:
    with pytest.raises(LoginFailed, match="state_mismatch"):
        code_from_paste("http://127.0.0.1:50123/?code=abc&state=old", STATE)


@pytest.mark.parametrize("text", ["", "   ", "http://127.0.0.1:50123/", "not a code"])
def test_pasted_text_that_is_no_answer_gives_none(text: str) -> None:
    assert code_from_paste(text, STATE) is None
