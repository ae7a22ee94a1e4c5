"""What a scanned form gives to pairing, read by real OCR from the sample scans: a scan-only
unit is recorded from its scan awaiting its Word form, a lone scan pairs by the unit read
from it, a scan listing other rows than its Word form is a `pdf_mismatch`; and a reading
that comes after its message was processed ends where processing with it would have."""

from __future__ import annotations

import copy
import hashlib
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import Session, col, select

from parsers.mail import parse_message
from parsers.model import CaseRow
from parsers.ocr import ScanReading
from service.agreement import title_score
from service.bootstrap import App
from service.imports import import_submissions
from service.models import OcrJob, Outbox
from service.ocr_jobs import release_held_receipts
from service.todo import todo_items
from tests.support.apps import SAMPLES, make_app, register_of
from tests.support.mailmaker import Case, File, Form, MailDrop, at, mail, word
from tests.support.readings import ocr_done, real_reading
from tests.support.scans import SCAN_FORMS, Scan, scans
from tests.support.services import missing_service

pytestmark = pytest.mark.integration

ZHEJIANG = "中国电信股份有限公司浙江分公司"
SHANGHAI = "上海市通信行业协会"
ADDED = Case("5G专网赋能钢铁智能制造", "某钢铁集团有限公司")


def attachments_of(name: str) -> dict[str, File]:
    """A sample message's attachments, by kind."""
    parsed = parse_message((SAMPLES / "mailbox" / name).read_bytes())
    return {
        item.kind: File(item.filename, item.data, item.content_type) for item in parsed.attachments
    }


def current_of(register: dict[str, Any], unit: str) -> dict[str, Any]:
    [row] = [row for row in register["recommendations"] if row["current"] and row["unit"] == unit]
    return row


def receipts(app: App) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(
            session.exec(
                select(Outbox).where(col(Outbox.kind) == "unit_receipt").order_by(col(Outbox.id))
            )
        )


def ocr_app(db_url: str, workdir: Path, drop: MailDrop) -> App:
    """An App that reads scans (OCR on), on the sample export."""
    app = make_app(db_url, workdir, open_mailbox=drop.mailbox, ocr={"enabled": True})
    import_submissions(app, SAMPLES / "submissions.xlsx")
    return app


@pytest.fixture
def scanning(db_url: str, tmp_path: Path, drop: MailDrop) -> Iterator[App]:
    app = ocr_app(db_url, tmp_path, drop)
    yield app
    app.engine.dispose()


def test_a_unit_that_sends_only_its_scan_is_recorded_from_it_awaiting_its_word_form(
    scanning: App, drop: MailDrop
):
    scan = attachments_of("002.eml")["form_pdf"]
    ocr_done(scanning, scan.data, scanning.clock())

    drop.arrive(scanning, mail("li@qq.example", "盖章版推荐表", [scan], received=at(14)))

    recommendation = current_of(register_of(scanning), ZHEJIANG)
    assert recommendation["word"] is None
    assert [problem["code"] for problem in recommendation["problems"]] == ["awaiting_word"]
    assert recommendation["pdf"]["text_source"] == "ocr"
    assert recommendation["pdf"]["unit_on_pdf"] == ZHEJIANG
    assert recommendation["pdf"]["seal"] == "present"
    assert recommendation["pdf"]["agreement"] is None  # no Word form to compare with
    assert recommendation["pdf_pairing"]["method"] == "pdf_only"
    assert [(case["row"], case["submission_ref"]) for case in recommendation["cases"]] == [
        (1, "KJCX2025-0011"),
        (2, "KJCX2025-0007"),
        (3, "KJCX2025-0006"),
    ]
    for case in recommendation["cases"]:
        assert "read_from_scan" in [warning["code"] for warning in case["warnings"]]
    assert "missing_word" in [item.kind for item in todo_items(register_of(scanning))]
    [receipt] = receipts(scanning)
    assert ZHEJIANG in receipt.text_body and "Word版推荐表" in receipt.text_body
    assert "未能从推荐表中读出" not in receipt.text_body


def test_a_lone_scan_a_day_after_its_word_form_pairs_by_the_unit_read_from_it(
    scanning: App, drop: MailDrop
):
    drop.arrive(scanning, (SAMPLES / "mailbox" / "003.eml").read_bytes())
    scan = attachments_of("004.eml")["form_pdf"]
    ocr_done(scanning, scan.data, scanning.clock())

    renamed = File("scan0001.pdf", scan.data, scan.content_type)
    drop.arrive(scanning, mail("scanner@qq.example", "扫描件", [renamed], received=at(18)))

    recommendation = current_of(register_of(scanning), SHANGHAI)
    assert recommendation["pdf"]["filename"] == "scan0001.pdf"
    assert recommendation["pdf_pairing"]["method"] == "evidence"
    assert recommendation["pdf"]["unit_on_pdf"] == SHANGHAI
    agreement = recommendation["pdf"]["agreement"]
    assert agreement["rows_found"] == agreement["rows_on_word"] == 3
    assert recommendation["complete"] is True
    assert "pdf_mismatch" not in [item.kind for item in todo_items(register_of(scanning))]


