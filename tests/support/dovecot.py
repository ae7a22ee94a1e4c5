"""A real Dovecot IMAP server on loopback, started once per test session.

Follows the recipe in docs/testing.md: a private config under a 0755 temp dir in /tmp, a
short base_dir, `mail_uid = nobody`, and a static passdb so users added by a test can log
in at once. The plain port offers STARTTLS; a second port speaks IMAPS with a self-signed
certificate that `ssl_context()` trusts.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path

import pytest
from imapclient import IMAPClient

from tests.support.services import free_port, missing_service

SHARED_PASSWORD = "intake-test-pw"
"""Every user made by `DovecotServer.user()` logs in with this (Dovecot's static passdb)."""

STARTUP_TIMEOUT = 10.0
SHUTDOWN_TIMEOUT = 10.0

CONFIG_TEMPLATE = """\
instance_name = intake-test-{instance}
base_dir = {base}/run
state_dir = {base}/state
log_path = {base}/dovecot.log
protocols = imap
listen = 127.0.0.1, {no_move_host}, {minimal_host}
ssl = yes
ssl_cert = <{base}/cert.pem
ssl_key = <{base}/key.pem
disable_plaintext_auth = no
auth_mechanisms = plain login
auth_failure_delay = 0
mail_location = maildir:~/Maildir
mail_uid = nobody
mail_gid = nogroup
first_valid_uid = 1
first_valid_gid = 1

passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {base}/users
}}
passdb {{
  driver = static
  args = password={password}
}}
userdb {{
  driver = static
  args = home={base}/mail/%u
}}

# Without this, anvil's auth penalty delays every login from 127.0.0.1 by up to 15 s
# after a test's deliberate wrong password: an unconnectable socket turns it off.
service anvil {{
  unix_listener anvil-auth-penalty {{
    mode = 0
  }}
}}

service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1, {no_move_host}, {minimal_host}
    port = {port}
  }}
  inet_listener imaps {{
    address = 127.0.0.1
    port = {imaps_port}
    ssl = yes
  }}
}}

# The same server, reached on other loopback addresses, advertises fewer extensions, so
# tests can drive a client's fallbacks (COPY instead of MOVE, no IDLE, no UIDPLUS).
local {no_move_host} {{
  protocol imap {{
    imap_capability = IMAP4rev1 IDLE UIDPLUS UNSELECT
  }}
}}
local {minimal_host} {{
  protocol imap {{
    imap_capability = IMAP4rev1
  }}
}}
"""


class DovecotServer:
    """One Dovecot instance: where it listens, how to add users, and how to stop and restart it.

    `stop()` and `start()` keep the config, the ports and the mail on disk, so a test can
    make the server vanish mid-conversation and come back exactly as it was.
    """

    host = "127.0.0.1"
    no_move_host = "127.0.0.2"
    """Same port and mail, but the capability list has IDLE and UIDPLUS and lacks MOVE."""
    minimal_host = "127.0.0.3"
    """Same port and mail, advertising plain IMAP4rev1 only (no MOVE, UIDPLUS or IDLE)."""

    def __init__(self, base: Path) -> None:
        self.base = base
        self.port = free_port()
        self.imaps_port = free_port()
        self.cert_path = base / "cert.pem"
        self.config_path = base / "dovecot.conf"
        self._process: subprocess.Popen[bytes] | None = None
        self._user_numbers = itertools.count(1)

    # -- lifecycle ---------------------------------------------------------------------

    def configure(self) -> None:
        """Write the certificate, the users file, the mail root and dovecot.conf."""
        subprocess.run(
            [
                "openssl", "req", "-x509", "-newkey", "ec",
                "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "2",
                "-subj", "/CN=localhost", "-addext", "subjectAltName=IP:127.0.0.1",
                "-keyout", str(self.base / "key.pem"), "-out", str(self.cert_path),
            ],
            check=True,
            capture_output=True,
        )  # fmt: skip
        (self.base / "users").write_text(f"fixture:{{PLAIN}}{SHARED_PASSWORD}\n")
        mail_root = self.base / "mail"
        mail_root.mkdir()
        shutil.chown(mail_root, "nobody", "nogroup")
        self.config_path.write_text(
            CONFIG_TEMPLATE.format(
                instance=self.base.name,
                base=self.base,
                password=SHARED_PASSWORD,
                port=self.port,
                imaps_port=self.imaps_port,
                no_move_host=self.no_move_host,
                minimal_host=self.minimal_host,
            )
        )

    def start(self) -> None:
        """Run Dovecot in the foreground and wait until the plain port greets with `* OK`."""
        if self._process is not None:
            return
        self._process = subprocess.Popen(
            ["dovecot", "-F", "-c", str(self.config_path)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so stop() can end the children
        )
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                errors = (
                    self._process.stderr.read().decode(errors="replace")
                    if self._process.stderr
                    else ""
                )
                self._process = None
                raise RuntimeError(f"dovecot exited at start: {errors}\n{self.log_tail()}")
            if self._greets():
                return
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"dovecot did not greet on port {self.port}\n{self.log_tail()}")

    def stop(self) -> None:
        """SIGTERM the master, then its leftover children; idempotent.

        Dovecot 2.3's imap processes outlive a stopped master and keep serving their
        clients, so the whole process group (this instance only) is ended, as a real
        server crash or restart would.
        """
        process, self._process = self._process, None
        if process is None:
            return
        group = process.pid  # start_new_session: the master leads its own group
        _signal_group(group, signal.SIGTERM)  # children too, while the master can reap them
        try:
            process.wait(timeout=SHUTDOWN_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        _end_process_group(group)
        if process.stderr is not None:
            process.stderr.close()

    @property
    def running(self) -> bool:
        """True while the master process is alive."""
        return self._process is not None and self._process.poll() is None

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of Dovecot's log, for failure messages."""
        log = self.base / "dovecot.log"
        if not log.exists():
            return ""
        return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])

    def _greets(self) -> bool:
        try:
            with socket.create_connection((self.host, self.port), timeout=1.0) as probe:
                return probe.recv(64).startswith(b"* OK")
        except OSError:
            return False

    # -- users and mail ------------------------------------------------------------------

    def user(self, name: str = "user") -> tuple[str, str]:
        """A brand-new user (and so an empty mailbox): returns (username, password)."""
        return f"{name}{next(self._user_numbers)}", SHARED_PASSWORD

    def ssl_context(self) -> ssl.SSLContext:
        """A client context that trusts this server's self-signed certificate."""
        context = ssl.create_default_context(cafile=str(self.cert_path))
        return context

    def client(self, username: str) -> IMAPClient:
        """A logged-in plain-port IMAPClient for tests to append and inspect (debug off)."""
        client = IMAPClient(self.host, self.port, ssl=False, timeout=10.0)
        client._imap.debug = 0  # imapclient's default debug level formats every body
        client.normalise_times = False
        client.login(username, SHARED_PASSWORD)
        return client

    def append(
        self,
        username: str,
        raw: bytes,
        folder: str = "INBOX",
        internaldate: datetime | None = None,
        flags: Sequence[str] = (),
    ) -> int:
        """APPEND one message as `username` and return its UID (from APPENDUID)."""
        with self.client(username) as client:
            if not client.folder_exists(folder):
                client.create_folder(folder)
            response = client.append(folder, raw, flags=tuple(flags), msg_time=internaldate)
        return _uid_from_appenduid(response)

    def recreate_folder(self, username: str, folder: str) -> None:
        """Delete `folder` and make it again, empty, so its UIDVALIDITY changes.

        INBOX cannot be deleted over IMAP, so for INBOX the Maildir's messages and index
        files are removed on disk; Dovecot then assigns a fresh UIDVALIDITY on next access.
        """
        if folder.upper() == "INBOX":
            self._reset_inbox_on_disk(username)
            return
        with self.client(username) as client:
            if client.folder_exists(folder):
                client.delete_folder(folder)
            client.create_folder(folder)

    def _reset_inbox_on_disk(self, username: str) -> None:
        maildir = self.base / "mail" / username / "Maildir"
        if not maildir.exists():
            return
        for entry in maildir.iterdir():
            if entry.name in ("cur", "new", "tmp"):
                shutil.rmtree(entry)
            elif (
                entry.is_file()
                and entry.name.startswith("dovecot")
                and (
                    "uidvalidity" not in entry.name  # keep the counter so the value changes
                )
            ):
                entry.unlink()


