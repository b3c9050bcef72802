"""Messages in, tickets out: a ticket, a follow-up, a duplicate or a quarantine entry each.

Several messages may share a transaction. Should that transaction fail for any reason but
the database being unreachable, it is rolled back as a whole and its messages are stored
again one transaction each, so every message's effects stay all-or-nothing.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlmodel import Session, select

from mailbot.analysis import AnalysisInputs, AnalysisPool, PendingAnalysis
from mailbot.autoreply import AutoReplier
from mailbot.clock import Clock
from mailbot.conversation.ids import ThreadSigner
from mailbot.conversation.routing import Route, RouteKind, route_message
from mailbot.correspondence import Correspondence
from mailbot.identify import CustomerDirectory, CustomerRecord
from mailbot.pipeline import Analysis, Classifier, IngestPolicy, Rejection
from mailbot.replies.loops import Sender
from mailbot.sla import Dues, SlaBook
from mailbot.store import Database, writes
from mailbot.store.db import describe_db_error
from mailbot.store.models import Customer, Ticket

log = structlog.get_logger("mailbot.ingest")


class TemporaryFailure(Exception):
    """The message could not be handled now (database unreachable, locked); try again later."""


class OutcomeKind(StrEnum):
    TICKET = "ticket"
    FOLLOW_UP = "follow_up"
    AGENT_REPLY = "agent_reply"
    AUTOMATIC_REPLY = "automatic_reply"
    BOUNCE = "bounce"
    DUPLICATE = "duplicate"
    QUARANTINED = "quarantined"


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one message; `quarantined` says where its source should file it."""

    kind: OutcomeKind
    key: str
    message_id: str | None = None
    ticket_number: int | None = None
    quarantine_id: int | None = None
    reason: str | None = None
    auto_reply: str | None = None  # "queued", or why no auto-reply was sent

    @property
    def quarantined(self) -> bool:
        return self.quarantine_id is not None and self.ticket_number is None


SessionHook = Callable[[Session], None]


@dataclass(frozen=True, slots=True)
class Incoming:
    """One raw message, where it came from, and what else its transaction must do."""

    raw: bytes
    source: str
    also: SessionHook | None = None


Stored = Callable[[Incoming, Outcome], None]
Failed = Callable[[Incoming, Exception], None]


@dataclass(frozen=True)
class Conversation:
    """What threading needs: the key for our ids, who the agents are, what to do with replies."""

    signer: ThreadSigner
    who: Sender
    correspondence: Correspondence