def test_a_scan_listing_other_rows_than_its_word_form_is_a_mismatch(scanning: App, drop: MailDrop):
    scan = attachments_of("004.eml")["form_pdf"]
    reading = ocr_done(scanning, scan.data, scanning.clock())
    on_scan = [Case(row.title, row.applicant) for row in reading.cases]
    corrected = Form(SHANGHAI, [on_scan[0], on_scan[1], ADDED])

    drop.arrive(
        scanning,
        mail(
            "shaoweichen@shca.example",
            "上海市通信行业协会推荐表（更正）",
            [word("推荐表.docx", corrected), scan],
            received=at(18),
        ),
    )

    register = register_of(scanning)
    agreement = current_of(register, SHANGHAI)["pdf"]["agreement"]
    assert agreement["missing"] == [{"row": 3, "title": ADDED.title, "applicant": ADDED.applicant}]
    assert agreement["extra"] == [reading.cases[2].title]
    [item] = [item for item in todo_items(register) if item.kind == "pdf_mismatch"]
    assert ADDED.title in item.summary
    [receipt] = receipts(scanning)
    assert "所列案例不一致" in receipt.text_body and "与之一致的盖章PDF" in receipt.text_body


def normalised(register: dict[str, Any]) -> dict[str, Any]:
    """The register without what differs between two runs by construction (row ids, the
    order of a message's problems, the mail folder's path)."""
    register = copy.deepcopy(register)
    register.pop("mailboxes")
    for message in register["messages"]:
        message.pop("id")
        message["problems"].sort(key=lambda item: (item["code"], item["text"]))
    for row in register["outbox"]:
        row.pop("id")
    for row in register["recommendations"]:
        row.pop("id")
    for row in register["submissions"]:
        row.pop("recommendation_id")
    return register


def test_a_reading_after_the_message_ends_where_processing_with_the_reading_does(
    tmp_path: Path,
):
    scan_only = attachments_of("002.eml")["form_pdf"]
    shanghai_scan = attachments_of("004.eml")["form_pdf"]
    mails = [
        (SAMPLES / "mailbox" / "003.eml").read_bytes(),
        mail(
            "scanner@qq.example",
            "扫描件",
            [File("scan0001.pdf", shanghai_scan.data, "application/pdf")],
            received=at(18),
        ),
        mail("li@qq.example", "盖章版推荐表", [scan_only], received=at(19)),
    ]
    # read before: the messages are processed with the readings at hand
    before_drop = MailDrop(tmp_path / "before-mail")
    read_before = ocr_app(f"sqlite:///{tmp_path / 'before.db'}", tmp_path / "before", before_drop)
    for data in (scan_only.data, shanghai_scan.data):
        ocr_done(read_before, data, read_before.clock())
    for raw in mails:
        before_drop.arrive(read_before, raw)

    # read after: the messages wait for OCR, whose readings come afterwards
    after_drop = MailDrop(tmp_path / "after-mail")
    read_after = ocr_app(f"sqlite:///{tmp_path / 'after.db'}", tmp_path / "after", after_drop)
    for raw in mails:
        after_drop.arrive(read_after, raw)
    assert all(
        row["pdf"] is None or row["pdf"]["text_source"] == "none"
        for row in register_of(read_after)["recommendations"]
    )
    with Session(read_after.engine) as session:
        for job in session.exec(select(OcrJob)).all():
            reading = real_reading(
                scan_only.data if job.sha256 == sha(scan_only) else shanghai_scan.data
            )
            job.status, job.reading, job.attempts = "done", reading.as_json(), 1
            session.add(job)
        session.commit()
    release_held_receipts(read_after)

    after, before = register_of(read_after), register_of(read_before)
    assert normalised(after) == normalised(before)
    placed = current_of(after, SHANGHAI)["pdf"]
    assert placed["filename"] == "scan0001.pdf" and placed["text_source"] == "ocr"
    assert current_of(after, ZHEJIANG)["word"] is None
    said_after = [(mail.recipient, mail.text_body) for mail in receipts(read_after)]
    said_before = [(mail.recipient, mail.text_body) for mail in receipts(read_before)]
    assert len(said_after) == 3
    assert sorted(said_after) == sorted(said_before)


def sha(file: File) -> str:
    return hashlib.sha256(file.data).hexdigest()


# -- scans made the way units make them (LibreOffice, 150–200 dpi, aged, sealed) ------------


@pytest.fixture(scope="module")
def made() -> dict[str, Scan]:
    """The made scans by unit (cached on disk across runs; LibreOffice when not)."""
    if shutil.which("soffice") is None:
        missing_service("LibreOffice", "apt-get install libreoffice-writer-nogui")
    return {scan.unit: scan for scan in scans()}


def spec_of(unit: str) -> Form:
    return next(spec.form for spec in SCAN_FORMS if spec.form.unit == unit)


HEBEI = "中国联合网络通信有限公司河北省分公司"  # clean, 200 dpi
HUBEI = "中国铁塔股份有限公司湖北省分公司"  # a phone photo, the unit wrapping in its cell
BEIJING = "北京市通信行业协会"  # clean


