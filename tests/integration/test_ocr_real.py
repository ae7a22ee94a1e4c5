"""The real engine (RapidOCR with the models inside its wheel) in the worker process: it reads
the sample mailbox's image-only scan with no network at all, and the scan's receipt waits for
that reading."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from config.settings import SAMPLES
from service.agreement import stored_reading
from service.ingest import poll
from service.models import Attachment, OcrJob, Outbox
from tests.support.apps import make_app, read_scans
from tests.support.mailmaker import MailDrop

pytestmark = pytest.mark.integration

ZHEJIANG_MAIL = "002.eml"  # 浙江电信: its Word form and an image-only sealed scan
ZHEJIANG = "中国电信股份有限公司浙江分公司"


def test_the_real_engine_reads_a_sample_scan_in_a_worker_with_no_network(
    sqlite_url: str, tmp_path: Path
):
    drop = MailDrop(tmp_path / "mail")
    drop.path.mkdir(parents=True)
    shutil.copy(SAMPLES / "mailbox" / ZHEJIANG_MAIL, drop.path / ZHEJIANG_MAIL)
    app = make_app(sqlite_url, tmp_path, open_mailbox=drop.mailbox, ocr={"enabled": True})
    poll(app)
    with Session(app.engine) as session:
        assert session.exec(select(Outbox)).all() == []  # the receipt waits for the scan
        [scan] = session.exec(select(Attachment).where(col(Attachment.kind) == "form_pdf")).all()

    # a network namespace of its own: no interface up, not even loopback
    report = read_scans(app, command_prefix=["unshare", "--net"])

    assert (report.done, report.failed) == (1, 0)
    with Session(app.engine) as session:
        reading = stored_reading(session, scan.sha256)
        job = session.get(OcrJob, scan.sha256)
        receipts = session.exec(select(Outbox).where(col(Outbox.kind) == "unit_receipt")).all()
        scan = session.get(Attachment, scan.id)
    assert reading is not None and job is not None
    assert reading.engine.startswith("rapidocr")
    assert reading.unit == ZHEJIANG
    assert reading.seal == "present"
    assert job.pages == 1
    assert scan is not None and scan.text_source == "ocr"
    assert len(receipts) == 1
