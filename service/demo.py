"""`intake demo`: the whole flow on the bundled samples, with nothing configured.

By default it writes exactly where the built-in configuration reads (`var/intake.db`,
`var/archive`, `var/outbox`), so `intake status`, `intake export` and the workspace in the same
folder show the demo campaign afterwards. With another work directory it also writes a
`demo.toml` there that points at it, and names it in the commands it prints.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

from rich.console import Console

from config.settings import SAMPLES, Settings
from service.bootstrap import bootstrap
from service.db import upgrade_schema
from service.digest import queue_digest
from service.imports import import_submissions
from service.ingest import poll
from service.ocr_jobs import read_queued_scans
from service.outbox import deliver
from service.status import print_status

DEFAULT_WORKDIR = Path("var")
"""The folder the built-in defaults use: the demo writes there unless told otherwise."""


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


def demo_config_text(workdir: Path) -> str:
    """A configuration file that reads what the demo wrote into `workdir`."""
    root = workdir.resolve()
    return (
        "# Written by `intake demo`: reads the demo's data in this folder.\n"
        f'[database]\nurl = "sqlite:///{root / "intake.db"}"\n\n'
        f'[storage]\npath = "{root / "archive"}"\n\n'
        f'[mailbox]\nkind = "directory"\npath = "{SAMPLES / "mailbox"}"\n\n'
        f'[smtp]\nkind = "file"\npath = "{root / "outbox"}"\n'
    )


def intake_command() -> str:
    """How the person who ran the demo calls `intake` from here (`.venv/bin/intake` or `intake`)."""
    invoked = Path(sys.argv[0])
    if invoked.name != "intake":
        return "intake"
    on_path = shutil.which("intake")
    if on_path and Path(on_path).resolve() == invoked.resolve():
        return "intake"
    try:
        return str(invoked.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(invoked)


def run_demo(
    workdir: Path, out: Console, err: Console, *, config_in_effect: Path | None = None
) -> None:
    """Import the sample export, poll the sample mailbox, read its scans (OCR), deliver, queue
    the digest, summarise.

    `config_in_effect` is the configuration file a plain `intake status` here would read (if
    any): then the printed commands name the demo's own configuration file instead.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    app = bootstrap(demo_settings(workdir))
    try:
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
        if app.settings.ocr.enabled:
            scans = read_queued_scans(app, err)
            if scans.done or scans.failed:
                err.print(f"scans: {scans.done} read by OCR, {scans.failed} could not be read")
            if scans.unavailable:
                err.print(f"scans: not read, OCR unavailable ({scans.unavailable})")
        queue_digest(app)
        delivered = deliver(app)
        print_status(app, out)
    finally:
        app.engine.dispose()
    outbox = (workdir / "outbox").resolve()
    out.print(f"\n{delivered.sent} mail(s) written to {outbox}/ (receipts and the staff digest)")
    out.print(f"database: {(workdir / 'intake.db').resolve()}")
    out.print(f"archive:  {(workdir / 'archive').resolve()}")
    command = intake_command()
    reads_defaults = config_in_effect is None and workdir.resolve() == DEFAULT_WORKDIR.resolve()
    if not reads_defaults:
        config = workdir / "demo.toml"
        config.write_text(demo_config_text(workdir), encoding="utf-8")
        command = f"{command} --config {config}"
        if config_in_effect is not None:
            out.print(f"note: {config_in_effect} is in effect here; the commands below bypass it")
    out.print("\nnext, in this folder:", highlight=False)
    web = demo_settings(workdir).web
    for arguments, what in (
        ("status", "the summary again"),
        ("export --format json", "the register as JSON"),
        ("export --format xlsx -o register.xlsx", "the register as a workbook"),
        ("staff add admin < password.txt", "a workspace account (password on standard input)"),
        ("web", f"the staff workspace at http://{web.host}:{web.port}/"),
    ):
        out.print(f"  {command} {arguments:<40} # {what}", highlight=False, markup=False)
