"""Word ↔ sealed PDF through the real pipeline: mail dropped in a folder, polled, recorded."""

from __future__ import annotations

from typing import Any

import pytest

from service.bootstrap import App
from service.todo import todo_items
from tests.support.apps import register_of
from tests.support.mailmaker import HEBEI, Case, Form, MailDrop, at, mail, pdf, word

pytestmark = pytest.mark.integration

HEBEI_FORM = Form(
    HEBEI,
    [Case("基于大模型的智能客服系统", "联通数字科技有限公司")],
    email="wang@he.chinaunicom.example",
)


def current(register: dict[str, Any]) -> list[dict[str, Any]]:
    return [row for row in register["recommendations"] if row["current"]]


def only_current(register: dict[str, Any]) -> dict[str, Any]:
    rows = current(register)
    assert len(rows) == 1, rows
    return rows[0]


def test_word_and_pdf_in_one_mail_make_a_complete_recommendation(app: App, drop: MailDrop):
    message_id = drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("推荐表.docx", HEBEI_FORM), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )

    recommendation = only_current(register_of(app))
    assert recommendation["unit"] == HEBEI
    assert recommendation["complete"] is True
    assert recommendation["word"]["message_id"] == message_id
    assert recommendation["pdf"]["message_id"] == message_id
    assert recommendation["pdf"]["seal"] == "present"
    assert recommendation["pdf_pairing"]["method"] == "same_message"


def test_a_pdf_sent_first_by_a_colleague_waits_visibly_and_joins_the_word_a_day_later(
    app: App, drop: MailDrop
):
    pdf_id = drop.arrive(
        app,
        mail(
            "zhao@he.chinaunicom.example",
            "盖章版推荐表",
            [pdf("河北联通推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )
    waiting = register_of(app)
    assert [item["message_id"] for item in waiting["unplaced_pdfs"]] == [pdf_id]
    assert [item.kind for item in todo_items(waiting)] == ["unplaced_pdf"]
    assert current(waiting) == []

    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表Word版",
            [word("河北联通推荐表.docx", HEBEI_FORM)],
            received=at(13),
        ),
    )

    placed = register_of(app)
    recommendation = only_current(placed)
    assert recommendation["complete"] is True
    assert recommendation["pdf"]["message_id"] == pdf_id
    assert recommendation["pdf_pairing"]["method"] == "evidence"
    assert any(
        "same organisation" in reason for reason in recommendation["pdf_pairing"]["evidence"]
    )
    assert placed["unplaced_pdfs"] == []
    assert {item.kind for item in todo_items(placed)} <= {"no_submission"}


def test_a_forwarded_original_is_recorded_with_the_files_it_carries(app: App, drop: MailDrop):
    original = mail(
        "wang@he.chinaunicom.example",
        "河北联通推荐表",
        [word("推荐表.docx", HEBEI_FORM), pdf("推荐表（盖章）.pdf")],
        received=at(10),
    )
    forward_id = drop.arrive(
        app,
        mail(
            "li@cace.example",
            "转发：河北联通推荐表",
            body="请查收转来的推荐材料。",
            forwarded=original,
            received=at(12),
        ),
    )

    register = register_of(app)
    recommendation = only_current(register)
    assert recommendation["unit"] == HEBEI
    assert recommendation["complete"] is True
    assert recommendation["word"]["message_id"] == forward_id
    assert recommendation["word"]["filename"] == "推荐表.docx"
    assert recommendation["pdf"]["filename"] == "推荐表（盖章）.pdf"
    assert [case["title"] for case in recommendation["cases"]] == ["基于大模型的智能客服系统"]
    (message,) = register["messages"]
    assert {item["kind"] for item in message["attachments"]} >= {"form_word", "form_pdf"}


def test_a_pdf_nobody_can_place_stays_visible_until_its_sender_sends_the_word(
    app: App, drop: MailDrop
):
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("推荐表.docx", HEBEI_FORM), pdf("推荐表（盖章）.pdf")],
            received=at(11),
        ),
    )
    stray_id = drop.arrive(
        app,
        mail(
            "chen1987@qq.example",
            "材料",
            [pdf("扫描件.pdf", marker=1)],
            received=at(12),
        ),
    )
    waiting = register_of(app)
    assert [item["message_id"] for item in waiting["unplaced_pdfs"]] == [stray_id]
    assert "unplaced_pdf" in [item.kind for item in todo_items(waiting)]
    assert only_current(waiting)["pdf"]["message_id"] != stray_id

    drop.arrive(
        app,
        mail(
            "chen1987@qq.example",
            "推荐表Word版",
            [word("推荐表.docx", Form("山西省通信行业协会", [Case("智慧矿山5G专网", "晋能科技")]))],
            received=at(14),
        ),
    )

    placed = register_of(app)
    shanxi = next(row for row in current(placed) if row["unit"] == "山西省通信行业协会")
    assert shanxi["pdf"]["message_id"] == stray_id
    assert shanxi["complete"] is True
    assert placed["unplaced_pdfs"] == []


