"""Wiring: settings in, the database, ingestor and mailbox pollers out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from email.utils import parseaddr

import structlog

from mailbot.alerts import AlertPolicy
from mailbot.analysis import AnalysisPool
from mailbot.autoreply import AutoReplier, AutoReplyPolicy, Notice
from mailbot.clock import Clock, SystemClock
from mailbot.config import Settings, SlaSettings
from mailbot.conversation.ids import ThreadSigner
from mailbot.correspondence import Correspondence, CorrespondencePolicy
from mailbot.identify import compile_patterns
from mailbot.ingest import Conversation, Ingestor
from mailbot.mail.imap import ImapEndpoint
from mailbot.mail.smtp import FileTransport, SmtpTransport, Transport
from mailbot.oauth.alarm import RejectionAlarm
from mailbot.oauth.endpoint import TokenEndpoint
from mailbot.oauth.grants import SMTP_GRANT, grants, imap_grant_name
from mailbot.oauth.tokens import TokenSource
from mailbot.outbox import OutboxSender, RetrySchedule
from mailbot.pipeline import Classifier, DefaultSeverity, IngestPolicy
from mailbot.poller import MailboxPlan, MailboxPoller
from mailbot.replies.loops import Sender
from mailbot.replies.render import ReplyRenderer
from mailbot.rules.book import RuleBook
from mailbot.sla import BusinessCalendar, SlaBook
from mailbot.sla.policy import Policy
from mailbot.store import Database
from mailbot.store.db import SCHEMA_REVISION
from mailbot.store.secrets import installation_secret
from mailbot.watcher import EscalationPolicy, SlaWatcher

log = structlog.get_logger("mailbot.app")


class SchemaOutOfDate(Exception):
    """The database schema is older than this mailbot; `mailbot db upgrade` fixes it."""


@dataclass
class App:
    """The long-lived objects every command works with."""

    settings: Settings
    db: Database
    clock: Clock = field(default_factory=SystemClock)
    classifier: Classifier | None = None
    pool: AnalysisPool | None = None  # made by analysis_pool() when the settings ask for one
    _sla: SlaBook | None = field(default=None, init=False, repr=False)
    _signer: ThreadSigner | None = field(default=None, init=False, repr=False)
    _renderer: ReplyRenderer | None = field(default=None, init=False, repr=False)
    _tokens: dict[str, TokenSource] | None = field(default=None, init=False, repr=False)

    def sla(self) -> SlaBook:
        """The calendars and policies, built (and their holiday gaps warned of) once."""
        if self._sla is None:
            self._sla = sla_book(self.settings.sla)
        return self._sla

    def renderer(self) -> ReplyRenderer:
        if self._renderer is None:
            self._renderer = ReplyRenderer(self.settings.templates.path)
        return self._renderer

    def analysis_pool(self) -> AnalysisPool | None:
        """The worker processes that analyse backlogs; started only once a backlog comes."""
        if self.pool is None and self.settings.analysis.workers > 0:
            self.pool = AnalysisPool(self.settings.analysis.workers)
        return self.pool

    def close(self) -> None:
        """Stop the analysis workers, if any were started."""
        if self.pool is not None:
            self.pool.close()

    def ingestor(self) -> Ingestor:
        settings = self.settings
        policy = IngestPolicy(
            max_message_bytes=settings.storage.max_message_bytes,
            customer_id_patterns=compile_patterns(settings.customer_id.patterns),
        )
        if self.classifier is None:
            self.classifier = load_classifier(settings)
        book, signer, renderer = self.sla(), self.thread_signer(), self.renderer()
        return Ingestor(self.db, policy, self.classifier, self.clock, sla=book,
                        replier=auto_replier(settings, book, signer, renderer),
                        conversation=conversation(settings, book, signer, renderer),
                        pool=self.analysis_pool(),
                        parallel_from=settings.analysis.min_backlog)

    def thread_signer(self) -> ThreadSigner:
        """Signs our Message-IDs: with `secret_key` when set, else the installation's own key."""
        if self._signer is None:
            key = self.settings.secret_key
            secret = key.get_secret_value() if key else installation_secret(self.db,
                                                                             "threading")
            self._signer = ThreadSigner(secret.encode())
        return self._signer

    def alert_policy(self) -> AlertPolicy:
        """Alerts about mailbot itself go to escalation level 1 (else the agents' notify list)."""
        settings = self.settings
        return AlertPolicy(settings.smtp.from_ if settings.smtp else None,
                           tuple(settings.escalation.level1 or settings.agents.notify))

    def token_sources(self) -> dict[str, TokenSource]:
        """One TokenSource per OAuth2 grant of the configuration, made once and shared."""
        if self._tokens is None:
            specs = {spec.name: spec for spec in grants(self.settings)}
            alarm = (RejectionAlarm(specs, self.alert_policy(), self.thread_signer(), self.clock)
                     if specs else None)
            self._tokens = {
                name: TokenSource(self.db, name, TokenEndpoint(spec.client), self.clock,
                                  login_hint=spec.login_command, on_rejected=alarm)
                for name, spec in specs.items()}
        return self._tokens

    def sla_watcher(self) -> SlaWatcher | None:
        """The escalation watcher; None without an `smtp` section (it could not mail anyone)."""
        settings = self.settings
        if settings.smtp is None:
            return None
        escalation = settings.escalation
        level1 = escalation.level1 or settings.agents.notify
        policy = EscalationPolicy(settings.smtp.from_, level1, escalation.level2,
                                  escalation.level3, escalation.warn_at)
        return SlaWatcher(self.db, self.sla(), policy, self.renderer(), self.thread_signer(),
                          self.clock)

    def outbox_sender(self, on_result: Callable[[str, str], None] | None = None,
                      ) -> OutboxSender | None:
        """The sender for the configured transport; None without an `smtp` section."""
        smtp = self.settings.smtp
        if smtp is None:
            return None
        transport: Transport
        if smtp.transport == "file":
            assert smtp.dir is not None
            transport = FileTransport(smtp.dir)
        else:
            assert smtp.host is not None and smtp.port is not None
            transport = SmtpTransport(
                smtp.host, smtp.port, smtp.security, username=smtp.username,
                password=smtp.password.get_secret_value() if smtp.password else None,
                timeout=smtp.timeout.total_seconds(),
                oauth=self.token_sources().get(SMTP_GRANT) if smtp.auth == "oauth2" else None)
        retry = smtp.retry
        schedule = RetrySchedule(retry.first_delay, retry.max_delay, retry.give_up_after)
        return OutboxSender(self.db, transport, self.clock, schedule=schedule,
                            on_result=on_result)

    def pollers(self, ingestor: Ingestor | None = None) -> list[MailboxPoller]:
        shared = ingestor or self.ingestor()
        return [MailboxPoller(plan, shared, self.db, self.clock) for plan in self.plans()]

    def plans(self) -> list[MailboxPlan]:
        plans = []
        for mailbox in self.settings.mailboxes:
            imap = mailbox.imap
            endpoint = ImapEndpoint(
                host=imap.host, port=imap.port or 993, security=imap.security,
                username=imap.username,
                password=imap.password.get_secret_value() if imap.password else "",
                timeout=imap.timeout.total_seconds(), tls_verify=imap.tls_verify,
                ca_file=str(imap.ca_file) if imap.ca_file else None,
                oauth=self.token_sources().get(imap_grant_name(mailbox.name))
                if imap.auth == "oauth2" else None)
            plans.append(MailboxPlan(
                name=mailbox.name, endpoint=endpoint, folder=mailbox.folder,
                processed_folder=mailbox.processed_folder,
                quarantine_folder=mailbox.quarantine_folder, batch_size=mailbox.batch_size))
        return plans


