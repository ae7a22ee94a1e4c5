"""Scanned PDFs are read by OCR apart from the poll: other mail is answered at once, a scan's
receipt waits for its reading (or for `ocr.max_wait`), a killed or stuck worker costs the PDF
a try and never the poller, and nothing is lost or sent twice. On SQLite and PostgreSQL.

The worker process runs one of the small engines of tests/support/ocr_engines.py, chosen by
setting `ocr.engine` as an operator would; tests/integration/test_ocr_real.py uses the real one.
"""

from __future__ import annotations

import os
import signal
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlmodel import Session, col, select

from parsers.model import Problem
from service.bootstrap import App
from service.ingest import poll
from service.models import Attachment, Message, OcrJob, Outbox
from service.ocr_jobs import OcrPool, ocr_counts, release_held_receipts, run_ocr_jobs
from service.processing import rebuild_all
from service.scheduler import run_service
from service.todo import todo_items
from tests.support.apps import MovableClock, make_app, read_scans, register_of
from tests.support.database import POSTGRES_ADMIN_URL
from tests.support.intake_process import wait_until
from tests.support.mailmaker import Case, Form, MailDrop, at, mail, pdf, word
from tests.support.ocr_engines import GATE_VARIABLE

pytestmark = pytest.mark.integration

ENGINES = "tests.support.ocr_engines"
SCAN_SENDER = "li@scan-unit.example"
WORD_SENDER = "wang@word-unit.example"
OTHER_SENDER = "zhao@third-unit.example"
WAIT = 120.0  # seconds: generous, the machine may be busy


def ocr_app(db_url: str, tmp_path: Path, drop: MailDrop, **ocr: Any) -> App:
    """An app that polls `drop` and reads scans with the engine named in `ocr`."""
    clock = MovableClock(at(20).astimezone())
    return make_app(
        db_url,
        tmp_path,
        open_mailbox=drop.mailbox,
        clock=clock,
        ocr={"enabled": True, "engine": f"{ENGINES}:form_engine", **ocr},
    )


def scan_mail(marker: int = 0) -> bytes:
    return mail(
        SCAN_SENDER,
        "推荐表（盖章扫描件）",
        [pdf("推荐表（盖章）.pdf", marker=marker)],
        received=at(18),
    )


def word_mail(sender: str = WORD_SENDER, unit: str = "词语通信有限公司") -> bytes:
    form = Form(unit=unit, cases=[Case("一个Word里的案例", "某申报单位")])
    return mail(sender, "推荐表（Word版）", [word("推荐表.docx", form)], received=at(18, 11))


def receipts_for(app: App, message_id: str) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(
            session.exec(
                select(Outbox).where(
                    col(Outbox.kind) == "unit_receipt", col(Outbox.in_reply_to) == message_id
                )
            ).all()
        )


def job(app: App) -> OcrJob:
    with Session(app.engine) as session:
        [only] = session.exec(select(OcrJob)).all()
        return only


def message(app: App, message_id: str) -> Message:
    with Session(app.engine) as session:
        found = session.exec(select(Message).where(col(Message.message_id) == message_id)).one()
        return found


def codes(problems: list[dict[str, Any]]) -> list[str]:
    return [item["code"] for item in problems]


def scan_attachment(app: App) -> Attachment:
    with Session(app.engine) as session:
        [found] = session.exec(select(Attachment).where(col(Attachment.kind) == "form_pdf")).all()
        return found


def staff_text_of(attachment: Attachment, code: str) -> str:
    [found] = [item for item in attachment.problems if item["code"] == code]
    return Problem.from_json(found).staff_text


def test_other_mail_is_answered_at_once_and_the_scans_receipt_is_queued_once_it_is_read(
    db_url: str, tmp_path: Path, drop: MailDrop
):
    app = ocr_app(db_url, tmp_path, drop)
    scan_id = drop.drop(scan_mail())
    word_id = drop.drop(word_mail())

    assert poll(app).processed == 2

    assert len(receipts_for(app, word_id)) == 1  # not held up by the scan
    assert receipts_for(app, scan_id) == []
    assert message(app, scan_id).status in ("processed", "needs_attention")
    assert job(app).status == "queued"
    assert scan_attachment(app).text_source == "none"

    report = read_scans(app)

    assert (report.done, report.failed) == (1, 0)
    [receipt] = receipts_for(app, scan_id)
    assert receipt.recipients == [SCAN_SENDER]
    assert "正在识别" not in receipt.text_body
    assert job(app).status == "done" and job(app).attempts == 1
    assert scan_attachment(app).text_source == "ocr"

    # nothing more: no second reading, no second receipt, not even after a reprocess
    assert read_scans(app).settled == 0
    rebuild_all(app)
    assert ocr_counts_of(app) == {"queued": 0, "running": 0, "done": 1, "failed": 0}
    assert scan_attachment(app).text_source == "ocr"
    assert len(receipts_for(app, scan_id)) == 1
    assert len(receipts_for(app, word_id)) == 1


