"""Wiring of `mailbot run`: workers, outbox, watcher, leases, metrics, health and reloads."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy.exc import SQLAlchemyError

from mailbot.app import App
from mailbot.config import ConfigError, Settings, load_settings
from mailbot.daemon import Daemon
from mailbot.health import Heartbeats, check_health
from mailbot.ingest import Ingestor
from mailbot.leases import Leases
from mailbot.mailbox_worker import MailboxWorker, WorkerOptions
from mailbot.metrics import DatabaseCollector, Metrics
from mailbot.notify import Notifier
from mailbot.oauth.grants import grants
from mailbot.rules.book import RuleBook
from mailbot.stall import StallAlarm, StallPolicy
from mailbot.status_server import StatusServer
from mailbot.store.db import describe_db_error

log = structlog.get_logger("mailbot.service")

# Changing these needs a restart; a reload says so and keeps running with the old values.
RESTART_KEYS = ("mailboxes", "database", "smtp", "storage", "metrics", "logging", "secret_key",
                "analysis")


def stall_limits(settings: Settings) -> dict[str, timedelta]:
    return {m.name: m.stall_after for m in settings.mailboxes}


@dataclass
class Service:
    """A daemon ready to run, and the listener to close after it."""

    daemon: Daemon
    status_server: StatusServer | None

    def run(self) -> int:
        if self.status_server is not None:
            self.status_server.start()
        try:
            return self.daemon.run()
        finally:
            if self.status_server is not None:
                self.status_server.close()


def build_service(app: App, ingestor: Ingestor, config_path: Path) -> Service:
    settings = app.settings
    metrics = Metrics() if settings.metrics.enabled else None
    leases = Leases(app.db, app.clock, ttl=settings.database.lease_ttl)
    escalation = settings.escalation
    level1 = escalation.level1 or settings.agents.notify
    started = app.clock.now()
    daemon = Daemon(
        workers=[],
        outbox=app.outbox_sender(_outbox_counter(metrics)),
        watcher=app.sla_watcher(),
        stall_alarm=StallAlarm(app.db, StallPolicy(
            stall_limits(settings), settings.smtp.from_ if settings.smtp else None,
            tuple(level1)), app.thread_signer(), app.clock, started),
        notifier=Notifier(), heartbeats=Heartbeats(), leases=leases, metrics=metrics)
    daemon.workers = [
        MailboxWorker(poller, WorkerOptions(idle=mailbox.idle,
                                            poll_interval=mailbox.poll_interval.total_seconds()),
                      stop=daemon.stop, heartbeats=daemon.heartbeats, clock=app.clock,
                      leases=leases, metrics=metrics, mail_stored=daemon.mail_queued)
        for poller, mailbox in zip(app.pollers(ingestor), settings.mailboxes, strict=True)]
    reloader = _Reloader(app, daemon, config_path)
    daemon.reload = reloader.reload
    if isinstance(app.classifier, RuleBook):
        daemon.refresh = app.classifier.reload_if_changed
    server = None
    if metrics is not None:
        metrics.registry.register(DatabaseCollector(app.db, app.clock.now))

        def health() -> tuple[bool, dict[str, Any]]:
            return daemon_health(daemon, app, started)

        server = StatusServer(settings.metrics.listen, metrics.registry, health)
        log.info("metrics.listening", listen=settings.metrics.listen)
    return Service(daemon, server)


def daemon_health(daemon: Daemon, app: App, started: Any) -> tuple[bool, dict[str, Any]]:
    """`/healthz`: the shared state in the database, and this process's own loops."""
    try:
        report = check_health(app.db, stall_limits(app.settings), app.clock.now(),
                              started_at=started, grants=grants(app.settings))
    except SQLAlchemyError as exc:
        return False, {"ok": False, "problems": [f"database: {describe_db_error(exc)}"]}
    detail = report.as_dict()
    problems = list(report.problems) + [f"loop {name}: no progress" for name in
                                        daemon.silent_loops()]
    detail["problems"], detail["ok"] = problems, not problems
    detail["instance"] = daemon.leases.holder if daemon.leases else None
    return not problems, detail


def _outbox_counter(metrics: Metrics | None) -> Any:
    if metrics is None:
        return None

    def count(kind: str, result: str) -> None:
        if result == "sent":
            metrics.mail_sent(kind)
        elif result == "failed":
            metrics.mail_failed(kind)
    return count


class _Reloader:
    """SIGHUP: rules, then the config's calendars, notices and templates, all or nothing."""

    def __init__(self, app: App, daemon: Daemon, config_path: Path) -> None:
        self.app = app
        self.daemon = daemon
        self.config_path = config_path

    def reload(self) -> None:
        classifier = self.app.classifier
        if isinstance(classifier, RuleBook):
            classifier.reload()
        try:
            settings = load_settings(self.config_path, os.environ)
        except ConfigError as exc:
            log.error("config.reload_refused", path=str(self.config_path), error=str(exc),
                      detail="the configuration in force is kept")
            return
        old = self.app.settings
        changed = [key for key in RESTART_KEYS if getattr(settings, key) != getattr(old, key)]
        if changed:
            log.warning("config.restart_needed", keys=changed,
                        detail="these settings take effect at the next start")
        fresh = App(settings.model_copy(update={k: getattr(old, k) for k in RESTART_KEYS}),
                    self.app.db, self.app.clock, classifier=classifier, pool=self.app.pool)
        try:
            ingestor = fresh.ingestor()
            watcher = fresh.sla_watcher()
        except Exception as exc:
            log.error("config.reload_refused", path=str(self.config_path), error=str(exc),
                      detail="the configuration in force is kept")
            return
        for worker in self.daemon.workers:
            worker.poller.ingestor = ingestor
        self.daemon.watcher = watcher
        self.app = fresh
        log.info("config.reloaded", path=str(self.config_path),
                 notices=len(settings.notices), calendars=sorted(settings.sla.calendars))
