"""A passing fault stays passing: PostgreSQL backends killed mid-run and an archive disk that
fills up leave messages pending, later polls finish them, and the end state is the one a
fault-free run reaches. Real Dovecot, real PostgreSQL, a real (small) tmpfs."""

from __future__ import annotations

import hashlib
import logging
import subprocess
import uuid
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from config.settings import SAMPLES
from service.bootstrap import App
from service.digest import render_digest
from service.faults import RETRY_BOUND, RETRY_CAP
from service.health import check_health
from service.imports import import_submissions
from service.ingest import PollReport, poll
from service.models import Message, Outbox
from tests.support.apps import (
    SAMPLE_EXPORT,
    SAMPLE_INDEX,
    MovableClock,
    imap_mailbox,
    make_app,
    register_of,
)
from tests.support.bulk_mail import append_all, small_message
from tests.support.database import POSTGRES_ADMIN_URL
from tests.support.mailmaker import at
from tests.support.services import missing_service

pytestmark = pytest.mark.integration

PROCESSED = "Processed"


def season(count: int) -> tuple[list[bytes], list[Any]]:
    """The sample mailbox (forms, PDFs, pairing) and `count` small messages, with dates."""
    entries = SAMPLE_INDEX["messages"]
    raws = [(SAMPLES / "mailbox" / entry["file"]).read_bytes() for entry in entries]
    dates = [datetime.fromisoformat(entry["internaldate"]) for entry in entries]
    for number in range(count):
        raws.append(small_message(number, run="season"))
        dates.append(at(1) + timedelta(minutes=number))
    return raws, dates


def fill_mailbox(dovecot: Any, name: str, raws: list[bytes], dates: list[Any]) -> tuple[str, str]:
    username, password = dovecot.user(name)
    with dovecot.client(username) as client:
        append_all(client, raws, dates=dates)
    return username, password


def folder_hashes(dovecot: Any, username: str, folder: str) -> set[str]:
    with dovecot.client(username) as client:
        if not client.folder_exists(folder):
            return set()
        client.select_folder(folder, readonly=True)
        answer = client.fetch(client.search("ALL"), ["BODY.PEEK[]"])
    return {hashlib.sha256(item[b"BODY[]"]).hexdigest() for item in answer.values()}


def pending_hashes(app: App) -> set[str]:
    with Session(app.engine) as session:
        return set(session.exec(select(Message.sha256).where(Message.status == "pending")).all())


def comparable(register: dict[str, Any]) -> Any:
    """The register without times, database ids and the mailbox account (which differ)."""

    def strip(value: Any) -> Any:
        if isinstance(value, dict):
            return {
                key: strip(item)
                for key, item in value.items()
                if not key.endswith("_at") and key not in ("id", "recommendation_id", "since")
            }
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    trimmed = {key: value for key, value in register.items() if key != "mailboxes"}
    return strip(trimmed)


def poll_until_idle(
    app: App, clock: MovableClock, dovecot: Any, username: str, *, most: int = 40
) -> list[PollReport]:
    """Poll (moving the clock past every back-off) until nothing is listed or pending;
    after every poll, nothing pending may have been moved out of the inbox."""
    reports: list[PollReport] = []
    for _ in range(most):
        report = poll(app)
        reports.append(report)
        moved = folder_hashes(dovecot, username, PROCESSED)
        assert not moved & pending_hashes(app), "a pending message was moved before processing"
        if report.ok and report.listed == 0 and not pending_hashes(app):
            return reports
        clock.now += RETRY_CAP + timedelta(minutes=1)
    raise AssertionError(f"still not idle after {most} polls: {reports[-1]}")


def run_season(db_url: str, workdir: Path, mailbox: Any, *, clock: MovableClock) -> App:
    app = make_app(
        db_url,
        workdir,
        open_mailbox=mailbox,
        mailbox={"after": f"move:{PROCESSED}", "batch_size": 25},
        clock=clock,
    )
    import_submissions(app, SAMPLE_EXPORT)
    return app


def reset_schema(url: str) -> None:
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        connection.execute(sa.text("drop schema public cascade"))
        connection.execute(sa.text("create schema public"))
    engine.dispose()


class BackendKiller:
    """Terminates the app's own PostgreSQL backend just before chosen statements run."""

    def __init__(self, engine: sa.Engine, at_statements: list[int]) -> None:
        self.engine = engine
        self.points = sorted(at_statements)
        self.statements = 0
        self.killed: list[int] = []
        self.admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, connection: Any, *_: Any) -> None:
        self.statements += 1
        if not self.points or self.statements < self.points[0]:
            return
        self.points.pop(0)
        pid = connection.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            # the second argument waits until the backend is gone: the statement then meets
            # a dead connection, as after a server restart or a network cut
            admin.execute(sa.text("select pg_terminate_backend(:pid, 10000)"), {"pid": pid})
        self.killed.append(self.statements)

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        self.admin.dispose()


