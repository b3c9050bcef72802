"""When to refresh an access token, and how long a rejected grant waits before it is tried again."""

from __future__ import annotations

from datetime import datetime, timedelta

REFRESH_MARGIN = timedelta(minutes=5)
REJECTED_RETRY_AFTER = timedelta(hours=1)
FALLBACK_LIFETIME = timedelta(hours=1)  # a token answer without expires_in


def refresh_due(expires_at: datetime | None, issued_at: datetime | None, now: datetime) -> bool:
    """True once the token is in the last fifth of its life, or its last five minutes.

    An access token with no known expiry is refreshed; so is one issued "in the future"
    (a clock stepped back), since nothing else about it can be trusted.
    """
    if expires_at is None:
        return True
    lifetime = expires_at - issued_at if issued_at is not None else REFRESH_MARGIN * 5
    if lifetime <= timedelta(0):
        return True
    margin = min(REFRESH_MARGIN, lifetime / 5)
    return now >= expires_at - margin


def expiry(now: datetime, expires_in: object) -> datetime:
    """The instant an access token expires, from the provider's `expires_in` (seconds)."""
    try:
        seconds = float(str(expires_in))
    except ValueError:
        return now + FALLBACK_LIFETIME
    return now + timedelta(seconds=max(0.0, seconds))
