"""Mail damaged on the way is still read: what survives is kept and the damage is a problem."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from parsers.mail import decode_text, parse_message

CRLF = b"\r\n"


def lines(*text: str | bytes) -> bytes:
    """A message from its lines, joined with CRLF."""
    return CRLF.join(item if isinstance(item, bytes) else item.encode("utf-8") for item in text)


def codes(raw: bytes) -> list[str]:
    return [problem.code for problem in parse_message(raw).problems]


def test_headers_wrapped_without_indentation_keep_the_subject_and_sender_after_them():
    raw = lines(
        "X-Gateway-Trace: relay-7 scanned clean by policy engine version 12 with rules",
        "updated nightly from the central store and signed by the operator",
        "From: 推荐单位 <unit@example.cn>",
        "Subject: 推荐表报送",
        "Date: Mon, 14 Jul 2025 09:00:00 +0800",
        "",
        "推荐材料稍后发送。",
    )

    parsed = parse_message(raw)

    assert parsed.sender == "unit@example.cn"
    assert parsed.subject == "推荐表报送"
    assert parsed.text.strip() == "推荐材料稍后发送。"
    assert [problem.code for problem in parsed.problems] == ["headers_damaged"]


def test_a_body_that_starts_without_a_blank_line_is_not_taken_for_damaged_headers():
    raw = lines("From: unit@example.cn", "Subject: hello", "Body starts here", "and goes on")

    parsed = parse_message(raw)

    assert parsed.subject == "hello"
    assert "headers_damaged" not in [problem.code for problem in parsed.problems]


@pytest.mark.parametrize("boundary", ['; boundary="never-used"', ""])
def test_multipart_without_boundary_lines_is_read_as_text_with_no_phantom_file(boundary):
    raw = lines(
        "From: unit@example.cn",
        "Subject: 问题",
        "MIME-Version: 1.0",
        f"Content-Type: multipart/mixed{boundary}",
        "",
        "请问推荐表在哪里下载？",
    )

    parsed = parse_message(raw)

    assert parsed.attachments == []
    assert "推荐表在哪里下载" in parsed.text
    assert codes(raw) == ["multipart_without_boundary", "question_needs_reply"]


def test_iso_2022_jp_with_nec_circled_digits_decodes_through_cp932():
    # ① ② in JIS row 13 (NEC special characters), which the strict codec refuses
    body = b'\x1b$B-!-"\x1b(B \x1b$BF|K\\\x1b(B'

    text, clean = decode_text(body, "ISO-2022-JP")

    assert (text, clean) == ("①② 日本", True)


def test_shift_jis_mislabelled_as_iso_2022_jp_decodes():
    assert decode_text("①日本".encode("cp932"), "iso-2022-jp") == ("①日本", True)


def test_hz_text_mislabelled_gb2312_decodes_as_hz():
    assert decode_text("你好，推荐表".encode("hz"), "gb2312") == ("你好，推荐表", True)


def test_gbk_text_labelled_hz_decodes_as_gb18030():
    assert decode_text("推荐表".encode("gbk"), "HZ-GB-2312") == ("推荐表", True)


def test_bytes_no_candidate_charset_reads_are_a_problem_not_silent_text():
    body = b"\x81\x30\xff\xfe \xa1"
    raw = lines(
        "From: unit@example.cn",
        "Subject: x",
        "Content-Type: text/plain; charset=gbk",
        "",
        body,
    )

    parsed = parse_message(raw)

    assert parsed.sender == "unit@example.cn"
    assert [problem.code for problem in parsed.problems] == ["unknown_charset"]
    assert "gbk" in parsed.problems[0].message


@pytest.mark.parametrize("header", ["Date", "Received"])
def test_a_date_offset_out_of_range_is_ignored_and_the_rest_is_read(header):
    stamp = "Mon, 14 Jul 2025 09:00:00 +3200"
    value = stamp if header == "Date" else f"from a.example by b.example; {stamp}"
    raw = lines(
        f"{header}: {value}",
        "From: 推荐单位 <unit@example.cn>",
        "Subject: 推荐表",
        "MIME-Version: 1.0",
        'Content-Type: multipart/mixed; boundary="b"',
        "",
        "--b",
        "Content-Type: text/plain; charset=utf-8",
        "",
        "附件为推荐表。",
        "--b",
        'Content-Type: application/octet-stream; name="case.txt"',
        'Content-Disposition: attachment; filename="case.txt"',
        "",
        "content",
        "--b--",
        "",
    )

    parsed = parse_message(raw)

    assert parsed.sender == "unit@example.cn"
    assert parsed.subject == "推荐表"
    assert [attachment.filename for attachment in parsed.attachments] == ["case.txt"]
    assert parsed.date is None and parsed.received_at is None
    assert [problem.code for problem in parsed.problems] == ["date_out_of_range"]


def test_a_later_received_header_with_a_good_date_still_gives_arrival():
    raw = lines(
        "Received: from a by b; Mon, 14 Jul 2025 09:00:00 +3200",
        "Received: from c by a; Mon, 14 Jul 2025 08:59:00 +0800",
        "From: unit@example.cn",
        "Subject: x",
        "",
        "body",
    )

    parsed = parse_message(raw)

    assert parsed.received_at == datetime(2025, 7, 14, 0, 59, tzinfo=UTC)
    assert [problem.code for problem in parsed.problems] == ["date_out_of_range"]


def test_real_zone_offsets_at_the_edges_are_read():
    raw = lines("From: unit@example.cn", "Date: Mon, 14 Jul 2025 09:00:00 +1400", "", "x")

    parsed = parse_message(raw)

    assert parsed.date == datetime(2025, 7, 13, 19, 0, tzinfo=UTC)
    assert parsed.problems == []


def test_a_message_without_any_sender_says_so():
    parsed = parse_message(lines("Subject: 推荐表", "To: cases@cace.example", "", "正文"))

    assert (parsed.sender, parsed.subject) == ("", "推荐表")
    assert [problem.code for problem in parsed.problems] == ["headers_damaged"]
