"""A sealed PDF that lists other cases than its Word form: the register says which rows
differ, staff get a `pdf_mismatch` item (remind or handled), the unit's receipt asks for a
sealed PDF matching its Word form."""

from __future__ import annotations

import shutil
from typing import Any

import pytest
from sqlmodel import Session, col, select

from parsers.mail import parse_message
from service.bootstrap import App
from service.decisions import decide, undo
from service.imports import import_submissions
from service.models import Outbox
from service.todo import todo_items
from tests.support.apps import SAMPLES, register_of
from tests.support.language import assert_reads_chinese
from tests.support.mailmaker import Case, File, Form, MailDrop, at, form_docx, mail, word
from tests.support.scans import print_to_pdf
from tests.support.services import missing_service

pytestmark = pytest.mark.integration

JIANGSU = "中国移动通信集团江苏有限公司"
SENDER = "fudongting@js.chinamobile.example"
ADDED = Case("5G专网赋能钢铁智能制造", "某钢铁集团有限公司")


def sample_files() -> dict[str, File]:
    """The Jiangsu sample's Word form and its text PDF with a pasted seal, by kind."""
    parsed = parse_message((SAMPLES / "mailbox" / "001.eml").read_bytes())
    return {
        item.kind: File(item.filename, item.data, item.content_type) for item in parsed.attachments
    }


def pdf_cases() -> list[Case]:
    """The four rows the Jiangsu sample PDF lists."""
    return [
        Case("数字孪生+智慧港口环境监测系统", "常州景行通信技术有限公司"),
        Case("AI大模型赋能智慧校园质量检测系统", "中移(南通)信息技术有限公司"),
        Case("《智慧矿山时空大数据综合运营管理系统》", "中移（苏州）信息技术"),
        Case("视觉大模型赋能智慧校园应急通信保障系统", "中国移动通信集团江苏有限公司常州分公司"),
    ]


def current(register: dict[str, Any]) -> dict[str, Any]:
    [row] = [row for row in register["recommendations"] if row["current"]]
    return row


def outbox(app: App, kind: str) -> list[Outbox]:
    with Session(app.engine) as session:
        return list(
            session.exec(select(Outbox).where(col(Outbox.kind) == kind).order_by(col(Outbox.id)))
        )


def send_corrected_word_with_old_pdf(app: App, drop: MailDrop) -> None:
    """The unit drops row 3 and adds a row on its Word form, and sends the old sealed PDF."""
    rows = pdf_cases()
    corrected = Form(unit=JIANGSU, cases=[rows[0], rows[1], rows[3], ADDED], email=SENDER)
    drop.arrive(
        app,
        mail(
            SENDER,
            "江苏移动推荐表（更正）",
            [word("江苏移动-推荐表.docx", corrected), sample_files()["form_pdf"]],
            received=at(12),
        ),
    )


def test_a_text_pdf_listing_other_rows_than_its_word_form_is_a_mismatch_for_staff_and_sender(
    app: App, drop: MailDrop
):
    import_submissions(app, SAMPLES / "submissions.xlsx")
    send_corrected_word_with_old_pdf(app, drop)

    register = register_of(app)
    recommendation = current(register)
    pdf = recommendation["pdf"]
    assert pdf["text_source"] == "text"
    assert pdf["unit_on_pdf"] == JIANGSU
    assert pdf["agreement"] == {
        "rows_on_word": 4,
        "rows_on_pdf": 4,
        "rows_found": 3,
        "missing": [{"row": 4, "title": ADDED.title, "applicant": ADDED.applicant}],
        "extra": ["《智慧矿山时空大数据综合运营管理系统》"],
    }
    [item] = [item for item in todo_items(register) if item.kind == "pdf_mismatch"]
    assert ADDED.title in item.summary and "智慧矿山时空大数据综合运营管理系统" in item.summary
    assert item.details["agreement"] == pdf["agreement"]
    assert [action["name"] for action in item.actions] == ["remind", "handled"]

    [receipt] = outbox(app, "unit_receipt")
    assert_reads_chinese(receipt.text_body, where="unit receipt")
    for body in (receipt.text_body, receipt.html_body):
        assert "所列案例不一致" in body
        assert ADDED.title in body
        assert "与之一致的盖章PDF" in body
    assert "推荐材料已齐全" not in receipt.text_body

    decide(app, item.id, "remind", {}, by="王老师")
    [reminder] = outbox(app, "reminder")
    assert "盖章PDF与Word版不一致" in reminder.text_body and ADDED.title in reminder.text_body
    assert_reads_chinese(reminder.text_body, where="reminder")

    state = decide(app, item.id, "handled", {"note": "已电话联系，对方将补发"}, by="王老师")
    assert state["open"] is False
    assert "pdf_mismatch" not in [entry.kind for entry in todo_items(register_of(app))]


