"""Test helpers that ship with mailbot: Dovecot, an SMTP capture, a throwaway PostgreSQL DB."""

from mailbot.testing.dovecot import DovecotServer
from mailbot.testing.ports import free_port
from mailbot.testing.postgres import throwaway_database
from mailbot.testing.smtp import Received, SmtpCapture

__all__ = ["DovecotServer", "Received", "SmtpCapture", "free_port", "throwaway_database"]
