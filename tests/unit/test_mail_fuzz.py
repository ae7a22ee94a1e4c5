"""Random and mutated input never makes parse_message fail in any way but ParseError."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from config.errors import ParseError
from parsers.mail import parse_message
from parsers.model import ParsedMessage

SAMPLES = Path("/work/shared/samples/mailbox")
CORPUS = Path("/work/shared/corpus/realworld")
SEED_FILES = [
    CORPUS / "letters" / "test_chinese_multipart_mixed_gbk_over_base64.txt",
    CORPUS / "bounce_email" / "bounces" / "tt_1234175799.txt",
    CORPUS / "mimekit" / "tnef" / "rich-text.eml",
    CORPUS / "sisimai-set-of-emails" / "maildir" / "bsd" / "rfc3834-02.eml",
]
FUZZ_SETTINGS = settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def seed_messages() -> list[bytes]:
    seeds = [path.read_bytes() for path in SEED_FILES if path.is_file()]
    seeds += [path.read_bytes()[:20_000] for path in sorted(SAMPLES.glob("*.eml"))[:2]]
    return seeds or [b"From: a@example.cn\r\nSubject: seed\r\n\r\nbody\r\n"]


SEEDS = seed_messages()


def parse_quietly(raw: bytes) -> ParsedMessage | None:
    """Parse, accepting only a ParsedMessage or a ParseError (returned as None)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        return parse_message(raw)
    except ParseError:
        return None
    finally:
        logging.disable(previous)


@st.composite
def mutated_messages(draw: st.DrawFn) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(min_value=1, max_value=8))):
        position = draw(st.integers(min_value=0, max_value=max(len(data) - 1, 0)))
        action = draw(st.sampled_from(["flip", "insert", "delete", "truncate"]))
        if action == "flip" and data:
            data[position] = draw(st.integers(min_value=0, max_value=255))
        elif action == "insert":
            data[position:position] = draw(
                st.sampled_from(
                    [b"\r\n", b"\r\n\r\n", b"=?gb2312?B?", b"?=", b"--", b'"', b";", b"\x00"]
                )
                | st.binary(max_size=16)
            )
        elif action == "delete":
            del data[position : position + draw(st.integers(min_value=1, max_value=64))]
        else:
            del data[position:]
    return bytes(data)


@FUZZ_SETTINGS
@given(st.binary(max_size=4096))
def test_random_bytes_give_a_message_or_a_parse_error(raw):
    result = parse_quietly(raw)

    assert result is None or isinstance(result, ParsedMessage)


@FUZZ_SETTINGS
@given(mutated_messages())
def test_mutated_real_messages_give_a_message_or_a_parse_error(raw):
    result = parse_quietly(raw)

    assert result is None or isinstance(result, ParsedMessage)
    if result is not None:
        assert "\n" not in result.subject
        assert all("\n" not in a.filename and "/" not in a.safe_name for a in result.attachments)


@FUZZ_SETTINGS
@given(
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=200).map(
        lambda text: b"From: a@example.cn\r\nSubject: " + text.encode() + b"\r\n\r\nx"
    )
)
def test_any_subject_text_gives_a_message_or_a_parse_error(raw):
    result = parse_quietly(raw)

    assert result is None or "\r" not in result.subject


@pytest.mark.skipif(not SEED_FILES[0].is_file(), reason="real-world corpus not present")
def test_the_fuzz_seeds_themselves_parse():
    unparsed = [number for number, seed in enumerate(SEEDS) if parse_quietly(seed) is None]
    assert len(SEEDS) > 1 and unparsed == []


@FUZZ_SETTINGS
@given(
    st.sampled_from(["Date", "Received"]),
    st.sampled_from(["+", "-"]),
    st.integers(min_value=0, max_value=9999),
)
def test_any_date_offset_keeps_the_sender_and_subject(header, sign, offset):
    stamp = f"Mon, 14 Jul 2025 09:00:00 {sign}{offset:04d}"
    value = stamp if header == "Date" else f"from a by b; {stamp}"
    raw = f"{header}: {value}\r\nFrom: a@example.cn\r\nSubject: s\r\n\r\nx".encode()

    result = parse_message(raw)

    assert (result.sender, result.subject) == ("a@example.cn", "s")