def test_a_pdf_listing_the_word_forms_rows_agrees(app: App, drop: MailDrop):
    files = sample_files()
    drop.arrive(
        app,
        mail(SENDER, "江苏移动推荐表", [files["form_word"], files["form_pdf"]], received=at(11)),
    )

    register = register_of(app)
    agreement = current(register)["pdf"]["agreement"]
    assert agreement["rows_found"] == agreement["rows_on_word"] == 4
    assert agreement["missing"] == [] and agreement["extra"] == []
    assert "pdf_mismatch" not in [item.kind for item in todo_items(register)]
    [receipt] = outbox(app, "unit_receipt")
    assert "所列案例不一致" not in receipt.text_body


def test_the_agreement_is_checked_again_when_the_word_form_changes(app: App, drop: MailDrop):
    files = sample_files()
    drop.arrive(app, mail(SENDER, "江苏移动推荐表（盖章版）", [files["form_pdf"]], received=at(11)))
    assert current(register_of(app))["pdf"]["agreement"] is None  # no Word form yet

    rows = pdf_cases()
    shorter = Form(unit=JIANGSU, cases=rows[:3], email=SENDER)
    drop.arrive(
        app,
        mail(SENDER, "江苏移动推荐表（Word版）", [word("推荐表.docx", shorter)], received=at(12)),
    )

    recommendation = current(register_of(app))
    assert recommendation["version"] == 2
    assert recommendation["pdf"]["agreement"]["extra"] == [rows[3].title]
    assert recommendation["pdf"]["agreement"]["missing"] == []


def test_staff_placing_a_pdf_checks_it_against_that_word_form_and_undo_withdraws_it(
    app: App, drop: MailDrop
):
    rows = [
        Case("智能电网巡检", "国网某某科技有限公司"),
        Case("智慧港口平台", "某某港务有限公司"),
        Case("未申报的案例", "无名公司"),
    ]
    drop.arrive(
        app,
        mail(
            "a@jia.example",
            "甲协会推荐表",
            [word("甲.docx", Form("甲协会", rows, email="a@jia.example"))],
            received=at(11),
        ),
    )
    if shutil.which("soffice") is None:
        missing_service("LibreOffice", "apt-get install libreoffice-writer-nogui")
    [unnamed] = print_to_pdf([form_docx(Form("", rows[:2]))])  # a text PDF naming no unit
    drop.arrive(app, mail("x@qq.example", "盖章件", [File("盖章件.pdf", unnamed)], received=at(12)))
    [waiting] = [item for item in todo_items(register_of(app)) if item.kind == "unplaced_pdf"]
    jia = current(register_of(app))

    state = decide(app, waiting.id, "place", {"recommendation_id": jia["id"]}, by="王老师")

    agreement = current(register_of(app))["pdf"]["agreement"]
    assert (agreement["rows_on_word"], agreement["rows_found"]) == (3, 2)
    assert agreement["missing"] == [{"row": 3, "title": "未申报的案例", "applicant": "无名公司"}]
    assert "pdf_mismatch" in [item.kind for item in todo_items(register_of(app))]

    undo(app, state["decisions"][-1]["id"], by="王老师")

    assert current(register_of(app))["pdf"] is None
    assert "pdf_mismatch" not in [item.kind for item in todo_items(register_of(app))]
