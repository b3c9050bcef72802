"""`mailbot oauth login` in the browser flow, against the loopback provider and Dovecot.

The tests play the browser: they read the printed address and either follow its redirect to
mailbot's loopback listener or paste the redirected address on mailbot's stdin.
"""

from __future__ import annotations

import json
import os
import queue
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
import requests
from test_oauth_cli import REPO, mailbot, tickets_of_a_poll

from mailbot.oauth.authorize import authorization_url, code_from_query, new_pkce
from mailbot.oauth.browser import NOT_AN_ANSWER, BrowserPrompt, browser_login
from mailbot.oauth.endpoint import TokenEndpoint
from mailbot.oauth.errors import GrantRejected, LoginFailed
from mailbot.oauth.providers import OAuthClient
from mailbot.testing import DovecotServer, OAuthProvider

USER = "support@example.test"


@pytest.fixture
def provider() -> Iterator[OAuthProvider]:
    with OAuthProvider(access_ttl=30) as server:
        yield server


def write_config(tmp_path: Path, provider: OAuthProvider,
                 dovecot: DovecotServer | None = None) -> Path:
    login = provider.login_config(flow="browser")
    imap = dovecot.imap_config(login) if dovecot else \
        f'{{host: 127.0.0.1, port: 1, security: none, username: "{USER}", {login}}}'
    path = tmp_path / "config.yaml"
    path.write_text(f"""
mailboxes:
  - name: support
    imap: {imap}
  - name: sales
    imap: {dovecot.imap_config() if dovecot else
           '{host: 127.0.0.1, port: 1, security: none, username: s, password: p}'}
storage: {{dir: state}}
logging: {{format: console, level: warning}}
""")
    return path


class Login:
    """`mailbot oauth login support` running, its stdout read line by line as it comes."""

    def __init__(self, config: Path, *args: str) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "mailbot", "--config", str(config), "oauth", "login",
             "support", *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, cwd=REPO)
        self.lines: queue.Queue[str] = queue.Queue()
        self.seen: list[str] = []
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.put(line)

    def line_with(self, text: str, timeout: float = 30) -> str:
        while True:
            line = self.lines.get(timeout=timeout)
            self.seen.append(line)
            if text in line:
                return line.strip()

    def authorization_url(self, provider: OAuthProvider) -> str:
        return self.line_with(f"{provider.authorization_url}?")

    def paste(self, text: str) -> None:
        assert self.process.stdin is not None
        self.process.stdin.write(text + "\n")
        self.process.stdin.flush()

    def finish(self) -> tuple[int, str, str]:
        """(exit status, all of stdout, stderr) once the login ended."""
        assert self.process.stderr is not None
        status = self.process.wait(timeout=60)
        self.reader.join(timeout=10)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return status, "".join(self.seen), self.process.stderr.read()


@pytest.fixture
def started() -> Iterator[list[Login]]:
    logins: list[Login] = []
    yield logins
    for login in logins:
        if login.process.poll() is None:
            login.process.kill()
        login.process.wait(timeout=10)


def redirect_of(url: str) -> str:
    """Where the provider sends the browser after the consent, without going there."""
    answer = requests.get(url, allow_redirects=False, timeout=10)
    assert answer.status_code == 302, answer.text
    return answer.headers["Location"]


def test_browser_login_follows_the_redirect_to_the_loopback_listener_and_the_grant_works(
        tmp_path: Path, provider: OAuthProvider, started: list[Login]) -> None:
    with DovecotServer(oauth2_introspection_url=provider.introspection_url) as dovecot:
        config = write_config(tmp_path, provider, dovecot)
        login = Login(config)
        started.append(login)
        url = login.authorization_url(provider)
        page = requests.get(url, timeout=10)  # the provider's 302, then mailbot's listener
        status, out, err = login.finish()
        assert status == 0, err
        assert (page.status_code, "mailbot has the authorization" in page.text) == (200, True)
        assert "stored the grant for mailbox support" in out
        (asked,) = provider.authorizations
        assert (asked["login_hint"], asked["code_challenge_method"]) == (dovecot.username, "S256")
        assert urlsplit(asked["redirect_uri"]).hostname == "127.0.0.1"
        assert tickets_of_a_poll(config, dovecot) == [1, 0]


def test_a_pasted_redirected_address_completes_the_login(
        tmp_path: Path, provider: OAuthProvider, started: list[Login]) -> None:
    config = write_config(tmp_path, provider)
    login = Login(config)
    started.append(login)
    url = login.authorization_url(provider)
    login.line_with("paste it here")
    login.paste(redirect_of(url))  # the address of the page that failed to load
    status, out, err = login.finish()
    assert status == 0, err
    assert "stored the grant for mailbox support" in out
    support = json.loads(mailbot(config, "oauth", "status", "--json").stdout)[0]
    assert (support["for"], support["state"]) == ("mailbox support", "active")
    assert provider.refresh_token_of(USER)


