"""The writes one message causes: blobs, ticket, message, attachments, events, quarantine."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any, TypeVar, cast

from sqlalchemy import Connection, CursorResult, Table, bindparam, func, update
from sqlalchemy import event as sa_event
from sqlalchemy import inspect as sa_inspect
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import ORMExecuteState, make_transient_to_detached
from sqlalchemy.orm import Session as OrmSession
from sqlmodel import Session, SQLModel, col, select

from mailbot.parsing import Address, ParsedMessage
from mailbot.parsing.visible import visible_text
from mailbot.pipeline import Analysis
from mailbot.replies.compose import OutgoingMail
from mailbot.sla import Dues
from mailbot.store.models import (
    Attachment,
    Blob,
    Customer,
    Event,
    MailboxState,
    Message,
    OutboxMail,
    QuarantineEntry,
    Ticket,
)

# The rows written for every message go in as plain INSERTs, not as ORM objects: building,
# tracking and flushing an object per row cost more than the rest of storing a message.
_TABLES: dict[str, Table] = {
    str(model.__tablename__): SQLModel.metadata.tables[str(model.__tablename__)]
    for model in (Attachment, Blob, Event, Message, OutboxMail, MailboxState, Ticket)}
_Row = TypeVar("_Row", bound=SQLModel)
_INSERT_EVENT = _TABLES["events"].insert()
_PENDING_EVENTS = "mailbot.pending_events"
_PENDING_ADVANCES = "mailbot.pending_advances"
_PENDING_ROWS = "mailbot.pending_rows"
_NEXT_TICKET = "mailbot.next_ticket_number"
_NEXT_MESSAGE = "mailbot.next_message_id"
_APART_FROM_PENDING = "mailbot_apart_from_pending"  # see _apart_from_pending
_INSERT_MESSAGE = _TABLES["messages"].insert()
_HIGHEST_MESSAGE_ID = select(func.max(_TABLES["messages"].c.id))
_INSERT_ATTACHMENT = _TABLES["attachments"].insert()
_INSERT_OUTBOX = _TABLES["outbox"].insert()
_INSERT_TICKET = _TABLES["tickets"].insert()
_PUT_BLOB: dict[str, Any] = {  # insert-if-absent, by dialect
    "postgresql": postgresql.insert(_TABLES["blobs"]).on_conflict_do_nothing(),
    "sqlite": sqlite.insert(_TABLES["blobs"]).on_conflict_do_nothing(),
}


def stored_row(model: type[_Row], **values: Any) -> _Row:
    """The object of a row just inserted with `values`, ready for `session.add` (no flush).

    Our own values need no validation, and a validated SQLModel object cost eight times as
    much to build as the rest of this: the object gets the fields' defaults and the values
    as they are, and SQLAlchemy's state of a detached row.
    """
    instance = sa_inspect(model).class_manager.new_instance()
    given = set(values)
    fields = {name: field.get_default(call_default_factory=True)
              for name, field in model.model_fields.items() if name not in given}
    fields.update(values)
    object.__setattr__(instance, "__pydantic_fields_set__", given)
    object.__setattr__(instance, "__pydantic_extra__", None)
    object.__setattr__(instance, "__pydantic_private__", None)
    instance.__dict__.update(fields)
    make_transient_to_detached(instance)
    return cast(_Row, instance)


def put_blob(session: Session, sha256: str, data: bytes) -> None:
    """Store bytes under their SHA-256 unless they are already there.

    Written with the transaction's other pending rows (see `write_pending_rows`).
    """
    statement = _PUT_BLOB.get(session.get_bind().dialect.name)
    if statement is None:
        if session.get(Blob, sha256) is None:
            session.execute(_TABLES["blobs"].insert(),
                            {"sha256": sha256, "size": len(data), "data": data})
        return
    blobs: dict[str, dict[str, Any]] = _pending_rows(session).setdefault("blobs", {})
    blobs.setdefault(sha256, {"sha256": sha256, "size": len(data), "data": data})


def _pending_rows(session: OrmSession) -> dict[str, Any]:
    pending: dict[str, Any] = session.info.setdefault(_PENDING_ROWS, {})
    return pending


def write_pending_rows(session: OrmSession) -> None:
    """Write the blobs, tickets, messages and outbox mails put so far: one INSERT each for all.

    They are written before anything else runs in the transaction (a query, another INSERT
    or UPDATE, a flush of ORM objects, the commit): nothing can see them missing. A
    statement per row cost more than the rest of storing a message.
    """
    pending = session.info.pop(_PENDING_ROWS, None)
    if not pending:
        return
    connection = session.connection()  # not session.execute: that would come back here
    blobs = pending.get("blobs")
    if blobs:
        connection.execute(_PUT_BLOB[connection.dialect.name], list(blobs.values()))
    for statement, rows in ((_INSERT_TICKET, pending.get("tickets")),
                            (_INSERT_MESSAGE, pending.get("messages")),
                            (_INSERT_ATTACHMENT, pending.get("attachments")),
                            (_INSERT_OUTBOX, pending.get("outbox"))):
        if rows:
            connection.execute(statement, rows)


@sa_event.listens_for(Session, "do_orm_execute")
def _before_a_statement(state: ORMExecuteState) -> None:
    if _PENDING_ROWS in state.session.info and \
            not state.execution_options.get(_APART_FROM_PENDING, False):
        write_pending_rows(state.session)


def _apart_from_pending(session: OrmSession, ticket_id: int,
                        *models: type[SQLModel]) -> dict[str, Any]:
    """Execution options of a query that reads only one ticket's rows of these tables.

    When none of the transaction's pending rows or changed objects of those tables belongs
    to that ticket, the query can run before them: they stay pending (written together
    later), and nothing is flushed.
    """
    pending = session.info.get(_PENDING_ROWS)
    if not pending:
        return {}
    changed = (*session.new, *session.dirty)
    for model in models:
        key = "id" if model is Ticket else "ticket_id"  # the column naming the ticket
        if any(row[key] == ticket_id for row in pending.get(str(model.__tablename__), ())) or \
                any(isinstance(obj, model) and getattr(obj, key) == ticket_id
                    for obj in changed):
            return {}
    return {_APART_FROM_PENDING: True, "autoflush": False}


@sa_event.listens_for(Session, "before_flush")
def _before_a_flush(session: OrmSession, *_: Any) -> None:
    write_pending_rows(session)


def add_event(session: Session, ticket_id: int, at: datetime, kind: str,
              **detail: Any) -> None:
    """One line of a ticket's audit trail, written with the others when the session commits.

    Nothing reads the audit trail inside the transaction that writes it, so a transaction's
    events go in as one multi-row INSERT (a round trip per event cost most of storing a
    message on PostgreSQL).
    """
    pending: list[dict[str, Any]] = session.info.setdefault(_PENDING_EVENTS, [])
    pending.append({"ticket_id": ticket_id, "at": at, "kind": kind, "detail": _clean(detail)})


@sa_event.listens_for(Session, "before_commit")
def _write_pending(session: Session) -> None:
    """The writes deferred to the commit: a transaction's rows, events and mailbox advances."""
    write_pending_rows(session)
    session.info.pop(_NEXT_TICKET, None)  # the write lock goes with the commit
    session.info.pop(_NEXT_MESSAGE, None)
    events = session.info.pop(_PENDING_EVENTS, None)
    if events:
        session.execute(_INSERT_EVENT, events)
    advances = session.info.pop(_PENDING_ADVANCES, None)
    if advances:
        _write_advances(session, advances)