def test_a_word_then_a_lone_pdf_from_the_same_sender_with_another_subject_pair(
    app: App, drop: MailDrop
):
    drop.arrive(
        app,
        mail(
            "chen1987@qq.example",
            "推荐表",
            [word("推荐表.docx", Form("山西省通信行业协会", [Case("智慧矿山5G专网", "晋能科技")]))],
            received=at(11),
        ),
    )
    pdf_id = drop.arrive(
        app, mail("chen1987@qq.example", "补发", [pdf("scan001.pdf")], received=at(12))
    )

    recommendation = only_current(register_of(app))
    assert recommendation["pdf"]["message_id"] == pdf_id
    assert recommendation["complete"] is True


def test_a_pdf_from_a_webmail_stranger_does_not_join_someone_elses_word(app: App, drop: MailDrop):
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("推荐表.docx", HEBEI_FORM)],
            received=at(11),
        ),
    )
    drop.arrive(app, mail("chen1987@qq.example", "材料", [pdf("扫描件.pdf")], received=at(12)))

    register = register_of(app)
    assert only_current(register)["pdf"] is None
    assert len(register["unplaced_pdfs"]) == 1


def test_a_form_without_a_unit_is_filed_under_the_senders_earlier_unit(app: App, drop: MailDrop):
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "河北联通推荐表",
            [word("推荐表.docx", HEBEI_FORM), pdf("推荐表（盖章）.pdf")],
            received=at(11),
        ),
    )
    unnamed = Form("", [*HEBEI_FORM.cases, Case("工业互联网标识解析平台", "河北工联科技")])
    message_id = drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表更正",
            [word("推荐表v2.docx", unnamed)],
            received=at(13),
        ),
    )

    register = register_of(app)
    recommendation = only_current(register)
    assert recommendation["unit"] == HEBEI
    assert recommendation["version"] == 2
    message = next(row for row in register["messages"] if row["message_id"] == message_id)
    assert [problem["code"] for problem in message["problems"]] == ["unit_from_history"]
    assert HEBEI in message["problems"][0]["text"]


def test_a_form_whose_unit_cannot_be_read_from_a_new_sender_needs_a_person(
    app: App, drop: MailDrop
):
    drop.arrive(
        app,
        mail(
            "someone@newunit.example",
            "推荐表",
            [word("推荐表.docx", Form("", [Case("智慧矿山5G专网", "晋能科技")]))],
            received=at(11),
        ),
    )

    register = register_of(app)
    recommendation = only_current(register)
    assert "someone@newunit.example" in recommendation["unit"]
    (item,) = [item for item in todo_items(register) if item.kind == "needs_attention"]
    assert "没有填写推荐单位" in item.summary


def test_a_unit_written_by_its_short_name_in_a_correction_is_the_same_unit(
    app: App, drop: MailDrop
):
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", HEBEI_FORM), pdf("推荐表（盖章）.pdf")],
            received=at(11),
        ),
    )
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表（更正）",
            [word("推荐表.docx", Form("河北联通", HEBEI_FORM.cases))],
            received=at(12),
        ),
    )

    register = register_of(app)
    assert [(row["version"], row["current"]) for row in register["recommendations"]] == [
        (1, False),
        (2, True),
    ]
