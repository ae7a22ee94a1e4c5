"""A real SMTP server on loopback (aiosmtpd) that records what it receives, as pytest fixtures.

`SmtpSink` runs aiosmtpd's Controller in a thread on 127.0.0.1 and keeps every accepted
envelope. Options: STARTTLS or implicit TLS with a self-signed certificate (made once per
session with the openssl command), AUTH with a user table, scripted replies to DATA
(`["451 try later", "250 OK", "550 no such user"]`, then "250 OK" for ever), and closing the
connection after N messages on it. Two script entries take the message without confirming
it: `"drop"` closes the connection instead of replying, `"late"` holds the reply until the
client has given up waiting (its timeout) and closed the connection. `connections` counts
the TCP connections clients opened.

Fixtures: `smtp_sink` (a plain sink shared by the session, cleared for each test) and
`smtp_sink_factory(**options)` (a fresh sink with options, stopped after the test).
"""

from __future__ import annotations

import asyncio
import email
import functools
import shutil
import ssl
import subprocess
import tempfile
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from email import policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, cast

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from notifications.transport import SmtpTransport
from tests.support.services import free_port, missing_service

SinkSecurity = Literal["plain", "starttls", "ssl"]


@dataclass(frozen=True)
class ReceivedEnvelope:
    """One message the sink accepted: envelope, raw bytes and the parsed message."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    connection: int  # 1-based number of the connection that carried it

    @functools.cached_property
    def message(self) -> EmailMessage:
        """The message parsed (on first use: parsing costs more than receiving)."""
        parsed = email.message_from_bytes(self.data, policy=policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass(frozen=True)
class SelfSignedCertificate:
    """A certificate for 127.0.0.1 / localhost, with contexts for both ends."""

    cert_path: Path
    key_path: Path

    def server_context(self) -> ssl.SSLContext:
        """What the sink presents."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_path, self.key_path)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A verifying client context that trusts exactly this certificate."""
        return ssl.create_default_context(cafile=str(self.cert_path))


def make_self_signed_certificate(directory: Path) -> SelfSignedCertificate:
    """Create an EC certificate for 127.0.0.1 with the openssl command (~10 ms)."""
    openssl = shutil.which("openssl")
    if openssl is None:
        missing_service("openssl", "install it (apt-get install -y openssl) for TLS tests")
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    subprocess.run(
        [
            cast(str, openssl),
            "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-nodes", "-days", "2", "-subj", "/CN=localhost",
            "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost",
            "-keyout", str(key_path), "-out", str(cert_path),
        ],
        check=True,
        capture_output=True,
    )  # fmt: skip
    return SelfSignedCertificate(cert_path=cert_path, key_path=key_path)


class _SinkHandler:
    """aiosmtpd hooks: answer DATA from the script, record what was accepted."""

    def __init__(self, sink: SmtpSink) -> None:
        self._sink = sink

    async def handle_DATA(  # noqa: N802 (the name aiosmtpd calls)
        self, server: _SinkServer, session: Session, envelope: Envelope
    ) -> str:
        reply = self._sink._take_delivery(server, envelope)
        if server.reply_late:
            await server.closed.wait()  # the reply comes only after the client gave up
        return reply


class _SinkServer(SMTP):
    """One client connection; closes itself after replying when the sink says so."""

    def __init__(
        self, handler: _SinkHandler, *, sink: SmtpSink, number: int, **kwargs: Any
    ) -> None:
        super().__init__(handler, **kwargs)
        self.sink = sink
        self.number = number
        self.accepted_here = 0
        self.drop_after_reply = False
        self.drop_instead_of_reply = False
        self.reply_late = False
        self.closed = asyncio.Event()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self.sink._live.add(self)

    def connection_lost(self, error: Exception | None) -> None:
        self.sink._live.discard(self)
        self.closed.set()
        super().connection_lost(error)

    async def push(self, status: Any) -> None:
        if self.drop_instead_of_reply and self.transport is not None:
            self.drop_instead_of_reply = False
            self.transport.close()  # the message was taken; the client never hears so
            return
        if self.transport is None or self.transport.is_closing() or self.closed.is_set():
            return  # a late reply to a client that has gone
        await super().push(status)

    async def smtp_DATA(self, arg: str) -> None:  # noqa: N802 (overrides aiosmtpd)
        await super().smtp_DATA(arg)
        if self.drop_after_reply and self.transport is not None:
            self.transport.close()  # flushes the 250 reply first, then FIN