@sa_event.listens_for(Session, "after_rollback")
def _forget_pending(session: Session) -> None:
    session.info.pop(_PENDING_ROWS, None)
    session.info.pop(_PENDING_EVENTS, None)
    session.info.pop(_PENDING_ADVANCES, None)
    session.info.pop(_NEXT_TICKET, None)
    session.info.pop(_NEXT_MESSAGE, None)


def create_ticket(session: Session, analysis: Analysis, raw: bytes, *, source: str,
                  mailbox: str | None, now: datetime, dues: Dues | None = None,
                  parent_id: int | None = None) -> Ticket:
    """A new ticket from an analysed message, with the message and its files attached."""
    message = analysis.message
    requester = requester_of(message)
    classification = analysis.classification
    values: dict[str, Any] = dict(
        status="open",
        severity=classification.severity,
        customer_id=analysis.customer.customer_id,
        customer_verified=analysis.customer.verified,
        customer_source=str(analysis.customer.source),
        requester=requester.email if requester else "",
        requester_name=_text(requester.name if requester else "")[:200],
        subject=_text(message.subject),
        mailbox=mailbox,
        created_at=now,
        updated_at=now,
        matched_rules=[{"id": h.rule_id, "severity": h.severity, "matched": _text(h.matched)}
                       for h in classification.hits],
        tags=list(classification.tags),
        message_count=1,
        attachment_count=len(message.attachments),
        response_due=dues.response_due if dues else None,
        resolution_due=dues.resolution_due if dues else None,
        sla_policy=dues.policy if dues else None,
        parent_id=parent_id,
    )
    ticket = stored_row(Ticket, id=_new_ticket_number(session, values), **values)
    session.add(ticket)
    assert ticket.id is not None
    add_message(session, ticket.id, analysis, raw, source=source, received_at=now)
    _record_creation_events(session, ticket.id, analysis, source=source, now=now)
    if dues is not None:
        add_event(session, ticket.id, now, "sla", policy=dues.policy, calendar=dues.calendar,
                  clock_start=dues.clock_start.isoformat(),
                  response=str(dues.response_target) if dues.response_target else None,
                  response_due=dues.response_due.isoformat() if dues.response_due else None,
                  resolution=str(dues.resolution_target) if dues.resolution_target else None,
                  resolution_due=(dues.resolution_due.isoformat() if dues.resolution_due
                                  else None))
    return ticket