def test_a_redirect_with_another_state_is_refused_and_nothing_is_exchanged(
        tmp_path: Path, provider: OAuthProvider, started: list[Login]) -> None:
    login = Login(write_config(tmp_path, provider))
    started.append(login)
    redirect = urlsplit(redirect_of(login.authorization_url(provider)))
    query = {k: v[0] for k, v in parse_qs(redirect.query).items()} | {"state": "forged"}
    page = requests.get(redirect._replace(query=urlencode(query)).geturl(), timeout=10)
    status, _out, err = login.finish()
    assert (status, page.status_code) == (1, 400)
    assert "login for mailbox support failed: state_mismatch" in err
    assert provider.token_requests == 0


def test_access_denied_in_the_browser_is_refused_with_a_clear_message(
        tmp_path: Path, provider: OAuthProvider, started: list[Login]) -> None:
    provider.consent = "deny"
    login = Login(write_config(tmp_path, provider))
    started.append(login)
    page = requests.get(login.authorization_url(provider), timeout=10)
    status, _out, err = login.finish()
    assert (status, page.status_code) == (1, 400)
    assert ("login for mailbox support failed: access_denied: the consent was refused (or the "
            "sign-in cancelled) in the browser (provider: The user said no.)") in err
    assert provider.token_requests == 0


def test_an_unknown_timeout_is_refused_before_anything_starts(
        tmp_path: Path, provider: OAuthProvider) -> None:
    result = mailbot(write_config(tmp_path, provider), "oauth", "login", "support",
                     "--timeout", "soon")
    assert result.returncode == 1 and "--timeout: not a duration" in result.stderr
    assert provider.authorizations == []


def client_of(provider: OAuthProvider) -> OAuthClient:
    return OAuthClient("generic", provider.client_id, provider.token_url, None, ("mail",),
                       provider.client_secret, 5, provider.authorization_url, "browser")


def code_for(provider: OAuthProvider, redirect_uri: str, challenge: str) -> str:
    url = authorization_url(client_of(provider), redirect_uri, "s", challenge, USER)
    code = code_from_query(urlsplit(redirect_of(url)).query, "s")
    assert code is not None
    return code


def test_a_wrong_pkce_verifier_is_refused_by_the_provider(provider: OAuthProvider) -> None:
    pkce, redirect_uri = new_pkce(), "http://127.0.0.1:50999/"
    code = code_for(provider, redirect_uri, pkce.challenge)
    with pytest.raises(GrantRejected) as caught:
        TokenEndpoint(client_of(provider)).exchange_code(code, redirect_uri, new_pkce().verifier)
    assert caught.value.error == "invalid_grant"
    assert "code_verifier does not match" in str(caught.value)


def test_the_code_is_exchanged_only_with_its_own_redirect_uri(provider: OAuthProvider) -> None:
    pkce = new_pkce()
    code = code_for(provider, "http://127.0.0.1:50999/", pkce.challenge)
    with pytest.raises(GrantRejected, match="redirect_uri does not match"):
        TokenEndpoint(client_of(provider)).exchange_code(code, "http://127.0.0.1:51000/",
                                                         pkce.verifier)


def test_the_right_verifier_gets_tokens_once(provider: OAuthProvider) -> None:
    pkce, redirect_uri = new_pkce(), "http://127.0.0.1:50999/"
    code = code_for(provider, redirect_uri, pkce.challenge)
    endpoint = TokenEndpoint(client_of(provider))
    assert endpoint.exchange_code(code, redirect_uri, pkce.verifier).refresh_token
    with pytest.raises(GrantRejected, match="invalid_grant"):
        endpoint.exchange_code(code, redirect_uri, pkce.verifier)


def test_pasted_text_that_is_no_address_is_answered_and_the_next_paste_counts(
        provider: OAuthProvider) -> None:
    read_end, write_end = os.pipe()
    said: list[str] = []

    def paste(prompt: BrowserPrompt) -> None:
        os.write(write_end, b"what now?\n" + redirect_of(prompt.url).encode() + b"\n")

    try:
        answer = browser_login(TokenEndpoint(client_of(provider)), paste, login_hint=USER,
                               timeout=10, paste_fd=read_end, say=said.append)
    finally:
        os.close(read_end)
        os.close(write_end)
    assert answer.refresh_token == provider.refresh_token_of(USER)
    assert said == [NOT_AN_ANSWER]


def test_the_login_gives_up_after_its_timeout_and_closes_the_listener(
        provider: OAuthProvider) -> None:
    prompts: list[BrowserPrompt] = []
    with pytest.raises(LoginFailed, match="timeout"):
        browser_login(TokenEndpoint(client_of(provider)), prompts.append, login_hint=USER,
                      timeout=0.3, paste_fd=None, say=print)
    (prompt,) = prompts
    assert prompt.redirect_uri == f"http://127.0.0.1:{prompt.port}/"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", prompt.port), timeout=2)
    assert provider.token_requests == 0
