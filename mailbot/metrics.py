"""Prometheus metrics: counters kept by this process, gauges read from the database on scrape."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from mailbot.ingest import Outcome
from mailbot.store import Database
from mailbot.store.models import MailboxState, OutboxMail, QuarantineEntry, Ticket

log = structlog.get_logger("mailbot.metrics")

LATENCY_BUCKETS = (0.25, 0.5, 1, 2, 5, 10, 30, 60, 300, 1800, 3600)

_SUPPRESSION_KINDS = (
    ("rate limit", "rate_limit"),
    ("no address", "no_address"),
    ("no sender", "no_address"),
    ("sent by mailbot", "ourselves"),
    ("sent by an agent", "agent"),
    ("delivery or read report", "report"),
    ("empty envelope", "bounce"),
)


def suppression_kind(reason: str) -> str:
    """A reason for not auto-replying, as a label of few values."""
    for prefix, kind in _SUPPRESSION_KINDS:
        if reason.startswith(prefix):
            return kind
    return "automatic"


class Metrics:
    """Everything the daemon counts, in its own registry."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.messages = Counter("mailbot_messages", "Messages handled, by mailbox and outcome.",
                                ["mailbox", "outcome"], registry=r)
        self.latency = Histogram("mailbot_arrival_to_ticket_seconds",
                                 "From the IMAP server's arrival time to the stored ticket.",
                                 ["mailbox"], buckets=LATENCY_BUCKETS, registry=r)
        self.auto_replies_queued = Counter("mailbot_auto_replies_queued",
                                           "Auto-replies composed and queued.", registry=r)
        self.auto_replies_suppressed = Counter(
            "mailbot_auto_replies_suppressed", "Auto-replies not sent, by reason.",
            ["reason"], registry=r)
        self.sent = Counter("mailbot_mails_sent",
                            "Outgoing mails accepted by the SMTP server, by kind "
                            "(auto_reply counts the auto-replies sent).", ["kind"], registry=r)
        self.send_failures = Counter("mailbot_mail_send_failures",
                                     "Outgoing mails refused for good, by kind.", ["kind"],
                                     registry=r)
        self.polls = Counter("mailbot_mailbox_passes", "Passes over a mailbox, by result.",
                             ["mailbox", "result"], registry=r)
        self.last_success = Gauge("mailbot_mailbox_last_success_timestamp_seconds",
                                  "When this instance last drained the mailbox.", ["mailbox"],
                                  registry=r)
        self.escalations = Counter("mailbot_sla_escalations",
                                   "SLA warnings and breaches escalated.", registry=r)
        self.leases = Gauge("mailbot_lease_held", "1 while this instance holds the lease.",
                            ["name"], registry=r)

    def message_stored(self, mailbox: str, outcome: Outcome, arrived: datetime | None,
                       now: datetime) -> None:
        self.messages.labels(mailbox, str(outcome.kind)).inc()
        if outcome.kind == "ticket" and arrived is not None:
            if arrived.tzinfo is None:  # imapclient gives INTERNALDATE in local time
                arrived = arrived.astimezone(UTC)
            self.latency.labels(mailbox).observe(max(0.0, (now - arrived).total_seconds()))
        if outcome.auto_reply == "queued":
            self.auto_replies_queued.inc()
        elif outcome.auto_reply:
            self.auto_replies_suppressed.labels(suppression_kind(outcome.auto_reply)).inc()

    def polled(self, mailbox: str, ok: bool, at: datetime) -> None:
        self.polls.labels(mailbox, "ok" if ok else "error").inc()
        if ok:
            self.last_success.labels(mailbox).set(at.timestamp())

    def mail_sent(self, kind: str) -> None:
        self.sent.labels(kind).inc()

    def mail_failed(self, kind: str) -> None:
        self.send_failures.labels(kind).inc()


class DatabaseCollector(Collector):
    """Outbox depth and age, quarantine size, SLA breaches and polls, read at each scrape."""

    def __init__(self, db: Database, now: Callable[[], datetime]) -> None:
        self.db = db
        self.now = now

    def collect(self) -> Iterator[GaugeMetricFamily]:
        up = GaugeMetricFamily("mailbot_database_up",
                               "1 when the last scrape could read the database.")
        try:
            families = list(self._read())
        except SQLAlchemyError as exc:
            log.warning("metrics.database_unavailable", error=str(exc).splitlines()[0])
            up.add_metric([], 0)
            yield up
            return
        up.add_metric([], 1)
        yield up
        yield from families

    def _read(self) -> Iterator[GaugeMetricFamily]:
        now = self.now()
        with self.db.session() as session:
            by_status = dict(session.exec(
                select(OutboxMail.status, func.count()).group_by(col(OutboxMail.status))).all())
            oldest = session.exec(select(func.min(col(OutboxMail.created_at)))
                                  .where(col(OutboxMail.status) == "queued")).one()
            held = session.exec(select(func.count()).select_from(QuarantineEntry)
                                .where(col(QuarantineEntry.status) == "held")).one()
            response = session.exec(select(func.count()).select_from(Ticket).where(
                col(Ticket.status) != "resolved", col(Ticket.first_response_at).is_(None),
                col(Ticket.response_due) < now)).one()
            resolution = session.exec(select(func.count()).select_from(Ticket).where(
                col(Ticket.status) != "resolved", col(Ticket.resolution_due) < now)).one()
            polls = session.exec(select(MailboxState.name, MailboxState.last_poll_at)).all()
        depth = GaugeMetricFamily("mailbot_outbox_mails", "Outgoing mails by status.",
                                  labels=["status"])
        for status in ("queued", "sent", "failed"):
            depth.add_metric([status], by_status.get(status, 0))
        yield depth
        age = GaugeMetricFamily("mailbot_outbox_oldest_queued_age_seconds",
                                "Age of the oldest mail still waiting to be sent (0: none).")
        age.add_metric([], (now - oldest).total_seconds() if oldest else 0.0)
        yield age
        quarantine = GaugeMetricFamily("mailbot_quarantine_held",
                                       "Messages held in quarantine.")
        quarantine.add_metric([], held)
        yield quarantine
        breaches = GaugeMetricFamily("mailbot_sla_breached_open_tickets",
                                     "Open tickets past a due time, by target.",
                                     labels=["target"])
        breaches.add_metric(["response"], response)
        breaches.add_metric(["resolution"], resolution)
        yield breaches
        last = GaugeMetricFamily("mailbot_mailbox_last_poll_timestamp_seconds",
                                 "Last successful poll of each mailbox, by any instance.",
                                 labels=["mailbox"])
        for name, at in polls:
            if at is not None:
                last.add_metric([name], at.timestamp())
        yield last
