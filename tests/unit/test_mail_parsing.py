"""parse_message on the sample mailbox and on hand-written MIME covering what Chinese mail does."""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from config.errors import ParseError
from parsers.containers import Limits
from parsers.mail import parse_message
from tests.unit.test_containers import (
    mark_entries_encrypted,
    nested_zip_bomb,
    zip_bytes,
    zip_with_gbk_names,
)

SAMPLES = Path("/work/shared/samples")
MIMEKIT_TNEF = Path("/work/shared/corpus/realworld/mimekit/tnef")
CST = timezone(timedelta(hours=8))
CRLF = "\r\n"
GBK_ONLY_NAME = "镕喆堃昇"


def b64(data: bytes) -> str:
    """Base64 folded to 76 columns, as mailers write it."""
    text = base64.b64encode(data).decode("ascii")
    return CRLF.join(text[i : i + 76] for i in range(0, len(text), 76))


def encoded_word(text: str, charset: str = "gb2312") -> str:
    """An RFC 2047 B encoded-word; gb2312 goes out as GBK bytes, as Chinese mailers do."""
    codec = "gbk" if charset.lower() in {"gb2312", "gbk"} else charset
    return f"=?{charset}?B?{base64.b64encode(text.encode(codec)).decode('ascii')}?="


def message(
    headers: str,
    body: bytes | str = "hello",
    *,
    content_type: str = "text/plain; charset=utf-8",
    sender: str = "Unit <unit@example.cn>",
) -> bytes:
    """A single-part message: `headers` are extra lines, `body` goes out as 8-bit."""
    head = (
        f"From: {sender}{CRLF}To: cases@cace.example{CRLF}Subject: test{CRLF}"
        f"Message-ID: <m1@example.cn>{CRLF}Date: Mon, 14 Jul 2025 09:00:00 +0800{CRLF}"
        f"MIME-Version: 1.0{CRLF}Content-Type: {content_type}{CRLF}"
    )
    if headers:
        head += headers.strip("\r\n").replace("\n", CRLF).replace("\r\r", "\r") + CRLF
    data = body if isinstance(body, bytes) else body.encode("utf-8")
    return head.encode("utf-8") + CRLF.encode() + data


def multipart(
    parts: list[bytes],
    *,
    headers: str = "",
    subtype: str = "mixed",
    params: str = "",
    sender: str = "Unit <unit@example.cn>",
    subject: str = "test",
    boundary: str = "----=_Part_boundary_0001",
) -> bytes:
    """A multipart message whose parts are given as raw bytes (headers, blank line, body)."""
    head = (
        f"From: {sender}{CRLF}To: cases@cace.example{CRLF}Subject: {subject}{CRLF}"
        f"Message-ID: <mp@example.cn>{CRLF}Date: Mon, 14 Jul 2025 09:00:00 +0800{CRLF}"
        f'MIME-Version: 1.0{CRLF}Content-Type: multipart/{subtype}; boundary="{boundary}"'
        f"{params}{CRLF}"
    )
    if headers:
        head += headers.strip("\r\n").replace("\n", CRLF) + CRLF
    chunks = [head.encode("utf-8"), CRLF.encode()]
    for part in parts:
        chunks.append(f"--{boundary}{CRLF}".encode())
        chunks.append(part)
        chunks.append(CRLF.encode())
    chunks.append(f"--{boundary}--{CRLF}".encode())
    return b"".join(chunks)


def text_part(text: str = "您好，附件为推荐表。", charset: str = "utf-8") -> bytes:
    """An 8-bit text/plain part."""
    codec = "gbk" if charset.lower() in {"gb2312", "gbk"} else charset
    head = f"Content-Type: text/plain; charset={charset}{CRLF}Content-Transfer-Encoding: 8bit"
    return head.encode() + (CRLF * 2).encode() + text.encode(codec)


def html_part(html: str) -> bytes:
    """A base64 text/html part in UTF-8."""
    head = "Content-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64"
    return f"{head}{CRLF}{CRLF}{b64(html.encode('utf-8'))}".encode()


