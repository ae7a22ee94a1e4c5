"""parse_message over every file of the real-world corpus: no crash, no file lost or garbled."""

from __future__ import annotations

import email
import email.message
import email.policy
import email.utils
import re
from pathlib import Path

import pytest

from config.errors import ParseError
from parsers.mail import parse_message
from parsers.model import ParsedMessage

CORPUS = Path("/work/shared/corpus/realworld")
NOT_MESSAGES = {"raw-tnef", "ole-msg"}
UNDECODED_WORD = re.compile(r"=\?[^?\s]+\?[bBqQ]\?[^?]*\?=")
REPLACEMENT_BYTES = "\ufffd".encode()

pytestmark = pytest.mark.skipif(
    not (CORPUS / "INDEX.tsv").is_file(), reason=f"real-world corpus not present at {CORPUS}"
)


def corpus_entries() -> list[tuple[str, set[str]]]:
    index = CORPUS / "INDEX.tsv"
    if not index.is_file():
        return []
    rows = [line.split("\t") for line in index.read_text(encoding="utf-8").splitlines()[1:]]
    return [(row[0], set(row[2].split(","))) for row in rows if len(row) == 3]


def attachment_parts(raw: bytes) -> int:
    """How many leaf parts the stdlib sees as files: named or disposed as attachments.

    Signatures and the returned headers of a bounce describe the message, they are no files.
    """
    message = email.message_from_bytes(raw, policy=email.policy.compat32)
    count = 0
    for part in message.walk():
        content_type = part.get_content_type()
        if part.is_multipart() or content_type.startswith("message/"):
            continue
        if content_type in {"application/pgp-signature", "text/rfc822-headers"}:
            continue
        named = any(
            email.utils.collapse_rfc2231_value(value).strip('" ')
            for value in (
                part.get_param("filename", header="content-disposition"),
                part.get_param("name"),
            )
            if value
        )
        if named or part.get_content_disposition() == "attachment":
            count += 1
    return count


def test_every_corpus_file_parses_or_is_refused_cleanly_and_keeps_its_files():
    failures: list[str] = []
    parsed_count = 0
    for relative, tags in corpus_entries():
        raw = (CORPUS / relative).read_bytes()
        try:
            parsed = parse_message(raw)
        except ParseError:
            continue
        except Exception as exc:
            failures.append(f"{relative}: {type(exc).__name__}: {exc}")
            continue
        parsed_count += 1
        assert isinstance(parsed, ParsedMessage)
        if tags & NOT_MESSAGES:
            failures.append(f"{relative}: a non-message file was accepted")
        if len(parsed.attachments) < attachment_parts(raw) and not parsed.problems:
            failures.append(f"{relative}: attachments lost without a problem recorded")
        raw_has_replacements = REPLACEMENT_BYTES in raw
        for attachment in parsed.attachments:
            if UNDECODED_WORD.search(attachment.filename):
                failures.append(f"{relative}: undecoded file name {attachment.filename!r}")
            if "\ufffd" in attachment.filename and not raw_has_replacements:
                failures.append(f"{relative}: garbled file name {attachment.filename!r}")
            if "\r" in attachment.filename or "\n" in attachment.filename:
                failures.append(f"{relative}: line break in file name")
        if "\n" in parsed.subject or "\r" in parsed.subject:
            failures.append(f"{relative}: line break in subject")

    assert failures == []
    assert parsed_count > 1000


def test_corpus_files_that_are_not_messages_raise_parse_error():
    refused = [relative for relative, tags in corpus_entries() if tags & NOT_MESSAGES]

    for relative in refused:
        with pytest.raises(ParseError):
            parse_message((CORPUS / relative).read_bytes())
