"""Secrets made once per installation and kept in the database, so every instance shares them."""

from __future__ import annotations

import secrets

from sqlalchemy.exc import IntegrityError

from mailbot.store.db import Database
from mailbot.store.models import InstallationSecret


def installation_secret(db: Database, name: str) -> str:
    """The secret called `name`, made (256 random bits) the first time it is asked for."""
    with db.session() as session:
        row = session.get(InstallationSecret, name)
        if row is not None:
            return row.value
    try:
        with db.transaction() as session:
            session.add(InstallationSecret(name=name, value=secrets.token_hex(32)))
    except IntegrityError:
        pass  # another instance made it first: theirs is the one
    with db.session() as session:
        row = session.get(InstallationSecret, name)
        assert row is not None
        return row.value
