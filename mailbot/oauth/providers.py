"""Which endpoints, scopes and login flow an `auth: oauth2` block means, per provider."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mailbot.config import LoginSettings

Protocol = Literal["imap", "smtp"]
LoginFlow = Literal["device", "browser"]

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"
GOOGLE_AUTHORIZATION_URL = "https://accounts.google.com/o/oauth2/v2/auth"

# Google's device flow refuses https://mail.google.com/ (invalid_scope): it logs in in a browser.
DEFAULT_FLOW: dict[str, LoginFlow] = {"microsoft": "device", "google": "browser"}

# Extra authorization-request parameters; Google issues a refresh token only with these.
AUTHORIZATION_EXTRAS: dict[str, tuple[tuple[str, str], ...]] = {
    "google": (("access_type", "offline"), ("prompt", "consent")),
}

DEFAULT_SCOPES: dict[tuple[str, Protocol], tuple[str, ...]] = {
    ("microsoft", "imap"): ("https://outlook.office365.com/IMAP.AccessAsUser.All",
                            "offline_access"),
    ("microsoft", "smtp"): ("https://outlook.office365.com/SMTP.Send", "offline_access"),
    ("google", "imap"): ("https://mail.google.com/",),
    ("google", "smtp"): ("https://mail.google.com/",),
}


@dataclass(frozen=True, slots=True)
class OAuthClient:
    """The application as registered with the provider, and where its tokens come from."""

    provider: str
    client_id: str
    token_url: str
    device_authorization_url: str | None
    scopes: tuple[str, ...]
    client_secret: str | None = field(default=None, repr=False)
    timeout: float = 30.0
    authorization_url: str | None = None
    login_flow: LoginFlow = "device"

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)

    @property
    def authorization_extras(self) -> tuple[tuple[str, str], ...]:
        return AUTHORIZATION_EXTRAS.get(self.provider, ())


@dataclass(frozen=True, slots=True)
class Endpoints:
    """A provider's token, device-authorization and authorization endpoints."""

    token_url: str
    device_authorization_url: str | None
    authorization_url: str | None


def oauth_client(login: LoginSettings, protocol: Protocol, timeout: float = 30.0) -> OAuthClient:
    """The client an `auth: oauth2` block describes; scopes default per provider and protocol."""
    if login.auth != "oauth2" or login.provider is None or login.client_id is None:
        raise ValueError("not an auth: oauth2 block")
    urls = endpoints(login.provider, tenant=login.tenant, token_url=login.token_url,
                     device_authorization_url=login.device_authorization_url,
                     authorization_url=login.authorization_url)
    scopes = login.scopes if login.scopes is not None else \
        DEFAULT_SCOPES.get((login.provider, protocol), ())
    secret = login.client_secret.get_secret_value() if login.client_secret else None
    return OAuthClient(login.provider, login.client_id, urls.token_url,
                       urls.device_authorization_url, tuple(scopes), secret, timeout,
                       urls.authorization_url,
                       login.login_flow or default_flow(login.provider, urls))


def endpoints(provider: str, *, tenant: str | None = None, token_url: str | None = None,
              device_authorization_url: str | None = None,
              authorization_url: str | None = None) -> Endpoints:
    """The endpoints of a provider: known for Microsoft and Google, configured for generic."""
    if provider == "microsoft":
        if not tenant:
            raise ValueError("tenant: required with provider: microsoft")
        base = MICROSOFT_AUTHORITY.format(tenant=tenant)
        return Endpoints(f"{base}/token", f"{base}/devicecode", f"{base}/authorize")
    if provider == "google":
        return Endpoints(GOOGLE_TOKEN_URL, GOOGLE_DEVICE_URL, GOOGLE_AUTHORIZATION_URL)
    if not token_url:
        raise ValueError("token_url: required with provider: generic")
    return Endpoints(token_url, device_authorization_url, authorization_url)


def default_flow(provider: str, urls: Endpoints) -> LoginFlow:
    """The provider's own choice; for generic the device flow when it has the URL for it."""
    if provider in DEFAULT_FLOW:
        return DEFAULT_FLOW[provider]
    if urls.device_authorization_url is None and urls.authorization_url is not None:
        return "browser"
    return "device"
