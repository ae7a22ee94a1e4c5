"""`intake demo`: the whole flow on the bundled samples, with nothing configured."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console

from config.settings import SAMPLES, Settings
from service.bootstrap import bootstrap
from service.db import upgrade_schema
from service.digest import queue_digest
from service.imports import import_submissions
from service.ingest import poll
from service.outbox import deliver
from service.status import print_status


def demo_settings(workdir: Path) -> Settings:
    """Settings for the demo: SQLite, archive and outgoing mail under `workdir`.

    The sample mailbox stands for a season of mail, already there when the demo first reads
    it: the demo replies to it (`reply_to_old_mail`), as a campaign replies to new mail.
    """
    return Settings(
        campaign={"reply_to_old_mail": True},
        database={"url": f"sqlite:///{workdir / 'intake.db'}"},
        storage={"path": workdir / "archive"},
        mailbox={"kind": "directory", "path": SAMPLES / "mailbox"},
        smtp={"kind": "file", "path": workdir / "outbox"},
    )


def run_demo(workdir: Path, out: Console, err: Console) -> None:
    """Import the sample export, poll the sample mailbox, deliver, queue the digest, summarise."""
    workdir.mkdir(parents=True, exist_ok=True)
    app = bootstrap(demo_settings(workdir))
    upgrade_schema(app.engine)
    report = import_submissions(app, SAMPLES / "submissions.xlsx")
    err.print(
        f"submissions: {len(report.added)} added, {len(report.changed)} changed, "
        f"{len(report.unchanged)} unchanged"
    )
    polled = poll(app)
    err.print(
        f"mailbox: {polled.archived} new message(s), {polled.duplicates} already known, "
        f"{polled.needs_attention} need attention"
    )
    queue_digest(app)
    delivered = deliver(app)
    print_status(app, out)
    outbox = (workdir / "outbox").resolve()
    out.print(f"\n{delivered.sent} mail(s) written to {outbox}/ (receipts and the staff digest)")
    out.print(f"database: {(workdir / 'intake.db').resolve()}")
    out.print(f"archive:  {(workdir / 'archive').resolve()}")
    out.print("register: intake --config <file> export, or open the digest's .xlsx attachment")
    app.engine.dispose()
