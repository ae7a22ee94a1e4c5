"""A unit that sends only its sealed PDF: a text layer that reads as a form is recorded from
the PDF, awaiting the Word version, which then becomes current and takes the PDF as its own."""

from __future__ import annotations

from typing import Any

import pytest

from parsers.mail import parse_message
from service.bootstrap import App
from service.imports import import_submissions
from service.todo import todo_items
from tests.support.apps import SAMPLES, register_of
from tests.support.mailmaker import File, MailDrop, at, mail, pdf

pytestmark = pytest.mark.integration

JIANGSU = "中国移动通信集团江苏有限公司"
SENDER = "fudongting@js.chinamobile.example"


def sample_files() -> dict[str, File]:
    """The Jiangsu sample's Word form and its text PDF with a pasted seal, by kind."""
    parsed = parse_message((SAMPLES / "mailbox" / "001.eml").read_bytes())
    return {
        item.kind: File(item.filename, item.data, item.content_type) for item in parsed.attachments
    }


def current(register: dict[str, Any]) -> dict[str, Any]:
    [row] = [row for row in register["recommendations"] if row["current"]]
    return row


def test_a_sealed_pdf_alone_records_the_units_cases_and_the_word_form_then_takes_it_over(
    app: App, drop: MailDrop
):
    import_submissions(app, SAMPLES / "submissions.xlsx")
    files = sample_files()
    pdf_id = drop.arrive(
        app, mail(SENDER, "江苏移动推荐表（盖章版）", [files["form_pdf"]], received=at(11))
    )

    waiting = current(register_of(app))
    assert waiting["unit"] == JIANGSU
    assert waiting["word"] is None
    assert waiting["pdf"]["message_id"] == pdf_id
    assert waiting["complete"] is False
    assert [problem["code"] for problem in waiting["problems"]] == ["awaiting_word"]
    assert [(case["row"], case["submission_ref"], case["match"]) for case in waiting["cases"]] == [
        (1, "KJCX2025-0003", "ref"),
        (2, "KJCX2025-0002", "ref"),
        (3, "KJCX2025-0010", "ref"),
        (4, "KJCX2025-0013", "ref"),
    ]
    statuses = {row["ref"]: row["status"] for row in register_of(app)["submissions"]}
    assert statuses["KJCX2025-0003"] == "awaiting_word"
    assert "missing_word" in [item.kind for item in todo_items(register_of(app))]

    word_id = drop.arrive(
        app, mail(SENDER, "江苏移动推荐表（Word版）", [files["form_word"]], received=at(12))
    )

    register = register_of(app)
    taken_over = current(register)
    assert taken_over["version"] == waiting["version"] + 1
    assert taken_over["word"]["message_id"] == word_id
    assert taken_over["pdf"]["message_id"] == pdf_id
    assert taken_over["complete"] is True
    assert taken_over["problems"] == []
    assert "missing_word" not in [item.kind for item in todo_items(register)]
    assert {row["ref"]: row["status"] for row in register["submissions"]}["KJCX2025-0003"] == (
        "complete"
    )


def test_a_scanned_pdf_alone_still_waits_unplaced(app: App, drop: MailDrop):
    drop.arrive(app, mail(SENDER, "盖章版", [pdf("推荐表（盖章）.pdf")], received=at(11)))

    register = register_of(app)
    assert register["recommendations"] == []
    assert len(register["unplaced_pdfs"]) == 1
