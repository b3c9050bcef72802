"""`mailbot run`: the long-running loop over every mailbox, with signals for stop and reload."""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType

import structlog
from sqlalchemy.exc import OperationalError

from mailbot.ingest import TemporaryFailure
from mailbot.mail.imap import MailboxUnavailable
from mailbot.outbox import OutboxSender
from mailbot.poller import MailboxPoller
from mailbot.rules.book import RuleBook
from mailbot.store.db import describe_db_error
from mailbot.watcher import SlaWatcher

log = structlog.get_logger("mailbot.daemon")

MAX_BACKOFF_S = 300.0
WAKE_EVERY_S = 1.0
WATCH_EVERY_S = 30.0  # how often the SLA watcher looks at open tickets


@dataclass
class _Schedule:
    """When a mailbox is next due, and how long to back off after a failure."""

    due: float = 0.0
    failures: int = 0
    interval: float = 60.0

    def succeeded(self, now: float) -> None:
        self.failures = 0
        self.due = now + self.interval

    def failed(self, now: float) -> float:
        self.failures += 1
        delay = min(MAX_BACKOFF_S, 2.0 ** min(self.failures, 10))
        self.due = now + delay
        return delay


@dataclass
class Daemon:
    """Polls each mailbox on its interval until stopped; reloads rules on SIGHUP or change."""

    pollers: Sequence[MailboxPoller]
    intervals: Sequence[float]
    rulebook: RuleBook | None = None
    outbox: OutboxSender | None = None
    watcher: SlaWatcher | None = None
    monotonic: Callable[[], float] = time.monotonic
    _stop: threading.Event = field(default_factory=threading.Event)
    _reload: threading.Event = field(default_factory=threading.Event)
    _next_watch: float = 0.0

    def request_stop(self) -> None:
        self._stop.set()

    def request_reload(self) -> None:
        self._reload.set()

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self.request_stop()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def run(self) -> int:
        schedules = [_Schedule(interval=i) for i in self.intervals]
        log.info("daemon.started", mailboxes=[p.plan.name for p in self.pollers])
        try:
            while not self._stop.is_set():
                self._reload_rules()
                for poller, schedule in zip(self.pollers, schedules, strict=True):
                    if self._stop.is_set():
                        break
                    if self.monotonic() >= schedule.due:
                        self._work(poller, schedule)
                self._watch_slas()
                self._flush_outbox()
                next_due = min((s.due for s in schedules), default=self.monotonic() + 60)
                self._stop.wait(max(0.0, min(WAKE_EVERY_S, next_due - self.monotonic())))
        finally:
            for poller in self.pollers:
                poller.close()
        log.info("daemon.stopped")
        return 0

    def _work(self, poller: MailboxPoller, schedule: _Schedule) -> None:
        try:
            poller.run_pass(stop=self._stop.is_set)
        except (MailboxUnavailable, TemporaryFailure) as exc:
            delay = schedule.failed(self.monotonic())
            log.error("mailbox.unavailable", mailbox=poller.plan.name, error=str(exc),
                      retry_in_s=delay)
            return
        schedule.succeeded(self.monotonic())

    def _watch_slas(self) -> None:
        if self.watcher is None or self._stop.is_set() or \
                self.monotonic() < self._next_watch:
            return
        self._next_watch = self.monotonic() + WATCH_EVERY_S
        try:
            self.watcher.run_once()
        except OperationalError as exc:
            log.error("sla.watcher_unavailable", error=describe_db_error(exc))

    def _flush_outbox(self) -> None:
        if self.outbox is None or self._stop.is_set():
            return
        try:
            self.outbox.flush()
        except TemporaryFailure as exc:
            log.error("outbox.unavailable", error=str(exc))
        except OperationalError as exc:
            log.error("outbox.unavailable", error=describe_db_error(exc))

    def _reload_rules(self) -> None:
        if self.rulebook is None:
            self._reload.clear()
            return
        if self._reload.is_set():
            self._reload.clear()
            self.rulebook.reload()
        else:
            self.rulebook.reload_if_changed()
