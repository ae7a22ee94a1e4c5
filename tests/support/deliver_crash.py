"""Run `deliver()` in a process of its own, for crash tests (`-m tests.support.deliver_crash`).

It prints `ready` once the application is built, then delivers the outbox to an SMTP server.
With `--exit-after N` the transport is the real `SmtpTransport`, wrapped so that the process
ends (`os._exit`, no cleanup, like a power cut) right after the server accepted the N-th mail
and before the outbox could record it: the one window the outbox documents. With
`--pause before:N` or `--pause after:N` it prints `paused` just before the N-th mail goes to the
server, or just after the server accepted it, and waits there to be killed: a test kills it at
a chosen moment, never after a guessed delay.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

from notifications.transport import Sender, SmtpTransport
from service.outbox import deliver
from tests.support.apps import make_app

CLOCK = datetime(2025, 7, 20, 9, 0, tzinfo=UTC)
EXIT_STATUS = 57


class ExitAfterAccepted:
    """A real SMTP transport whose process dies right after the N-th accepted mail."""

    def __init__(self, inner: SmtpTransport, exit_after: int) -> None:
        self.inner = inner
        self.left = exit_after

    @contextlib.contextmanager
    def connect(self) -> Iterator[Sender]:
        with self.inner.connect() as sender:
            yield _Dying(sender, self)


class _Dying:
    def __init__(self, sender: Sender, owner: ExitAfterAccepted) -> None:
        self.sender = sender
        self.owner = owner

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        self.sender.send(message, recipients)
        self.owner.left -= 1
        if self.owner.left <= 0:
            os._exit(EXIT_STATUS)


class PauseAt:
    """A real SMTP transport whose process stops before or after the N-th mail and waits."""

    def __init__(self, inner: SmtpTransport, spec: str) -> None:
        where, _, count = spec.partition(":")
        if where not in ("before", "after") or not count.isdigit():
            raise SystemExit(f"--pause {spec}: expected before:N or after:N")
        self.inner = inner
        self.where = where
        self.left = int(count)

    @contextlib.contextmanager
    def connect(self) -> Iterator[Sender]:
        with self.inner.connect() as sender:
            yield _Pausing(sender, self)


class _Pausing:
    def __init__(self, sender: Sender, owner: PauseAt) -> None:
        self.sender = sender
        self.owner = owner

    def send(self, message: EmailMessage, recipients: Sequence[str]) -> None:
        self.owner.left -= 1
        if self.owner.where == "before":
            self._pause_if_due()
        self.sender.send(message, recipients)
        if self.owner.where == "after":
            self._pause_if_due()

    def _pause_if_due(self) -> None:
        if self.owner.left == 0:
            print(f"paused {self.owner.where}", flush=True)
            while True:
                signal.pause()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--exit-after", type=int, default=0)
    parser.add_argument("--pause", default="")
    options = parser.parse_args(argv)
    smtp = SmtpTransport(
        options.host, options.port, security="plain", username=None, password=None, timeout=10.0
    )
    transport: SmtpTransport | ExitAfterAccepted | PauseAt = smtp
    if options.exit_after:
        transport = ExitAfterAccepted(smtp, options.exit_after)
    elif options.pause:
        transport = PauseAt(smtp, options.pause)
    app = make_app(options.db, options.workdir, transport=transport, clock=lambda: CLOCK)
    print("ready", flush=True)
    report = deliver(app)
    print(f"sent {report.sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
