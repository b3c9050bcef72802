"""IMAP over TLS (implicit and STARTTLS) against Dovecot with a self-signed certificate."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from mailbot.mail.imap import ImapConnection, ImapEndpoint, MailboxUnavailable
from mailbot.testing import DovecotServer


@pytest.fixture
def tls_dovecot() -> Iterator[DovecotServer]:
    with DovecotServer(tls=True) as server:
        yield server


def endpoint(server: DovecotServer, security: str, *, port: int,
             ca_file: str | None) -> ImapEndpoint:
    return ImapEndpoint(host=server.host, port=port, security=security,
                        username=server.username, password=server.password, timeout=5,
                        ca_file=ca_file)


def test_implicit_tls_with_the_servers_certificate(tls_dovecot: DovecotServer) -> None:
    ep = endpoint(tls_dovecot, "ssl", port=tls_dovecot.ssl_port,
                  ca_file=str(tls_dovecot.cert_path))
    with ImapConnection(ep) as conn:
        assert conn.select("INBOX") > 0


def test_starttls_with_the_servers_certificate(tls_dovecot: DovecotServer) -> None:
    ep = endpoint(tls_dovecot, "starttls", port=tls_dovecot.port,
                  ca_file=str(tls_dovecot.cert_path))
    with ImapConnection(ep) as conn:
        assert conn.select("INBOX") > 0


def test_untrusted_certificate_is_refused(tls_dovecot: DovecotServer) -> None:
    """Without the CA the certificate is not trusted: no login, a clear error."""
    ep = endpoint(tls_dovecot, "ssl", port=tls_dovecot.ssl_port, ca_file=None)
    with pytest.raises(MailboxUnavailable, match="CERTIFICATE_VERIFY_FAILED"):
        ImapConnection(ep).open()


def test_plain_imap_to_a_remote_host_is_refused() -> None:
    ep = ImapEndpoint(host="imap.example.com", port=143, security="none", username="u",
                      password="p", timeout=1)
    with pytest.raises(MailboxUnavailable, match="unencrypted"):
        ImapConnection(ep).open()
