"""One mailbox, worked for as long as the daemon runs: pass, IDLE (or sleep), pass again.

Every (re)connect begins with a catch-up pass. Any failure backs off exponentially with
jitter (tenacity, no limit on attempts, delay capped) without touching other mailboxes. With
leases, the mailbox is worked only while this instance holds it; otherwise the worker stands
by and takes over when the holder's lease expires.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

import structlog
from tenacity import (
    RetryCallState,
    RetryError,
    Retrying,
    retry_if_exception_type,
    wait_exponential_jitter,
)

from mailbot.clock import Clock
from mailbot.health import Heartbeats
from mailbot.ingest import Outcome, TemporaryFailure
from mailbot.leases import Leases
from mailbot.mail.imap import MailboxUnavailable
from mailbot.metrics import Metrics
from mailbot.poller import MailboxPoller
from mailbot.store.db import describe_db_error

log = structlog.get_logger("mailbot.worker")

IDLE_RENEW_S = 9 * 60.0  # RFC 2177: re-issue IDLE at least every 29 minutes
MAX_BACKOFF_S = 300.0
TICK_S = 1.0


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    idle: bool = True
    poll_interval: float = 60.0
    idle_renew: float = IDLE_RENEW_S
    max_backoff: float = MAX_BACKOFF_S
    retry_failed: float = 5.0  # wait before trying again a message whose processing failed


class MailboxWorker:
    """Drives one MailboxPoller on a thread of its own."""

    def __init__(self, poller: MailboxPoller, options: WorkerOptions, *,
                 stop: threading.Event, heartbeats: Heartbeats, clock: Clock,
                 leases: Leases | None = None, metrics: Metrics | None = None,
                 mail_stored: Callable[[], None] | None = None) -> None:
        self.poller = poller
        self.options = options
        self.stop = stop
        self.heartbeats = heartbeats
        self.clock = clock
        self.leases = leases
        self.metrics = metrics
        self.name = poller.plan.name
        self.loop_name = f"mailbox:{self.name}"
        self.lease_name = f"mailbox:{self.name}"
        self.state = "starting"  # working | idle | polling | standby | backing off
        self.tickets = 0
        self._held = False
        self._renew_at = 0.0
        poller.on_stored = self._stored
        poller.on_commit = mail_stored

    def run(self) -> None:
        """The thread's body: returns only once the daemon is stopping."""
        retrying = Retrying(
            retry=retry_if_exception_type(Exception),
            wait=wait_exponential_jitter(initial=1, max=self.options.max_backoff),
            stop=lambda _state: self.stop.is_set(),
            sleep=self._back_off, before_sleep=self._failed)
        try:
            while not self.stop.is_set():
                with contextlib.suppress(RetryError):  # stopping while backing off
                    retrying(self._cycle)
        finally:
            self.poller.close()
            self._let_go()
            self.heartbeats.forget(self.loop_name)
            log.info("mailbox.worker_stopped", mailbox=self.name)

    def _cycle(self) -> None:
        """Work the mailbox once: a pass, then wait for mail. Raises on any trouble."""
        self._beat()
        if self.stop.is_set():
            return
        if not self._hold():
            self._standby()
            return
        self.state = "working"
        self.poller.run_pass(stop=self._interrupted)
        if self.metrics is not None:
            self.metrics.polled(self.name, True, self.clock.now())
        if self.stop.is_set():
            return
        retry_soon = self.poller.failing > 0
        if self.options.idle and self.poller.supports_idle():
            self.state = "idle"
            self.poller.wait_for_mail(self.options.retry_failed if retry_soon
                                      else self.options.idle_renew, self._interrupted)
        else:
            self.state = "polling"
            self._sleep(min(self.options.poll_interval, self.options.retry_failed)
                        if retry_soon else self.options.poll_interval)

    def _stored(self, outcome: Outcome, arrived: datetime | None) -> None:
        if outcome.kind == "ticket":
            self.tickets += 1
        if self.metrics is not None:
            self.metrics.message_stored(self.name, outcome, arrived, self.clock.now())

    def _interrupted(self) -> bool:
        """Asked between messages and every IDLE tick: stop, or lease lost."""
        self._beat()
        if self.stop.is_set():
            return True
        if self.leases is not None and time.monotonic() >= self._renew_at:
            return not self._hold()
        return False

    def _hold(self) -> bool:
        if self.leases is None:
            return True
        held = self.leases.hold(self.lease_name)
        self._renew_at = time.monotonic() + self.leases.ttl.total_seconds() / 3
        if held != self._held:
            if held:
                log.info("mailbox.lease_taken", mailbox=self.name, holder=self.leases.holder)
            else:
                log.warning("mailbox.lease_lost", mailbox=self.name)
            self._held = held
        if self.metrics is not None:
            self.metrics.leases.labels(self.lease_name).set(1 if held else 0)
        return held

    def _standby(self) -> None:
        if self.state != "standby":
            log.info("mailbox.standby", mailbox=self.name,
                     detail="another instance holds this mailbox")
            self.poller.close()
        self.state = "standby"
        assert self.leases is not None
        self._sleep(self.leases.ttl.total_seconds() / 3)

    def _let_go(self) -> None:
        if self.leases is None or not self._held:
            return
        try:
            self.leases.release(self.lease_name)
        except Exception as exc:  # the lease expires by itself
            log.warning("mailbox.lease_not_released", mailbox=self.name, error=str(exc))
        self._held = False

    def _sleep(self, seconds: float) -> None:
        """Wait between polls or while standing by, keeping the lease."""
        deadline = time.monotonic() + seconds
        while not self._interrupted():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(TICK_S, left))

    def _back_off(self, seconds: float) -> None:
        """Wait after a failure; touches nothing that could fail again."""
        deadline = time.monotonic() + seconds
        while not self.stop.is_set():
            self._beat()
            left = deadline - time.monotonic()
            if left <= 0:
                return
            self.stop.wait(min(TICK_S, left))

    def _beat(self) -> None:
        self.heartbeats.beat(self.loop_name)

    def _failed(self, state: RetryCallState) -> None:
        exc = state.outcome.exception() if state.outcome else None
        delay = state.upcoming_sleep
        self.state = "backing off"
        self.poller.close()
        if self.metrics is not None:
            self.metrics.polled(self.name, False, self.clock.now())
        if isinstance(exc, (MailboxUnavailable, TemporaryFailure)):
            log.error("mailbox.unavailable", mailbox=self.name, error=str(exc),
                      attempt=state.attempt_number, retry_in_s=round(delay, 1))
        elif exc is not None and type(exc).__module__.startswith("sqlalchemy"):
            log.error("mailbox.database_unavailable", mailbox=self.name,
                      error=describe_db_error(exc), attempt=state.attempt_number,
                      retry_in_s=round(delay, 1))
        else:
            log.error("mailbox.failed", mailbox=self.name, error=repr(exc),
                      attempt=state.attempt_number, retry_in_s=round(delay, 1),
                      exc_info=exc)