def ocr_counts_of(app: App) -> dict[str, int]:
    with Session(app.engine) as session:
        return ocr_counts(session)


def test_a_receipt_waits_at_most_max_wait_then_says_the_scan_is_being_read_and_only_once(
    db_url: str, tmp_path: Path, drop: MailDrop
):
    app = ocr_app(db_url, tmp_path, drop, max_wait="10m")
    clock = app.clock
    assert isinstance(clock, MovableClock)
    scan_id = drop.drop(scan_mail())
    poll(app)

    clock.now += timedelta(minutes=9)
    assert release_held_receipts(app) == 0
    assert receipts_for(app, scan_id) == []

    clock.now += timedelta(minutes=2)
    assert release_held_receipts(app) == 1
    [receipt] = receipts_for(app, scan_id)
    assert "推荐表（盖章）.pdf" in receipt.text_body
    assert "正在识别" in receipt.text_body
    assert "scan_being_read" in codes(message(app, scan_id).problems)

    assert read_scans(app).done == 1  # read later: recorded, but no second receipt

    assert len(receipts_for(app, scan_id)) == 1
    assert scan_attachment(app).text_source == "ocr"
    assert "scan_being_read" not in codes(message(app, scan_id).problems)  # past for staff


def test_ocr_disabled_answers_a_scan_at_once_as_before(db_url: str, tmp_path: Path, drop: MailDrop):
    app = ocr_app(db_url, tmp_path, drop, enabled=False)
    scan_id = drop.drop(scan_mail())
    poll(app)

    assert len(receipts_for(app, scan_id)) == 1
    assert ocr_counts_of(app)["queued"] == 0
    assert scan_attachment(app).text_source == "none"


def test_receipts_held_for_ocr_go_out_at_once_when_ocr_is_turned_off(
    db_url: str, tmp_path: Path, drop: MailDrop
):
    app = ocr_app(db_url, tmp_path, drop)
    scan_id = drop.drop(scan_mail())
    poll(app)
    assert receipts_for(app, scan_id) == []

    app.settings.ocr.enabled = False  # as after a restart with ocr.enabled = false

    assert release_held_receipts(app) == 1
    [receipt] = receipts_for(app, scan_id)
    assert "正在识别" not in receipt.text_body
    assert "scan_being_read" not in codes(message(app, scan_id).problems)


class KillAtPageStart:
    """An `on_event` that SIGKILLs the worker as each page starts, `times` times; it also
    tells the test (`started`) that a page is under way."""

    def __init__(self, times: int) -> None:
        self.times = times
        self.killed: list[int] = []
        self.started = threading.Event()
        self.release = threading.Event()

    def __call__(self, _job: Any, event: dict[str, Any]) -> None:
        if event.get("event") != "page_started":
            return
        self.started.set()
        if len(self.killed) < self.times:
            assert self.release.wait(WAIT), "the test never let the kill happen"
            os.kill(int(event["pid"]), signal.SIGKILL)
            self.killed.append(int(event["pid"]))


def test_a_worker_killed_mid_page_is_retried_while_the_poller_and_other_receipts_carry_on(
    db_url: str, tmp_path: Path, drop: MailDrop, monkeypatch: pytest.MonkeyPatch
):
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_VARIABLE, str(gate))
    app = ocr_app(db_url, tmp_path, drop, engine=f"{ENGINES}:gated_engine", max_attempts=3)
    scan_id = drop.drop(scan_mail())
    poll(app)
    kill = KillAtPageStart(times=1)
    outcome: dict[str, Any] = {}
    with OcrPool(app) as pool:
        ocr = threading.Thread(
            target=lambda: outcome.update(report=run_ocr_jobs(app, pool, on_event=kill))
        )
        ocr.start()
        assert kill.started.wait(WAIT), "the worker never started a page"

        # the worker is in the middle of a page: mail goes on being read and answered
        word_id = drop.drop(word_mail())
        assert poll(app).processed == 1
        assert len(receipts_for(app, word_id)) == 1

        kill.release.set()  # the worker is killed mid-page ...
        while not kill.killed:
            kill.started.wait(0.1)
        gate.touch()  # ... and the next try may finish its page
        ocr.join(WAIT)
        assert not ocr.is_alive()

    report = outcome["report"]
    assert (report.retried, report.done, report.failed) == (1, 1, 0)
    assert job(app).status == "done" and job(app).attempts == 2
    assert len(receipts_for(app, scan_id)) == 1
    assert len(receipts_for(app, word_id)) == 1
    assert {item["status"] for item in register_of(app)["messages"]} <= {
        "processed",
        "needs_attention",
    }


