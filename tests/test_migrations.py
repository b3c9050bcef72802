"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlmodel import SQLModel

import mailbot.store.models  # noqa: F401  (registers the tables)
from mailbot.store import Database


def test_migrated_schema_matches_the_models(db: Database) -> None:
    with db.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": False})
        differences = compare_metadata(context, SQLModel.metadata)
    assert differences == []


def test_a_sqlite_commit_is_on_disk_before_it_returns(tmp_path: Path) -> None:
    """WAL with synchronous=FULL: a power cut cannot undo a commit whose mails were acked."""
    db = Database(f"sqlite:///{tmp_path / 'mailbot.db'}")
    try:
        with db.engine.connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL
    finally:
        db.dispose()