class Ingestor:
    """Turns raw messages into stored tickets, one transaction each."""

    def __init__(self, db: Database, policy: IngestPolicy, classifier: Classifier,
                 clock: Clock, directory: CustomerDirectory | None = None,
                 sla: SlaBook | None = None, replier: AutoReplier | None = None,
                 conversation: Conversation | None = None, pool: AnalysisPool | None = None,
                 parallel_from: int = 50) -> None:
        """`pool` analyses backlogs of at least `parallel_from` messages in other processes."""
        self.db = db
        self.pool = pool
        self.parallel_from = parallel_from
        self.policy = policy
        self.classifier = classifier
        self.clock = clock
        self.sla = sla
        self.replier = replier
        self.conversation = conversation
        self.directory = directory if directory is not None else load_directory(db)

    def refresh_directory(self) -> None:
        self.directory = load_directory(self.db)

    def parallel(self, backlog: int) -> bool:
        """Whether a pass over `backlog` messages analyses them in worker processes."""
        return self.pool is not None and self.pool.workers > 0 and backlog >= self.parallel_from

    def workers_ready(self) -> bool:
        """Whether analysis workers can take a chunk at once; starts them if none runs."""
        return self.pool is not None and self.pool.ready(self._analysis_inputs())

    def prepare(self, items: Sequence[Incoming], *, parallel: bool = False) -> PendingAnalysis:
        """Start analysing messages ahead of storing them (in a worker when `parallel`)."""
        raws = [item.raw for item in items]
        inputs = self._analysis_inputs()
        if parallel and self.pool is not None:
            return self.pool.submit(raws, inputs)
        return PendingAnalysis.here(raws, inputs)

    def _analysis_inputs(self) -> AnalysisInputs:
        return AnalysisInputs(self.policy, self.directory, self.classifier)

    def ingest(self, raw: bytes, *, source: str, mailbox: str | None = None,
               also: SessionHook | None = None) -> Outcome:
        """Store one message and everything it causes, atomically; `also` joins the transaction.

        Raises TemporaryFailure when the database cannot be reached; nothing is then written.
        """
        outcomes: list[Outcome] = []
        self.ingest_many([Incoming(raw, source, also)], mailbox=mailbox,
                         stored=lambda _, outcome: outcomes.append(outcome))
        return outcomes[0]

    def ingest_many(self, items: Sequence[Incoming], *, mailbox: str | None = None,
                    stored: Stored, failed: Failed | None = None,
                    prepared: PendingAnalysis | None = None) -> None:
        """Store several messages in one transaction; `stored` hears of each once committed.

        Raises TemporaryFailure when the database cannot be reached; the messages already
        reported through `stored` are committed, the others are not. A message whose
        processing raises anything else is reported through `failed` (nothing of it is
        written) and the others carry on; without `failed`, the error propagates.
        `prepared` is these messages' analysis, started earlier with `prepare`.
        """
        pending = prepared if prepared is not None else self.prepare(items)
        decisions = [self._decided(item, decision, failed)
                     for item, decision in zip(items, pending.decisions(), strict=True)]
        if len(items) > 1 and all(decision is not None for decision in decisions):
            try:
                outcomes = self._store_together(
                    [decision for decision in decisions if decision is not None], items,
                    mailbox)
            except (OperationalError, SAInterfaceError) as exc:
                raise TemporaryFailure(
                    f"database unavailable: {describe_db_error(exc)}") from exc
            except Exception as exc:
                log.warning("ingest.batch_replayed", count=len(items),
                            error=describe_db_error(exc),
                            detail="storing each message in a transaction of its own")
            else:
                for item, outcome in zip(items, outcomes, strict=True):
                    _log_outcome(outcome, item.source)
                    stored(item, outcome)
                return
        for decision, item in zip(decisions, items, strict=True):
            if decision is None:
                continue
            try:
                outcome = self._store_alone(decision, item, mailbox)
            except TemporaryFailure:
                raise
            except Exception as exc:
                if failed is None:
                    raise
                failed(item, exc)
                continue
            _log_outcome(outcome, item.source)
            stored(item, outcome)

    def quarantine(self, item: Incoming, reason: str, *, mailbox: str | None = None) -> Outcome:
        """Keep a message that cannot be processed, raw, with the reason; it can be replayed."""
        sha = hashlib.sha256(item.raw).hexdigest()
        outcome = self._store_rejection(Rejection(sha, "sha256:" + sha, reason), item, mailbox)
        _log_outcome(outcome, item.source)
        return outcome

    def _store_rejection(self, rejection: Rejection, item: Incoming,
                         mailbox: str | None) -> Outcome:
        try:
            return self._store_in_transaction(rejection, item, mailbox)
        except DBAPIError as exc:
            raise TemporaryFailure(f"cannot quarantine: {describe_db_error(exc)}") from exc

    @staticmethod
    def _decided(item: Incoming, decision: Analysis | Rejection | BaseException,
                 failed: Failed | None) -> Analysis | Rejection | None:
        if not isinstance(decision, BaseException):
            return decision
        if failed is None or not isinstance(decision, Exception):
            raise decision
        failed(item, decision)
        return None

    def _store_together(self, decisions: Sequence[Analysis | Rejection],
                        items: Sequence[Incoming], mailbox: str | None) -> list[Outcome]:
        with self.db.transaction() as session:
            known = _KnownKeys.look_up(session, decisions)
            # One moment for the whole transaction: its messages are committed together, and
            # their due times, worked out once per severity and plan, are the same.
            now = self.clock.now()
            if self.replier is not None:
                self.replier.look_ahead(session, _requesters(decisions, known), now)
            return [self._store(session, known, decision, item, mailbox, now)
                    for decision, item in zip(decisions, items, strict=True)]

    def _store_alone(self, decision: Analysis | Rejection, item: Incoming,
                     mailbox: str | None) -> Outcome:
        try:
            try:
                return self._store_in_transaction(decision, item, mailbox)
            except IntegrityError:
                # Another worker stored the same message between our check and our commit.
                return self._store_in_transaction(decision, item, mailbox)
        except (OperationalError, SAInterfaceError) as exc:
            raise TemporaryFailure(f"database unavailable: {describe_db_error(exc)}") from exc
        except DBAPIError as exc:
            reason = f"cannot be stored: {describe_db_error(exc)}"
            log.error("message.store_failed", source=item.source, reason=reason)
        return self._store_rejection(Rejection(decision.raw_sha256, decision.key, reason),
                                     item, mailbox)

    def _store_in_transaction(self, decision: Analysis | Rejection, item: Incoming,
                              mailbox: str | None) -> Outcome:
        with self.db.transaction() as session:
            return self._store(session, _KnownKeys.look_up(session, [decision]), decision,
                               item, mailbox, self.clock.now())

    def _store(self, session: Session, known: _KnownKeys, decision: Analysis | Rejection,
               item: Incoming, mailbox: str | None, now: datetime) -> Outcome:
        existing = known.stored.get(decision.key)
        if existing is not None:
            outcome = Outcome(OutcomeKind.DUPLICATE, decision.key, existing[0],
                              ticket_number=existing[1])
        elif isinstance(decision, Rejection):
            entry = writes.quarantine(session, item.raw, decision.raw_sha256, decision.key,
                                      decision.reason, source=item.source, now=now)
            known.held.add(decision.key)
            outcome = Outcome(OutcomeKind.QUARANTINED, decision.key,
                              quarantine_id=entry.id, reason=decision.reason)
        else:
            outcome = self._store_analysis(session, decision, item.raw, source=item.source,
                                           mailbox=mailbox, now=now,
                                           held=decision.key in known.held)
            assert outcome.ticket_number is not None
            known.stored[decision.key] = (outcome.message_id, outcome.ticket_number)
        if item.also is not None:
            item.also(session)
        return outcome

    def _store_analysis(self, session: Session, analysis: Analysis, raw: bytes, *, source: str,
                        mailbox: str | None, now: datetime, held: bool) -> Outcome:
        route, ticket = self._route(session, analysis, raw)
        message_id = analysis.message.message_id
        parent: int | None = None
        if route.kind is RouteKind.FOLLOW_UP and ticket is not None and \
                self.conversation is not None and \
                not self.conversation.correspondence.may_reopen(ticket, now):
            parent, ticket = ticket.id, None
        if ticket is None or self.conversation is None:
            ticket, auto_reply = self._new_ticket(session, analysis, raw, source=source,
                                                  mailbox=mailbox, now=now, parent_id=parent,
                                                  held=held)
            return Outcome(OutcomeKind.TICKET, analysis.key, message_id, ticket_number=ticket.id,
                           auto_reply=auto_reply)
        handle = self.conversation.correspondence
        if route.kind is RouteKind.AGENT_REPLY:
            handle.agent_reply(session, ticket, analysis, raw, source=source, now=now)
        elif route.kind is RouteKind.BOUNCE:
            handle.bounce(session, ticket, route, analysis, raw, source=source, now=now)
        elif route.kind is RouteKind.AUTOMATIC_REPLY:
            handle.automatic_reply(session, ticket, route, analysis, raw, source=source,
                                   now=now)
        else:
            handle.follow_up(session, ticket, route, analysis, raw, source=source, now=now)
        if held:
            writes.release_quarantine(session, analysis.key, ticket_number=ticket.id)
        return Outcome(OutcomeKind(str(route.kind)), analysis.key, message_id,
                       ticket_number=ticket.id)

    def _route(self, session: Session, analysis: Analysis,
               raw: bytes) -> tuple[Route, Ticket | None]:
        if self.conversation is None:
            return Route(RouteKind.NEW), None
        # A reply naming one of our mails needs only its ticket, which is read (and locked)
        # once: whether it exists, then the row the reply is stored on.
        tickets: dict[int, Ticket | None] = {}

        def ticket(number: int) -> Ticket | None:
            if number not in tickets:
                tickets[number] = writes.ticket_for_update(session, number)
            return tickets[number]

        route = route_message(analysis.message, raw, self.conversation.signer,
                              self.conversation.who,
                              lambda number: writes.participants(session, number),
                              automatic=analysis.automatic,
                              exists=lambda number: ticket(number) is not None)
        if route.ticket_number is None or route.kind is RouteKind.NEW:
            return route, None
        return route, ticket(route.ticket_number)

    def _new_ticket(self, session: Session, analysis: Analysis, raw: bytes, *, source: str,
                    mailbox: str | None, now: datetime, parent_id: int | None,
                    held: bool) -> tuple[Ticket, str | None]:
        dues = self._dues(analysis, now)
        ticket = writes.create_ticket(session, analysis, raw, source=source, mailbox=mailbox,
                                      now=now, dues=dues, parent_id=parent_id)
        assert ticket.id is not None
        if parent_id is not None:
            writes.add_event(session, ticket.id, now, "linked", parent=parent_id,
                             reason="a reply to a ticket resolved too long ago")
            writes.add_event(session, parent_id, now, "follow_up_ticket", child=ticket.id)
        if held:
            writes.release_quarantine(session, analysis.key, ticket_number=ticket.id)
        auto_reply = "auto-replies are off"
        status: str | None = None
        if self.replier is not None:
            queued, reason = self.replier.after_new_ticket(session, ticket, analysis, dues,
                                                           now)
            auto_reply = f"sent to {ticket.requester}" if queued else f"not sent: {reason}"
            status = "queued" if queued else reason
        if self.conversation is not None:
            self.conversation.correspondence.announce(session, ticket, analysis, dues,
                                                      auto_reply, now)
        return ticket, status

    def _dues(self, analysis: Analysis, received: datetime) -> Dues | None:
        if self.sla is None:
            return None
        record = analysis.customer.customer
        return self.sla.dues(received, analysis.classification.severity,
                             record.plan if record else None)


