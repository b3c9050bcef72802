"""The systemd notify protocol against a datagram socket standing in for $NOTIFY_SOCKET."""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from mailbot.daemon import Daemon
from mailbot.health import Heartbeats
from mailbot.notify import Notifier
from mailbot.testing import NotifySocket


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[NotifySocket]:
    path = str(tmp_path / "notify.sock")
    listener = NotifySocket(path, path)
    yield listener
    listener.close()


def test_ready_status_watchdog_stopping_reach_the_socket(notify_socket: NotifySocket) -> None:
    notifier = Notifier({"NOTIFY_SOCKET": notify_socket.address})
    notifier.ready("1 mailbox")
    notifier.status("support idle")
    notifier.watchdog()
    notifier.stopping()
    assert notify_socket.read(0.5) == [f"READY=1\nSTATUS=1 mailbox\nMAINPID={os.getpid()}",
                                       "STATUS=support idle", "WATCHDOG=1",
                                       "STOPPING=1\nSTATUS=stopping"]


def test_an_abstract_socket_is_named_with_an_at_sign() -> None:
    name = f"mailbot-test-{secrets.token_hex(4)}"
    listener = NotifySocket(f"@{name}", f"\0{name}")
    try:
        Notifier({"NOTIFY_SOCKET": f"@{name}"}).watchdog()
        assert listener.read(0.3) == ["WATCHDOG=1"]
    finally:
        listener.close()


def test_without_a_socket_nothing_is_sent_and_the_watchdog_interval_is_read() -> None:
    quiet = Notifier({})
    assert not quiet.enabled and quiet.watchdog_s is None
    quiet.ready("x")  # no socket: a no-op, not an error
    assert Notifier({"WATCHDOG_USEC": "30000000"}).watchdog_s == 30.0
    assert Notifier({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}).watchdog_s is None
    assert Notifier({"WATCHDOG_USEC": "0"}).watchdog_s is None


def test_the_watchdog_goes_unfed_while_a_loop_makes_no_progress(
        notify_socket: NotifySocket) -> None:
    """A hung loop stops the WATCHDOG pings (systemd then restarts); progress resumes them."""
    now = [0.0]
    beats = Heartbeats(monotonic=lambda: now[0])
    beats.beat("mailbox:stuck")
    daemon = Daemon(workers=[], notifier=Notifier({"NOTIFY_SOCKET": notify_socket.address}),
                    heartbeats=beats, hung_after=60)
    runner = threading.Thread(target=daemon.run)
    runner.start()
    try:
        assert notify_socket.wait_for("READY=1")[-1].startswith("READY=1\nSTATUS=")
        notify_socket.wait_for("WATCHDOG=1", seconds=5)
        now[0] = 120.0  # the loop has not beaten for two minutes
        notify_socket.read(1.2)  # a ping may have been on its way
        assert "WATCHDOG=1" not in notify_socket.read(2.5)
        beats.beat("mailbox:stuck")
        notify_socket.wait_for("WATCHDOG=1", seconds=5)
    finally:
        daemon.request_stop()
        runner.join(timeout=10)
    assert not runner.is_alive()
    assert "STOPPING=1" in "".join(notify_socket.read(0.5))
