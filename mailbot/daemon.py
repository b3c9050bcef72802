"""`mailbot run`: a thread per mailbox, one for the outbox, one for the SLA watcher.

The main thread only supervises: reloads on SIGHUP (or when rule files change), pings the
systemd watchdog while every loop is making progress, reports STATUS, and on SIGTERM stops
the loops (each finishes the message in hand) within `STOP_WITHIN_S`.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from types import FrameType

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mailbot.health import Heartbeats
from mailbot.ingest import TemporaryFailure
from mailbot.leases import Leases
from mailbot.mailbox_worker import MailboxWorker
from mailbot.metrics import Metrics
from mailbot.notify import Notifier
from mailbot.outbox import OutboxSender
from mailbot.stall import StallAlarm
from mailbot.store.db import describe_db_error
from mailbot.watcher import SlaWatcher

log = structlog.get_logger("mailbot.daemon")

TICK_S = 1.0
WATCH_EVERY_S = 30.0  # how often the SLA watcher and the stall alarm look
HUNG_AFTER_S = 300.0  # a loop silent this long is hung: the watchdog is no longer fed
STOP_WITHIN_S = 8.0
STATUS_EVERY_S = 5.0
WATCHER_LEASE = "sla-watcher"


@dataclass
class Daemon:
    """Runs the loops until stopped; see the module's docstring."""

    workers: Sequence[MailboxWorker]
    outbox: OutboxSender | None = None
    watcher: SlaWatcher | None = None
    stall_alarm: StallAlarm | None = None
    reload: Callable[[], None] | None = None  # SIGHUP: rules, templates, calendars, notices
    refresh: Callable[[], object] | None = None  # every tick: rules reloaded when files change
    notifier: Notifier = field(default_factory=Notifier)
    heartbeats: Heartbeats = field(default_factory=Heartbeats)
    leases: Leases | None = None
    metrics: Metrics | None = None
    stop: threading.Event = field(default_factory=threading.Event)
    hung_after: float = HUNG_AFTER_S
    watch_every: float = WATCH_EVERY_S
    _reload_requested: threading.Event = field(default_factory=threading.Event)
    _mail_waiting: threading.Event = field(default_factory=threading.Event)
    _threads: list[threading.Thread] = field(default_factory=list)
    _sent: int = 0

    def request_stop(self) -> None:
        self.stop.set()

    def request_reload(self) -> None:
        self._reload_requested.set()

    def mail_queued(self) -> None:
        """Wake the outbox loop at once (called after each commit of ingested mail)."""
        self._mail_waiting.set()

    def install_signal_handlers(self) -> None:
        def on_stop(signum: int, _frame: FrameType | None) -> None:
            log.info("daemon.stopping", signal=signal.Signals(signum).name)
            self.request_stop()

        def on_reload(_signum: int, _frame: FrameType | None) -> None:
            self.request_reload()

        signal.signal(signal.SIGTERM, on_stop)
        signal.signal(signal.SIGINT, on_stop)
        signal.signal(signal.SIGHUP, on_reload)

    def silent_loops(self) -> list[str]:
        return self.heartbeats.silent(self.hung_after)

    def run(self) -> int:
        self._start_threads()
        log.info("daemon.started", mailboxes=[w.name for w in self.workers],
                 instance=self.leases.holder if self.leases else None,
                 watchdog_s=self.notifier.watchdog_s)
        self.notifier.ready(self._status())
        code = 0
        last_status = time.monotonic()
        hung_reported: list[str] = []
        try:
            while not self.stop.wait(TICK_S):
                self._reload_if_asked()
                dead = [t.name for t in self._threads if not t.is_alive()]
                if dead:
                    log.error("daemon.loop_died", loops=dead)
                    code = 1
                    break
                silent = self.silent_loops()
                if not silent:
                    self.notifier.watchdog()
                elif silent != hung_reported:
                    log.error("daemon.loop_hung", loops=silent,
                              detail=f"no progress for {self.hung_after:.0f} s; the watchdog "
                              "is no longer fed")
                hung_reported = silent
                if time.monotonic() - last_status >= STATUS_EVERY_S:
                    self.notifier.status(self._status())
                    last_status = time.monotonic()
        finally:
            self.notifier.stopping()
            self.stop.set()
            self._join()
        log.info("daemon.stopped", exit_code=code)
        return code

    def _start_threads(self) -> None:
        loops: list[tuple[str, Callable[[], None]]] = [
            (f"mailbox:{w.name}", w.run) for w in self.workers]
        if self.outbox is not None:
            loops.append(("outbox", self._outbox_loop))
        if self.watcher is not None or self.stall_alarm is not None:
            loops.append(("watch", self._watch_loop))
        for name, body in loops:
            self.heartbeats.beat(name)
            thread = threading.Thread(target=body, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def _join(self) -> None:
        deadline = time.monotonic() + STOP_WITHIN_S
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        late = [t.name for t in self._threads if t.is_alive()]
        if late:
            log.warning("daemon.loops_abandoned", loops=late,
                        detail="still in a network call; their work is not committed and "
                        "will be redone")

    def _reload_if_asked(self) -> None:
        try:
            if self._reload_requested.is_set():
                self._reload_requested.clear()
                if self.reload is not None:
                    self.reload()
            elif self.refresh is not None:
                self.refresh()
        except Exception as exc:  # a reload must never take the daemon down
            log.error("daemon.reload_failed", error=repr(exc), exc_info=exc)

    def _outbox_loop(self) -> None:
        assert self.outbox is not None
        while not self.stop.is_set():
            self.heartbeats.beat("outbox")
            self._mail_waiting.clear()
            try:
                report = self.outbox.flush(stop=self.stop.is_set, stop_after_deferral=True)
                self._sent += report.sent
                if report.server_down_until is not None:
                    # Newly queued mail would only meet the same dead server: let it wait.
                    self._wait_for_server(report.server_down_until)
                    continue
            except TemporaryFailure as exc:
                log.error("outbox.unavailable", error=str(exc))
            except SQLAlchemyError as exc:
                log.error("outbox.unavailable", error=describe_db_error(exc))
            except Exception as exc:
                log.error("outbox.failed_flush", error=repr(exc), exc_info=exc)
            self._mail_waiting.wait(TICK_S)

    def _wait_for_server(self, until: datetime) -> None:
        """Wait till `until` (or stop), beating so that the watchdog knows the loop lives."""
        assert self.outbox is not None
        while not self.stop.is_set():
            self.heartbeats.beat("outbox")
            left = (until - self.outbox.clock.now()).total_seconds()
            if left <= 0:
                return
            self.stop.wait(min(TICK_S, left))

    def _watch_loop(self) -> None:
        next_watch = 0.0
        while not self.stop.is_set():
            self.heartbeats.beat("watch")
            if time.monotonic() >= next_watch:
                next_watch = time.monotonic() + self.watch_every
                self._watch_once()
            self.stop.wait(TICK_S)

    def _watch_once(self) -> None:
        try:
            if self.leases is not None and not self.leases.hold(WATCHER_LEASE):
                return
            if self.watcher is not None:
                report = self.watcher.run_once()
                if self.metrics is not None and report.escalated:
                    self.metrics.escalations.inc(report.escalated)
            if self.stall_alarm is not None:
                self.stall_alarm.check()
        except SQLAlchemyError as exc:
            log.error("sla.watcher_unavailable", error=describe_db_error(exc))
        except Exception as exc:
            log.error("sla.watcher_failed", error=repr(exc), exc_info=exc)

    def _status(self) -> str:
        states = ", ".join(f"{w.name} {w.state}" for w in self.workers) or "no mailboxes"
        tickets = sum(w.tickets for w in self.workers)
        return f"{states}; {tickets} tickets and {self._sent} mails sent since start"
