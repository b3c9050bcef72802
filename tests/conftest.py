"""Fixtures: a real Dovecot, a throwaway PostgreSQL database, databases on both engines."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event as sqlalchemy_event
from sqlalchemy import text

from mailbot.conversation import Route, ThreadSigner, route_message
from mailbot.parsing import parse_message
from mailbot.replies.loops import Sender, automatic_reason
from mailbot.store import Database
from mailbot.testing import DovecotServer, SmtpCapture, throwaway_database

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO.parent / "shared" / "corpus"


def sqlite_plans(database: Database, run: Callable[[], object]) -> list[str]:
    """SQLite's query plan of each statement `run` executes on `database`, one string each."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        sent.append((statement, parameters))

    sqlalchemy_event.listen(database.engine, "before_cursor_execute", record)
    try:
        run()
    finally:
        sqlalchemy_event.remove(database.engine, "before_cursor_execute", record)
    with database.engine.connect() as connection:
        return [" | ".join(row[-1] for row in connection.exec_driver_sql(
            f"EXPLAIN QUERY PLAN {statement}", parameters)) for statement, parameters in sent]


def routed(raw: bytes, signer: ThreadSigner, who: Sender,
           participants: Callable[[int], Collection[str] | None], **given: Any) -> Route:
    """`route_message` on a raw mail, its automatic reason worked out as analysing does."""
    message = parse_message(raw)
    return route_message(message, raw, signer, who, participants,
                         automatic=automatic_reason(message), **given)


@pytest.fixture
def dovecot() -> Iterator[DovecotServer]:
    """A fresh Dovecot with an empty mailbox, stopped and removed after the test."""
    with DovecotServer() as server:
        yield server


@pytest.fixture
def smtp_server() -> Iterator[SmtpCapture]:
    """An SMTP server on loopback that keeps every mail it accepts."""
    with SmtpCapture() as server:
        yield server


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A database created on the local PostgreSQL server for this run, dropped after it."""
    with throwaway_database() as url:
        database = Database(url)
        database.upgrade()
        database.dispose()
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """An empty, migrated database: a SQLite file, then the run's PostgreSQL database."""
    if request.param == "sqlite":
        database = Database(f"sqlite:///{tmp_path / 'mailbot.db'}")
        database.upgrade()
        yield database
        database.dispose()
        return
    database = Database(request.getfixturevalue("postgres_url"))
    yield database
    with database.engine.begin() as conn:
        tables = ", ".join(t for t in ("outbox", "events", "attachments", "messages",
                                        "quarantine", "tickets", "blobs", "customers",
                                        "mailbox_state", "installation_secrets",
                                        "escalations", "leases", "oauth_tokens"))
        conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    database.dispose()


COLOMBO_CONFIG = {"timezone": "Asia/Colombo",
                  "hours": {d: ["08:00-17:00"] for d in ("mon", "tue", "wed", "thu", "fri")},
                  "holidays": {"country": "LK"}}


def colombo(day: int, hour: int, minute: int = 0) -> datetime:
    """A November 2026 wall-clock time in Colombo (UTC+05:30), as UTC."""
    return datetime(2026, 11, day, hour, minute, tzinfo=UTC) - timedelta(hours=5, minutes=30)
