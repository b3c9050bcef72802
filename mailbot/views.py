"""Tickets, quarantine entries and customers as plain dicts for `--json` and tables."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mailbot.store.models import Customer, OutboxMail, QuarantineEntry, Ticket
from mailbot.store.queries import TicketStory


def iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def ticket_row(ticket: Ticket) -> dict[str, Any]:
    return {
        "number": ticket.id,
        "status": ticket.status,
        "severity": ticket.severity,
        "customer_id": ticket.customer_id,
        "customer_verified": ticket.customer_verified,
        "customer_source": ticket.customer_source,
        "requester": ticket.requester,
        "subject": ticket.subject,
        "mailbox": ticket.mailbox,
        "created_at": iso(ticket.created_at),
        "response_due": iso(ticket.response_due),
        "resolution_due": iso(ticket.resolution_due),
        "first_response_at": iso(ticket.first_response_at),
        "resolved_at": iso(ticket.resolved_at),
        "matched_rules": ticket.matched_rules,
        "tags": ticket.tags,
        "message_count": ticket.message_count,
        "attachment_count": ticket.attachment_count,
        "assignee": ticket.assignee,
        "parent": ticket.parent_id,
    }


def ticket_story_dict(story: TicketStory) -> dict[str, Any]:
    row = ticket_row(story.ticket)
    row["messages"] = [{
        "id": m.id,
        "message_id": m.message_id,
        "direction": m.direction,
        "from": m.sender,
        "from_name": m.sender_name,
        "to": m.recipients,
        "cc": m.cc,
        "subject": m.subject,
        "date": iso(m.sent_at),
        "received_at": iso(m.received_at),
        "source": m.source,
        "size": m.size,
        "truncated": m.truncated,
        "raw_sha256": m.raw_sha256,
        "defects": m.defects,
        "role": m.role,
        "body_text": m.body_text,
        "display_text": m.display_text or m.body_text,
        "attachments": [{"filename": a.filename, "content_type": a.content_type,
                         "size": a.size, "sha256": a.sha256, "inline": a.inline,
                         "contents": list(story.mail_contents.get(a.id or -1, ()))}
                        for a in story.attachments.get(m.id or -1, [])],
    } for m in story.messages]
    row["events"] = [{"at": iso(e.at), "kind": e.kind, **e.detail} for e in story.events]
    return row


def quarantine_row(entry: QuarantineEntry) -> dict[str, Any]:
    return {"id": entry.id, "reason": entry.reason, "received_at": iso(entry.received_at),
            "source": entry.source, "size": entry.size, "status": entry.status,
            "attempts": entry.attempts, "raw_sha256": entry.raw_sha256}


def outbox_row(row: OutboxMail) -> dict[str, Any]:
    return {"id": row.id, "kind": row.kind, "ticket_number": row.ticket_id,
            "to": row.recipients, "subject": row.subject, "message_id": row.message_id,
            "status": row.status, "attempts": row.attempts, "last_error": row.last_error,
            "created_at": iso(row.created_at), "sent_at": iso(row.sent_at)}


def customer_row(customer: Customer) -> dict[str, Any]:
    return {"customer_id": customer.customer_id, "name": customer.name,
            "domains": customer.domains, "contacts": customer.contacts,
            "account_manager": customer.account_manager, "plan": customer.plan}


def table(rows: list[dict[str, Any]], columns: list[tuple[str, str]], *,
          max_width: int = 48) -> str:
    """A plain-text table of `rows` with (key, heading) columns, long cells shortened."""
    cells = [[_cell(row.get(key), max_width) for key, _ in columns] for row in rows]
    widths = [max([len(h)] + [len(r[i]) for r in cells]) for i, (_, h) in enumerate(columns)]
    lines = ["  ".join(h.ljust(w) for (_, h), w in zip(columns, widths, strict=True)).rstrip()]
    lines += ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in cells]
    return "\n".join(lines)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        text = "-"
    elif isinstance(value, bool):
        text = "yes" if value else "no"
    elif isinstance(value, list):
        text = ", ".join(str(v.get("id", v)) if isinstance(v, dict) else str(v) for v in value)
    else:
        text = str(value)
    text = " ".join(text.split())
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
