"""The loopback listener (RFC 8252 §7.3) that receives the browser's redirect after consent.

It binds 127.0.0.1 only, on a port the system picks, answers one request at a time (each with
a read timeout) when told its socket is ready, and is closed when the login ends.
"""

from __future__ import annotations

import html
from http.server import BaseHTTPRequestHandler, HTTPServer
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

from mailbot.oauth.authorize import code_from_query
from mailbot.oauth.errors import OAuthUnavailable

HOST = "127.0.0.1"
REQUEST_TIMEOUT_S = 5.0

DONE_PAGE = "mailbot has the authorization. You can close this page."
FAILED_PAGE = "mailbot could not use this answer: {error}"


class RedirectListener:
    """A one-shot HTTP server for the redirect of one login, identified by its `state`."""

    def __init__(self, state: str, *, request_timeout: float = REQUEST_TIMEOUT_S) -> None:
        listener = self

        class Handler(_Handler):
            owner = listener
            timeout = request_timeout

        self.state = state
        self.code: str | None = None
        self.failure: OAuthUnavailable | None = None
        self._server = HTTPServer((HOST, 0), Handler)
        self._server.timeout = request_timeout

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def redirect_uri(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def fileno(self) -> int:
        return self._server.fileno()

    def handle(self) -> str | None:
        """Serve the waiting request; the code once the redirect came, None until then.

        Raises what the redirect carried instead of a code (a foreign state, a refusal).
        """
        self._server.handle_request()
        if self.failure is not None:
            raise self.failure
        return self.code

    def close(self) -> None:
        self._server.server_close()

    def __enter__(self) -> RedirectListener:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


class _Handler(BaseHTTPRequestHandler):
    owner: RedirectListener

    def do_GET(self) -> None:
        target = urlsplit(self.path)
        if target.path != "/" or self.owner.code is not None:
            self._page(404, "Not found.")
            return
        try:
            code = code_from_query(target.query, self.owner.state)
        except OAuthUnavailable as exc:
            self.owner.failure = exc
            self._page(400, FAILED_PAGE.format(error=exc))
            return
        if code is None:
            self._page(404, "Not found.")
            return
        self.owner.code = code
        self._page(200, DONE_PAGE)

    def _page(self, status: int, text: str) -> None:
        body = (f"<!doctype html><meta charset=utf-8><title>mailbot</title>"
                f"<p>{html.escape(text)}</p>\n").encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass
