"""The migrations build exactly the schema the models describe, on both engines."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlmodel import SQLModel

import mailbot.store.models  # noqa: F401  (registers the tables)
from mailbot.store import Database
from mailbot.store.db import SCHEMA_REVISION, SQLITE_PAGE_SIZE, alembic_config


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


def test_a_new_sqlite_database_has_large_pages_and_an_old_one_keeps_its_own(
        tmp_path: Path) -> None:
    old = tmp_path / "old.db"
    with sqlite3.connect(old) as connection:
        connection.execute("PRAGMA page_size=4096")
        connection.execute("PRAGMA journal_mode=WAL")
        connection.execute("CREATE TABLE kept (n INTEGER)")
        connection.execute("INSERT INTO kept VALUES (7)")
    connection.close()
    for path, size in ((tmp_path / "new.db", SQLITE_PAGE_SIZE), (old, 4096)):
        db = Database(f"sqlite:///{path}")
        try:
            with db.engine.connect() as connection:
                assert connection.exec_driver_sql("PRAGMA page_size").scalar() == size
                assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        finally:
            db.dispose()
    with sqlite3.connect(old) as connection:
        assert connection.execute("SELECT n FROM kept").fetchall() == [(7,)]
    connection.close()


def test_the_revision_commands_check_against_is_the_newest_migration(db: Database) -> None:
    """SCHEMA_REVISION, read at every start without Alembic, is the migrations' head, and
    the schema's revision is read as Alembic reads it."""
    head = ScriptDirectory.from_config(alembic_config(db.url)).get_current_head()
    assert head == SCHEMA_REVISION
    with db.engine.connect() as connection:
        assert MigrationContext.configure(connection).get_current_revision() == head
    assert db.current_revision() == head


def test_a_database_without_migrations_has_no_revision(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'empty.db'}")
    try:
        assert db.current_revision() is None
    finally:
        db.dispose()


def test_starting_a_command_does_not_load_alembic() -> None:
    code = ("import sys, mailbot.cli, mailbot.app; "
            "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))")
    found = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                           check=True, timeout=120).stdout.strip()
    assert found == "[]"