@dataclass(slots=True)
class _KnownKeys:
    """What a transaction knows of its messages' keys: stored already, or held in quarantine.

    Looked up once for all the messages sharing the transaction, and kept up to date as each
    is stored, so a second copy later in the same transaction is a duplicate too.
    """

    stored: dict[str, tuple[str | None, int]]
    held: set[str]

    @classmethod
    def look_up(cls, session: Session, decisions: Sequence[Analysis | Rejection]) -> _KnownKeys:
        keys = [decision.key for decision in decisions]
        return cls(writes.stored_keys(session, keys), writes.held_quarantine_keys(session, keys))


def _requesters(decisions: Sequence[Analysis | Rejection], known: _KnownKeys) -> list[str]:
    """Who the new messages of a transaction would be answered at."""
    found = []
    for decision in decisions:
        if isinstance(decision, Analysis) and decision.key not in known.stored:
            requester = writes.requester_of(decision.message)
            if requester is not None:
                found.append(requester.email)
    return found


def load_directory(db: Database) -> CustomerDirectory:
    with db.session() as session:
        rows = session.exec(select(Customer)).all()
    return CustomerDirectory(
        CustomerRecord(r.customer_id, r.name, tuple(r.domains), tuple(r.contacts),
                       r.account_manager, r.plan)
        for r in rows)


def _log_outcome(outcome: Outcome, source: str) -> None:
    bound = log.bind(message_id=outcome.message_id, ticket=outcome.ticket_number, source=source)
    if outcome.kind is OutcomeKind.QUARANTINED:
        bound.warning("message.quarantined", quarantine_id=outcome.quarantine_id,
                      reason=outcome.reason)
    elif outcome.kind is OutcomeKind.DUPLICATE:
        bound.info("message.duplicate", key=outcome.key)
    elif outcome.kind is OutcomeKind.TICKET:
        bound.info("message.ticketed")
    else:
        bound.info("message.appended", route=str(outcome.kind))
