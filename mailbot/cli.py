"""The `mailbot` command: parse arguments, call the core, print a table or `--json`."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
import structlog
from sqlalchemy.exc import InterfaceError as SAInterfaceError
from sqlalchemy.exc import OperationalError

from mailbot import quarantine as quarantine_ops
from mailbot.cli_oauth import oauth_group
from mailbot.cli_report import report_group
from mailbot.cli_rules import rules_group
from mailbot.cli_support import (
    EX_CONFIG,
    EX_FAILURE,
    EX_NOINPUT,
    EX_TEMPFAIL,
    Context,
    default_config,
    fail,
    with_json,
)
from mailbot.customers import DirectoryFileError, read_customer_file
from mailbot.gil import hand_over_often
from mailbot.ingest import Outcome, OutcomeKind, TemporaryFailure
from mailbot.logs import configure_logging
from mailbot.mail.imap import MailboxUnavailable
from mailbot.outbox import FlushWhileWorking
from mailbot.store import Database, queries, writes
from mailbot.store.db import describe_db_error
from mailbot.views import (
    customer_row,
    outbox_row,
    quarantine_row,
    table,
    ticket_row,
    ticket_story_dict,
)

TICKET_COLUMNS = [("number", "#"), ("status", "status"), ("severity", "sev"),
                  ("customer_id", "customer"), ("customer_verified", "verified"),
                  ("requester", "requester"), ("subject", "subject"),
                  ("message_count", "msgs"), ("attachment_count", "files")]


@click.group()
@click.option("--config", "config_path", type=click.Path(path_type=Path),
              default=default_config, show_default="$MAILBOT_CONFIG or ./config.yaml",
              help="Configuration file.")
@click.pass_context
def main(click_ctx: click.Context, config_path: Path) -> None:
    """mailbot: turns a support mailbox into tickets."""
    source = click_ctx.get_parameter_source("config_path")
    given = source not in (click.core.ParameterSource.DEFAULT, None) or bool(
        os.environ.get("MAILBOT_CONFIG"))
    click_ctx.obj = Context(config_path, config_given=given)


@main.command("run")
@click.pass_obj
def run_daemon(ctx: Context) -> None:
    """The daemon: every mailbox in IDLE (or polling), the outbox and the SLA watcher.

    SIGTERM stops it cleanly; SIGHUP reloads rules, templates, calendars and notices.
    """
    from mailbot.service import build_service

    app = ctx.app()
    ingestor = ctx.ingestor(app)
    try:
        service = build_service(app, ingestor, ctx.config_path)
    except OSError as exc:
        fail(f"metrics.listen {app.settings.metrics.listen}: {exc}", EX_CONFIG)
    service.daemon.install_signal_handlers()
    try:
        code = service.run()
    finally:
        app.close()
    sys.exit(code)


@main.command()
@with_json
def poll(ctx: Context) -> None:
    """One pass over every mailbox, then exit (for cron and tests)."""
    app = ctx.app()
    ingestor = ctx.ingestor(app)
    reports: list[dict[str, Any]] = []
    failed = False
    sender = app.outbox_sender()
    with ExitStack() as stack:
        background = stack.enter_context(FlushWhileWorking(sender)) if sender else None
        for poller in app.pollers(ingestor):
            if background is not None:
                poller.on_commit = background.after_commit
            try:
                report = poller.run_pass()
                error = None
            except (MailboxUnavailable, TemporaryFailure) as exc:
                failed, error = True, str(exc)
                report = None
            finally:
                poller.close()
            reports.append({"mailbox": poller.plan.name, "error": error,
                            "fetched": report.fetched if report else 0,
                            "tickets": report.tickets if report else 0,
                            "follow_ups": report.follow_ups if report else 0,
                            "duplicates": report.duplicates if report else 0,
                            "quarantined": report.quarantined if report else 0})
    app.close()
    sent_meanwhile = background.sent if background is not None else 0
    watcher = app.sla_watcher()
    try:
        watched = watcher.run_once() if watcher is not None else None
        flushed = sender.flush(limit=max(1, sender.due())) if sender is not None else None
    except (OperationalError, SAInterfaceError) as exc:
        failed, flushed, watched = True, None, None
        click.echo(f"mailbot: outbox not flushed, database unavailable: "
                   f"{describe_db_error(exc)}", err=True)
    text = table(reports, [("mailbox", "mailbox"), ("fetched", "fetched"),
                           ("tickets", "tickets"), ("follow_ups", "follow-ups"),
                           ("duplicates", "duplicates"),
                           ("quarantined", "quarantined"), ("error", "error")], max_width=80)
    if watched is not None:
        text += f"\nSLA watcher: {watched.checked} open tickets checked, " \
                f"{watched.escalated} escalated"
    if flushed is not None:
        text += (f"\noutbox: {sent_meanwhile + flushed.sent} sent, {flushed.deferred} deferred, "
                 f"{flushed.failed} failed")
    ctx.emit(reports, text)
    if failed:
        sys.exit(EX_TEMPFAIL)


@main.command()
@click.argument("files", nargs=-1, type=click.Path(path_type=Path))
@with_json
def ingest(ctx: Context, files: tuple[Path, ...]) -> None:
    """Ingest .eml files, or one message from stdin (MTA pipe); exit 75 on temporary failure."""
    app = ctx.app()
    ingestor = ctx.ingestor(app)
    results: list[dict[str, Any]] = []
    inputs: list[tuple[str, Callable[[], bytes]]] = (
        [(str(f), f.read_bytes) for f in files] if files
        else [("stdin", sys.stdin.buffer.read)])
    for name, read in inputs:
        try:
            raw = read()
        except OSError as exc:
            fail(f"{name}: cannot read: {exc.strerror or exc}", EX_NOINPUT)
        try:
            outcome = ingestor.ingest(raw, source=f"file:{name}" if files else "stdin")
        except TemporaryFailure as exc:
            fail(f"{name}: temporary failure, nothing stored: {exc}", EX_TEMPFAIL)
        results.append({"file": name, **_outcome_dict(outcome)})
    ctx.emit(results, "\n".join(f"{r['file']}: {_outcome_words(r)}" for r in results))


def _outcome_dict(outcome: Outcome) -> dict[str, Any]:
    return {"outcome": str(outcome.kind), "ticket_number": outcome.ticket_number,
            "quarantine_id": outcome.quarantine_id, "message_id": outcome.message_id,
            "reason": outcome.reason}


def _outcome_words(row: dict[str, Any]) -> str:
    if row["outcome"] == OutcomeKind.TICKET:
        return f"ticket #{row['ticket_number']}"
    if row["outcome"] in (OutcomeKind.FOLLOW_UP, OutcomeKind.AGENT_REPLY,
                          OutcomeKind.AUTOMATIC_REPLY, OutcomeKind.BOUNCE):
        return f"{row['outcome'].replace('_', ' ')} on ticket #{row['ticket_number']}"
    if row["outcome"] == OutcomeKind.DUPLICATE:
        where = (f"ticket #{row['ticket_number']}" if row["ticket_number"]
                 else f"quarantine {row['quarantine_id']}")
        return f"already stored ({where})"
    return f"quarantined as {row['quarantine_id']}: {row['reason']}"


@main.group()
def tickets() -> None:
    """Browse tickets."""


@tickets.command("list")
@click.option("--status", type=click.Choice(["open", "waiting", "resolved"]))
@click.option("--severity", type=click.Choice(["P1", "P2", "P3", "P4"], case_sensitive=False))
@click.option("--customer", help="Customer ID.")
@click.option("--limit", type=click.IntRange(min=1))
@with_json
def tickets_list(ctx: Context, status: str | None, severity: str | None,
                 customer: str | None, limit: int | None) -> None:
    """List tickets, oldest first."""
    app = ctx.app()
    with app.db.session() as session:
        rows = [ticket_row(t) for t in queries.list_tickets(
            session, status=status, severity=severity, customer=customer, limit=limit)]
    ctx.emit(rows, table(rows, TICKET_COLUMNS) if rows else "no tickets")


@tickets.command("show")
@click.argument("number", type=int)
@with_json
def tickets_show(ctx: Context, number: int) -> None:
    """One ticket with its messages, attachments and audit trail."""
    app = ctx.app()
    with app.db.session() as session:
        story = queries.ticket_story(session, number)
    if story is None:
        fail(f"no ticket #{number}")
    data = ticket_story_dict(story)
    ctx.emit(data, _story_text(data))


def _story_text(data: dict[str, Any]) -> str:
    lines = [f"Ticket #{data['number']}  {data['severity']}  {data['status']}",
             f"Subject:   {data['subject']}",
             f"Requester: {data['requester']}",
             f"Customer:  {data['customer_id'] or '(missing)'}"
             f" ({data['customer_source']}, verified: {data['customer_verified']})",
             f"Created:   {data['created_at']}"]
    if data.get("assignee"):
        lines.append(f"Assignee:  {data['assignee']}")
    for message in data["messages"]:
        lines += ["", f"--- {message['role']} message "
                      f"{message['message_id'] or '(no Message-ID)'}"
                      f" from {message['from'] or '(unknown)'} at {message['received_at']}"]
        lines += [f"    attachment: {a['filename']} ({a['content_type']}, {a['size']} bytes)"
                  + (f", holds {', '.join(a['contents'])}" if a["contents"] else "")
                  for a in message["attachments"]]
        text = message["display_text"] or message["body_text"]
        lines += ["", text.strip()[:4000]]
    lines += ["", "(quoted history and signatures are left out above; --json has the full "
                  "text, and the raw mail is kept)"]
    lines += ["", "--- audit trail"]
    lines += [f"{e['at']}  {e['kind']}  " + ", ".join(
        f"{k}={v}" for k, v in e.items() if k not in ("at", "kind") and v not in (None, [], ""))
        for e in data["events"]]
    return "\n".join(lines)


@main.group()
def customers() -> None:
    """The customer directory."""


@customers.command("import")
@click.argument("file", type=click.Path(path_type=Path))
@with_json
def customers_import(ctx: Context, file: Path) -> None:
    """Import customers from CSV or YAML (customer_id, name, domains, contacts, ...)."""
    try:
        records = read_customer_file(file)
    except DirectoryFileError as exc:
        fail(str(exc))
    app = ctx.app()
    with app.db.transaction() as session:
        added, updated = writes.upsert_customers(session, records)
    ctx.emit({"added": added, "updated": updated},
             f"{added} customer(s) added, {updated} updated")


@customers.command("list")
@with_json
def customers_list(ctx: Context) -> None:
    """List the customer directory."""
    app = ctx.app()
    with app.db.session() as session:
        rows = [customer_row(c) for c in queries.list_customers(session)]
    ctx.emit(rows, table(rows, [("customer_id", "id"), ("name", "name"), ("plan", "plan"),
                                ("domains", "domains"), ("contacts", "contacts"),
                                ("account_manager", "account manager")])
             if rows else "no customers")


@main.group("quarantine")
def quarantine_group() -> None:
    """Messages that could not be ticketed."""


@quarantine_group.command("list")
@click.option("--all", "include_done", is_flag=True, help="Include replayed and dropped.")
@with_json
def quarantine_list(ctx: Context, include_done: bool) -> None:
    """Quarantined messages with their reasons."""
    app = ctx.app()
    with app.db.session() as session:
        rows = [quarantine_row(q) for q in queries.list_quarantine(
            session, include_done=include_done)]
    ctx.emit(rows, table(rows, [("id", "id"), ("status", "status"),
                                ("received_at", "received"), ("size", "bytes"),
                                ("source", "source"), ("reason", "reason")], max_width=70)
             if rows else "quarantine is empty")


@quarantine_group.command("replay")
@click.argument("entry_id", type=int)
@with_json
def quarantine_replay(ctx: Context, entry_id: int) -> None:
    """Run a quarantined message through the pipeline again."""
    app = ctx.app()
    try:
        outcome = quarantine_ops.replay(app.db, ctx.ingestor(app), entry_id)
    except quarantine_ops.QuarantineError as exc:
        fail(str(exc))
    except TemporaryFailure as exc:
        fail(str(exc), EX_TEMPFAIL)
    row = {"id": entry_id, **_outcome_dict(outcome)}
    ctx.emit(row, f"quarantine {entry_id}: {_outcome_words(row)}")
    if outcome.quarantined:
        sys.exit(EX_FAILURE)


@quarantine_group.command("drop")
@click.argument("entry_id", type=int)
@with_json
def quarantine_drop(ctx: Context, entry_id: int) -> None:
    """Stop holding a quarantined message (its raw bytes stay stored)."""
    app = ctx.app()
    try:
        quarantine_ops.drop(app.db, entry_id)
    except quarantine_ops.QuarantineError as exc:
        fail(str(exc))
    ctx.emit({"id": entry_id, "status": "dropped"}, f"quarantine {entry_id}: dropped")


@main.group("outbox")
def outbox_group() -> None:
    """Outgoing mail."""


@outbox_group.command("list")
@click.option("--status", type=click.Choice(["queued", "sent", "failed"]))
@with_json
def outbox_list(ctx: Context, status: str | None) -> None:
    """Outgoing mail with its state, newest last."""
    app = ctx.app()
    with app.db.session() as session:
        rows = [outbox_row(r) for r in queries.list_outbox(session, status=status)]
    ctx.emit(rows, table(rows, [("id", "id"), ("kind", "kind"), ("ticket_number", "ticket"),
                                ("to", "to"), ("status", "status"), ("attempts", "tries"),
                                ("subject", "subject"), ("last_error", "error")])
             if rows else "outbox is empty")


@outbox_group.command("retry")
@click.argument("outbox_id", type=int)
@with_json
def outbox_retry(ctx: Context, outbox_id: int) -> None:
    """Send a failed or deferred mail again at the next flush (same Message-ID)."""
    from mailbot.outbox import retry_now

    app = ctx.app()
    try:
        row = retry_now(app.db, outbox_id, app.clock.now())
    except LookupError as exc:
        fail(str(exc))
    ctx.emit(outbox_row(row), f"outbox {outbox_id}: queued again")


@main.group()
def sla() -> None:
    """The SLA clock."""


@sla.command("due")
@click.option("--severity", required=True,
              type=click.Choice(["P1", "P2", "P3", "P4"], case_sensitive=False))
@click.option("--customer", help="Customer ID; its plan picks the policy.")
@click.option("--received", help="When the mail arrived (ISO 8601 with offset); default now.")
@with_json
def sla_due(ctx: Context, severity: str, customer: str | None, received: str | None) -> None:
    """Response and resolution due, in words and as instants."""
    from mailbot.app import sla_book
    from mailbot.ingest import load_directory
    from mailbot.sla.wording import describe_due

    settings = ctx.settings_or_defaults()
    try:
        at = datetime.fromisoformat(received.replace("Z", "+00:00")) if received else None
    except ValueError:
        fail(f"--received: not an ISO 8601 date and time: {received}")
    if at is not None and at.tzinfo is None:
        fail("--received needs a UTC offset, e.g. 2026-11-20T18:00:00+05:30")
    plan = None
    if customer:
        app = ctx.app()
        record = load_directory(app.db).by_id(customer)
        if record is None:
            fail(f"no customer {customer} in the directory")
        plan = record.plan
    book = sla_book(settings.sla)
    dues = book.dues(at or datetime.now(UTC), severity.upper(), plan)
    zone = book.calendars[dues.calendar].zone
    data: dict[str, Any] = {"severity": severity.upper(), "policy": dues.policy,
                            "calendar": dues.calendar, "customer": customer, "plan": plan,
                            "received": (at or dues.clock_start).isoformat(),
                            "clock_start": dues.clock_start.isoformat()}
    lines = [f"{severity.upper()} on policy {dues.policy} (calendar {dues.calendar}, "
             f"{zone.key})", f"clock starts: {dues.clock_start.isoformat()}"]
    for kind, target, due in (("response", dues.response_target, dues.response_due),
                              ("resolution", dues.resolution_target, dues.resolution_due)):
        data[kind] = ({"target": str(target), "due": due.isoformat(),
                       "words": describe_due(target, due, zone)} if target and due else None)
        lines.append(f"{kind}: " + (describe_due(target, due, zone) if target and due
                                    else "no target (per development schedule)"))
    calendar = book.calendars[dues.calendar]
    last = max((d for d in (dues.response_due, dues.resolution_due) if d), default=None)
    years = range(dues.clock_start.year, (last or dues.clock_start).year + 1)
    data["holiday_data_missing"] = calendar.holiday_data_gaps(years)
    lines += [f"warning: no public holidays of {calendar.country} are known for {y}; "
              "dues in that year count them as working days" for y in
              data["holiday_data_missing"]]
    ctx.emit(data, "\n".join(lines))


@main.group()
def db() -> None:
    """Database schema."""


@db.command("upgrade")
@click.pass_obj
def db_upgrade(ctx: Context) -> None:
    """Apply schema migrations (alembic)."""
    settings = ctx.settings()
    database = Database(settings.database.url,
                        busy_timeout=settings.database.busy_timeout.total_seconds())
    before = database.current_revision()
    database.upgrade()
    after = database.current_revision()
    click.echo(f"schema: {before or 'empty'} -> {after}" if before != after
               else f"schema already at {after}")


@main.command()
@with_json
def health(ctx: Context) -> None:
    """Exit 0 when every mailbox polled within its stall_after and the outbox drains."""
    from mailbot.health import check_health
    from mailbot.leases import Leases
    from mailbot.oauth.grants import grants
    from mailbot.service import stall_limits

    app = ctx.app()
    now = app.clock.now()
    try:
        report = check_health(app.db, stall_limits(app.settings), now,
                              grants=grants(app.settings))
        leases = Leases(app.db, app.clock).all()
    except (OperationalError, SAInterfaceError) as exc:
        fail(f"database unavailable: {describe_db_error(exc)}", EX_TEMPFAIL)
    data = {**report.as_dict(), "leases": [
        {"name": lease.name, "holder": lease.holder, "expires_at": lease.expires_at.isoformat(),
         "live": lease.expires_at > now} for lease in leases]}
    lines = [("ok" if report.ok else "NOT OK")]
    for mailbox in report.mailboxes:
        last = mailbox.last_poll_at.isoformat(timespec="seconds") if mailbox.last_poll_at \
            else "never"
        lines.append(f"mailbox {mailbox.name}: {'STALLED' if mailbox.stalled else 'ok'}, "
                     f"last successful poll {last}"
                     + (f", last error: {mailbox.last_error}" if mailbox.last_error else ""))
    lines += [f"oauth2 {grant.who}: {grant.state}"
              + (f", access token until {grant.access_expires_at.isoformat(timespec='seconds')}"
                 if grant.access_expires_at and grant.state == "active" else "")
              for grant in report.grants]
    lines.append(f"outbox: {report.outbox_queued} queued")
    lines += [f"problem: {p}" for p in report.problems]
    lines += [f"lease {lease.name}: {lease.holder}" for lease in leases if lease.expires_at > now]
    ctx.emit(data, "\n".join(lines))
    sys.exit(0 if report.ok else EX_FAILURE)


@main.command()
@click.option("--dir", "directory", type=click.Path(path_type=Path),
              default=Path("mailbot-demo"), show_default=True,
              help="Where the demo keeps its SQLite file and outgoing mail.")
@with_json
def demo(ctx: Context, directory: Path) -> None:
    """The whole flow on this machine: sample mails in, tickets in a local SQLite file."""
    from mailbot.demo import run_demo

    result = run_demo(directory)
    ctx.emit(result.as_dict(), result.text())


def run() -> None:
    """Entry point that logs with structlog's defaults until a config says otherwise."""
    hand_over_often()
    configure_logging("console", "warning")
    structlog.get_logger("mailbot").debug("start", argv=sys.argv[1:])
    main()


main.add_command(rules_group)
main.add_command(report_group)
main.add_command(oauth_group)
