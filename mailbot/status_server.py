"""The loopback HTTP listener: `/metrics` for Prometheus and `/healthz` for load balancers."""

from __future__ import annotations

import json
import socketserver
import threading
from collections.abc import Callable, Iterable
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

from prometheus_client import CollectorRegistry, make_wsgi_app

Health = Callable[[], tuple[bool, dict[str, Any]]]
StartResponse = Callable[[str, list[tuple[str, str]]], Any]


class _ThreadingServer(socketserver.ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def parse_listen(listen: str) -> tuple[str, int]:
    """`host:port` or `[v6]:port` into its parts."""
    host, _, port = listen.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"listen: expected host:port, got {listen!r}")
    return host.strip("[]"), int(port)


class StatusServer:
    """Serves the registry and a health function until closed."""

    def __init__(self, listen: str, registry: CollectorRegistry, health: Health) -> None:
        host, port = parse_listen(listen)
        metrics_app = make_wsgi_app(registry)

        def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            path = environ.get("PATH_INFO", "")
            if path == "/healthz":
                ok, detail = health()
                start_response("200 OK" if ok else "503 Service Unavailable",
                               [("Content-Type", "application/json")])
                return [json.dumps(detail).encode()]
            if path in ("/metrics", "/"):
                result: Iterable[bytes] = metrics_app(environ, start_response)
                return result
            start_response("404 Not Found", [("Content-Type", "text/plain")])
            return [b"not found: try /metrics or /healthz\n"]

        self._server = make_server(host, port, app, server_class=_ThreadingServer,
                                   handler_class=_QuietHandler)
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        name="status-server", daemon=True)

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> None:
        self._thread.start()

    def close(self) -> None:
        self._server.shutdown()
        self._server.server_close()
