"""Run `deliver()` in a process of its own, for crash tests (`-m tests.support.deliver_crash`).

It prints `ready` once the application is built, then delivers the outbox to an SMTP server.
With `--exit-after N` the transport is the real `SmtpTransport`, wrapped so that the process
ends (`os._exit`, no cleanup, like a power cut) right after the server accepted the N-th mail
and before the outbox could record it: the one window the outbox documents.
"""

from __future__ import annotations

import argparse
import contextlib
import os
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


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--db", required=True)
    parser.add_argument("--workdir", required=True, type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", required=True, type=int)
    parser.add_argument("--exit-after", type=int, default=0)
    options = parser.parse_args(argv)
    smtp = SmtpTransport(
        options.host, options.port, security="plain", username=None, password=None, timeout=10.0
    )
    transport = ExitAfterAccepted(smtp, options.exit_after) if options.exit_after else smtp
    app = make_app(options.db, options.workdir, transport=transport, clock=lambda: CLOCK)
    print("ready", flush=True)
    report = deliver(app)
    print(f"sent {report.sent}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
