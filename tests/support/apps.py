"""Build a real `App` for tests: a real database, archive and mailbox, any transport."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session

from config.settings import SAMPLES, Settings
from notifications.transport import RecordingTransport, Transport
from service.archive import Archive
from service.bootstrap import App, CampaignTimeRenderer
from service.db import create_db_engine, upgrade_schema
from service.imports import import_submissions
from service.ingest import PollReport, poll
from service.mailbox import DirectoryMailbox, ImapMailbox, Mailbox
from service.ocr_jobs import OcrPool, OcrReport, release_held_receipts, run_ocr_jobs
from service.register import build_register

SAMPLE_EXPORT = SAMPLES / "submissions.xlsx"
"""The online system's export that goes with the sample mailbox."""
SAMPLE_INDEX = json.loads((SAMPLES / "mailbox" / "index.json").read_text(encoding="utf-8"))
TRUTH = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))
EXPECTED_RECEIPTS = {
    message["message_id"]: message["sender"]
    for message in TRUTH["messages"]
    if message["unit_receipt"] is True
}
"""In-Reply-To of each unit receipt the samples must produce -> the address it goes to."""


ENGINES: list[sa.Engine] = []
"""Every engine `make_app` built during the current test, disposed after it (tests/conftest.py)."""


def dispose_engines() -> None:
    """Close the pooled connections of every engine built by `make_app` since the last call.

    An engine left for the garbage collector closes nothing: psycopg then warns "connection
    deleted while still open" in whichever later test is running, and warnings are errors.
    """
    while ENGINES:
        ENGINES.pop().dispose()


class MovableClock:
    """An App's clock that the test moves by hand (`clock.now += timedelta(...)`)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def make_app(
    db_url: str,
    workdir: Path,
    *,
    open_mailbox: Callable[[], Mailbox] | None = None,
    transport: Transport | None = None,
    clock: Callable[[], datetime] | None = None,
    **sections: dict[str, Any],
) -> App:
    """An App on `db_url` with its archive under `workdir`, opening mail with `open_mailbox`
    (default: the sample mailbox); keyword sections (`mailbox={...}`, `schedule={...}`) override
    those settings. `campaign.reply_to_old_mail` defaults to true here."""
    # the samples are a season of mail already in the mailbox at the first poll: reply to it,
    # as a campaign replies to mail arriving over the season (tests of the first poll say no)
    sections["campaign"] = {"reply_to_old_mail": True, **sections.get("campaign", {})}
    # OCR (seconds a page) only where a test asks for it: `ocr={"enabled": True, ...}`
    sections["ocr"] = {"enabled": False, **sections.get("ocr", {})}
    settings = Settings(
        database={"url": db_url},
        storage={"path": workdir / "archive"},
        **sections,
    )
    engine = create_db_engine(db_url)
    ENGINES.append(engine)
    upgrade_schema(engine)
    return App(
        settings=settings,
        engine=engine,
        archive=Archive(workdir / "archive"),
        open_mailbox=open_mailbox or (lambda: DirectoryMailbox(SAMPLES / "mailbox")),
        transport=transport or RecordingTransport(),
        renderer=CampaignTimeRenderer(None, settings.campaign.zone),
        clock=clock or (lambda: datetime(2025, 7, 20, 9, 0, tzinfo=UTC)),
    )


def imap_mailbox(
    server: Any, username: str, password: str, folder: str = "INBOX"
) -> Callable[[], Mailbox]:
    """A factory for an ImapMailbox on the Dovecot fixture's plain port."""
    return lambda: ImapMailbox(
        server.host,
        server.port,
        username=username,
        password=password,
        folder=folder,
        security="plain",
        timeout=10.0,
    )


def append_samples(server: Any, username: str) -> None:
    """APPEND the sample mailbox in its order, with its INTERNALDATEs."""
    for entry in SAMPLE_INDEX["messages"]:
        raw = (SAMPLES / "mailbox" / entry["file"]).read_bytes()
        server.append(username, raw, internaldate=datetime.fromisoformat(entry["internaldate"]))


def register_of(app: App) -> dict[str, Any]:
    """The register exactly as `intake export --format json` prints it."""
    with Session(app.engine) as session:
        return json.loads(json.dumps(build_register(session, app.settings), ensure_ascii=False))


def run_samples(app: App) -> PollReport:
    """Import the sample export, then poll once (the sample mailbox unless `app` reads another
    one); the poll's report. Nothing is delivered."""
    import_submissions(app, SAMPLE_EXPORT)
    report = poll(app)
    if app.settings.ocr.enabled:
        read_scans(app)
    return report


def read_scans(app: App, **pool_options: Any) -> OcrReport:
    """Read every queued scan (as `intake poll --once` does after its poll) and queue the
    receipts that waited for them."""
    with OcrPool(app, **pool_options) as pool:
        report = run_ocr_jobs(app, pool)
    release_held_receipts(app)
    return report
