"""The `mailto:` link 待处理 offers for a mail that needs a reply: the subject stays one line
and nothing in the subject or the address can add a header or a recipient."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

from hypothesis import given
from hypothesis import strategies as st

from service.web.app import mailto, reply_subject


def test_a_reply_subject_is_the_original_after_re():
    assert reply_subject("推荐材料的问题") == "Re: 推荐材料的问题"


def test_a_subject_that_already_says_reply_is_not_prefixed_again():
    assert reply_subject("回复：推荐材料") == "回复：推荐材料"
    assert reply_subject("RE: 推荐材料") == "RE: 推荐材料"


def test_line_breaks_in_a_subject_become_spaces():
    assert reply_subject("问题\r\nBcc: spy@evil.example") == "Re: 问题 Bcc: spy@evil.example"


def test_a_missing_subject_still_gives_a_reply_subject():
    assert reply_subject(None) == "Re:"


def test_an_address_cannot_smuggle_in_a_field():
    link = mailto("a@b.example?bcc=spy@evil.example&x=\r\n", "Re: 问题")
    parts = urlsplit(link)
    assert parse_qs(parts.query) == {"subject": ["Re: 问题"]}
    assert "?" not in parts.path and "&" not in parts.path


@given(st.text(max_size=200))
def test_any_subject_gives_one_field_on_one_line(subject: str):
    link = mailto("wang@example.org", reply_subject(subject))
    assert "\r" not in link and "\n" not in link
    assert "%0D" not in link.upper() and "%0A" not in link.upper()
    parts = urlsplit(link)
    assert parts.path == "wang@example.org"
    fields = parse_qs(parts.query, keep_blank_values=True)
    assert list(fields) == ["subject"] and len(fields["subject"]) == 1