def _new_ticket_number(session: Session, values: dict[str, Any]) -> int:
    """The number of a new ticket with `values`, its row inserted now or with the pending rows.

    The first new ticket of a transaction is inserted on the connection, not through the
    session, so nothing is flushed or written before it. On SQLite that INSERT takes the
    database's only write lock, held until the transaction ends: the numbers after it are
    this transaction's to give, and those tickets' rows wait with its other pending rows
    (one INSERT for all). On PostgreSQL other instances take numbers meanwhile, so each
    ticket gets its number from the database with its row.
    """
    following: int | None = session.info.get(_NEXT_TICKET)
    if following is not None:
        session.info[_NEXT_TICKET] = following + 1
        _pending_rows(session).setdefault("tickets", []).append({"id": following, **values})
        return following
    connection = session.connection()
    number = _inserted(connection, _INSERT_TICKET, values)
    if connection.dialect.name == "sqlite":
        session.info[_NEXT_TICKET] = number + 1
    return number


def add_message(session: Session, ticket_id: int, analysis: Analysis, raw: bytes, *,
                source: str, received_at: datetime, role: str = "customer",
                display_text: str | None = None) -> None:
    """Store a mail on a ticket with its raw bytes and files.

    Written with the transaction's other pending rows. A mail with files needs its row's id
    for theirs: on SQLite, once the transaction holds the write lock, the ids are given
    here (see `_message_id_ahead`); otherwise its row is inserted at once.
    """
    message = analysis.message
    put_blob(session, analysis.raw_sha256, raw)
    sender = requester_of(message)
    row = {
        "ticket_id": ticket_id,
        "idempotency_key": analysis.key,
        "message_id": message.message_id,
        "direction": "in",
        "source": _text(source)[:400],
        "sender": sender.email if sender else "",
        "sender_name": _text(sender.name if sender else "")[:200],
        "recipients": [a.email for a in message.to],
        "cc": [a.email for a in message.cc],
        "subject": _text(message.subject),
        "sent_at": message.date,
        "received_at": received_at,
        "in_reply_to": message.in_reply_to,
        "references": list(message.references),
        "body_text": _text(message.body_text),
        "display_text": _text(_display(message.body_text, display_text
                                       if display_text is not None else analysis.visible_text)),
        "role": role,
        "raw_sha256": analysis.raw_sha256,
        "size": message.size,
        "truncated": message.truncated,
        "defects": [_text(d) for d in message.defects],
    }
    pending = _pending_rows(session)
    row_id = _given_message_id(session, pending, begin=bool(message.attachments))
    if row_id is not None:
        row = {"id": row_id, **row}
    if not message.attachments:
        pending.setdefault("messages", []).append(row)
        return
    for attachment in message.attachments:
        put_blob(session, attachment.sha256, attachment.data)
    if row_id is None:
        row_id = _inserted(session, _INSERT_MESSAGE, row)  # the pending rows are written first
        session.execute(_INSERT_ATTACHMENT, _file_rows(message, row_id))
        return
    pending.setdefault("messages", []).append(row)
    pending.setdefault("attachments", []).extend(_file_rows(message, row_id))


