"""The provider's token and device-authorization endpoints, spoken through Authlib's client.

Every request has the client's timeout. Answers are sorted into three kinds: tokens, a
temporary failure (no answer, 5xx, 429, `temporarily_unavailable`), or a rejection with the
provider's error code (`invalid_grant`, `invalid_client`, ...). No token ever goes into an
exception's text.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from mailbot.oauth.errors import GrantRejected, TemporaryOAuthError
from mailbot.oauth.providers import OAuthClient

DEVICE_GRANT = "urn:ietf:params:oauth:grant-type:device_code"
TEMPORARY_ERRORS = frozenset({"temporarily_unavailable", "server_error"})

if TYPE_CHECKING:
    from authlib.integrations.requests_client import OAuth2Session

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class TokenAnswer:
    """What the token endpoint gave: an access token, and a refresh token when it sent one."""

    access_token: str = field(repr=False)
    expires_in: object
    refresh_token: str | None = field(default=None, repr=False)


@dataclass(frozen=True, slots=True)
class DeviceCode:
    """What the user is shown (URL and code) and what mailbot polls with."""

    device_code: str = field(repr=False)
    user_code: str
    verification_uri: str
    verification_uri_complete: str | None
    expires_in: float
    interval: float


class AuthorizationPending(Exception):
    """The user has not approved the device code yet; `slow_down` asks for a longer interval."""

    def __init__(self, slow_down: bool = False) -> None:
        super().__init__("slow_down" if slow_down else "authorization_pending")
        self.slow_down = slow_down


class TokenEndpoint:
    """One registered application's token requests."""

    def __init__(self, client: OAuthClient) -> None:
        self.client = client

    def refresh(self, refresh_token: str) -> TokenAnswer:
        """A new access token for a refresh token; the answer may carry a rotated refresh token."""
        def call(session: OAuth2Session) -> Any:
            return session.refresh_token(self.client.token_url, refresh_token=refresh_token,
                                         timeout=self.client.timeout)
        return _answer(self._call(call))

    def start_device_login(self) -> DeviceCode:
        """Ask for a device code (RFC 8628 §3.1); the user approves it in a browser."""
        url = self.client.device_authorization_url
        if not url:
            raise GrantRejected("unsupported", "this provider has no device_authorization_url")

        def call(session: OAuth2Session) -> Any:
            from authlib.integrations.base_client import OAuthError

            response = session.post(url, data={"client_id": self.client.client_id,
                                               "scope": self.client.scope},
                                    withhold_token=True, timeout=self.client.timeout)
            if response.status_code >= 500 or response.status_code == 429:
                response.raise_for_status()
            body = response.json()
            if "error" in body:
                raise OAuthError(error=body["error"], description=body.get("error_description"))
            response.raise_for_status()
            return body
        body = self._call(call)
        try:
            return DeviceCode(
                device_code=str(body["device_code"]), user_code=str(body["user_code"]),
                verification_uri=str(body.get("verification_uri")
                                     or body["verification_url"]),  # Google's older name
                verification_uri_complete=body.get("verification_uri_complete"),
                expires_in=float(body.get("expires_in", 900)),
                interval=float(body.get("interval", 5)))
        except (KeyError, TypeError, ValueError) as exc:
            raise TemporaryOAuthError(f"device authorization answer lacks {exc}") from exc

    def poll_device(self, device_code: str) -> TokenAnswer:
        """Tokens once the user approved; AuthorizationPending until then (RFC 8628 §3.4)."""
        def call(session: OAuth2Session) -> Any:
            from authlib.integrations.base_client import OAuthError

            try:
                return session.fetch_token(self.client.token_url, grant_type=DEVICE_GRANT,
                                           device_code=device_code,
                                           timeout=self.client.timeout)
            except OAuthError as exc:
                if exc.error in ("authorization_pending", "slow_down"):
                    raise AuthorizationPending(exc.error == "slow_down") from None
                raise
        return _answer(self._call(call))

    def exchange_code(self, code: str, redirect_uri: str, code_verifier: str) -> TokenAnswer:
        """Tokens for an authorization code (RFC 6749 §4.1.3), with its PKCE verifier."""
        def call(session: OAuth2Session) -> Any:
            return session.fetch_token(self.client.token_url, grant_type="authorization_code",
                                       code=code, redirect_uri=redirect_uri,
                                       code_verifier=code_verifier,
                                       timeout=self.client.timeout)
        return _answer(self._call(call))

    def _session(self) -> OAuth2Session:
        # Authlib and requests are loaded by the first token request, not by every start
        # of mailbot: they were a quarter of its import time.
        from authlib.integrations.requests_client import OAuth2Session

        secret = self.client.client_secret
        return OAuth2Session(self.client.client_id, secret, scope=self.client.scope or None,
                             token_endpoint_auth_method="client_secret_post" if secret
                             else "none", default_timeout=self.client.timeout)

    def _call(self, fn: Callable[[OAuth2Session], T]) -> T:
        import requests
        from authlib.integrations.base_client import OAuthError

        where = self.client.token_url
        with self._session() as session:
            try:
                return fn(session)
            except OAuthError as exc:
                if exc.error in TEMPORARY_ERRORS:
                    raise TemporaryOAuthError(f"{where}: {exc.error}") from None
                raise GrantRejected(str(exc.error), exc.description) from None
            except requests.HTTPError as exc:
                status = exc.response.status_code if exc.response is not None else "?"
                raise TemporaryOAuthError(f"{where}: HTTP {status}") from None
            except requests.RequestException as exc:
                raise TemporaryOAuthError(f"{where}: {type(exc).__name__}") from None
            except ValueError as exc:  # not a JSON object
                raise TemporaryOAuthError(f"{where}: {exc}") from None


def _answer(token: Any) -> TokenAnswer:
    access = token.get("access_token") if isinstance(token, dict) else None
    if not access:
        raise TemporaryOAuthError("the token endpoint answered without an access_token")
    refresh = token.get("refresh_token")
    return TokenAnswer(str(access), token.get("expires_in"), str(refresh) if refresh else None)
