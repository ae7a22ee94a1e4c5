"""`intake run` as a real process: real Dovecot, a real SMTP sink, PostgreSQL or SQLite.

It answers the sample mail within a few poll intervals, imports the watch folder once even
across a restart, polls on IMAP IDLE, and stops with exit 0 on SIGTERM or SIGINT.
"""

from __future__ import annotations

import shutil
import signal
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from config.settings import SAMPLES
from notifications.transport import RecordingTransport
from service.db import create_db_engine
from service.health import ServiceCounters
from service.scheduler import Service, build_scheduler, import_watch_folder, run_service
from tests.support.apps import EXPECTED_RECEIPTS, append_samples, make_app
from tests.support.intake_process import (
    STOP_TIMEOUT,
    counted_rows,
    http_get,
    in_reply_to,
    metric_value,
    run_intake,
    service_config,
    sink_summary,
    unit_receipts_at,
    wait_until,
    write_config,
)
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def watching_config(
    tmp_path: Path, dovecot: Any, smtp_sink: Any, database_url: str, *, account: tuple[str, str]
) -> tuple[Path, int]:
    """Settings for `intake run` with the sample export in its watch folder and the health
    endpoint on a free port; (the settings file, that port). The schema is upgraded."""
    username, password = account
    watch = tmp_path / "watch"
    watch.mkdir()
    shutil.copy(SAMPLES / "submissions.xlsx", watch / "submissions.xlsx")
    health_port = free_port()
    config = service_config(
        tmp_path,
        database_url=database_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        schedule={"watch_folder": str(watch)},
        health={"port": health_port},
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    return config, health_port


# -- the service as a process -------------------------------------------------------------


def test_intake_run_answers_the_sample_mail_and_stops_with_0_on_sigterm(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("run")
    config, health_port = watching_config(
        tmp_path, dovecot, smtp_sink, postgres_url, account=(username, password)
    )
    service = start_service(config, cwd=tmp_path)
    wait_until(lambda: "event=service_starting" in service.log(), timeout=120, what="start")
    appended = time.monotonic()
    append_samples(dovecot, username)

    wait_until(
        lambda: set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink)),
        timeout=120,
        what="unit receipts at the sink",
        evidence=lambda: f"{sink_summary(smtp_sink)}\n{service.log()[-4000:]}",
    )
    print(f"receipts at the sink {time.monotonic() - appended:.1f} s after the APPEND")
    status, _, text = http_get(f"http://127.0.0.1:{health_port}/healthz")
    stopping = time.monotonic()
    exit_status = service.stop(signal.SIGTERM)
    print(f"stopped {time.monotonic() - stopping:.1f} s after SIGTERM")

    log = service.log()
    assert exit_status == 0, log[-3000:]
    receipts = unit_receipts_at(smtp_sink)
    assert all(receipts[message_id] == 1 for message_id in EXPECTED_RECEIPTS)
    for item in smtp_sink.received:
        if in_reply_to(item) in EXPECTED_RECEIPTS:
            assert item.rcpt_tos == [EXPECTED_RECEIPTS[in_reply_to(item)]]
    assert status == 200 and text.startswith("healthy"), text
    assert "event=submissions_imported file=submissions.xlsx" in log
    assert "event=service_stopped" in log
    assert password not in log


