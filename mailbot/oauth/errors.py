"""Why no access token could be had: a temporary failure, a rejected grant, or no grant yet."""

from __future__ import annotations


class OAuthUnavailable(Exception):
    """No access token now; the mailbox (or the sending side) cannot log in."""


class TemporaryOAuthError(OAuthUnavailable):
    """The provider could not be reached or answered 5xx / 429: try again later."""


class GrantRejected(OAuthUnavailable):
    """The provider refused the grant (`invalid_grant`: revoked or expired) or the client.

    Only a new `mailbot oauth login` (or a fixed client registration) helps.
    """

    def __init__(self, error: str, description: str | None = None) -> None:
        super().__init__(f"{error}: {description}" if description else error)
        self.error = error
        self.description = description

    @property
    def revoked(self) -> bool:
        return self.error == "invalid_grant"


class LoginNeeded(OAuthUnavailable):
    """No refresh token is stored for this grant: `mailbot oauth login` has not been run."""


class LoginFailed(OAuthUnavailable):
    """An interactive login did not complete: a foreign `state`, no answer in time, ..."""

    def __init__(self, error: str, description: str) -> None:
        super().__init__(f"{error}: {description}")
        self.error = error
        self.description = description
