"""The OAuth2 grants a configuration has: one per mailbox on `auth: oauth2`, one for SMTP."""

from __future__ import annotations

from dataclasses import dataclass

from mailbot.config import Settings
from mailbot.oauth.providers import OAuthClient, Protocol, oauth_client

SMTP_GRANT = "smtp"


@dataclass(frozen=True, slots=True)
class GrantSpec:
    """Where a grant is used, how it is named in the database and how an operator renews it."""

    name: str  # imap:<mailbox> | smtp
    protocol: Protocol
    mailbox: str | None  # None for SMTP
    username: str
    client: OAuthClient

    @property
    def who(self) -> str:
        return f"mailbox {self.mailbox}" if self.mailbox else "smtp"

    @property
    def login_command(self) -> str:
        return f"mailbot oauth login {self.mailbox}" if self.mailbox else \
            "mailbot oauth login --smtp"


def imap_grant_name(mailbox: str) -> str:
    return f"imap:{mailbox}"


def grants(settings: Settings) -> list[GrantSpec]:
    """Every grant of the configuration, mailboxes first, in their order."""
    found = []
    for mailbox in settings.mailboxes:
        imap = mailbox.imap
        if imap.auth == "oauth2":
            found.append(GrantSpec(imap_grant_name(mailbox.name), "imap", mailbox.name,
                                   imap.username, oauth_client(
                                       imap, "imap", timeout=imap.timeout.total_seconds())))
    smtp = settings.smtp
    if smtp is not None and smtp.auth == "oauth2":
        assert smtp.username is not None
        found.append(GrantSpec(SMTP_GRANT, "smtp", None, smtp.username,
                               oauth_client(smtp, "smtp",
                                            timeout=smtp.timeout.total_seconds())))
    return found