def file_part(
    data: bytes,
    disposition_params: str,
    *,
    content_type: str = "application/octet-stream",
    type_params: str = "",
) -> bytes:
    """A base64 attachment part; the parameters are written exactly as given (may be 8-bit)."""
    head = (
        f"Content-Type: {content_type}{type_params}{CRLF}"
        f"Content-Transfer-Encoding: base64{CRLF}"
        f"Content-Disposition: attachment{disposition_params}"
    )
    return head.encode("utf-8") + (CRLF * 2).encode() + b64(data).encode()


def raw_file_part(data: bytes, raw_params: bytes) -> bytes:
    """An attachment whose Content-Disposition parameters hold raw 8-bit bytes."""
    return (
        b"Content-Type: application/octet-stream\r\nContent-Transfer-Encoding: base64\r\n"
        b"Content-Disposition: attachment; " + raw_params + b"\r\n\r\n" + b64(data).encode()
    )


def _truth_messages() -> list[dict[str, Any]]:
    truth = SAMPLES / "truth.json"
    if not truth.is_file():
        return []
    messages: list[dict[str, Any]] = json.loads(truth.read_text(encoding="utf-8"))["messages"]
    return messages


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples folder not present")
@pytest.mark.parametrize("expected", _truth_messages(), ids=lambda entry: entry["file"])
def test_sample_mail_parses_as_the_truth_file_says(expected):
    parsed = parse_message((SAMPLES / "mailbox" / expected["file"]).read_bytes())

    assert parsed.subject == expected["subject"]
    assert parsed.sender == expected["sender"]
    assert parsed.message_id == expected["message_id"]
    assert parsed.kind == "recommendation"
    assert parsed.problems == []
    assert [(a.filename, a.sha256, a.size, a.container) for a in parsed.attachments] == [
        (a["filename"], a["sha256"], a["size"], a["container"]) for a in expected["attachments"]
    ]
    assert all(a.sha256 == hashlib.sha256(a.data).hexdigest() for a in parsed.attachments)


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples folder not present")
def test_the_sealed_pdf_sent_later_is_a_reply_to_the_word_mail():
    word_mail = parse_message((SAMPLES / "mailbox" / "003.eml").read_bytes())
    pdf_mail = parse_message((SAMPLES / "mailbox" / "004.eml").read_bytes())

    assert pdf_mail.in_reply_to == word_mail.message_id
    assert pdf_mail.references == [word_mail.message_id]
    assert pdf_mail.sender_name == "邵伟晨"
    assert pdf_mail.to == ["cases@cace.example"]


@pytest.mark.skipif(not SAMPLES.is_dir(), reason="shared samples folder not present")
def test_arrival_is_the_top_received_date_not_the_senders_date():
    parsed = parse_message((SAMPLES / "mailbox" / "001.eml").read_bytes())

    assert parsed.received_at == datetime(2025, 7, 12, 10, 20, 18, tzinfo=CST)
    assert parsed.date == datetime(2025, 7, 12, 10, 20, tzinfo=CST)


def test_newest_received_header_wins_over_older_hops_and_the_date_header():
    raw = message(
        "Received: from relay by mx.cace.example; Fri, 1 Aug 2025 00:00:05 +0800\n"
        "Received: from client by relay; Thu, 31 Jul 2025 23:59:58 +0800"
    )

    parsed = parse_message(raw)

    assert parsed.received_at == datetime(2025, 7, 31, 16, 0, 5, tzinfo=UTC)
    assert parsed.date == datetime(2025, 7, 14, 9, 0, tzinfo=CST)


def test_a_gb2312_subject_with_gbk_only_characters_is_read_as_gb18030():
    raw = message(f"Subject: {encoded_word(GBK_ONLY_NAME + '推荐表')}").replace(
        b"Subject: test\r\n", b"", 1
    )

    assert parse_message(raw).subject == "镕喆堃昇推荐表"


def test_an_8bit_body_labelled_gb2312_keeps_gbk_only_characters():
    body = f"联系人：{GBK_ONLY_NAME}".encode("gbk")

    parsed = parse_message(message("", body, content_type="text/plain; charset=gb2312"))

    assert parsed.text == "联系人：镕喆堃昇"
    assert parsed.problems == []


