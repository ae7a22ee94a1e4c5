"""A poller in its own process, for tests that kill it: `python -m tests.support.crash_poller`.

Arguments: database URL, work directory, host, port, username, password, batch size, and
optionally a pause point `WHERE:N`. At the pause point the poller prints `paused WHERE N` and
waits for a signal, so a test kills it at a chosen moment rather than after a guessed delay:

- `fetch:N`   the N-th message came from the server (its batch is not archived yet);
- `archive:N` the N-th batch's files are in the archive, its ledger rows not committed;
- `batch:N`   the N-th batch is committed (archive, ledger rows and cursor);
- `read:N`    processing read the N-th message from the archive;
- `mark:N`    the N-th after-processing command is about to go to the server.

Without a pause point it runs one `poll()` to its end and prints the report as JSON as its
last line.
"""

from __future__ import annotations

import dataclasses
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path
from typing import Self

from service.archive import Archive
from service.ingest import poll
from service.mailbox import FetchedMessage, FolderState, ImapMailbox, RemoteMessage
from tests.support.apps import make_app

PAUSE_POINTS = ("fetch", "archive", "batch", "read", "mark")


class PausePoint:
    """Counts events of one kind and stops the process at the chosen one."""

    def __init__(self, spec: str) -> None:
        where, _, count = spec.partition(":")
        if spec and (where not in PAUSE_POINTS or not count.isdigit()):
            raise SystemExit(f"pause point {spec!r}: expected one of {PAUSE_POINTS} and :N")
        self.where = where
        self.at = int(count) if spec else 0
        self.seen = 0

    def reached(self, where: str) -> None:
        """Count one `where` event; at the chosen one, announce it and wait to be killed."""
        if where != self.where:
            return
        self.seen += 1
        if self.seen == self.at:
            print(f"paused {where} {self.seen}", flush=True)
            while True:
                signal.pause()


class PausingArchive(Archive):
    """The real archive, announcing writes of batches and reads of messages to the pause point."""

    def __init__(self, root: Path, pause: PausePoint) -> None:
        super().__init__(root)
        self.pause = pause

    def put_many(self, payloads: Sequence[bytes]) -> list[str]:
        """Store the batch, then count it."""
        digests = super().put_many(payloads)
        self.pause.reached("archive")
        return digests

    def get(self, sha256: str) -> bytes:
        """Read a file, then count it."""
        data = super().get(sha256)
        self.pause.reached("read")
        return data


class PausingMailbox:
    """The real IMAP mailbox, announcing fetched messages and after-commands to the pause point."""

    def __init__(self, inner: ImapMailbox, pause: PausePoint) -> None:
        self.inner = inner
        self.pause = pause
        self.account = inner.account
        self.folder = inner.folder
        self.stable_uids = inner.stable_uids

    def __enter__(self) -> Self:
        self.inner.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.inner.__exit__(*exc)

    def state(self) -> FolderState:
        """As the real mailbox."""
        return self.inner.state()

    def list_newer(self, above_uid: int, *, since: date | None = None) -> list[RemoteMessage]:
        """As the real mailbox."""
        return self.inner.list_newer(above_uid, since=since)

    def fetch(self, uids: Sequence[int], *, batch_size: int = 50) -> Iterator[FetchedMessage]:
        """Each message as the real mailbox gives it, counted."""
        for fetched in self.inner.fetch(uids, batch_size=batch_size):
            self.pause.reached("fetch")
            yield fetched

    def fetch_headers(self, uids: Sequence[int]) -> dict[int, bytes]:
        """As the real mailbox."""
        return self.inner.fetch_headers(uids)

    def apply_after(self, uids: Sequence[int], action: str) -> None:
        """Counted, then as the real mailbox."""
        self.pause.reached("mark")
        self.inner.apply_after(uids, action)

    def wait_for_new(self, timeout: float) -> bool:
        """As the real mailbox."""
        return self.inner.wait_for_new(timeout)


def main(argv: list[str]) -> int:
    db_url, workdir, host, port, username, password, batch_size, *rest = argv
    pause = PausePoint(rest[0] if rest else "")
    app = make_app(
        db_url,
        Path(workdir),
        open_mailbox=lambda: PausingMailbox(
            ImapMailbox(
                host,
                int(port),
                username=username,
                password=password,
                security="plain",
                timeout=10.0,
            ),
            pause,
        ),
        mailbox={"batch_size": int(batch_size), "after": "seen"},
    )
    app.archive = PausingArchive(app.archive.root, pause)

    def announce(done: int, total: int) -> None:
        print(f"progress {done} {total}", flush=True)
        if done:
            pause.reached("batch")

    report = poll(app, progress=announce)
    print(json.dumps(dataclasses.asdict(report)), flush=True)
    app.engine.dispose()
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