def test_a_made_scan_whose_rows_differ_from_its_word_form_raises_pdf_mismatch(
    scanning: App, drop: MailDrop, made: dict[str, Scan]
):
    scan = made[HEBEI]
    ocr_done(scanning, scan.pdf, scanning.clock())
    written = spec_of(HEBEI)
    dropped = written.cases[5]
    corrected = Form(HEBEI, [*written.cases[:5], ADDED])

    drop.arrive(
        scanning,
        mail(
            "zhang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("河北联通-推荐表.docx", corrected), File("推荐表（盖章）.pdf", scan.pdf)],
            received=at(15),
        ),
    )

    register = register_of(scanning)
    recommendation = current_of(register, HEBEI)
    pdf = recommendation["pdf"]
    assert (pdf["text_source"], pdf["unit_on_pdf"], pdf["seal"]) == ("ocr", HEBEI, "present")
    agreement = pdf["agreement"]
    assert (agreement["rows_on_word"], agreement["rows_found"]) == (6, 5)
    assert agreement["missing"] == [{"row": 6, "title": ADDED.title, "applicant": ADDED.applicant}]
    [extra] = agreement["extra"]
    assert title_score(extra, dropped.title) >= 85, extra
    assert "pdf_mismatch" in [item.kind for item in todo_items(register)]
    [receipt] = receipts(scanning)
    assert "所列案例不一致" in receipt.text_body


def test_a_unit_that_mails_only_a_photographed_scan_is_recorded_awaiting_its_word_form(
    scanning: App, drop: MailDrop, made: dict[str, Scan]
):
    scan = made[HUBEI]
    ocr_done(scanning, scan.pdf, scanning.clock())

    drop.arrive(
        scanning,
        mail("tower@hb.example", "推荐表", [File("推荐表.pdf", scan.pdf)], received=at(15)),
    )

    recommendation = current_of(register_of(scanning), HUBEI)
    assert recommendation["word"] is None
    assert [problem["code"] for problem in recommendation["problems"]] == ["awaiting_word"]
    titles = [case["title"] for case in recommendation["cases"]]
    assert len(titles) == len(spec_of(HUBEI).cases)
    for case, truth in zip(recommendation["cases"], spec_of(HUBEI).cases, strict=True):
        assert title_score(case["title"], truth.title) >= 85, (case["title"], truth.title)
        assert "read_from_scan" in [warning["code"] for warning in case["warnings"]]


def test_a_made_scan_sent_alone_a_day_after_its_word_form_pairs_by_its_unit(
    scanning: App, drop: MailDrop, made: dict[str, Scan]
):
    drop.arrive(
        scanning,
        mail(
            "li@bjca.example",
            "北京市通信行业协会推荐表",
            [word("推荐表.docx", spec_of(BEIJING))],
            received=at(15),
        ),
    )
    scan = made[BEIJING]
    ocr_done(scanning, scan.pdf, scanning.clock())

    drop.arrive(
        scanning,
        mail("fax@163.example", "盖章件", [File("扫描0001.pdf", scan.pdf)], received=at(16)),
    )

    recommendation = current_of(register_of(scanning), BEIJING)
    assert recommendation["pdf"]["filename"] == "扫描0001.pdf"
    assert recommendation["complete"] is True
    assert recommendation["pdf"]["agreement"]["missing"] == []
    assert recommendation["pdf"]["agreement"]["extra"] == []


def test_a_misread_unit_near_a_known_one_is_not_trusted_and_the_scan_waits_for_staff(
    scanning: App, drop: MailDrop
):
    """A reading as OCR gives it on a poor scan: two characters of the unit misread."""
    drop.arrive(scanning, (SAMPLES / "mailbox" / "003.eml").read_bytes())
    scan = attachments_of("004.eml")["form_pdf"]
    truth = real_reading(scan.data)
    misread = ScanReading(
        engine=truth.engine,
        pages=truth.pages,
        page_texts=[text.replace(SHANGHAI, "上海币通信行亚协会") for text in truth.page_texts],
        unit="上海币通信行亚协会",
        cases=[CaseRow(case.row, case.title, case.applicant) for case in truth.cases],
    )
    with Session(scanning.engine) as session:
        session.add(
            OcrJob(
                sha256=sha(scan),
                status="done",
                reading=misread.as_json(),
                created_at=scanning.clock(),
            )
        )
        session.commit()

    unnamed = File("scan.pdf", scan.data, scan.content_type)  # its name names no unit
    drop.arrive(scanning, mail("x@qq.example", "盖章件", [unnamed], received=at(20)))

    register = register_of(scanning)
    assert [row["unit"] for row in register["recommendations"]] == [SHANGHAI]
    [waiting] = register["unplaced_pdfs"]
    assert (waiting["text_source"], waiting["unit_on_pdf"]) == ("ocr", None)
    [message] = [row for row in register["messages"] if row["sender"] == "x@qq.example"]
    assert "scan_unit_untrusted" in [problem["code"] for problem in message["problems"]]
    assert "unplaced_pdf" in [item.kind for item in todo_items(register)]