class _SinkController(Controller):
    def __init__(self, sink: SmtpSink, **kwargs: Any) -> None:
        super().__init__(_SinkHandler(sink), **kwargs)
        self._sink = sink

    def factory(self) -> _SinkServer:
        number = self._sink._count_connection()
        return _SinkServer(self.handler, sink=self._sink, number=number, **self.SMTP_kwargs)


class SmtpSink:
    """An aiosmtpd server on 127.0.0.1 that records every accepted message in `received`."""

    def __init__(
        self,
        *,
        security: SinkSecurity = "plain",
        certificate: SelfSignedCertificate | None = None,
        users: dict[str, str] | None = None,
        replies: Sequence[str] = (),
        drop_after: int | None = None,
    ) -> None:
        if security != "plain" and certificate is None:
            raise ValueError(f"a {security} sink needs a certificate")
        if users is not None and security == "plain":
            # aiosmtpd offers AUTH only over TLS unless told otherwise, and warns then.
            raise ValueError("AUTH needs security='starttls' or 'ssl'")
        self.host = "127.0.0.1"
        self.port = free_port()
        self.security = security
        self.certificate = certificate
        self.users = users
        self.default_replies = list(replies)
        self.default_drop_after = drop_after
        self._lock = threading.Lock()
        self._controller: _SinkController | None = None
        self._live: set[_SinkServer] = set()  # touched only from the server thread
        self.received: list[ReceivedEnvelope] = []
        self.refused: list[str] = []  # replies given instead of accepting a message
        self.logins: list[str] = []
        self.connections = 0
        self.replies = list(self.default_replies)
        self.drop_after = self.default_drop_after

    @property
    def client_tls_context(self) -> ssl.SSLContext | None:
        """A client context that trusts the sink's certificate (None for a plain sink)."""
        return None if self.certificate is None else self.certificate.client_context()

    def transport(self) -> SmtpTransport:
        """The production SMTP transport pointed at this (plain, login-free) sink."""
        return SmtpTransport(
            self.host, self.port, security="plain", username=None, password=None, timeout=10.0
        )

    def arrivals(self) -> Counter[str]:
        """How many times each outgoing Message-ID reached this sink."""
        return Counter(str(item.message["Message-ID"]).strip() for item in self.received)

    def script(self, replies: Sequence[str]) -> None:
        """Answer the next DATA commands with `replies`, in order, then "250 OK" again."""
        with self._lock:
            self.replies = list(replies)

    def clear(self) -> None:
        """Forget what was received and counted; restore the configured script."""
        with self._lock:
            self.received.clear()
            self.refused.clear()
            self.logins.clear()
            self.connections = 0
            self.replies = list(self.default_replies)
            self.drop_after = self.default_drop_after

    def start(self) -> SmtpSink:
        """Listen; return self for chaining."""
        options: dict[str, Any] = {
            "hostname": self.host,
            "port": self.port,
            "server_hostname": "sink.intake.test",  # avoids a slow getfqdn() per connection
            "ready_timeout": 5.0,
        }
        if self.security == "ssl":
            assert self.certificate is not None
            options["ssl_context"] = self.certificate.server_context()
        elif self.security == "starttls":
            assert self.certificate is not None
            options["tls_context"] = self.certificate.server_context()
            options["require_starttls"] = True
        if self.users is not None:
            options["authenticator"] = self._authenticate
            options["auth_required"] = True
        self._controller = _SinkController(self, **options)
        self._controller.start()
        self.clear()  # the controller's own readiness probe is not a client connection
        return self

    def stop(self) -> None:
        """Stop listening and join the server thread."""
        if self._controller is None:
            return
        # Close open connections in the server's loop first: aiosmtpd's stop() only cancels
        # tasks, leaving their sockets to the garbage collector (a ResourceWarning).
        asyncio.run_coroutine_threadsafe(self._close_connections(), self._controller.loop).result(
            timeout=5
        )
        self._controller.stop()
        self._controller = None

    async def _close_connections(self) -> None:
        # abort(), not close(): a TLS transport's close() waits for the peer's close_notify,
        # which a client that has already gone never sends.
        for server in list(self._live):
            if isinstance(server.transport, asyncio.Transport):
                server.transport.abort()
        for _ in range(100):  # connection_lost arrives a loop iteration or two later
            if not self._live:
                break
            await asyncio.sleep(0.001)

    def __enter__(self) -> SmtpSink:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def _count_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def _authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
    ) -> AuthResult:
        if isinstance(auth_data, LoginPassword) and self.users is not None:
            login = auth_data.login.decode("utf-8", "replace")
            if self.users.get(login) == auth_data.password.decode("utf-8", "replace"):
                with self._lock:
                    self.logins.append(login)
                return AuthResult(success=True)
        # handled=False lets aiosmtpd send 535; handled=True would leave the client hanging.
        return AuthResult(success=False, handled=False)

    def _take_delivery(self, server: _SinkServer, envelope: Envelope) -> str:
        with self._lock:
            reply = self.replies.pop(0) if self.replies else "250 OK"
            if reply in ("drop", "late"):
                server.drop_instead_of_reply = reply == "drop"
                server.reply_late = reply == "late"
                reply = "250 OK"
            if not reply.startswith("2"):
                self.refused.append(reply)
                return reply
            data = cast(bytes, envelope.original_content or envelope.content)
            self.received.append(
                ReceivedEnvelope(
                    mail_from=envelope.mail_from or "",
                    rcpt_tos=list(envelope.rcpt_tos),
                    data=data,
                    connection=server.number,
                )
            )
            server.accepted_here += 1
            if self.drop_after is not None and server.accepted_here >= self.drop_after:
                server.drop_after_reply = True
            return reply