def test_raw_8bit_gbk_and_utf8_subjects_are_decoded():
    gbk = message("").replace(b"Subject: test", "Subject: 镕喆推荐表".encode("gbk"))
    utf8 = message("").replace(b"Subject: test", "Subject: 镕喆推荐表".encode())

    assert parse_message(gbk).subject == "镕喆推荐表"
    assert parse_message(utf8).subject == "镕喆推荐表"


def test_sender_is_a_bare_lower_case_address_with_its_decoded_display_name():
    raw = message(
        f'Reply-To: "{encoded_word("办公室")}" <Office@Unit.example.cn>\n'
        "Cc: a@example.cn, B <B@Example.cn>",
        sender=f'"{encoded_word(GBK_ONLY_NAME)}" <Zhang.San@Unit.Example.CN>',
    )

    parsed = parse_message(raw)

    assert parsed.sender == "zhang.san@unit.example.cn"
    assert parsed.sender_name == GBK_ONLY_NAME
    assert parsed.reply_to == ["office@unit.example.cn"]
    assert parsed.cc == ["a@example.cn", "b@example.cn"]


@pytest.mark.parametrize(
    ("style", "params"),
    [
        (
            "encoded-word in quoted filename (Foxmail)",
            f'; filename="{encoded_word("镕喆-推荐表.docx")}"',
        ),
        (
            "encoded-word split mid-character (Outlook)",
            '; filename="=?gb2312?B?'
            + base64.b64encode("镕喆-推".encode("gbk")[:5]).decode()
            + "?= =?gb2312?B?"
            + base64.b64encode("镕喆-推荐表.docx".encode("gbk")[5:]).decode()
            + '?="',
        ),
        (
            "RFC 2231",
            "; filename*=gb2312''"
            + "".join(f"%{byte:02X}" for byte in "镕喆-推荐表.docx".encode("gbk")),
        ),
        (
            "RFC 2231 continuations",
            "; filename*0*=utf-8''"
            + "".join(f"%{byte:02X}" for byte in "镕喆-".encode())
            + ";\r\n filename*1*="
            + "".join(f"%{byte:02X}" for byte in "推荐表.docx".encode()),
        ),
    ],
)
def test_chinese_file_names_are_decoded_in_every_style_mailers_use(style, params):
    raw = multipart([text_part(), file_part(b"word bytes", params)])

    parsed = parse_message(raw)

    assert [a.filename for a in parsed.attachments] == ["镕喆-推荐表.docx"], style
    assert parsed.attachments[0].safe_name == "镕喆-推荐表.docx"


@pytest.mark.parametrize("codec", ["gbk", "utf-8"])
def test_raw_8bit_file_names_are_decoded(codec):
    params = b'filename="' + "堃昇-推荐表（盖章）.pdf".encode(codec) + b'"'

    parsed = parse_message(multipart([text_part(), raw_file_part(b"%PDF-1.4", params)]))

    assert [a.filename for a in parsed.attachments] == ["堃昇-推荐表（盖章）.pdf"]


def test_attachment_content_type_name_is_used_when_there_is_no_filename():
    part = (
        f'Content-Type: application/pdf; name="{encoded_word("盖章版.pdf", "utf-8")}"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\n" + b64(b"%PDF-1.4")
    ).encode()

    parsed = parse_message(multipart([text_part(), part]))

    assert [(a.filename, a.data) for a in parsed.attachments] == [("盖章版.pdf", b"%PDF-1.4")]


def test_an_unknown_charset_is_read_anyway_and_recorded():
    body = "您好，推荐表稍后发送".encode()

    parsed = parse_message(message("", body, content_type="text/plain; charset=x-klingon"))

    assert parsed.text == "您好，推荐表稍后发送"
    assert [p.code for p in parsed.problems] == ["unknown_charset"]
    assert "x-klingon" in parsed.problems[0].message


def test_text_and_html_bodies_are_both_kept():
    raw = multipart([text_part("纯文本"), html_part("<p>网页</p>")], subtype="alternative")

    parsed = parse_message(raw)

    assert parsed.text == "纯文本"
    assert parsed.html == "<p>网页</p>"
    assert parsed.attachments == []