def _file_rows(message: ParsedMessage, message_row_id: int) -> list[dict[str, Any]]:
    return [{
        "message_id": message_row_id,
        "filename": _text(attachment.filename)[:255],
        "content_type": _text(attachment.content_type)[:255],
        "size": attachment.size,
        "sha256": attachment.sha256,
        "inline": attachment.inline,
        "content_id": attachment.content_id,
    } for attachment in message.attachments]


def _given_message_id(session: Session, pending: dict[str, Any], *,
                      begin: bool) -> int | None:
    """The id of a new message row, given before its INSERT; None where none is given.

    On SQLite, once the transaction's first new ticket is inserted (`_new_ticket_number`),
    the transaction holds the database's only write lock until it ends, and messages are
    written only by `add_message`: the ids after the highest stored one are this
    transaction's to give. Ids are given from the first mail with files on (`begin`); the
    message rows still pending then get theirs first, so that every pending row has one.
    On PostgreSQL, and before that lock, none is given.
    """
    following: int | None = session.info.get(_NEXT_MESSAGE)
    if following is None:
        if not begin or _NEXT_TICKET not in session.info:
            return None
        highest = session.connection().execute(_HIGHEST_MESSAGE_ID).scalar()
        following = int(highest or 0) + 1
        waiting = pending.get("messages", [])
        for position, row in enumerate(waiting):
            waiting[position] = {"id": following, **row}
            following += 1
    session.info[_NEXT_MESSAGE] = following + 1
    return following


def _record_creation_events(session: Session, ticket_id: int, analysis: Analysis, *,
                            source: str, now: datetime) -> None:
    message = analysis.message
    classification = analysis.classification
    add_event(session, ticket_id, now, "created", source=source,
              message_id=message.message_id, severity=classification.severity,
              reason=classification.reason,
              rules=[h.rule_id for h in classification.hits])
    customer = analysis.customer
    if customer.customer_id is None:
        add_event(session, ticket_id, now, "customer_id_missing",
                  sender=message.from_.email if message.from_ else None)
    else:
        add_event(session, ticket_id, now, "customer_identified",
                  customer_id=customer.customer_id, source=str(customer.source),
                  verified=customer.verified, claimed_id=customer.claimed_id)
    if requester_of(message) is None:
        add_event(session, ticket_id, now, "no_sender",
                  reason="no usable From, Sender, Reply-To or Return-Path address")
    for note in analysis.notes:
        add_event(session, ticket_id, now, "note", text=note)
    if message.defects:
        add_event(session, ticket_id, now, "parser_defects", defects=list(message.defects))


def quarantine(session: Session, raw: bytes, sha256: str, key: str, reason: str, *,
               source: str, now: datetime) -> QuarantineEntry:
    """Keep a message that cannot be ticketed; a second arrival counts as another attempt."""
    put_blob(session, sha256, raw)
    held = find_held_quarantine(session, key)
    if held is not None:
        held.attempts += 1
        held.reason = _text(reason)
        session.add(held)
        return held
    entry = QuarantineEntry(idempotency_key=key, raw_sha256=sha256, reason=_text(reason),
                            source=_text(source)[:400], size=len(raw), received_at=now)
    session.add(entry)
    session.flush()
    return entry


