"""The browser login (RFC 8252): authorization code with PKCE, a loopback redirect or a paste.

The operator opens the printed address wherever a browser is. On the same machine the browser
is sent back to the loopback listener; from another machine that page fails to load, and the
operator pastes the address it shows instead. Whichever comes first, within the timeout, gives
the code, which is exchanged with the PKCE verifier.
"""

from __future__ import annotations

import os
import selectors
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta

from mailbot.oauth.authorize import authorization_url, code_from_paste, new_pkce, new_state
from mailbot.oauth.endpoint import TokenAnswer, TokenEndpoint
from mailbot.oauth.errors import LoginFailed
from mailbot.oauth.loopback import RedirectListener
from mailbot.units import format_duration

NOT_AN_ANSWER = ("That is not the redirected address: paste the whole address from the "
                 "browser's address bar (it holds code= and state=).")


@dataclass(frozen=True, slots=True)
class BrowserPrompt:
    """What the operator is shown: the address to open and where the browser comes back."""

    url: str
    redirect_uri: str
    port: int
    timeout: float


def browser_login(endpoint: TokenEndpoint, show: Callable[[BrowserPrompt], None], *,
                  login_hint: str | None, timeout: float, paste_fd: int | None,
                  say: Callable[[str], None],
                  monotonic: Callable[[], float] = time.monotonic) -> TokenAnswer:
    """Tokens once the browser (or a pasted address) brought the code; raises LoginFailed or
    GrantRejected when the answer is foreign, refused, or does not come within `timeout`.
    """
    pkce, state = new_pkce(), new_state()
    with RedirectListener(state) as listener:
        url = authorization_url(endpoint.client, listener.redirect_uri, state, pkce.challenge,
                                login_hint)
        show(BrowserPrompt(url, listener.redirect_uri, listener.port, timeout))
        code = _wait_for_code(listener, state, paste_fd, monotonic() + timeout, say, monotonic)
    if code is None:
        raise LoginFailed("timeout", "neither the browser's redirect nor a pasted address came "
                          f"within {format_duration(timedelta(seconds=timeout))}; "
                          "run the login again")
    return endpoint.exchange_code(code, listener.redirect_uri, pkce.verifier)


def _wait_for_code(listener: RedirectListener, state: str, paste_fd: int | None,
                   deadline: float, say: Callable[[str], None],
                   monotonic: Callable[[], float]) -> str | None:
    pasted = b""
    with selectors.PollSelector() as selector:
        selector.register(listener, selectors.EVENT_READ, "redirect")
        if paste_fd is not None:
            selector.register(paste_fd, selectors.EVENT_READ, "paste")
        while (left := deadline - monotonic()) > 0:
            for key, _ in selector.select(left):
                if key.data == "redirect":
                    code = listener.handle()
                    if code is not None:
                        return code
                    continue
                chunk = os.read(key.fd, 65536)
                if chunk:
                    *lines, pasted = (pasted + chunk).split(b"\n")
                else:  # stdin closed: its last line counts, then only the browser can answer
                    lines, pasted = [pasted], b""
                    selector.unregister(key.fileobj)
                for line in lines:
                    code = code_from_paste(line.decode("utf-8", "replace"), state)
                    if code is not None:
                        return code
                    if line.strip():
                        say(NOT_AN_ANSWER)
    return None
