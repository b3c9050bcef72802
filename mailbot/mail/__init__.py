"""Adapters to mail servers: IMAP sources and, later, SMTP sending."""
