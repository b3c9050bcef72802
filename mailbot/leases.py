"""Leases: one instance at a time works a mailbox or the SLA watcher; a dead holder's expire.

A lease is a row (name, holder, expires_at). Its holder renews it well before it expires; any
instance may take it once it has expired, so the work moves on within one `ttl` of its
holder dying. Correctness never rests on the lease alone: ingestion is idempotent (Message-ID
or raw hash) and outbox rows are claimed in their own transactions, so two holders for a
moment (a paused process, skewed clocks) cost time, not duplicates.
"""

from __future__ import annotations

import os
import secrets
import socket
from datetime import timedelta

import structlog
from sqlalchemy import case, delete, insert, or_, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import col, select

from mailbot.clock import Clock
from mailbot.store import Database
from mailbot.store.models import Lease

log = structlog.get_logger("mailbot.leases")

DEFAULT_TTL = timedelta(seconds=30)


def instance_name() -> str:
    """Who this process is, in lease rows and logs: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{secrets.token_hex(3)}"


class Leases:
    """Takes, renews and gives back leases for one instance."""

    def __init__(self, db: Database, clock: Clock, holder: str | None = None,
                 ttl: timedelta = DEFAULT_TTL) -> None:
        self.db = db
        self.clock = clock
        self.holder = holder or instance_name()
        self.ttl = ttl

    def hold(self, name: str) -> bool:
        """Take or renew `name`; True while this instance holds it."""
        now = self.clock.now()
        table = Lease.__table__  # type: ignore[attr-defined]
        try:
            with self.db.transaction() as session:
                renewed = session.execute(
                    update(table)
                    .where(table.c.name == name,
                           or_(table.c.holder == self.holder, table.c.expires_at < now))
                    .values(holder=self.holder, expires_at=now + self.ttl,
                            acquired_at=case((table.c.holder == self.holder,
                                              table.c.acquired_at), else_=now)))
                if renewed.rowcount == 1:  # type: ignore[attr-defined]
                    return True
                exists = session.exec(select(Lease.name).where(col(Lease.name) == name)).first()
                if exists is not None:
                    return False
                session.execute(insert(table).values(name=name, holder=self.holder,
                                                     expires_at=now + self.ttl,
                                                     acquired_at=now))
        except IntegrityError:
            return False  # another instance inserted it first
        return True

    def release(self, name: str) -> None:
        """Give `name` back at once, so another instance need not wait for it to expire."""
        table = Lease.__table__  # type: ignore[attr-defined]
        with self.db.transaction() as session:
            session.execute(delete(table).where(table.c.name == name,
                                                table.c.holder == self.holder))

    def all(self) -> list[Lease]:
        with self.db.session() as session:
            return list(session.exec(select(Lease).order_by(col(Lease.name))).all())
