"""A datagram socket standing in for systemd's $NOTIFY_SOCKET in tests."""

from __future__ import annotations

import socket
import time


class NotifySocket:
    """A bound datagram socket collecting what the notifier sends."""

    def __init__(self, address: str, bind_to: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(bind_to)
        self.sock.settimeout(0.2)

    def read(self, seconds: float) -> list[str]:
        """Every datagram arriving within `seconds`."""
        return self._collect(seconds, None)

    def wait_for(self, text: str, seconds: float = 10.0) -> list[str]:
        """Datagrams up to and including the first that contains `text`."""
        got = self._collect(seconds, text)
        if not got or text not in got[-1]:
            raise AssertionError(f"no {text!r} within {seconds} s; got {got}")
        return got

    def _collect(self, seconds: float, until: str | None) -> list[str]:
        got: list[str] = []
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                got.append(self.sock.recv(4096).decode())
            except TimeoutError:
                continue
            except OSError:  # closed
                break
            if until is not None and until in got[-1]:
                break
        return got

    def close(self) -> None:
        self.sock.close()
