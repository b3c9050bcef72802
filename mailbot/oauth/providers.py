"""Which endpoints and scopes an `auth: oauth2` block means: Microsoft, Google or generic."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from mailbot.config import LoginSettings

Protocol = Literal["imap", "smtp"]

MICROSOFT_AUTHORITY = "https://login.microsoftonline.com/{tenant}/oauth2/v2.0"
GOOGLE_TOKEN_URL = "https://oauth2.googleapis.com/token"
GOOGLE_DEVICE_URL = "https://oauth2.googleapis.com/device/code"

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

    @property
    def scope(self) -> str:
        return " ".join(self.scopes)


def oauth_client(login: LoginSettings, protocol: Protocol, timeout: float = 30.0) -> OAuthClient:
    """The client an `auth: oauth2` block describes; scopes default per provider and protocol."""
    if login.auth != "oauth2" or login.provider is None or login.client_id is None:
        raise ValueError("not an auth: oauth2 block")
    token_url, device_url = endpoints(login.provider, tenant=login.tenant,
                                      token_url=login.token_url,
                                      device_authorization_url=login.device_authorization_url)
    scopes = login.scopes if login.scopes is not None else \
        DEFAULT_SCOPES.get((login.provider, protocol), ())
    secret = login.client_secret.get_secret_value() if login.client_secret else None
    return OAuthClient(login.provider, login.client_id, token_url, device_url, tuple(scopes),
                       secret, timeout)


def endpoints(provider: str, *, tenant: str | None = None, token_url: str | None = None,
              device_authorization_url: str | None = None) -> tuple[str, str | None]:
    """(token endpoint, device authorization endpoint) of a provider."""
    if provider == "microsoft":
        if not tenant:
            raise ValueError("tenant: required with provider: microsoft")
        base = MICROSOFT_AUTHORITY.format(tenant=tenant)
        return f"{base}/token", f"{base}/devicecode"
    if provider == "google":
        return GOOGLE_TOKEN_URL, GOOGLE_DEVICE_URL
    if not token_url:
        raise ValueError("token_url: required with provider: generic")
    return token_url, device_authorization_url