def test_a_restarted_service_imports_nothing_twice_and_sends_nothing_twice(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("restart")
    config, health_port = watching_config(
        tmp_path, dovecot, smtp_sink, postgres_url, account=(username, password)
    )
    append_samples(dovecot, username)
    first = start_service(config, cwd=tmp_path, name="first")
    wait_until(
        lambda: (
            set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink))
            and "event=submissions_imported" in first.log()
        ),
        timeout=120,
        what="the first run's receipts and import",
    )
    wait_until(
        lambda: (
            'intake_outbox{status="pending"} 0'
            in http_get(f"http://127.0.0.1:{health_port}/metrics")[2]
        ),
        timeout=120,
        what="an empty outbox",
    )
    assert first.stop() == 0
    sent_before = len(smtp_sink.received)
    imports_before = counted_rows(postgres_url, "import_run")

    second = start_service(config, cwd=tmp_path, name="second")
    metrics_url = f"http://127.0.0.1:{health_port}/metrics"

    def second_has_polled_three_times() -> bool:
        try:
            polls = metric_value(http_get(metrics_url)[2], "intake_polls_total")
        except OSError:
            return False
        return polls is not None and polls >= 3

    wait_until(second_has_polled_three_times, timeout=120, what="three polls by the restart")
    assert second.stop() == 0

    assert len(smtp_sink.received) == sent_before
    assert counted_rows(postgres_url, "import_run") == imports_before == 1
    assert "event=submissions_imported" not in second.log()


def polls_finished(database_url: str) -> int:
    """How many mailbox folders have had a poll run to its end (an empty one logs nothing)."""
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            query = sa.text("select count(*) from poll_cursor where last_poll_at is not null")
            return int(connection.execute(query).scalar_one())
    finally:
        engine.dispose()