def test_zip_contents_count_as_the_messages_own_attachments():
    archive = zip_with_gbk_names({"镕喆-推荐表.docx": b"word", "镕喆-盖章.pdf": b"%PDF-1.4"})
    params = f'; filename="{encoded_word("材料.zip")}"'

    parsed = parse_message(multipart([text_part(), file_part(archive, params)]))

    assert [(a.filename, a.container) for a in parsed.attachments] == [
        ("材料.zip", None),
        ("镕喆-推荐表.docx", "zip:材料.zip"),
        ("镕喆-盖章.pdf", "zip:材料.zip"),
    ]
    zip_itself = parsed.attachments[0]
    assert (zip_itself.size, zip_itself.sha256) == (
        len(archive),
        hashlib.sha256(archive).hexdigest(),
    )


def test_a_zip_inside_a_zip_is_listed_with_the_outer_one_as_its_container():
    inner = zip_bytes({"推荐表.docx": b"word"})
    outer = zip_bytes({"inner.zip": inner, "说明.txt": b"note"})

    parsed = parse_message(multipart([text_part(), file_part(outer, "; filename=outer.zip")]))

    assert [(a.filename, a.container) for a in parsed.attachments] == [
        ("outer.zip", None),
        ("inner.zip", "zip:outer.zip"),
        ("推荐表.docx", "zip:inner.zip"),
        ("说明.txt", "zip:outer.zip"),
    ]


@pytest.mark.skipif(not (SAMPLES / "forms").is_dir(), reason="shared sample forms not present")
def test_a_zip_holding_a_real_word_form_makes_the_message_a_recommendation():
    form = next((SAMPLES / "forms").glob("*.docx"))
    archive = zip_bytes({form.name: form.read_bytes()})

    parsed = parse_message(multipart([text_part(), file_part(archive, "; filename=forms.zip")]))

    assert [(a.filename, a.kind) for a in parsed.attachments] == [
        ("forms.zip", "other"),
        (form.name, "form_word"),
    ]
    assert parsed.kind == "recommendation"


def test_a_nested_zip_bomb_in_a_message_is_reported_and_the_archive_kept():
    parsed = parse_message(
        multipart([text_part(), file_part(nested_zip_bomb(), "; filename=42.zip")])
    )

    assert any(p.code == "zip_bomb" for p in parsed.problems)
    assert "42.zip" in [a.filename for a in parsed.attachments]
    assert sum(a.size for a in parsed.attachments) < Limits().max_inflated_bytes


def test_an_encrypted_zip_is_kept_whole_with_a_problem_saying_what_to_do():
    archive = mark_entries_encrypted(zip_bytes({"推荐表.docx": b"word"}))

    parsed = parse_message(multipart([text_part(), file_part(archive, "; filename=secret.zip")]))

    assert [a.filename for a in parsed.attachments] == ["secret.zip"]
    assert [p.code for p in parsed.problems] == ["zip_encrypted"]


def test_files_of_a_forwarded_message_count_with_its_subject_as_container():
    forwarded = multipart(
        [text_part("原邮件"), file_part(b"word", f'; filename="{encoded_word("推荐表.docx")}"')],
        subject=encoded_word("江苏移动推荐表"),
        boundary="inner-boundary",
    ).replace(b"Message-ID: <mp@", b"Message-ID: <inner@")
    part = b"Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n" + forwarded

    parsed = parse_message(multipart([text_part("转发给你"), part], subject="Fw: 推荐表"))

    assert [(a.filename, a.container) for a in parsed.attachments] == [
        ("江苏移动推荐表.eml", None),
        ("推荐表.docx", "message/rfc822:江苏移动推荐表"),
    ]
    assert parsed.attachments[0].size == len(forwarded)
    assert parsed.text == "转发给你"


@pytest.mark.skipif(not MIMEKIT_TNEF.is_dir(), reason="real-world corpus not present")
def test_files_inside_winmail_dat_are_extracted():
    tnef = (MIMEKIT_TNEF / "two-files.tnef").read_bytes()
    part = file_part(tnef, '; filename="winmail.dat"', content_type="application/ms-tnef")

    parsed = parse_message(multipart([text_part(), part]))

    assert [(a.filename, a.container) for a in parsed.attachments] == [
        ("AUTHORS", "tnef:winmail.dat"),
        ("README", "tnef:winmail.dat"),
    ]


