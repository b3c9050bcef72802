"""The device-code login (RFC 8628): show a URL and a code, poll until approved or expired."""

from __future__ import annotations

import time
from collections.abc import Callable

import structlog

from mailbot.oauth.endpoint import AuthorizationPending, DeviceCode, TokenAnswer, TokenEndpoint
from mailbot.oauth.errors import GrantRejected, TemporaryOAuthError

log = structlog.get_logger("mailbot.oauth")

SLOW_DOWN_S = 5.0  # RFC 8628 §3.5: each slow_down adds five seconds to the interval
MIN_INTERVAL_S = 0.05


def device_login(endpoint: TokenEndpoint, show: Callable[[DeviceCode], None], *,
                 sleep: Callable[[float], None] = time.sleep,
                 monotonic: Callable[[], float] = time.monotonic) -> TokenAnswer:
    """Tokens once the user approved the code; GrantRejected when refused or expired.

    Polls at the provider's interval (longer after each `slow_down`), never past the code's
    expiry; a temporary failure of one poll is logged and the next poll goes on.
    """
    code = endpoint.start_device_login()
    show(code)
    interval = max(MIN_INTERVAL_S, code.interval)
    deadline = monotonic() + code.expires_in
    while True:
        if monotonic() + interval > deadline:
            raise GrantRejected("expired_token", "the code expired before it was approved")
        sleep(interval)
        try:
            return endpoint.poll_device(code.device_code)
        except AuthorizationPending as pending:
            if pending.slow_down:
                interval += SLOW_DOWN_S
        except TemporaryOAuthError as exc:
            log.warning("oauth.device_poll_failed", error=str(exc), retry_in_s=interval)
