"""Test helpers that ship with mailbot: a real Dovecot, a throwaway PostgreSQL database."""

from mailbot.testing.dovecot import DovecotServer
from mailbot.testing.ports import free_port
from mailbot.testing.postgres import throwaway_database

__all__ = ["DovecotServer", "free_port", "throwaway_database"]
