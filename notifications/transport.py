"""Hand finished messages over: to an SMTP server, to a folder of .eml files, or to a list.

A `Transport` opens a sending session with `connect()`; the `Sender` it yields sends one
message at a time and raises `DeliveryError` whose `permanent` flag tells the outbox whether
retrying can help. `permanent=True` means the server refused this message or its recipients
(5xx); everything else (4xx, timeouts, lost connections, a failed connect, TLS or login) is
transient, because it says nothing about the message itself. A connection lost or timed out
during DATA is also `unconfirmed`: the server may have taken the message without our hearing
its reply, so it is never resent on the spot (the outbox decides, at most once, later).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import ssl
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from typing import Any, Literal, Protocol

import aiosmtplib

from config.errors import DeliveryError
from notifications.message import parse_address

Security = Literal["ssl", "starttls", "plain"]

RECIPIENTS_HEADER = "X-Intake-Recipients"

log = logging.getLogger(__name__)


class Sender(Protocol):
    """An open sending session."""

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Deliver `message` to the envelope `recipients`; raise DeliveryError when it fails."""


class Transport(Protocol):
    """Something that can open sending sessions."""

    def connect(self) -> contextlib.AbstractContextManager[Sender]:
        """Open a session; everything sent inside the `with` block shares it."""


def _require_recipients(recipients: Sequence[str]) -> list[str]:
    if not recipients:
        raise DeliveryError("a message needs at least one envelope recipient", permanent=True)
    # Same rules as headers: a recipient must never smuggle a line break into a command.
    return [parse_address(recipient).addr_spec for recipient in recipients]


