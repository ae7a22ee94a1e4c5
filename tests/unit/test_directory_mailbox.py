"""DirectoryMailbox: the sample export and a Maildir read as a mailbox, with no server."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time
import tracemalloc
from datetime import UTC, date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from config.errors import ConfigError, MailboxError
from service.mailbox import (
    AfterAction,
    DirectoryMailbox,
    FolderState,
    parse_after_action,
    received_date,
)

SAMPLES = Path("/work/shared/samples/mailbox")
needs_samples = pytest.mark.skipif(
    not (SAMPLES / "index.json").is_file(), reason=f"sample mailbox {SAMPLES} is not present"
)
BEIJING = timezone(timedelta(hours=8))


def sample_index():
    return json.loads((SAMPLES / "index.json").read_text(encoding="utf-8"))["messages"]


def make_message(subject: str, *, received: str | None = None) -> bytes:
    lines = []
    if received is not None:
        lines.append(f"Received: from relay.example.org\r\n\tby mx.example.org; {received}")
    lines += [f"Subject: {subject}", "From: unit@example.org", "", f"body of {subject}", ""]
    return "\r\n".join(lines).encode()


# -- the sample export --------------------------------------------------------------------


@needs_samples
def test_sample_mailbox_lists_four_messages_in_file_order():
    with DirectoryMailbox(SAMPLES) as mailbox:
        listed = mailbox.list_newer(0)

    index = sample_index()
    assert [message.uid for message in listed] == [1, 2, 3, 4]
    assert [message.size for message in listed] == [entry["size"] for entry in index]


@needs_samples
def test_sample_internaldate_comes_from_the_received_header():
    with DirectoryMailbox(SAMPLES) as mailbox:
        listed = mailbox.list_newer(0)

    expected = [datetime.fromisoformat(entry["internaldate"]) for entry in sample_index()]
    assert [message.internaldate for message in listed] == expected
    assert [message.internaldate.utcoffset() for message in listed if message.internaldate] == [
        timedelta(hours=8)
    ] * len(expected)


@needs_samples
def test_sample_fetch_returns_the_files_byte_for_byte():
    with DirectoryMailbox(SAMPLES) as mailbox:
        fetched = list(mailbox.fetch([1, 2, 3, 4]))

    index = sample_index()
    assert [hashlib.sha256(message.raw).hexdigest() for message in fetched] == [
        entry["sha256"] for entry in index
    ]
    assert [message.raw for message in fetched] == [
        (SAMPLES / entry["file"]).read_bytes() for entry in index
    ]


@needs_samples
def test_sample_state_has_constant_uidvalidity_and_unstable_uids():
    with DirectoryMailbox(SAMPLES, folder="INBOX") as mailbox:
        assert mailbox.state() == FolderState(uidvalidity=1, uidnext=5, exists=4)
        assert mailbox.stable_uids is False
        assert mailbox.account == f"dir:{SAMPLES.resolve()}"
        assert mailbox.list_newer(4) == []
        assert [message.uid for message in mailbox.list_newer(2)] == [3, 4]


@needs_samples
def test_sample_since_keeps_messages_received_that_day_or_later():
    with DirectoryMailbox(SAMPLES) as mailbox:
        listed = mailbox.list_newer(0, since=date(2025, 7, 18))
    assert [message.uid for message in listed] == [3, 4]


@needs_samples
def test_sample_fetch_headers_stop_at_the_blank_line():
    with DirectoryMailbox(SAMPLES) as mailbox:
        headers = mailbox.fetch_headers([1])

    raw = (SAMPLES / "001.eml").read_bytes()
    assert headers[1].endswith(b"\r\n\r\n")
    assert raw.startswith(headers[1])
    assert len(headers[1]) < len(raw)


# -- folders of .eml files and Maildirs --------------------------------------------------


def test_eml_files_are_ordered_by_relative_path(tmp_path):
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "1.eml").write_bytes(make_message("third"))
    (tmp_path / "a.eml").write_bytes(make_message("first"))
    (tmp_path / "a2.eml").write_bytes(make_message("second"))
    (tmp_path / "notes.txt").write_text("not a message")

    with DirectoryMailbox(tmp_path) as mailbox:
        subjects = [message.raw.split(b"\r\n")[0] for message in mailbox.fetch([1, 2, 3])]

    assert subjects == [b"Subject: first", b"Subject: second", b"Subject: third"]


def test_a_maildir_reads_cur_and_new_but_not_tmp(tmp_path):
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
    (tmp_path / "new" / "1700000002.M1P1.host").write_bytes(make_message("new one"))
    (tmp_path / "cur" / "1700000001.M1P1.host:2,S").write_bytes(make_message("read one"))
    (tmp_path / "tmp" / "1700000003.M1P1.host").write_bytes(make_message("half delivered"))

    with DirectoryMailbox(tmp_path) as mailbox:
        assert mailbox.state().exists == 2
        fetched = list(mailbox.fetch([1, 2]))

    assert [message.raw for message in fetched] == [
        make_message("read one"),
        make_message("new one"),
    ]


def test_a_maildir_plus_plus_subfolder_is_read_by_name(tmp_path):
    for sub in ("cur", "new", "tmp"):
        (tmp_path / sub).mkdir()
        (tmp_path / ".Cases" / sub).mkdir(parents=True)
    (tmp_path / ".Cases" / "new" / "1.host").write_bytes(make_message("in cases"))

    with DirectoryMailbox(tmp_path, folder="Cases") as mailbox:
        assert [message.raw for message in mailbox.fetch([1])] == [make_message("in cases")]


def test_without_received_the_file_mtime_is_the_internaldate(tmp_path):
    path = tmp_path / "only.eml"
    path.write_bytes(make_message("no received"))
    stamp = datetime(2025, 7, 20, 1, 2, 3, tzinfo=UTC).timestamp()
    os.utime(path, (stamp, stamp))

    with DirectoryMailbox(tmp_path) as mailbox:
        [listed] = mailbox.list_newer(0)

    assert listed.internaldate == datetime(2025, 7, 20, 1, 2, 3, tzinfo=UTC)
    assert listed.internaldate.tzinfo is not None


def test_a_new_file_appears_after_state_rescans(tmp_path):
    (tmp_path / "1.eml").write_bytes(make_message("one"))
    with DirectoryMailbox(tmp_path) as mailbox:
        assert mailbox.state().uidnext == 2
        (tmp_path / "2.eml").write_bytes(make_message("two"))
        assert mailbox.state() == FolderState(uidvalidity=1, uidnext=3, exists=2)
        assert [message.uid for message in mailbox.list_newer(1)] == [2]


def test_list_newer_reads_only_headers(tmp_path):
    huge_body = b"x" * (8 << 20)
    (tmp_path / "big.eml").write_bytes(make_message("big") + huge_body)

    with DirectoryMailbox(tmp_path) as mailbox:
        tracemalloc.start()
        try:
            [listed] = mailbox.list_newer(0)
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
        headers = mailbox.fetch_headers([1])

    assert listed.size == len(make_message("big")) + len(huge_body)
    assert headers[1] == make_message("big").split(b"\r\n\r\n")[0] + b"\r\n\r\n"
    assert peak < 1 << 20  # the 8 MiB body was never read into memory


def test_a_missing_directory_is_a_mailbox_error(tmp_path):
    with pytest.raises(MailboxError, match="not a directory"):
        DirectoryMailbox(tmp_path / "absent").__enter__()


def test_unknown_positions_are_skipped(tmp_path):
    (tmp_path / "1.eml").write_bytes(make_message("one"))
    with DirectoryMailbox(tmp_path) as mailbox:
        assert [message.uid for message in mailbox.fetch([1, 7])] == [1]
        assert list(mailbox.fetch_headers([0, 7])) == []


@pytest.mark.parametrize("action", ["move:Processed", "flag", "seen"])
def test_actions_other_than_none_are_logged_and_change_nothing(tmp_path, caplog, action):
    path = tmp_path / "1.eml"
    path.write_bytes(make_message("one"))
    before = path.stat()

    with caplog.at_level(logging.INFO, logger="service.mailbox"), DirectoryMailbox(tmp_path) as mb:
        mb.apply_after([1], action)
        mb.apply_after([1], "none")

    assert sorted(entry.name for entry in tmp_path.iterdir()) == ["1.eml"]
    assert path.stat().st_mtime_ns == before.st_mtime_ns
    assert [record.getMessage() for record in caplog.records if "read-only" in record.getMessage()]


def test_a_directory_never_announces_new_mail_and_does_not_sleep(tmp_path):
    with DirectoryMailbox(tmp_path) as mailbox:
        started = time.monotonic()
        assert mailbox.wait_for_new(timeout=300) is False
        assert time.monotonic() - started < 300  # it did not sit out the timeout


# -- the pure helpers ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("move:Processed", AfterAction("move", "Processed")),
        ("move:已处理", AfterAction("move", "已处理")),
        (" flag ", AfterAction("flag")),
        ("seen", AfterAction("seen")),
        ("none", AfterAction("none")),
    ],
)
def test_after_actions_are_read(text, expected):
    assert parse_after_action(text) == expected


@pytest.mark.parametrize("text", ["", "move:", "delete", "Flag", "move"])
def test_unknown_after_actions_name_the_setting(text):
    with pytest.raises(ConfigError, match=r"mailbox\.after") as raised:
        parse_after_action(text)
    assert raised.value.key == "mailbox.after"


def test_received_date_uses_the_top_most_received_header():
    block = (
        b"Received: from b by mx; Sat, 12 Jul 2025 10:20:18 +0800\r\n"
        b"Received: from a by b; Sat, 12 Jul 2025 10:20:01 +0800\r\n"
        b"Subject: x\r\n\r\n"
    )
    assert received_date(block) == datetime(2025, 7, 12, 10, 20, 18, tzinfo=BEIJING)


def test_received_date_skips_a_header_without_a_date():
    block = (
        b"Received: from b by mx (no date here)\r\n"
        b"Received: from a by b;\r\n\tTue, 15 Jul 2025 07:02:14 +0000\r\n\r\n"
    )
    assert received_date(block) == datetime(2025, 7, 15, 7, 2, 14, tzinfo=UTC)


def test_received_date_is_none_without_received_headers():
    assert received_date(b"Subject: x\r\nDate: Tue, 15 Jul 2025 07:02:14 +0000\r\n\r\n") is None
