"""systemd's notify protocol: READY, STATUS, WATCHDOG and STOPPING datagrams to $NOTIFY_SOCKET.

The protocol is one `sendto` of `KEY=value` lines on a Unix datagram socket; an abstract
socket is named with a leading `@`. Without $NOTIFY_SOCKET every call does nothing.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

log = structlog.get_logger("mailbot.notify")


class Notifier:
    """Tells the service manager how the daemon is doing."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        self._address = "\0" + address[1:] if address.startswith("@") else address
        self.watchdog_s = _watchdog_interval(env)

    @property
    def enabled(self) -> bool:
        return bool(self._address)

    def ready(self, status: str) -> None:
        self._send(f"READY=1\nSTATUS={status}\nMAINPID={os.getpid()}")

    def status(self, text: str) -> None:
        self._send(f"STATUS={text}")

    def watchdog(self) -> None:
        self._send("WATCHDOG=1")

    def stopping(self) -> None:
        self._send("STOPPING=1\nSTATUS=stopping")

    def _send(self, message: str) -> None:
        if not self._address:
            return
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
                sock.setblocking(False)  # a manager that is not reading never stalls us
                sock.sendto(message.encode(), self._address)
        except OSError as exc:
            log.warning("notify.failed", error=str(exc))


def _watchdog_interval(env: Mapping[str, str]) -> float | None:
    """Seconds within which the manager wants a WATCHDOG=1, when it watches this process."""
    usec = env.get("WATCHDOG_USEC", "")
    pid = env.get("WATCHDOG_PID", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    if pid and pid.isdigit() and int(pid) != os.getpid():
        return None
    return int(usec) / 1_000_000