def test_with_idle_new_mail_is_read_long_before_the_next_scheduled_poll(
    tmp_path, dovecot, smtp_sink, postgres_url, start_service
):
    username, password = dovecot.user("idle")
    config = service_config(
        tmp_path,
        database_url=postgres_url,
        dovecot=dovecot,
        username=username,
        password=password,
        smtp_sink=smtp_sink,
        mailbox={"idle": True},
        schedule={"poll_every": "10m"},
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    service = start_service(config, cwd=tmp_path)
    wait_until(
        lambda: "event=service_starting" in service.log(), timeout=120, what="the service to start"
    )
    wait_until(  # the start-up poll found the folder empty, and IDLE is waiting after it
        lambda: polls_finished(postgres_url) and "event=idle_waiting" in service.log(),
        timeout=120,
        what="the start-up poll and the IDLE connection",
        evidence=lambda: service.log()[-4000:],
    )

    appended = time.monotonic()
    append_samples(dovecot, username)
    wait_until(  # this is the check: the scheduled poll would come only after 10 minutes
        lambda: set(EXPECTED_RECEIPTS) <= set(unit_receipts_at(smtp_sink)),
        timeout=120,
        what="receipts triggered by IDLE",
        evidence=lambda: service.log()[-4000:],
    )
    print(f"receipts at the sink {time.monotonic() - appended:.1f} s after the APPEND (IDLE)")
    assert service.stop() == 0


def test_on_sqlite_intake_run_warns_it_must_be_the_only_process_and_sigint_stops_it(
    tmp_path, start_service
):
    outgoing = tmp_path / "outgoing"
    config = write_config(
        tmp_path / "intake.toml",
        {
            "database": {"url": f"sqlite:///{tmp_path / 'intake.db'}"},
            "storage": {"path": str(tmp_path / "archive")},
            "smtp": {"kind": "file", "path": str(outgoing)},
            "schedule": {"poll_every": "1s", "deliver_every": "1s"},
            # the sample mailbox is a season of mail already there at the first poll
            "campaign": {"reply_to_old_mail": True},
        },
    )
    assert run_intake(config, "db", "upgrade", cwd=tmp_path).returncode == 0
    service = start_service(config, cwd=tmp_path)
    wait_until(
        lambda: outgoing.is_dir() and len(list(outgoing.glob("*.eml"))) == len(EXPECTED_RECEIPTS),
        timeout=120,
        what=f"receipts written to {outgoing}",
    )
    assert service.stop(signal.SIGINT) == 0
    log = service.log()
    warning = next(line for line in log.splitlines() if "event=single_process_only" in line)
    assert "level=warning" in warning and "only ONE `intake run`" in warning
    trial = [line for line in log.splitlines() if "event=sample_settings" in line]
    assert len(trial) == 1 and "level=warning" in trial[0]
    assert "bundled sample mailbox" in trial[0] and "written as files" in trial[0]


# -- the same service in this process ---------------------------------------------------


def test_run_service_returns_0_soon_after_its_stop_event_is_set(sqlite_url, tmp_path):
    transport = RecordingTransport()
    app = make_app(
        sqlite_url,
        tmp_path,
        transport=transport,
        schedule={"poll_every": "1s", "deliver_every": "1s"},
    )
    stop = threading.Event()
    result: list[int] = []
    runner = threading.Thread(target=lambda: result.append(run_service(app, stop=stop)))
    runner.start()
    try:
        wait_until(
            lambda: len(transport.sent) == len(EXPECTED_RECEIPTS),
            timeout=120,
            what="the receipts of the sample mailbox",
        )
    finally:
        stop.set()
        runner.join(timeout=STOP_TIMEOUT)
    assert not runner.is_alive()
    assert result == [0]


def test_the_watch_folder_imports_each_export_once_and_waits_for_files_still_being_written(
    db_url, tmp_path
):
    app = make_app(db_url, tmp_path)
    watch = tmp_path / "watch"
    watch.mkdir()
    export = watch / "submissions.xlsx"
    shutil.copy(SAMPLES / "submissions.xlsx", export)
    (watch / "notes.txt").write_text("not an export", encoding="utf-8")
    (watch / "~$submissions.xlsx").write_bytes(b"an Office lock file")
    settled = datetime.now(UTC) + timedelta(minutes=1)

    assert (
        import_watch_folder(app, watch, settled_before=datetime.now(UTC) - timedelta(hours=1)) == []
    )
    first = import_watch_folder(app, watch, settled_before=settled)
    again = import_watch_folder(app, watch, settled_before=settled)

    assert [item.path.name for item in first] == ["submissions.xlsx"]
    assert first[0].report is not None and first[0].report.added
    assert again == []
    app.engine.dispose()


def test_an_unreadable_export_is_reported_once_and_tried_again_only_when_it_changes(
    sqlite_url, tmp_path
):
    app = make_app(sqlite_url, tmp_path)
    watch = tmp_path / "watch"
    watch.mkdir()
    broken = watch / "export.xlsx"
    broken.write_bytes(b"this is not a workbook")
    settled = datetime.now(UTC) + timedelta(minutes=1)
    unreadable: set[str] = set()

    first = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)
    again = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)
    shutil.copy(SAMPLES / "submissions.xlsx", broken)
    fixed = import_watch_folder(app, watch, settled_before=settled, unreadable=unreadable)

    assert len(first) == 1 and first[0].report is None and first[0].error
    assert again == []
    assert len(fixed) == 1 and fixed[0].report is not None
    app.engine.dispose()


def test_the_digest_goes_out_at_digest_at_in_the_campaign_time_zone_and_once_a_day(
    sqlite_url, tmp_path
):
    transport = RecordingTransport()
    app = make_app(
        sqlite_url,
        tmp_path,
        transport=transport,
        campaign={"timezone": "Asia/Shanghai", "staff": ["staff@cace.example"]},
        schedule={"digest_at": "08:30"},
    )
    service = Service(app, threading.Event(), ServiceCounters())
    digest = build_scheduler(service).get_job("digest")
    shanghai = app.settings.campaign.zone
    after_today_s = datetime(2025, 7, 20, 9, 0, tzinfo=shanghai)

    next_digest = digest.trigger.get_next_fire_time(None, after_today_s)
    service.queue_digest_and_deliver()
    service.queue_digest_and_deliver()

    assert next_digest == datetime(2025, 7, 21, 8, 30, tzinfo=shanghai)
    assert [mail.recipients for mail in transport.sent] == [["staff@cace.example"]]
    app.engine.dispose()