def load_classifier(settings: Settings) -> Classifier:
    """The rule book at `rules.path`; without rule files, every mail gets the default severity.

    Raises RuleSetError (with file:line for each problem) when the rules are invalid.
    """
    path = settings.rules.path
    if not path.exists():
        log.warning("rules.missing", path=str(path),
                    detail=f"no rules: every mail gets {settings.rules.default_severity}")
        return DefaultSeverity(settings.rules.default_severity)
    return RuleBook(path, settings.rules.default_severity)


def sla_book(sla: SlaSettings, today: date | None = None) -> SlaBook:
    """Calendars and policies of the configuration; warns of years without holiday data."""
    calendars = {name: BusinessCalendar.from_config(cal.model_dump(by_alias=True))
                 for name, cal in sla.calendars.items()}
    year = (today or datetime.now(UTC).date()).year
    for name, calendar in calendars.items():
        for gap in calendar.holiday_data_gaps([year, year + 1]):
            log.warning("sla.holidays_unknown", calendar=name, country=calendar.country,
                        year=gap, detail=f"no public holidays of {calendar.country} are known "
                        f"for {gap}: list them under sla.calendars.{name}.holidays.dates")
    policies = {name: Policy(name, p.calendar, {
        severity: (t.response, t.resolution) for severity, t in p.targets.items()})
        for name, p in sla.policies.items()}
    return SlaBook(calendars, policies, sla.default_policy, sla.plans)