def test_line_breaks_hidden_in_an_encoded_subject_are_removed_and_reported():
    raw = message("").replace(
        b"Subject: test", b"Subject: =?utf-8?Q?Hi=0D=0ABcc:_evil@example.com?="
    )

    parsed = parse_message(raw)

    assert parsed.subject == "Hi Bcc: evil@example.com"
    assert [p.code for p in parsed.problems] == ["control_characters"]
    assert "subject" in parsed.problems[0].message


def test_a_file_name_with_a_path_and_control_characters_is_made_safe():
    params = '; filename="=?utf-8?Q?..=2F..=2Fetc=2F=0D=0Apasswd.pdf?="'

    parsed = parse_message(multipart([text_part(), file_part(b"%PDF", params)]))

    attachment = parsed.attachments[0]
    assert attachment.safe_name == "passwd.pdf"
    assert "\r" not in attachment.filename and "\n" not in attachment.filename
    assert [p.code for p in parsed.problems] == ["control_characters"]


def test_too_many_parts_stop_the_walk_with_a_problem():
    parts = [file_part(b"x", f"; filename=f{n}.txt") for n in range(30)]

    parsed = parse_message(multipart(parts), limits=Limits(max_parts=10))

    assert len(parsed.attachments) < 10
    assert [p.code for p in parsed.problems] == ["too_many_parts"]


def test_too_deep_nesting_stops_the_walk_with_a_problem():
    inner = text_part("deep")
    for level in range(12):
        boundary = f"level{level}"
        inner = (
            f'Content-Type: multipart/mixed; boundary="{boundary}"\r\n\r\n--{boundary}\r\n'.encode()
            + inner
            + f"\r\n--{boundary}--\r\n".encode()
        )

    parsed = parse_message(multipart([inner]), limits=Limits(max_depth=5))

    assert [p.code for p in parsed.problems] == ["too_deep"]


@pytest.mark.parametrize(
    "raw",
    [b"", b"   \r\n\r\n", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1 outlook msg", b"just some words"],
    ids=["empty", "blank", "outlook-msg", "no-headers"],
)
def test_bytes_that_are_no_mail_at_all_raise_parse_error(raw):
    with pytest.raises(ParseError):
        parse_message(raw)


def test_a_message_with_headers_only_still_parses():
    parsed = parse_message(b"From: a@example.cn\r\nSubject: hi\r\n")

    assert parsed.sender == "a@example.cn"
    assert parsed.subject == "hi"
    assert parsed.kind == "other"
    assert parsed.no_reply is False


def test_a_base64_encoded_forwarded_message_keeps_its_files():
    inner = (
        "From: a@unit.example\r\nSubject: 推荐表\r\nMIME-Version: 1.0\r\n"
        'Content-Type: multipart/mixed; boundary="in"\r\n\r\n--in\r\n'
        "Content-Type: text/plain; charset=utf-8\r\n\r\nsee attached\r\n--in\r\n"
        'Content-Type: application/octet-stream; name="note.txt"\r\n'
        'Content-Disposition: attachment; filename="note.txt"\r\n'
        "Content-Transfer-Encoding: base64\r\n\r\naGVsbG8=\r\n--in--\r\n"
    ).encode()
    encoded = base64.encodebytes(inner).replace(b"\n", b"\r\n")
    outer = (
        b"From: fwd@unit.example\r\nSubject: Fw: x\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="out"\r\n\r\n--out\r\n'
        b"Content-Type: text/plain\r\n\r\nforwarding\r\n--out\r\n"
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + encoded
        + b"--out--\r\n"
    )
    parsed = parse_message(outer)
    assert [item.filename for item in parsed.attachments] == ["推荐表.eml", "note.txt"]
    assert parsed.attachments[0].data == inner
    assert parsed.attachments[1].data == b"hello"
    assert parsed.attachments[1].container is not None
    assert parsed.attachments[1].container.startswith("message/rfc822")
