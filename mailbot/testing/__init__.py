"""Test helpers that ship with mailbot: Dovecot, SMTP capture, PostgreSQL DB, notify socket."""

from mailbot.testing.dovecot import DovecotServer
from mailbot.testing.notify import NotifySocket
from mailbot.testing.ports import free_port
from mailbot.testing.postgres import throwaway_database
from mailbot.testing.smtp import Received, SmtpCapture

__all__ = ["DovecotServer", "NotifySocket", "Received", "SmtpCapture", "free_port",
           "throwaway_database"]