def who_is_who(settings: Settings) -> Sender:
    """Our own addresses and the agents', so that nobody of ours gets an auto-reply."""
    own = parseaddr(settings.smtp.from_)[1].lower() if settings.smtp else None
    addresses = (*((own,) if own else ()), *(m.imap.username.lower() for m in settings.mailboxes))
    return Sender(own_addresses=addresses, agent_addresses=settings.agents.addresses,
                  agent_domains=settings.agents.domains)


def conversation(settings: Settings, book: SlaBook, signer: ThreadSigner,
                 renderer: ReplyRenderer) -> Conversation:
    """Threading and the mails of a conversation; nothing is sent without an `smtp` section."""
    from_address = settings.smtp.from_ if settings.smtp else None
    team = settings.auto_reply.team_name or (parseaddr(from_address)[0] if from_address
                                             else "") or "Support"
    policy = CorrespondencePolicy(
        from_address=from_address, notify=settings.agents.notify,
        reopen_within=settings.tickets.reopen_within, team=team,
        severities={k: v.model_dump() for k, v in settings.sla.severities.items()})
    who = who_is_who(settings)
    return Conversation(signer, who, Correspondence(policy, renderer, book, signer, who))


def auto_replier(settings: Settings, book: SlaBook, signer: ThreadSigner,
                 renderer: ReplyRenderer) -> AutoReplier | None:
    """The auto-replier, or None when there is no `smtp` section or replies are switched off."""
    if settings.smtp is None or not settings.auto_reply.enabled:
        return None
    policy = AutoReplyPolicy(
        from_address=settings.smtp.from_, who=who_is_who(settings),
        per_sender_per_hour=settings.auto_reply.per_sender_per_hour,
        severities={k: v.model_dump() for k, v in settings.sla.severities.items()},
        notices=tuple(Notice(n.id, n.from_, n.until, n.text, n.match)
                      for n in settings.notices),
        team_name=settings.auto_reply.team_name)
    return AutoReplier(policy, renderer, book, signer)


def open_app(settings: Settings, clock: Clock | None = None, *, migrate: bool = True) -> App:
    """Connect to the database; create the schema in an empty one, refuse an outdated one."""
    db = Database(settings.database.url, echo=settings.database.echo,
                  busy_timeout=settings.database.busy_timeout.total_seconds())
    if migrate:
        ensure_schema(db)
    return App(settings, db, clock or SystemClock())


def ensure_schema(db: Database) -> None:
    head = SCHEMA_REVISION
    current = db.current_revision()
    if current is None:
        db.upgrade()
    elif current != head:
        raise SchemaOutOfDate(
            f"the database schema is at revision {current}, this mailbot needs {head}: "
            "run `mailbot db upgrade`")
