"""Persistence: SQLModel tables, the database handle and the named writes and reads."""

from mailbot.store.db import Database

__all__ = ["Database"]
