"""The database: engine set-up (SQLite WAL or PostgreSQL), sessions, transactions, migrations."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import event, inspect, text
from sqlalchemy.engine import Engine, make_url
from sqlmodel import Session, create_engine

if TYPE_CHECKING:
    from alembic.config import Config as AlembicConfig

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
# The newest migration's revision: what a database this mailbot works with is at. Checked
# against the migrations by a test; starting a command reads it without loading Alembic.
SCHEMA_REVISION = "0008"
SQLITE_BUSY_TIMEOUT_S = 30.0
SQLITE_PAGE_SIZE = 16384  # bytes; see _sqlite_pragmas
POSTGRES_CONNECT_TIMEOUT_S = 10


class Database:
    """One engine and the ways to use it: sessions, transactions and schema upgrades."""

    def __init__(self, url: str, *, echo: bool = False,
                 busy_timeout: float = SQLITE_BUSY_TIMEOUT_S) -> None:
        """`busy_timeout`: how long SQLite waits for another writer's lock before failing."""
        self.url = url
        self.engine = _create_engine(url, echo=echo, busy_timeout=busy_timeout)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        """A session whose work is committed on success and rolled back on any error."""
        with Session(self.engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def session(self) -> Session:
        """A plain session for reads; the caller closes it."""
        return Session(self.engine, expire_on_commit=False)

    def upgrade(self) -> None:
        """Bring the schema to the newest migration."""
        from alembic import command

        with self.engine.begin() as connection:
            cfg = alembic_config(self.url)
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def current_revision(self) -> str | None:
        """The migration the schema is at; None for a database without one."""
        with self.engine.connect() as connection:
            if not inspect(connection).has_table("alembic_version"):
                return None
            versions = connection.execute(text("SELECT version_num FROM alembic_version"))
            found = [row[0] for row in versions]
        if len(found) > 1:
            raise RuntimeError(f"the database is at several migrations at once: {found}")
        return found[0] if found else None

    def dispose(self) -> None:
        self.engine.dispose()


def describe_db_error(exc: BaseException) -> str:
    """The first line of a database error, without SQLAlchemy's background link."""
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def alembic_config(url: str) -> AlembicConfig:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def _create_engine(url: str, *, echo: bool, busy_timeout: float) -> Engine:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, echo=echo, connect_args={"timeout": busy_timeout})

        def pragmas(dbapi_connection: Any, _record: Any) -> None:
            _sqlite_pragmas(dbapi_connection, round(busy_timeout * 1000))

        event.listen(engine, "connect", pragmas)
        return engine
    connect_args: dict[str, Any] = {}
    if parsed.get_backend_name() == "postgresql":
        connect_args["connect_timeout"] = POSTGRES_CONNECT_TIMEOUT_S
    return create_engine(url, echo=echo, pool_pre_ping=True, connect_args=connect_args)


def _sqlite_pragmas(dbapi_connection: Any, busy_timeout_ms: int) -> None:
    cursor = dbapi_connection.cursor()
    # Raw mails and attachments make most of what is written: about 50 KB a mail. With
    # 16 KB pages a commit writes (and a checkpoint copies) a quarter of the WAL frames that
    # 4 KB pages take, each its own write call: storing used 14 % less CPU. The size only
    # applies to a database not yet created (the next statement creates it); an existing
    # one keeps its own.
    cursor.execute(f"PRAGMA page_size={SQLITE_PAGE_SIZE}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # FULL: a commit is on disk before mailbot acks its mails at the IMAP server. With
    # NORMAL, WAL mode syncs only at checkpoints, and a power cut could undo commits whose
    # mails were already moved to the processed folder, never to be fetched again.
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.close()
