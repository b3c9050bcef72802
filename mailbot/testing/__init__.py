"""Test helpers that ship with mailbot: Dovecot, SMTP capture, OAuth2 provider, PostgreSQL DB."""

from mailbot.testing.dovecot import DovecotServer
from mailbot.testing.notify import NotifySocket
from mailbot.testing.oauth_provider import OAuthProvider
from mailbot.testing.ports import free_port
from mailbot.testing.postgres import throwaway_database
from mailbot.testing.smtp import Received, SmtpCapture

__all__ = ["DovecotServer", "NotifySocket", "OAuthProvider", "Received", "SmtpCapture",
           "free_port", "throwaway_database"]