def release_quarantine(session: Session, key: str, *, ticket_number: int | None) -> None:
    """Mark a held copy of a message as replayed once the message has become a ticket."""
    held = find_held_quarantine(session, key)
    if held is not None:
        held.status = "replayed"
        session.add(held)
        if ticket_number is not None:
            add_event(session, ticket_number, held.received_at, "replayed_from_quarantine",
                      quarantine_id=held.id, reason=held.reason)


def queue_mail(session: Session, mail: OutgoingMail, ticket_id: int | None,
               now: datetime) -> None:
    """An outbox row for a composed mail, written with the transaction's pending rows."""
    _pending_rows(session).setdefault("outbox", []).append({
        "ticket_id": ticket_id, "kind": mail.kind, "sender": mail.sender,
        "recipients": list(mail.recipients), "subject": _text(mail.subject),
        "message_id": mail.message_id, "raw": mail.raw, "status": "queued", "attempts": 0,
        "created_at": now, "next_attempt_at": now})


_MAILBOX_STATE = _TABLES["mailbox_state"]
_ADVANCE_MAILBOX = update(_MAILBOX_STATE).where(
    _MAILBOX_STATE.c.name == bindparam("mailbox"),
    _MAILBOX_STATE.c.uidvalidity == bindparam("validity"),
    _MAILBOX_STATE.c.last_uid < bindparam("uid")).values(last_uid=bindparam("uid"))


def advance_mailbox(session: Session, name: str, uidvalidity: int, uid: int) -> None:
    """Record that a mailbox's folder has been read up to `uid` (never backwards).

    Written when the session commits: messages sharing a transaction advance their folder
    by one UPDATE, to the highest of their UIDs.
    """
    pending: dict[tuple[str, int], int] = session.info.setdefault(_PENDING_ADVANCES, {})
    pending[(name, uidvalidity)] = max(uid, pending.get((name, uidvalidity), 0))


def _write_advances(session: Session, pending: dict[tuple[str, int], int]) -> None:
    for (name, uidvalidity), uid in pending.items():
        result = cast("CursorResult[Any]", session.execute(
            _ADVANCE_MAILBOX, {"mailbox": name, "validity": uidvalidity, "uid": uid}))
        if result.rowcount:
            continue
        if session.get(MailboxState, name) is None:
            session.add(MailboxState(name=name, uidvalidity=uidvalidity, last_uid=uid))


# Built once: they run for every transaction or every follow-up.
_TICKET_PARTICIPANTS = select(
    col(Ticket.requester), col(Message.sender), col(Message.cc), col(Message.role),
).select_from(Ticket).outerjoin(Message, col(Message.ticket_id) == col(Ticket.id)).where(
    col(Ticket.id) == bindparam("ticket"))
_TICKET_FOR_UPDATE = select(Ticket).where(
    col(Ticket.id) == bindparam("number")).with_for_update()
_NOTIFICATION_IDS = select(col(OutboxMail.message_id)).where(
    col(OutboxMail.ticket_id) == bindparam("ticket"), col(OutboxMail.kind) == "notification",
).order_by(col(OutboxMail.id))
_STORED_KEYS = select(
    col(Message.idempotency_key), col(Message.message_id), col(Message.ticket_id)).where(
    col(Message.idempotency_key).in_(bindparam("keys", expanding=True)))
# Quarantine rows are looked up by key alone and their status read from them: with both in
# the WHERE clause SQLite chose the status index, reading every held copy for each lookup
# (48 ms for 50 keys against 50,000 held copies, once a transaction, and a scan for each
# message quarantined).
_HELD_KEYS = select(col(QuarantineEntry.idempotency_key), col(QuarantineEntry.status)).where(
    col(QuarantineEntry.idempotency_key).in_(bindparam("keys", expanding=True)))
_QUARANTINED = select(QuarantineEntry).where(
    col(QuarantineEntry.idempotency_key) == bindparam("key"))