def _signal_group(group: int, sig: signal.Signals) -> None:
    """Send `sig` to a process group that may already be gone."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, sig)


def _end_process_group(group: int) -> None:
    """SIGTERM what is left of a process group, then SIGKILL it if it lingers."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            try:
                os.killpg(group, 0)
            except ProcessLookupError:
                return
            time.sleep(0.02)


def _uid_from_appenduid(response: bytes) -> int:
    """Dovecot answers APPEND with `[APPENDUID <validity> <uid>] ...` (UIDPLUS)."""
    text = response.decode(errors="replace")
    if "APPENDUID" not in text:
        raise RuntimeError(f"APPEND answer has no APPENDUID: {text}")
    return int(text.split("APPENDUID", 1)[1].split("]", 1)[0].split()[1])


@pytest.fixture(scope="session")
def dovecot() -> Iterator[DovecotServer]:
    """A running Dovecot for the whole session; stopped with SIGTERM at the end."""
    if shutil.which("dovecot") is None:
        missing_service("Dovecot", "apt-get install dovecot-imapd")
    if shutil.which("openssl") is None:
        missing_service("openssl", "apt-get install openssl")
    base = Path(tempfile.mkdtemp(prefix="dc", dir="/tmp"))
    os.chmod(base, 0o755)  # auth runs as the dovecot user and must read the users file
    server = DovecotServer(base)
    try:
        server.configure()
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(base, ignore_errors=True)