def test_a_scan_whose_worker_is_killed_max_attempts_times_is_left_to_staff_once(
    db_url: str, tmp_path: Path, drop: MailDrop, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(GATE_VARIABLE, str(tmp_path / "never-opened"))
    app = ocr_app(db_url, tmp_path, drop, engine=f"{ENGINES}:gated_engine", max_attempts=2)
    scan_id = drop.drop(scan_mail())
    poll(app)
    kill = KillAtPageStart(times=99)
    kill.release.set()

    with OcrPool(app) as pool:
        report = run_ocr_jobs(app, pool, on_event=kill)

    assert (report.retried, report.done, report.failed) == (1, 0, 1)
    assert len(kill.killed) == 2
    assert job(app).status == "failed" and job(app).attempts == 2
    attachment = scan_attachment(app)
    assert "ocr_failed" in codes(attachment.problems)
    assert "ocr_failed" in codes(message(app, scan_id).problems)
    assert message(app, scan_id).status == "needs_attention"  # 待处理: read it by hand
    [item] = [item for item in todo_items(register_of(app)) if item.kind == "needs_attention"]
    assert "扫描件《推荐表（盖章）.pdf》" in item.summary and "人工核对" in item.summary
    [receipt] = receipts_for(app, scan_id)  # the sender still hears, once
    assert "正在识别" not in receipt.text_body

    with OcrPool(app) as pool:  # given up: never tried again, nor by a reprocess
        assert run_ocr_jobs(app, pool).settled == 0
    rebuild_all(app)
    assert ocr_counts_of(app)["failed"] == 1 and ocr_counts_of(app)["queued"] == 0
    assert "ocr_failed" in codes(scan_attachment(app).problems)
    assert message(app, scan_id).status == "needs_attention"
    assert len(receipts_for(app, scan_id)) == 1


def test_a_page_over_its_time_limit_is_killed_and_the_scan_left_to_staff(
    db_url: str, tmp_path: Path, drop: MailDrop, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(GATE_VARIABLE, str(tmp_path / "never-opened"))
    stuck = ocr_app(
        db_url,
        tmp_path / "stuck",
        drop,
        engine=f"{ENGINES}:gated_engine",
        page_timeout="2s",
        max_attempts=1,
    )
    drop.drop(scan_mail())
    poll(stuck)
    with OcrPool(stuck) as pool:
        assert run_ocr_jobs(stuck, pool).failed == 1
    text = staff_text_of(scan_attachment(stuck), "ocr_failed")
    assert "时间超过上限" in text
    stuck.engine.dispose()


def test_a_worker_over_its_memory_limit_is_killed_and_the_scan_left_to_staff(
    sqlite_url: str, tmp_path: Path, drop: MailDrop
):
    app = ocr_app(
        sqlite_url,
        tmp_path,
        drop,
        engine=f"{ENGINES}:hungry_engine",
        memory_limit_mb=300,
        max_attempts=1,
    )
    drop.drop(scan_mail())
    poll(app)
    with OcrPool(app) as pool:
        assert run_ocr_jobs(app, pool).failed == 1
    assert job(app).problem is not None
    assert "ocr.memory_limit_mb" in job(app).problem["params"]["detail"]
    assert "内存超过上限" in staff_text_of(scan_attachment(app), "ocr_failed")


def test_the_worker_reads_with_the_network_unreachable(
    sqlite_url: str, tmp_path: Path, drop: MailDrop
):
    app = ocr_app(sqlite_url, tmp_path, drop)
    drop.drop(scan_mail())
    poll(app)

    # a network namespace of its own with no interface but a down loopback
    report = read_scans(app, command_prefix=["unshare", "--net"])

    assert report.done == 1
    assert scan_attachment(app).text_source == "ocr"


def test_the_worker_refuses_any_network_attempt(sqlite_url: str, tmp_path: Path, drop: MailDrop):
    app = ocr_app(sqlite_url, tmp_path, drop, engine=f"{ENGINES}:network_probe_engine")
    drop.drop(scan_mail())
    poll(app)

    assert read_scans(app).done == 1

    reading = job(app).reading
    assert reading is not None
    text = "\n".join(reading["page_texts"])
    assert "reached" not in text
    assert text.count("refused: PermissionError") >= 2, text


def test_two_workers_read_three_scans_each_once(db_url: str, tmp_path: Path, drop: MailDrop):
    app = ocr_app(db_url, tmp_path, drop, workers=2)
    scan_ids = [drop.drop(scan_mail(marker)) for marker in (1, 2, 3)]
    poll(app)

    report = read_scans(app)

    assert (report.done, report.retried, report.failed) == (3, 0, 0)
    with Session(app.engine) as session:
        jobs = session.exec(select(OcrJob)).all()
    assert [(item.status, item.attempts) for item in jobs] == [("done", 1)] * 3
    assert all(len(receipts_for(app, scan_id)) == 1 for scan_id in scan_ids)


class BackendKillerOnStore:
    """Terminates the app's own PostgreSQL backend the first `times` times a job's outcome
    is about to be stored, as a server restart or a network cut would."""

    def __init__(self, engine: sa.Engine, *, times: int) -> None:
        self.engine = engine
        self.left = times
        self.admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
        sa.event.listen(engine, "before_cursor_execute", self._before)

    def _before(self, connection: Any, cursor: Any, statement: str, *_: Any) -> None:
        if self.left <= 0 or not statement.lstrip().upper().startswith("UPDATE OCR_JOB SET"):
            return
        if "reading=" not in statement.replace(" ", ""):
            return  # the claim, not the outcome
        self.left -= 1
        pid = connection.connection.dbapi_connection.info.backend_pid
        with self.admin.connect() as admin:
            admin.execute(sa.text("select pg_terminate_backend(:pid, 10000)"), {"pid": pid})

    def close(self) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._before)
        self.admin.dispose()


def test_a_database_lost_while_storing_a_reading_is_retried_not_charged_to_the_scan(
    postgres_url: str, tmp_path: Path, drop: MailDrop, caplog: pytest.LogCaptureFixture
):
    app = ocr_app(postgres_url, tmp_path, drop, max_attempts=1)
    scan_id = drop.drop(scan_mail())
    poll(app)
    killer = BackendKillerOnStore(app.engine, times=1)
    try:
        report = read_scans(app)
    finally:
        killer.close()

    assert killer.left == 0  # the connection was cut once, as the reading was stored
    assert "could not store the outcome" in caplog.text and "trying again" in caplog.text
    assert (report.done, report.failed) == (1, 0)
    assert job(app).status == "done" and job(app).attempts == 1
    assert len(receipts_for(app, scan_id)) == 1


class ServiceThread:
    """`intake run` (`run_service`) in a thread of this process, stopped as SIGTERM does."""

    def __init__(self, app: App) -> None:
        self.stop_event = threading.Event()
        self.result: list[int] = []
        self.thread = threading.Thread(
            target=lambda: self.result.append(run_service(app, stop=self.stop_event))
        )
        self.thread.start()

    def stop(self) -> list[int]:
        """Stop it and wait; its exit status, as a one-item list."""
        self.stop_event.set()
        self.thread.join(WAIT)
        assert not self.thread.is_alive()
        return self.result


def job_status(app: App) -> str | None:
    with Session(app.engine) as session:
        found = session.exec(select(OcrJob)).first()
        return found.status if found is not None else None


def test_stopping_the_service_mid_page_gives_the_scan_back_untried(
    db_url: str, tmp_path: Path, drop: MailDrop, monkeypatch: pytest.MonkeyPatch
):
    gate = tmp_path / "gate"
    monkeypatch.setenv(GATE_VARIABLE, str(gate))
    app = ocr_app(db_url, tmp_path, drop, engine=f"{ENGINES}:gated_engine", max_attempts=1)
    scan_id = drop.drop(scan_mail())

    first = ServiceThread(app)
    wait_until(lambda: job_status(app) == "running", timeout=WAIT, what="the scan being read")
    assert first.stop() == [0]

    assert (job(app).status, job(app).attempts) == ("queued", 0)  # not charged a try
    assert receipts_for(app, scan_id) == []

    gate.touch()
    second = ServiceThread(app)
    wait_until(lambda: len(receipts_for(app, scan_id)) == 1, timeout=WAIT, what="its receipt")
    assert second.stop() == [0]
    assert (job(app).status, job(app).attempts) == ("done", 1)