def participants(session: Session, ticket_id: int) -> set[str] | None:
    """The addresses already on a ticket (requester, senders, copied customers); None if none.

    One query for the ticket and its mails: routing asks this of every reply, and loading
    the ticket as an object cost more than the rest of routing it.
    """
    options = _apart_from_pending(session, ticket_id, Ticket, Message)
    rows = session.execute(_TICKET_PARTICIPANTS, {"ticket": ticket_id},
                           execution_options=options).all()
    if not rows:
        return None
    requester = rows[0][0]
    found = {requester.lower()} if requester else set()
    for _, sender, cc, role in rows:
        if role in ("customer", "agent", "note") and sender:
            found.add(sender.lower())
        if role == "customer":
            found.update(a.lower() for a in cc)
    return found


def ticket_for_update(session: Session, ticket_id: int) -> Ticket | None:
    """The ticket, its row locked until the transaction ends (on PostgreSQL)."""
    return session.exec(_TICKET_FOR_UPDATE, params={"number": ticket_id},
                        execution_options=_apart_from_pending(session, ticket_id, Ticket)).first()


def notification_ids(session: Session, ticket_id: int) -> list[str]:
    """The Message-IDs of the notifications sent to agents about a ticket, oldest first."""
    return list(session.exec(
        _NOTIFICATION_IDS, params={"ticket": ticket_id},
        execution_options=_apart_from_pending(session, ticket_id, OutboxMail)).all())


def stored_keys(session: Session, keys: Iterable[str]) -> dict[str, tuple[str | None, int]]:
    """Of these idempotency keys, those already stored: key → (Message-ID, ticket number)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = session.execute(_STORED_KEYS, {"keys": wanted}).all()
    return {key: (message_id, ticket_id) for key, message_id, ticket_id in rows}


def held_quarantine_keys(session: Session, keys: Iterable[str]) -> set[str]:
    """Of these idempotency keys, those with a copy held in quarantine."""
    wanted = sorted(set(keys))
    if not wanted:
        return set()
    return {key for key, status in session.execute(_HELD_KEYS, {"keys": wanted})
            if status == "held"}


def find_held_quarantine(session: Session, key: str) -> QuarantineEntry | None:
    """The copy of a message held in quarantine, if there is one (there is at most one)."""
    entries = session.exec(_QUARANTINED, params={"key": key}).all()
    return next((entry for entry in entries if entry.status == "held"), None)


def upsert_customers(session: Session, records: Iterable[Any]) -> tuple[int, int]:
    """Insert or update directory entries; returns (added, updated)."""
    added = updated = 0
    for record in records:
        row = session.get(Customer, record.customer_id)
        if row is None:
            row = Customer(customer_id=record.customer_id)
            added += 1
        else:
            updated += 1
        row.name = record.name
        row.domains = list(record.domains)
        row.contacts = list(record.contacts)
        row.account_manager = record.account_manager
        row.plan = record.plan
        session.add(row)
    return added, updated


def requester_of(message: ParsedMessage) -> Address | None:
    """Who a reply goes to: From, else Sender, Reply-To or Return-Path."""
    if message.from_ is not None and "@" in message.from_.email:
        return message.from_
    for name in ("sender", "return-path"):
        value = message.header(name)
        if value:
            email = value.strip().strip("<>").strip().lower()
            if "@" in email and " " not in email:
                return Address("", email)
    for address in message.reply_to:
        if "@" in address.email:
            return address
    return None


def _inserted(runner: Session | Connection, statement: Any, values: dict[str, Any]) -> int:
    """Run a one-row INSERT; the new row's id."""
    result = cast("CursorResult[Any]", runner.execute(statement, values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def _display(body: str, given: str | None) -> str:
    """The text people read, stored only when it differs from the body (saves a copy)."""
    shown = visible_text(body) if given is None else given
    return "" if shown == body.strip() else shown


def _text(value: str) -> str:
    """Text PostgreSQL accepts: no NUL characters, no lone surrogates."""
    cleaned = value.replace("\x00", "")
    try:
        cleaned.encode("utf-8")
    except UnicodeEncodeError:
        cleaned = cleaned.encode("utf-8", "replace").decode("utf-8")
    return cleaned


def _clean(value: Any) -> Any:
    if isinstance(value, str):
        return _text(value)
    if isinstance(value, dict):
        return {k: _clean(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_clean(v) for v in value]
    return value
