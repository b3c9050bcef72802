"""Replaying and dropping quarantined messages."""

from __future__ import annotations

from mailbot.ingest import Ingestor, Outcome
from mailbot.store import Database
from mailbot.store.models import QuarantineEntry
from mailbot.store.queries import blob_bytes
from mailbot.store.writes import add_event


class QuarantineError(Exception):
    """The entry does not exist or is no longer held."""


def replay(db: Database, ingestor: Ingestor, entry_id: int) -> Outcome:
    """Run a held message through the pipeline again; it leaves quarantine once ticketed."""
    with db.session() as session:
        entry = _held(session.get(QuarantineEntry, entry_id), entry_id)
        raw = blob_bytes(session, entry.raw_sha256)
        source = entry.source
    if raw is None:
        raise QuarantineError(f"quarantine entry {entry_id}: raw message {entry.raw_sha256} "
                              "is missing")
    outcome = ingestor.ingest(raw, source=f"{source} (replay of quarantine {entry_id})")
    if not outcome.quarantined:
        with db.transaction() as session:
            held = session.get(QuarantineEntry, entry_id)
            if held is not None and held.status == "held":
                held.status = "replayed"
                session.add(held)
                if outcome.ticket_number is not None:
                    add_event(session, outcome.ticket_number, ingestor.clock.now(),
                              "replayed_from_quarantine", quarantine_id=entry_id,
                              reason=held.reason)
    return outcome


def drop(db: Database, entry_id: int) -> None:
    """Give up on a held message; its raw bytes stay stored."""
    with db.transaction() as session:
        entry = _held(session.get(QuarantineEntry, entry_id), entry_id)
        entry.status = "dropped"
        session.add(entry)


def _held(entry: QuarantineEntry | None, entry_id: int) -> QuarantineEntry:
    if entry is None:
        raise QuarantineError(f"no quarantine entry {entry_id}")
    if entry.status != "held":
        raise QuarantineError(f"quarantine entry {entry_id} is {entry.status}, not held")
    return entry
