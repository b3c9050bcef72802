"""`mailbot rules check | test | replay`: what a rule set does, before it goes live."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click
from sqlmodel import col, select

from mailbot.app import open_app
from mailbot.cli_support import EX_FAILURE, EX_NOINPUT, Context, fail, with_json
from mailbot.config import Settings
from mailbot.identify import CustomerDirectory, compile_patterns, identify_customer
from mailbot.ingest import load_directory
from mailbot.parsing import MessageParseError, parse_headers_only, parse_message
from mailbot.rules import RuleEngine, RuleSetError, load_rules, run_examples
from mailbot.store.models import Message, Ticket
from mailbot.store.queries import blob_bytes


@click.group("rules")
def rules_group() -> None:
    """Validate, try and replay severity rules."""


def _engine(ctx: Context, settings: Settings, path: Path | None) -> RuleEngine:
    rules_path = path or settings.rules.path
    try:
        return RuleEngine(load_rules(rules_path, settings.rules.default_severity))
    except RuleSetError as exc:
        click.echo(str(exc), err=True)
        fail(f"{len(exc.errors)} error(s) in {rules_path}", EX_FAILURE)


@rules_group.command("check")
@click.argument("path", required=False, type=click.Path(path_type=Path))
@with_json
def rules_check(ctx: Context, path: Path | None) -> None:
    """Validate rule files (errors as file:line: message) and run their examples."""
    settings = ctx.settings_or_defaults()
    engine = _engine(ctx, settings, path)
    results = run_examples(engine, compile_patterns(settings.customer_id.patterns))
    failed = [r for r in results if not r.ok]
    data = {"files": list(engine.rules.files), "rules": len(engine.rules.rules),
            "examples": len(results), "failed": [str(r) for r in failed]}
    text = "\n".join([*(str(r) for r in failed),
                      f"{len(engine.rules.rules)} rules in {len(engine.rules.files)} file(s); "
                      f"{len(results) - len(failed)} of {len(results)} examples as expected"])
    ctx.emit(data, text)
    if failed:
        raise SystemExit(EX_FAILURE)


@rules_group.command("test")
@click.argument("files", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--rules", "rules_path", type=click.Path(path_type=Path),
              help="Rule file or folder to use instead of the configured one.")
@with_json
def rules_test(ctx: Context, files: tuple[Path, ...], rules_path: Path | None) -> None:
    """Severity of each mail, every matching rule and what matched; changes nothing."""
    settings = ctx.settings_or_defaults()
    engine = _engine(ctx, settings, rules_path)
    patterns = compile_patterns(settings.customer_id.patterns)
    rows: list[dict[str, Any]] = []
    for file in files:
        try:
            message = parse_message(file.read_bytes())
        except OSError as exc:
            fail(f"{file}: cannot read: {exc.strerror or exc}", EX_NOINPUT)
        except MessageParseError as exc:
            rows.append({"file": str(file), "severity": None, "matched_rules": [],
                         "error": f"not a mail: {exc.reason}"})
            continue
        customer = identify_customer(message, patterns, CustomerDirectory())
        verdict = engine.evaluate(message, customer)
        result = verdict.classification
        rows.append({"file": str(file), "severity": result.severity,
                     "matched_rules": [{"id": h.rule_id, "severity": h.severity,
                                        "matched": h.matched} for h in result.hits],
                     "tags": list(result.tags), "reason": result.reason,
                     "timeouts": verdict.timeouts})
    ctx.emit(rows, "\n".join(_test_text(r) for r in rows))


def _test_text(row: dict[str, Any]) -> str:
    if row.get("error"):
        return f"{row['file']}: {row['error']}"
    lines = [f"{row['file']}: {row['severity']}  ({row['reason']})"]
    lines += [f"    {h['severity']} {h['id']}: {h['matched']}" for h in row["matched_rules"]]
    lines += [f"    warning: {t}" for t in row["timeouts"]]
    return "\n".join(lines)


@rules_group.command("replay")
@click.option("--since", type=click.DateTime(formats=["%Y-%m-%d"]),
              help="Only tickets created on or after this date (UTC).")
@click.option("--rules", "rules_path", type=click.Path(path_type=Path),
              help="Candidate rule file or folder (default: the configured rules).")
@with_json
def rules_replay(ctx: Context, since: datetime | None, rules_path: Path | None) -> None:
    """What a rule set would change on stored tickets, by ticket and by transition."""
    settings = ctx.settings()
    engine = _engine(ctx, settings, rules_path)
    app = open_app(settings)
    patterns = compile_patterns(settings.customer_id.patterns)
    directory = load_directory(app.db)
    changes: list[dict[str, Any]] = []
    transitions: Counter[str] = Counter()
    examined = 0
    with app.db.session() as session:
        query = select(Ticket).order_by(col(Ticket.id))
        if since is not None:
            query = query.where(col(Ticket.created_at) >= since.replace(tzinfo=UTC))
        for ticket in session.exec(query):
            first = session.exec(select(Message).where(col(Message.ticket_id) == ticket.id)
                                 .order_by(col(Message.id)).limit(1)).first()
            raw = blob_bytes(session, first.raw_sha256) if first else None
            if raw is None:
                continue
            examined += 1
            try:
                message = (parse_headers_only(raw) if first and first.truncated
                           else parse_message(raw))
            except MessageParseError:
                continue
            result = engine.classify(message, identify_customer(message, patterns, directory))
            if result.severity != ticket.severity:
                transitions[f"{ticket.severity} -> {result.severity}"] += 1
                changes.append({"number": ticket.id, "subject": ticket.subject,
                                "from": ticket.severity, "to": result.severity,
                                "rules": [h.rule_id for h in result.hits]})
    app.db.dispose()
    data = {"tickets": examined, "changed": len(changes), "transitions": dict(transitions),
            "changes": changes}
    lines = [f"#{c['number']}: {c['from']} -> {c['to']}  {c['subject'][:60]}"
             f"  ({', '.join(c['rules']) or 'no rule'})" for c in changes]
    lines += ["", f"{len(changes)} of {examined} tickets would change"]
    lines += [f"  {t}: {n}" for t, n in sorted(transitions.items())]
    ctx.emit(data, "\n".join(lines))
