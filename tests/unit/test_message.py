"""Building outgoing messages: structure, anti-loop headers, and no header injection."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage, MIMEPart
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import DeliveryError, IntakeError
from notifications.contexts import sample_context
from notifications.message import (
    AddressError,
    MailAttachment,
    OutgoingMail,
    build_message,
    make_message_id,
)
from notifications.render import RenderedMail, Renderer
from notifications.transport import RECIPIENTS_HEADER, FileTransport, RecordingTransport

FROM = "案例征集 <cases@cace.example>"
WHEN = datetime(2025, 7, 20, 6, 5, tzinfo=UTC)
RENDERED = Renderer().render(sample_context("unit_receipt"))


def outgoing(**changes: Any) -> OutgoingMail:
    fields: dict[str, Any] = {
        "kind": "unit_receipt",
        "to": ["王磊 <wang@zj.example.cn>"],
        "rendered": RENDERED,
    }
    return OutgoingMail(**(fields | changes))


def build(mail: OutgoingMail) -> EmailMessage:
    return build_message(mail, from_address=FROM, message_id="<abc@cace.example>", date=WHEN)


def reparse(message: EmailMessage) -> EmailMessage:
    parsed = email.message_from_bytes(message.as_bytes(), policy=policy.default)
    assert isinstance(parsed, EmailMessage)
    return parsed


def body_of(message: EmailMessage, subtype: str) -> str:
    part = message.get_body((subtype,))
    assert isinstance(part, MIMEPart)
    return str(part.get_content())


def test_a_message_carries_text_and_html_alternatives_in_utf8():
    parsed = reparse(build(outgoing()))

    assert parsed.get_content_type() == "multipart/alternative"
    assert "中国移动通信集团浙江有限公司" in body_of(parsed, "plain")
    assert "中国移动通信集团浙江有限公司" in body_of(parsed, "html")
    assert parsed["Subject"] == RENDERED.subject


def test_every_message_says_it_is_automatic_and_asks_for_no_auto_reply():
    parsed = reparse(build(outgoing(auto_submitted="auto-replied")))

    assert parsed["Auto-Submitted"] == "auto-replied"
    assert parsed["X-Auto-Response-Suppress"] == "All"
    assert parsed["Precedence"] == "bulk"


def test_a_receipt_is_threaded_under_the_message_it_answers():
    mail = outgoing(in_reply_to="<orig@zj.example.cn>", references=["<first@zj.example.cn>"])

    parsed = reparse(build(mail))

    assert parsed["In-Reply-To"] == "<orig@zj.example.cn>"
    assert parsed["References"] == "<first@zj.example.cn> <orig@zj.example.cn>"


def test_the_wire_form_is_seven_bit_with_crlf_line_ends():
    data = build(outgoing()).as_bytes()

    assert data.isascii()
    assert b"\r\n" in data and b"\n" not in data.replace(b"\r\n", b"")


def test_a_chinese_attachment_name_is_rfc2231_encoded_and_survives():
    register = MailAttachment(
        filename="登记表 2025.xlsx",
        content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        data=b"PK\x03\x04 xlsx bytes",
    )

    message = build(outgoing(kind="digest", attachments=[register]))
    parsed = reparse(message)

    assert b"filename*=utf-8''" in message.as_bytes()
    [attachment] = list(parsed.iter_attachments())
    assert attachment.get_filename() == "登记表 2025.xlsx"
    assert attachment.get_content() == b"PK\x03\x04 xlsx bytes"
    assert parsed.get_body(("plain",)) is not None


def test_an_attachment_name_loses_its_directories():
    message = build(outgoing(attachments=[MailAttachment("../../etc/passwd", "text/plain", b"x")]))

    [attachment] = list(reparse(message).iter_attachments())
    assert attachment.get_filename() == "passwd"


def test_a_title_with_an_injected_bcc_header_yields_no_extra_header():
    evil = RenderedMail(subject="推荐表\r\nBcc: x@evil.example", text="正文", html="<p>正文</p>")

    parsed = reparse(build(outgoing(rendered=evil)))

    assert parsed["Bcc"] is None
    assert "x@evil.example" not in " ".join(
        value for name, value in parsed.items() if name != "Subject"
    )
    assert parsed["Subject"] == "推荐表 Bcc: x@evil.example"


def test_a_display_name_with_a_line_break_stays_inside_its_header():
    parsed = reparse(build(outgoing(to=['"王磊\r\nBcc: x@evil.example" <wang@zj.example.cn>'])))

    assert parsed["Bcc"] is None
    assert parsed["To"].addresses[0].addr_spec == "wang@zj.example.cn"


@pytest.mark.parametrize(
    "address",
    [
        "wang@zj.example.cn\r\nBcc: x@evil.example",
        "not an address",
        "a@b.cn, c@d.cn",
        "wang@localhost",
        "",
    ],
)
def test_an_invalid_recipient_is_refused_as_a_permanent_delivery_error(address):
    with pytest.raises(AddressError) as failure:
        build(outgoing(to=[address]))

    assert isinstance(failure.value, DeliveryError) and isinstance(failure.value, ValueError)
    assert failure.value.permanent is True


def test_a_forged_in_reply_to_is_dropped_rather_than_written():
    mail = outgoing(in_reply_to="<a@b>\r\nBcc: x@evil.example", references=["no brackets"])

    parsed = reparse(build(mail))

    assert parsed["In-Reply-To"] is None
    assert parsed["References"] is None
    assert parsed["Bcc"] is None


def test_message_ids_are_unique_and_under_the_given_domain():
    first, second = make_message_id("cace.example"), make_message_id("cace.example")

    assert first != second
    assert first.startswith("<") and first.endswith("@cace.example>")


def test_a_message_id_domain_with_a_line_break_is_refused():
    with pytest.raises(IntakeError):
        make_message_id("cace.example\r\nBcc: x@evil.example")


@given(st.text(max_size=120))
def test_no_subject_text_can_add_a_header(subject):
    rendered = RenderedMail(subject=subject, text="正文", html="<p>正文</p>")

    parsed = reparse(build(outgoing(rendered=rendered)))

    assert parsed["Bcc"] is None
    assert len(parsed.get_all("Subject") or []) == 1
    assert len(parsed.get_all("To") or []) == 1


def test_the_file_transport_writes_one_eml_per_message_with_its_recipients(tmp_path):
    message = build(outgoing())

    with FileTransport(tmp_path / "outbox").connect() as sender:
        sender.send(message, ["wang@zj.example.cn"])
        sender.send(message, ["li@zj.example.cn", "wang@zj.example.cn"])

    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 2
    assert list((tmp_path / "outbox").glob(".*")) == []  # no temporary files left behind
    written = email.message_from_bytes(files[1].read_bytes(), policy=policy.default)
    assert written[RECIPIENTS_HEADER] == "li@zj.example.cn, wang@zj.example.cn"
    assert written["Subject"] == RENDERED.subject


def test_the_recording_transport_keeps_what_was_sent_and_plays_scripted_failures():
    transport = RecordingTransport(outcomes=[DeliveryError("451 later", permanent=False)])
    message = build(outgoing())

    with transport.connect() as sender:
        with pytest.raises(DeliveryError):
            sender.send(message, ["wang@zj.example.cn"])
        sender.send(message, ["wang@zj.example.cn"])

    assert transport.connections == 1
    assert [sent.recipients for sent in transport.sent] == [["wang@zj.example.cn"]]
