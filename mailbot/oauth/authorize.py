"""The authorization-code request with PKCE (RFC 6749 §4.1, RFC 7636): its URL and its answer.

Pure: a verifier and its S256 challenge, a random `state`, the URL the browser opens, and the
code read from the redirect (a request to the loopback listener, or an address pasted by the
operator). A redirect whose `state` is not this login's is refused before anything else.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, quote, unquote, urlencode, urlsplit

from mailbot.oauth.errors import GrantRejected, LoginFailed
from mailbot.oauth.providers import OAuthClient

# RFC 6749 §4.1.2.1: what each error of an authorization response means to the operator
AUTHORIZATION_ERRORS = {
    "access_denied": "the consent was refused (or the sign-in cancelled) in the browser",
    "invalid_request": "the provider found the request malformed",
    "unauthorized_client": "this client may not use the authorization-code flow "
                           "(for Google, the OAuth client must be of type Desktop app)",
    "unsupported_response_type": "the provider does not issue authorization codes to it",
    "invalid_scope": "the provider refused the scopes asked for",
    "server_error": "the provider failed; try again",
    "temporarily_unavailable": "the provider is busy; try again",
}


@dataclass(frozen=True, slots=True)
class Pkce:
    """A PKCE verifier (kept for the token request) and its S256 challenge (sent in the URL)."""

    verifier: str = field(repr=False)
    challenge: str
    method: str = "S256"


def s256(verifier: str) -> str:
    """The S256 code challenge: BASE64URL(SHA256(verifier)) without padding (RFC 7636 §4.2)."""
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_pkce() -> Pkce:
    """A fresh verifier of 86 unreserved characters (RFC 7636 §4.1 allows 43 to 128)."""
    verifier = secrets.token_urlsafe(64)
    return Pkce(verifier, s256(verifier))


def new_state() -> str:
    return secrets.token_urlsafe(24)


def authorization_url(client: OAuthClient, redirect_uri: str, state: str, challenge: str,
                      login_hint: str | None = None) -> str:
    """The address the browser opens: the client, its scopes, the redirect, state and challenge."""
    if not client.authorization_url:
        raise LoginFailed("unsupported", "this provider has no authorization_url")
    params = [("response_type", "code"), ("client_id", client.client_id),
              ("redirect_uri", redirect_uri)]
    if client.scope:
        params.append(("scope", client.scope))
    params += [("state", state), ("code_challenge", challenge),
               ("code_challenge_method", "S256")]
    if login_hint:
        params.append(("login_hint", login_hint))
    params += client.authorization_extras
    joiner = "&" if "?" in client.authorization_url else "?"
    return f"{client.authorization_url}{joiner}{urlencode(params, quote_via=quote)}"


def code_from_query(query: str, state: str) -> str | None:
    """The code of a redirect's query; None when it holds no answer at all.

    Raises LoginFailed when the `state` is not this login's, GrantRejected with the provider's
    error (`access_denied`, ...) when the authorization was refused.
    """
    params = {k: v[0] for k, v in parse_qs(query, keep_blank_values=True).items()}
    if "code" not in params and "error" not in params:
        return None
    if not hmac.compare_digest(params.get("state", ""), state):
        raise LoginFailed("state_mismatch", "the redirect's state is not this login's (an "
                          "older login's address, or a forged one); nothing was exchanged")
    if "error" in params:
        error = params["error"] or "error"
        words = AUTHORIZATION_ERRORS.get(error, "the provider refused the authorization")
        said = params.get("error_description")
        raise GrantRejected(error, f"{words} (provider: {said})" if said else words)
    return params["code"] or None


def code_from_paste(text: str, state: str) -> str | None:
    """The code in what the operator pasted: the redirected address, its query, or the code.

    None when the text is no answer (empty, or an address without code and error).
    """
    text = text.strip()
    if "?" in text:
        return code_from_query(urlsplit(text).query, state)
    if "=" in text:
        return code_from_query(text, state)
    if not text or "://" in text or any(c.isspace() for c in text):
        return None
    return unquote(text)
