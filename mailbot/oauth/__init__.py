"""OAuth2 for mailboxes: provider endpoints, token refresh and storage, SASL strings, device login.

The pure parts (`providers`, `sasl`, `timing`) are tested without servers; `endpoint` speaks to
the provider (through Authlib), `tokens` keeps the grant in the database.
"""

from mailbot.oauth.errors import GrantRejected, LoginNeeded, OAuthUnavailable, TemporaryOAuthError

__all__ = ["GrantRejected", "LoginNeeded", "OAuthUnavailable", "TemporaryOAuthError"]