class SmtpTransport:
    """Sends over SMTP with aiosmtplib, one connection per `connect()` block."""

    def __init__(
        self,
        host: str,
        port: int,
        *,
        security: Security,
        username: str | None,
        password: str | None,
        timeout: float,
        tls_context: ssl.SSLContext | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.security = security
        self.username = username
        self.password = password
        self.timeout = timeout
        self.tls_context = tls_context

    @contextlib.contextmanager
    def connect(self) -> Iterator[Sender]:
        """Open an event loop for the block; the SMTP connection opens on the first send."""
        with asyncio.Runner() as runner:
            session = _SmtpSession(self, runner)
            try:
                yield session
            finally:
                runner.run(session.close())

    def check_login(self) -> None:
        """Connect and log in, then say QUIT: a DeliveryError saying what failed, if anything."""
        with asyncio.Runner() as runner:
            session = _SmtpSession(self, runner)
            try:
                runner.run(session._open())
            finally:
                runner.run(session.close())

    def new_client(self) -> _TrackedSmtp:
        """An unconnected aiosmtplib client configured for this server."""
        return _TrackedSmtp(
            hostname=self.host,
            port=self.port,
            timeout=self.timeout,
            use_tls=self.security == "ssl",
            start_tls=self.security == "starttls",
            tls_context=self.tls_context,
        )


class _TrackedSmtp(aiosmtplib.SMTP):
    """aiosmtplib's client, remembering whether the current mail got as far as DATA."""

    in_data = False

    async def data(self, message: str | bytes, /, **options: Any) -> aiosmtplib.SMTPResponse:
        """DATA as usual, flagged first: a loss from here on leaves the outcome unknown."""
        self.in_data = True
        return await super().data(message, **options)


class _SmtpSession:
    """The sync facade over one aiosmtplib connection, reconnecting once when it dropped."""

    def __init__(self, transport: SmtpTransport, runner: asyncio.Runner) -> None:
        self._transport = transport
        self._runner = runner
        self._client: _TrackedSmtp | None = None

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Deliver one message; see the module docstring for what each failure means."""
        envelope = _require_recipients(recipients)
        self._runner.run(self._send(message, envelope))

    async def _send(self, message: EmailMessage, recipients: list[str]) -> None:
        fresh = self._client is None or not self._client.is_connected
        if fresh:
            await self._open()
        try:
            await self._deliver(message, recipients)
        except DeliveryError:
            raise  # already judged; it is a ConnectionError too, so let it pass untouched
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            # An idle connection the server has closed shows up only when we write to it.
            await self.close()
            if fresh:
                raise self._transient(f"connection lost while sending: {exc}") from exc
            log.info("SMTP connection to %s was lost; reconnecting once", self._where())
            await self._open()
            try:
                await self._deliver(message, recipients)
            except DeliveryError:
                raise
            except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as again:
                await self.close()
                raise self._transient(
                    f"connection lost again after reconnecting: {again}"
                ) from again

    async def _deliver(self, message: EmailMessage, recipients: list[str]) -> None:
        client = self._client
        assert client is not None
        client.in_data = False
        try:
            refused, _ = await client.send_message(message, recipients=recipients)
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [refusal.code for refusal in exc.recipients]
            permanent = all(code >= 500 for code in codes)
            raise DeliveryError(
                f"{self._where()} refused every recipient: "
                + "; ".join(f"{r.recipient}: {r.code} {r.message}" for r in exc.recipients),
                permanent=permanent,
                code=codes[0] if codes else None,
            ) from exc
        except aiosmtplib.SMTPResponseException as exc:
            raise DeliveryError(
                f"{self._where()} refused the message: {exc.code} {exc.message}",
                permanent=exc.code >= 500,
                code=exc.code,
            ) from exc
        except aiosmtplib.SMTPTimeoutError as exc:
            await self.close()  # the conversation's state is unknown after a timeout
            if client.in_data:
                raise self._unconfirmed(
                    f"no reply within {self._transport.timeout} s after the message was sent"
                ) from exc
            raise self._transient(f"timed out after {self._transport.timeout} s: {exc}") from exc
        except (aiosmtplib.SMTPServerDisconnected, ConnectionError) as exc:
            if not client.in_data:
                raise  # before DATA: nothing was handed over, reconnecting is safe
            await self.close()
            raise self._unconfirmed(
                f"connection lost after the message was sent, before the reply: {exc}"
            ) from exc
        if refused:
            # Some recipients took it: raising would make the outbox send it to them again.
            log.warning(
                "%s accepted message %s but refused %s",
                self._where(),
                message["Message-ID"],
                ", ".join(
                    f"{who} ({reply.code} {reply.message})" for who, reply in refused.items()
                ),
            )

    async def _open(self) -> None:
        client = self._transport.new_client()
        try:
            await client.connect()
            # Log in ourselves rather than inside connect(), so that a refused login still
            # leaves us the connection to shut down properly.
            if self._transport.username is not None:
                await client.login(self._transport.username, self._transport.password or "")
        except aiosmtplib.SMTPAuthenticationError as exc:
            await _shut(client)
            raise self._transient(
                f"login as {self._transport.username!r} refused ({exc.code} {exc.message}); "
                "check the SMTP username and password",
                code=exc.code,
            ) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            await _shut(client)
            raise self._transient(
                f"cannot connect ({self._transport.security}): {exc}; check host, port, "
                "security and that the server is up"
            ) from exc
        self._client = client

    async def close(self) -> None:
        """Say QUIT if the connection is still up, then make sure its socket is closed."""
        client, self._client = self._client, None
        if client is not None:
            await _shut(client)

    def _where(self) -> str:
        return f"SMTP server {self._transport.host}:{self._transport.port}"

    def _transient(self, detail: str, *, code: int | None = None) -> DeliveryError:
        return DeliveryError(f"{self._where()}: {detail}", permanent=False, code=code)

    def _unconfirmed(self, detail: str) -> DeliveryError:
        return DeliveryError(
            f"{self._where()}: did not confirm the mail ({detail})",
            permanent=False,
            unconfirmed=True,
        )


async def _shut(client: aiosmtplib.SMTP) -> None:
    """QUIT if still connected, then abort the socket so it is closed before the loop ends."""
    transport = client.transport
    if client.is_connected:
        with contextlib.suppress(aiosmtplib.SMTPException, OSError):
            await client.quit()
    if isinstance(transport, asyncio.Transport):
        # After QUIT nothing is left to say; a TLS close() would wait for the server's
        # close_notify, and the event loop ends before it comes, leaking the socket.
        transport.abort()
        for _ in range(3):  # the socket closes in callbacks a loop iteration later
            await asyncio.sleep(0)


class FileTransport:
    """Writes each message to `directory` as `<timestamp>-<n>.eml`, for the demo and tests.

    The envelope recipients are recorded in an `X-Intake-Recipients` header prepended to the
    file, so one file is the whole story. Files appear atomically (written aside, then linked
    into place), so a reader never sees half a message and no file is overwritten.
    """

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    @contextlib.contextmanager
    def connect(self) -> Iterator[Sender]:
        """Make sure the directory exists and yield a sender writing into it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise DeliveryError(
                f"cannot create the mail folder {self.directory}: {exc}", permanent=False
            ) from exc
        yield _FileSender(self.directory)


class _FileSender:
    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._count = 0

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Write one message file; raise a transient DeliveryError if the disk refuses."""
        envelope = _require_recipients(recipients)
        linesep = message.policy.linesep
        data = (
            f"{RECIPIENTS_HEADER}: {', '.join(envelope)}{linesep}".encode("ascii")
            + message.as_bytes()
        )
        try:
            self._write(data)
        except OSError as exc:
            raise DeliveryError(
                f"cannot write a message into {self._directory}: {exc}", permanent=False
            ) from exc

    def _write(self, data: bytes) -> Path:
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        handle, temporary = tempfile.mkstemp(dir=self._directory, prefix=".", suffix=".tmp")
        try:
            with os.fdopen(handle, "wb") as output:
                output.write(data)
                output.flush()
                os.fsync(output.fileno())
            while True:
                self._count += 1
                target = self._directory / f"{stamp}-{self._count}.eml"
                try:
                    os.link(temporary, target)  # fails rather than overwrite
                except FileExistsError:
                    continue
                return target
        finally:
            os.unlink(temporary)


@dataclass(frozen=True)
class SentMessage:
    """What a RecordingTransport was asked to send."""

    message: EmailMessage
    recipients: list[str]


@dataclass
class RecordingTransport:
    """An honest fake: keeps every message in `sent`, counts sessions in `connections`.

    `outcomes` scripts failures: each send takes the next item, raising it if it is a
    DeliveryError, recording the message if it is None; when exhausted every send succeeds.
    """

    outcomes: list[DeliveryError | None] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    connections: int = 0

    @contextlib.contextmanager
    def connect(self) -> Iterator[Sender]:
        """Count the session and yield a sender that records into `sent`."""
        self.connections += 1
        yield self

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        """Record the message, or raise the next scripted DeliveryError."""
        envelope = _require_recipients(recipients)
        if self.outcomes:
            outcome = self.outcomes.pop(0)
            if outcome is not None:
                raise outcome
        self.sent.append(SentMessage(message=message, recipients=envelope))