def test_backends_killed_during_processing_end_as_a_fault_free_run(
    postgres_url, tmp_path, dovecot, capfd, caplog
):
    raws, dates = season(240)
    clean_user, clean_password = fill_mailbox(dovecot, "clean", raws, dates)
    cut_user, cut_password = fill_mailbox(dovecot, "cut", raws, dates)

    clean_clock = MovableClock(at(20))
    clean_mailbox = imap_mailbox(dovecot, clean_user, clean_password)
    clean = run_season(postgres_url, tmp_path / "clean", clean_mailbox, clock=clean_clock)
    poll_until_idle(clean, clean_clock, dovecot, clean_user)
    expected = comparable(register_of(clean))
    clean.engine.dispose()
    reset_schema(postgres_url)
    capfd.readouterr()
    caplog.clear()

    clock = MovableClock(at(20))
    cut_mailbox = imap_mailbox(dovecot, cut_user, cut_password)
    app = run_season(postgres_url, tmp_path / "cut", cut_mailbox, clock=clock)
    killer = BackendKiller(app.engine, [15, 120, 260, 400, 560, 777, 950, 1100, 1300])
    try:
        with caplog.at_level(logging.INFO):
            reports = poll_until_idle(app, clock, dovecot, cut_user)
    finally:
        killer.close()

    assert len(killer.killed) >= 8, f"only {killer.killed} of the chosen points were reached"
    assert len(reports) > 1 and any(not report.ok or report.deferred for report in reports)
    register = register_of(app)
    assert comparable(register) == expected
    assert register["outages"] == []
    assert all(message["status"] != "pending" for message in register["messages"])
    assert folder_hashes(dovecot, cut_user, "INBOX") == set()
    assert len(folder_hashes(dovecot, cut_user, PROCESSED)) == len(raws)
    stderr = capfd.readouterr().err
    assert "Traceback" not in stderr
    assert not [record for record in caplog.records if record.exc_info]
    assert not [record for record in caplog.records if record.levelno >= logging.ERROR]
    faults = [record.getMessage() for record in caplog.records if "fault" in record.getMessage()]
    assert faults and all("\n" not in line for line in faults)
    app.engine.dispose()


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A 5 MB tmpfs, mounted for this test (root only); `grow(path)` enlarges it to 50 MB."""
    directory = Path(f"/tmp/intake-small-disk-{uuid.uuid4().hex[:8]}")
    directory.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=5m", "tmpfs", str(directory)],
        capture_output=True,
        text=True,
        check=False,
    )
    if mounted.returncode != 0:
        directory.rmdir()
        missing_service("a small tmpfs", f"mount needs root here: {mounted.stderr.strip()}")
    try:
        yield directory
    finally:
        subprocess.run(["umount", str(directory)], check=False)
        directory.rmdir()


def grow(directory: Path) -> None:
    subprocess.run(["mount", "-o", "remount,size=50m", str(directory)], check=True)


def test_an_archive_disk_that_fills_up_then_grows_ends_with_every_message_processed_once(
    sqlite_url, tmp_path, dovecot, small_disk, capfd
):
    # 24 messages with a 400 KB attachment: ~19 MB to store (message and attachment)
    raws = [small_message(number, run="disk", attachment_size=400_000) for number in range(24)]
    username, password = dovecot.user("disk")
    with dovecot.client(username) as client:
        append_all(client, raws)
    clock = MovableClock(at(20))
    app = make_app(
        sqlite_url,
        small_disk,  # the archive lives on the small disk, the database does not
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"after": f"move:{PROCESSED}", "batch_size": 4},
        clock=clock,
    )

    full = poll(app)
    assert not full.ok and "storage" in (full.error or "")
    again = poll(app)  # still full: nothing becomes permanent, nothing is moved
    assert not again.ok
    with Session(app.engine) as session:
        statuses = Counter(session.exec(select(Message.status)).all())
    assert statuses["needs_attention"] == 0
    assert not folder_hashes(dovecot, username, PROCESSED) & pending_hashes(app)

    grow(small_disk)
    poll_until_idle(app, clock, dovecot, username)

    with Session(app.engine) as session:
        messages = session.exec(select(Message)).all()
        receipts = Counter(
            row.message_pk
            for row in session.exec(select(Outbox).where(Outbox.kind == "unit_receipt")).all()
        )
    assert len(messages) == len(raws)
    assert {message.status for message in messages} == {"processed"}
    assert all(receipts[message.id] == 1 for message in messages)
    assert register_of(app)["outages"] == []
    assert len(folder_hashes(dovecot, username, PROCESSED)) == len(raws)
    assert "Traceback" not in capfd.readouterr().err
    app.engine.dispose()


def test_a_lasting_outage_shows_in_health_the_register_and_the_digest_then_clears(
    sqlite_url, tmp_path, dovecot, small_disk
):
    raws = [small_message(number, run="lasting", attachment_size=900_000) for number in range(8)]
    username, password = dovecot.user("lasting")
    with dovecot.client(username) as client:
        append_all(client, raws)
    clock = MovableClock(at(20))
    app = make_app(
        sqlite_url,
        small_disk,
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"after": f"move:{PROCESSED}", "batch_size": 1},
        clock=clock,
    )

    for _ in range(RETRY_BOUND):
        poll(app)
        clock.now += RETRY_CAP

    [outage] = register_of(app)["outages"]
    assert outage["what"] == "storage" and outage["lasting"] is True
    assert outage["retries"] >= RETRY_BOUND and outage["messages"] >= 1
    healthy, lines = check_health(app)
    assert not healthy and any(line.startswith("FAIL outage: storage") for line in lines)
    digest = render_digest(app)
    assert "正在自动重试" in digest and "存档磁盘：自" in digest

    grow(small_disk)
    poll_until_idle(app, clock, dovecot, username)

    assert register_of(app)["outages"] == []
    assert not any(line.startswith(("FAIL outage", "warn outage")) for line in check_health(app)[1])
    assert "正在自动重试" not in render_digest(app)
    app.engine.dispose()
