"""Receipts of the samples as the recipients get them: decoded at a real SMTP sink."""

from __future__ import annotations

import html
from collections import Counter
from datetime import datetime
from email.message import EmailMessage

import pytest

from notifications.contexts import tidy
from service.digest import queue_digest
from service.outbox import deliver
from service.todo import todo_items
from tests.support.apps import TRUTH, make_app, register_of, run_samples
from tests.support.mailmaker import Case, Form, MailDrop, at, mail, pdf, word
from tests.support.smtp_sink import ReceivedEnvelope, SmtpSink

pytestmark = pytest.mark.integration

STAFF = ["staff@cace.example", "lead@cace.example"]


def parts(message: EmailMessage) -> tuple[str, str]:
    """The decoded text part and the HTML part with its entities resolved."""
    text = message.get_body(("plain",))
    markup = message.get_body(("html",))
    assert text is not None and markup is not None
    return text.get_content(), html.unescape(markup.get_content())


def of_kind(sink: SmtpSink, kind: str) -> list[ReceivedEnvelope]:
    return [item for item in sink.received if item.message["X-Intake-Kind"] == kind]


def test_the_samples_send_the_receipts_the_domain_calls_for_and_one_digest_per_staff_address(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport(), campaign={"staff": STAFF})
    assert run_samples(app).archived == 4
    deliver(app)
    assert queue_digest(app) == 2
    deliver(app)

    unit_receipts = of_kind(smtp_sink, "unit_receipt")
    assert len(unit_receipts) == 4
    assert sorted(item.rcpt_tos[0] for item in unit_receipts) == sorted(
        message["sender"] for message in TRUTH["messages"]
    )
    applicant = Counter(item.rcpt_tos[0] for item in of_kind(smtp_sink, "applicant_receipt"))
    for submission in TRUTH["submissions"]:
        bounds = submission["applicant_receipts"]
        assert bounds["min"] <= applicant[submission["email"]] <= bounds["max"], submission["ref"]
    digests = of_kind(smtp_sink, "digest")
    assert sorted(item.rcpt_tos[0] for item in digests) == sorted(STAFF)
    assert len(smtp_sink.received) == len(register_of(app)["outbox"])
    app.engine.dispose()


def test_each_unit_receipt_names_the_unit_its_rows_and_their_refs_in_text_and_html(
    db_url, tmp_path, smtp_sink
):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    run_samples(app)
    deliver(app)

    receipts = {
        item.message["In-Reply-To"].strip(): item for item in of_kind(smtp_sink, "unit_receipt")
    }
    recommendations = {row["unit"]: row for row in TRUTH["recommendations"]}
    for expected in TRUTH["messages"]:
        receipt = receipts[expected["message_id"]]
        assert receipt.rcpt_tos == [expected["sender"]]
        assert expected["message_id"] in receipt.message["References"].split()
        arrival = datetime.fromisoformat(expected["internaldate"])
        assert f"{arrival.month}月{arrival.day}日 {arrival:%H:%M}" in parts(receipt.message)[0]
        assert expected["unit"] in receipt.message["Subject"]
        for part in parts(receipt.message):
            assert expected["unit"] in part
            for attachment in expected["attachments"]:
                assert attachment["filename"] in part
            for case in recommendations[expected["unit"]]["cases"]:
                shown = tidy(case["title_on_form"]) or ""  # stray spaces between 汉字 go
                assert " ".join(shown.split()) in " ".join(part.split())
                assert case["submission_ref"] in part
    app.engine.dispose()


def test_every_mail_carries_the_headers_that_stop_auto_responders(db_url, tmp_path, smtp_sink):
    app = make_app(db_url, tmp_path, transport=smtp_sink.transport())
    run_samples(app)
    queue_digest(app)
    deliver(app)

    assert {item.message["X-Intake-Kind"] for item in smtp_sink.received} == {
        "unit_receipt",
        "applicant_receipt",
        "digest",
    }
    for item in smtp_sink.received:
        wanted = "auto-generated" if item.message["X-Intake-Kind"] == "digest" else "auto-replied"
        assert item.message["Auto-Submitted"] == wanted
        assert item.message["X-Auto-Response-Suppress"] == "All"
        assert item.message["Precedence"] == "bulk"
    app.engine.dispose()


def test_a_receipt_goes_to_reply_to_when_the_sender_names_one(db_url, tmp_path, smtp_sink):
    drop = MailDrop(tmp_path / "drop")
    app = make_app(
        db_url,
        tmp_path,
        open_mailbox=drop.mailbox,
        transport=smtp_sink.transport(),
        clock=lambda: at(21),
    )
    form = Form(unit="中国联通河北分公司", cases=[Case("智慧农业平台", "河北某某科技有限公司")])
    raw = mail(
        "secretary@hb.chinaunicom.example",
        "河北联通推荐表",
        [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
        received=at(20),
    )
    raw = b"Reply-To: Zhang San <zhangsan@hb.chinaunicom.example>\r\n" + raw
    message_id = drop.arrive(app, raw)
    deliver(app)

    [receipt] = smtp_sink.received
    assert receipt.rcpt_tos == ["zhangsan@hb.chinaunicom.example"]
    assert receipt.message["To"] == "zhangsan@hb.chinaunicom.example"
    assert receipt.message["In-Reply-To"].strip() == message_id
    app.engine.dispose()


def test_a_mail_that_says_files_are_attached_but_has_none_is_answered_and_waits_for_staff(
    sqlite_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=drop.mailbox,
        transport=smtp_sink.transport(),
        clock=lambda: at(21),
    )
    drop.arrive(
        app,
        mail(
            "liming@sx.chinamobile.example",
            "山西移动推荐材料",
            body="您好，我单位推荐表见附件，请查收。请问还需要寄送纸质版吗？",
            received=at(20),
        ),
    )
    deliver(app)

    [message] = register_of(app)["messages"]
    assert (message["kind"], message["needs_reply"], message["automated"]) == (
        "other",
        True,
        False,
    )
    assert message["reply_reasons"] == ["attachment_mentioned_missing", "question_needs_reply"]
    [todo] = [item for item in todo_items(register_of(app)) if item.kind == "needs_reply"]
    assert "没有附件" in todo.summary and "问题" in todo.summary
    [receipt] = smtp_sink.received
    for part in parts(receipt.message):
        assert "没有收到任何附件" in part
    app.engine.dispose()
