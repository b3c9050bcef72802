"""An OAuth2 provider on a free loopback port: authorization, token, device-code, introspection.

It issues short-lived access tokens, rotates the refresh token on every refresh (the old one
is dead at once, as the strictest providers do), approves a device code after a few polls,
and answers Dovecot's token introspection. Its authorization endpoint plays the user's consent
(approved, or refused with `access_denied`) by redirecting to the client's loopback redirect
URI; the code it issues is exchanged only with that redirect URI and the PKCE verifier of its
S256 challenge. Tests revoke grants, expire access tokens and make the token endpoint fail on
cue.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Literal
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

from mailbot.testing.ports import free_port

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
LOOPBACK_HOSTS = ("127.0.0.1", "[::1]", "localhost")


@dataclass
class _Grant:
    username: str
    refresh_token: str
    revoked: bool = False


@dataclass
class _Device:
    username: str
    expires: float
    polls: int = 0


@dataclass
class _Code:
    username: str
    redirect_uri: str
    challenge: str
    expires: float


class OAuthProvider:
    """The provider's side of OAuth2 for one registered client, on 127.0.0.1."""

    def __init__(self, *, client_id: str = "mailbot-test", client_secret: str = "app-secret",
                 access_ttl: float = 60.0, rotate: bool = True, device_user: str =
                 "support@example.test", approve_after_polls: int = 2,
                 device_interval: float = 0.05, device_expires_in: float = 30.0,
                 slow_down_polls: int = 0, consent: Literal["approve", "deny"] = "approve",
                 code_expires_in: float = 60.0) -> None:
        self.host = "127.0.0.1"
        self.port = free_port()
        self.client_id = client_id
        self.client_secret = client_secret
        self.access_ttl = access_ttl
        self.rotate = rotate
        self.device_user = device_user
        self.approve_after_polls = approve_after_polls
        self.device_interval = device_interval
        self.device_expires_in = device_expires_in
        self.slow_down_polls = slow_down_polls
        self.consent = consent  # what the user answers on the consent page
        self.code_expires_in = code_expires_in
        self.authorizations: list[dict[str, str]] = []  # every authorization request's query
        self.refreshes = 0  # successful refresh-token grants
        self.token_requests = 0  # every request to the token endpoint
        self.introspections = 0
        self._failures: list[int] = []
        self._grants: dict[str, _Grant] = {}
        self._access: dict[str, tuple[str, float]] = {}
        self._devices: dict[str, _Device] = {}
        self._codes: dict[str, _Code] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    # -- where it listens, and the configuration that points mailbot at it

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def token_url(self) -> str:
        return f"{self.base_url}/token"

    @property
    def device_url(self) -> str:
        return f"{self.base_url}/devicecode"

    @property
    def introspection_url(self) -> str:
        return f"{self.base_url}/introspect"

    @property
    def authorization_url(self) -> str:
        return f"{self.base_url}/authorize"

    def login_config(self, flow: Literal["device", "browser"] = "device") -> str:
        """The `auth: oauth2` keys of an imap or smtp block (YAML flow style, no braces).

        For the browser flow only the authorization endpoint is given, so a generic provider
        logs in in the browser without being told.
        """
        login_url = (f"authorization_url: '{self.authorization_url}'" if flow == "browser"
                     else f"device_authorization_url: '{self.device_url}'")
        return (f"auth: oauth2, provider: generic, client_id: {self.client_id}, "
                f"client_secret: {self.client_secret}, token_url: '{self.token_url}', "
                f"{login_url}, scopes: [mail]")

    # -- what tests do to it

    def grant(self, username: str) -> str:
        """A fresh grant for `username` (as after a login); returns its refresh token."""
        with self._lock:
            token = _new("rt")
            self._grants[username] = _Grant(username, token)
            return token

    def revoke(self, username: str) -> None:
        """The user (or an admin) revoked the grant: refresh and access tokens are dead."""
        with self._lock:
            self._grants[username].revoked = True
            self._access = {t: v for t, v in self._access.items() if v[0] != username}

    def expire_access_tokens(self) -> None:
        with self._lock:
            self._access = {t: (user, 0.0) for t, (user, _) in self._access.items()}

    def fail_next(self, status: int, count: int = 1) -> None:
        """The next `count` token requests are answered with this HTTP status."""
        with self._lock:
            self._failures.extend([status] * count)

    def refresh_token_of(self, username: str) -> str:
        with self._lock:
            return self._grants[username].refresh_token

    def introspect(self, token: str) -> dict[str, Any]:
        """RFC 7662: active with the username while the access token lives."""
        with self._lock:
            self.introspections += 1
            found = self._access.get(token)
            if found is None or found[1] < time.monotonic():
                return {"active": False}
            grant = self._grants.get(found[0])
            if grant is None or grant.revoked:
                return {"active": False}
            return {"active": True, "username": found[0], "client_id": self.client_id,
                    "exp": int(time.time() + found[1] - time.monotonic())}

    def valid(self, username: str, token: str) -> bool:
        answer = self.introspect(token)
        return bool(answer.get("active")) and answer.get("username") == username

    # -- running

    def start(self) -> OAuthProvider:
        if self._server is None:
            provider = self

            class Handler(_Handler):
                owner = provider

            self._server = ThreadingHTTPServer((self.host, self.port), Handler)
            self._server.daemon_threads = True
            threading.Thread(target=self._server.serve_forever, name="oauth-provider",
                             daemon=True).start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.shutdown()
            server.server_close()

    def __enter__(self) -> OAuthProvider:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()

    # -- the endpoints

    def _token(self, form: dict[str, str], client: tuple[str, str | None]) -> tuple[int, Any]:
        with self._lock:
            self.token_requests += 1
            if self._failures:
                return self._failures.pop(0), None
        if client != (self.client_id, self.client_secret):
            return 401, {"error": "invalid_client", "error_description": "unknown client"}
        grant_type = form.get("grant_type")
        if grant_type == "refresh_token":
            return self._refresh(form.get("refresh_token", ""))
        if grant_type == DEVICE_GRANT:
            return self._device_token(form.get("device_code", ""))
        if grant_type == "authorization_code":
            return self._code_token(form)
        return 400, {"error": "unsupported_grant_type"}

    def _code_token(self, form: dict[str, str]) -> tuple[int, Any]:
        """RFC 6749 §4.1.3 with RFC 7636 §4.6: one use, same redirect URI, matching verifier."""
        with self._lock:
            code = self._codes.pop(form.get("code", ""), None)
            if code is None or time.monotonic() > code.expires:
                return 400, {"error": "invalid_grant",
                             "error_description": "unknown, used or expired code"}
            if form.get("redirect_uri") != code.redirect_uri:
                return 400, {"error": "invalid_grant",
                             "error_description": "redirect_uri does not match the "
                                                  "authorization request's"}
            digest = hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            if base64.urlsafe_b64encode(digest).rstrip(b"=").decode() != code.challenge:
                return 400, {"error": "invalid_grant",
                             "error_description": "code_verifier does not match the "
                                                  "code_challenge"}
            grant = _Grant(code.username, _new("rt"))
            self._grants[code.username] = grant
            return 200, self._issue(grant)

    def _authorize(self, query: dict[str, str]) -> tuple[int, str]:
        """(302, where the browser goes next) after the user's consent, or (400, why not)."""
        with self._lock:
            self.authorizations.append(query)
        redirect_uri = query.get("redirect_uri", "")
        target = urlsplit(redirect_uri)
        if query.get("client_id") != self.client_id:
            return 400, "unknown client"
        if target.scheme != "http" or target.netloc.rsplit(":", 1)[0] not in LOOPBACK_HOSTS:
            return 400, "redirect_uri must be a loopback http:// address (RFC 8252 §7.3)"
        answer: dict[str, str] = {}
        if query.get("response_type") != "code":
            answer = {"error": "unsupported_response_type"}
        elif query.get("code_challenge_method") != "S256" or not query.get("code_challenge"):
            answer = {"error": "invalid_request", "error_description": "PKCE with S256 required"}
        elif self.consent == "deny":
            answer = {"error": "access_denied", "error_description": "The user said no."}
        else:
            code = _new("ac")
            with self._lock:
                self._codes[code] = _Code(query.get("login_hint") or self.device_user,
                                          redirect_uri, query["code_challenge"],
                                          time.monotonic() + self.code_expires_in)
            answer = {"code": code}
        if "state" in query:
            answer["state"] = query["state"]
        joiner = "&" if target.query else "?"
        return 302, f"{redirect_uri}{joiner}{urlencode(answer)}"

    def _refresh(self, refresh_token: str) -> tuple[int, Any]:
        with self._lock:
            grant = next((g for g in self._grants.values()
                          if g.refresh_token == refresh_token and not g.revoked), None)
            if grant is None:
                return 400, {"error": "invalid_grant",
                             "error_description": "the refresh token is revoked, expired or "
                                                  "was already used"}
            if self.rotate:
                grant.refresh_token = _new("rt")
            self.refreshes += 1
            return 200, self._issue(grant)

    def _device_token(self, device_code: str) -> tuple[int, Any]:
        with self._lock:
            device = self._devices.get(device_code)
            if device is None:
                return 400, {"error": "invalid_grant", "error_description": "unknown code"}
            if time.monotonic() > device.expires:
                return 400, {"error": "expired_token"}
            device.polls += 1
            if device.polls <= self.slow_down_polls:
                return 400, {"error": "slow_down"}
            if device.polls <= self.approve_after_polls:
                return 400, {"error": "authorization_pending"}
            del self._devices[device_code]
            grant = _Grant(device.username, _new("rt"))
            self._grants[device.username] = grant
            return 200, self._issue(grant)

    def _issue(self, grant: _Grant) -> dict[str, Any]:
        access = _new("at")
        self._access[access] = (grant.username, time.monotonic() + self.access_ttl)
        return {"access_token": access, "token_type": "Bearer",
                "expires_in": self.access_ttl, "refresh_token": grant.refresh_token,
                "scope": "mail"}

    def _device_code(self, form: dict[str, str]) -> tuple[int, Any]:
        if form.get("client_id") != self.client_id:
            return 401, {"error": "invalid_client"}
        code, user_code = _new("dc"), secrets.token_hex(4).upper()
        with self._lock:
            self._devices[code] = _Device(self.device_user,
                                          time.monotonic() + self.device_expires_in)
        return 200, {"device_code": code, "user_code": user_code,
                     "verification_uri": f"{self.base_url}/device",
                     "expires_in": self.device_expires_in, "interval": self.device_interval}


