"""A throwaway Dovecot IMAP server on a free loopback port, for tests and benchmarks."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from types import TracebackType

from imapclient import IMAPClient

from mailbot.testing.ports import free_port

DOVECOT = "/usr/sbin/dovecot"
MAIL_UID = 5000
START_TIMEOUT_S = 10.0
CLIENT_TIMEOUT_S = 10.0

CONFIG_TEMPLATE = """\
instance_name = {instance}
base_dir = {root}/run
state_dir = {root}/state
log_path = {root}/dovecot.log
info_log_path = {root}/dovecot.log
protocols = imap
listen = 127.0.0.1
{ssl}
disable_plaintext_auth = no
auth_mechanisms = {mechanisms}
auth_failure_delay = 0
mail_location = {mail_location}
mail_uid = {uid}
mail_gid = {uid}
first_valid_uid = {uid}
last_valid_uid = {uid}
first_valid_gid = {uid}
mail_max_userip_connections = 200
default_login_user = dovenull
default_internal_user = dovecot
{oauth2_passdb}passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {root}/users
}}
userdb {{
  driver = passwd-file
  args = username_format=%u {root}/users
}}
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {ssl_port}
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    port = 0
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service submission-login {{
  inet_listener submission {{
    port = 0
  }}
}}
service lmtp {{
  unix_listener lmtp {{
    mode = 0600
  }}
}}
"""


OAUTH2_PASSDB = """\
passdb {{
  driver = oauth2
  mechanisms = {mechanisms}
  args = {root}/oauth2.conf.ext
}}
"""

OAUTH2_CONFIG = """\
introspection_mode = post
introspection_url = {url}
force_introspection = yes
username_attribute = username
active_attribute = active
active_value = true
timeout_msecs = 5000
"""


class DovecotServer:
    """Dovecot from Debian's package, run standalone from its own config in a temp folder.

    With `oauth2_introspection_url`, the oauth2 passdb also accepts SASL `oauth2_mechanisms`
    logins whose bearer token that endpoint (RFC 7662, POST) calls active for the user; the
    password keeps working for PLAIN and LOGIN.
    """

    def __init__(self, *, username: str = "support@example.test", password: str = "secret",
                 mail_location: str = "maildir:~/Maildir", tls: bool = False,
                 oauth2_introspection_url: str | None = None,
                 oauth2_mechanisms: tuple[str, ...] = ("xoauth2", "oauthbearer")) -> None:
        if not Path(DOVECOT).exists():
            raise RuntimeError(f"{DOVECOT} not found: install Debian's dovecot-imapd "
                               "(scripts/test.sh does)")
        self.host = "127.0.0.1"
        self.username = username
        self.password = password
        self.mail_location = mail_location
        self.root = Path(tempfile.mkdtemp(prefix="mbdc-", dir="/tmp"))
        self.port = free_port()
        self.tls = tls
        self.ssl_port = free_port() if tls else 0
        self.cert_path = self.root / "cert.pem"
        self.log_path = self.root / "dovecot.log"
        self.oauth2_introspection_url = oauth2_introspection_url
        self.oauth2_mechanisms = oauth2_mechanisms if oauth2_introspection_url else ()
        self._process: subprocess.Popen[bytes] | None = None
        self._write_files()

    def _write_files(self) -> None:
        home = self.root / "home"
        home.mkdir(parents=True, exist_ok=True)
        for sub in ("run", "state"):
            (self.root / sub).mkdir(exist_ok=True)
        os.chmod(self.root, 0o755)
        os.chown(home, MAIL_UID, MAIL_UID)
        (self.root / "users").write_text(
            f"{self.username}:{{PLAIN}}{self.password}:{MAIL_UID}:{MAIL_UID}::{home}::\n")
        ssl = "ssl = no"
        if self.tls:
            key_path = self.root / "key.pem"
            _self_signed_certificate(self.cert_path, key_path)
            ssl = f"ssl = yes\nssl_cert = <{self.cert_path}\nssl_key = <{key_path}"
        oauth2_passdb = ""
        if self.oauth2_introspection_url:
            (self.root / "oauth2.conf.ext").write_text(
                OAUTH2_CONFIG.format(url=self.oauth2_introspection_url))
            oauth2_passdb = OAUTH2_PASSDB.format(mechanisms=" ".join(self.oauth2_mechanisms),
                                                 root=self.root)
        (self.root / "dovecot.conf").write_text(CONFIG_TEMPLATE.format(
            instance=self.root.name, root=self.root, port=self.port, uid=MAIL_UID,
            mail_location=self.mail_location, ssl=ssl, ssl_port=self.ssl_port,
            mechanisms=" ".join(("plain", "login", *self.oauth2_mechanisms)),
            oauth2_passdb=oauth2_passdb))

    def start(self) -> DovecotServer:
        if self._process is not None:
            return self
        log = open(self.root / "dovecot.stdout", "ab")  # noqa: SIM115 - handed to the child
        try:
            self._process = subprocess.Popen(
                [DOVECOT, "-F", "-c", str(self.root / "dovecot.conf")],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log)
        finally:
            log.close()
        self._wait_for_greeting()
        return self

    def _wait_for_greeting(self) -> None:
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                break
            try:
                with socket.create_connection((self.host, self.port), timeout=1) as sock:
                    if sock.recv(64).startswith(b"* OK"):
                        return
            except OSError:
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"Dovecot did not start; its log:\n{self.read_log()}")

    def read_log(self) -> str:
        parts = [p.read_text(errors="replace") for p in
                 (self.log_path, self.root / "dovecot.stdout") if p.exists()]
        return "\n".join(parts)[-4000:]

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None:
            return
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    def __enter__(self) -> DovecotServer:
        return self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.cleanup()

    def client(self) -> IMAPClient:
        """A logged-in client; the caller logs out."""
        client = IMAPClient(self.host, port=self.port, ssl=False, timeout=CLIENT_TIMEOUT_S)
        sock = client.socket()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.login(self.username, self.password)
        return client

    def create_folder(self, name: str) -> None:
        client = self.client()
        try:
            if not client.folder_exists(name):
                client.create_folder(name)
        finally:
            client.logout()

    def append(self, folder: str, raw: bytes, flags: Iterable[str] = ()) -> None:
        self.append_many(folder, [raw], flags)

    def imap_config(self, login: str | None = None) -> str:
        """This server as a mailbox's `imap:` block of mailbot's YAML configuration.

        `login` replaces the password with other keys (e.g. an OAuthProvider's login_config).
        """
        secret = login or f'password: "{self.password}"'
        return (f'{{host: {self.host}, port: {self.port}, security: none, '
                f'username: "{self.username}", {secret}, timeout: 10s}}')

    def append_many(self, folder: str, messages: Iterable[bytes],
                    flags: Iterable[str] = ()) -> int:
        client = self.client()
        count = 0
        try:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            for raw in messages:
                client.append(folder, raw, flags=tuple(flags))
                count += 1
        finally:
            client.logout()
        return count

    def list_uids(self, folder: str) -> list[int]:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            return sorted(int(u) for u in client.search(["UNDELETED"]))
        finally:
            client.logout()

    def count(self, folder: str) -> int:
        return len(self.list_uids(folder))

    def fetch_all(self, folder: str) -> list[bytes]:
        client = self.client()
        try:
            if not client.folder_exists(folder):
                return []
            client.select_folder(folder, readonly=True)
            uids = client.search(["UNDELETED"])
            if not uids:
                return []
            data = client.fetch(uids, ["BODY.PEEK[]"])
            return [bytes(data[uid][b"BODY[]"]) for uid in sorted(data)]
        finally:
            client.logout()


def _self_signed_certificate(cert: Path, key: Path) -> None:
    """A two-day certificate for 127.0.0.1 and localhost, made with openssl."""
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
         "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60)
