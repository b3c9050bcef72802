"""OAuth2 for mailboxes: provider endpoints, token refresh and storage, SASL, the logins.

The pure parts (`providers`, `authorize`, `sasl`, `timing`) are tested without servers;
`endpoint` speaks to the provider (through Authlib), `tokens` keeps the grant in the database,
`device` and `browser` are the two ways of logging in (`loopback` catches the redirect).
"""

from mailbot.oauth.errors import GrantRejected, LoginNeeded, OAuthUnavailable, TemporaryOAuthError

__all__ = ["GrantRejected", "LoginNeeded", "OAuthUnavailable", "TemporaryOAuthError"]