class _Handler(BaseHTTPRequestHandler):
    owner: OAuthProvider

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        if target.path != "/authorize":
            self._answer(404, {"error": "not_found"})
            return
        status, where = self.owner._authorize(
            {k: v[0] for k, v in parse_qs(target.query).items()})
        body = where.encode()
        self.send_response(status)
        if status == 302:
            self.send_header("Location", where)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        form = {k: v[0] for k, v in parse_qs(self.rfile.read(length).decode()).items()}
        path = self.path.split("?")[0]
        if path == "/token":
            status, body = self.owner._token(form, self._client(form))
        elif path == "/devicecode":
            status, body = self.owner._device_code(form)
        elif path == "/introspect":
            status, body = 200, self.owner.introspect(form.get("token", ""))
        else:
            status, body = 404, {"error": "not_found"}
        self._answer(status, body)

    def _client(self, form: dict[str, str]) -> tuple[str, str | None]:
        header = self.headers.get("Authorization", "")
        if header.startswith("Basic "):
            user, _, password = base64.b64decode(header[6:]).decode().partition(":")
            return unquote(user), unquote(password)
        return form.get("client_id", ""), form.get("client_secret")

    def _answer(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode() if body is not None else b"unavailable"
        self.send_response(status)
        self.send_header("Content-Type", "application/json" if body is not None
                         else "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass


def _new(prefix: str) -> str:
    return f"{prefix}-{secrets.token_urlsafe(24)}"