@pytest.fixture(scope="session")
def smtp_sink_certificate() -> Iterator[SelfSignedCertificate]:
    """One self-signed certificate for the whole test session."""
    directory = Path(tempfile.mkdtemp(prefix="intake-smtp-tls-"))
    try:
        yield make_self_signed_certificate(directory)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


@pytest.fixture(scope="session")
def _shared_plain_smtp_sink() -> Iterator[SmtpSink]:
    with SmtpSink() as sink:
        yield sink


@pytest.fixture
def smtp_sink(_shared_plain_smtp_sink: SmtpSink) -> Iterator[SmtpSink]:
    """A plain SMTP sink with nothing received yet (shared server, cleared per test)."""
    _shared_plain_smtp_sink.clear()
    yield _shared_plain_smtp_sink
    _shared_plain_smtp_sink.clear()


@pytest.fixture
def smtp_sink_factory(
    request: pytest.FixtureRequest,
) -> Iterator[Callable[..., SmtpSink]]:
    """Start sinks with options (security=, users=, replies=, drop_after=); stopped after."""
    started: list[SmtpSink] = []

    def start_sink(**options: Any) -> SmtpSink:
        if options.get("security", "plain") != "plain" and "certificate" not in options:
            options["certificate"] = request.getfixturevalue("smtp_sink_certificate")
        sink = SmtpSink(**options).start()
        started.append(sink)
        return sink

    yield start_sink
    for sink in started:
        sink.stop()
