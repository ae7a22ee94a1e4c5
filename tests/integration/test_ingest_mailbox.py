"""Ingestion against a real Dovecot: nothing lost, nothing twice, no message blocks the rest.

Each test appends its own mail to a brand-new Dovecot user and polls it with the real
`ImapMailbox`; the ledger, the archive and the outbox are read back as staff would see them.
"""

from __future__ import annotations

import functools
import hashlib
import io
import zipfile
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlmodel import Session, col, select

from service.ingest import poll
from service.mailbox import ImapMailbox, read_header_block
from service.models import Message, Outbox
from service.todo import todo_items
from tests.support.apps import imap_mailbox, make_app, register_of
from tests.support.bulk_mail import append_all, arrival, small_message
from tests.support.mailmaker import File, mail, pdf

pytestmark = pytest.mark.integration

CORPUS = Path("/work/shared/corpus/realworld")
BROKEN_CORPUS_MESSAGES = [
    "enmime/testdata/low-quality/bad-final-boundary.raw",
    "enmime/testdata/low-quality/bad-header-start.raw",
    "enmime/testdata/low-quality/malformed-base64-attach.raw",
    "enmime/testdata/mail/mime-bad-8bit-filename.raw",
    "flanker/enclosed-broken-body.eml",
    "james-mime4j/mimetools-testmsgs/badbound.msg",
    "imap_tools/error_emails/InvalidMultipartContentTransferEncodingDefect.eml",
    "govcert-eml_parser/sample_invalid_date1.eml",
]


class CountingMailbox:
    """The real `ImapMailbox`, counting what each call asks of the server."""

    stable_uids = True

    def __init__(self, inner: ImapMailbox) -> None:
        self.inner = inner
        self.account = inner.account
        self.folder = inner.folder
        self.fetched_uids: list[int] = []
        self.header_uids: list[int] = []

    def __enter__(self):
        self.inner.__enter__()
        return self

    def __exit__(self, *exc):
        self.inner.__exit__(*exc)

    def state(self):
        return self.inner.state()

    def list_newer(self, above_uid, *, since=None):
        return self.inner.list_newer(above_uid, since=since)

    def fetch(self, uids, *, batch_size=50):
        self.fetched_uids.extend(uids)
        return self.inner.fetch(uids, batch_size=batch_size)

    def fetch_headers(self, uids):
        self.header_uids.extend(uids)
        return self.inner.fetch_headers(uids)

    def apply_after(self, uids, action):
        self.inner.apply_after(uids, action)

    def wait_for_new(self, timeout):
        return self.inner.wait_for_new(timeout)


def ledger(app) -> list[Message]:
    with Session(app.engine) as session:
        return list(session.exec(select(Message).order_by(col(Message.uid))).all())


def receipts_per_message(app) -> Counter[int]:
    with Session(app.engine) as session:
        rows = session.exec(select(Outbox).where(col(Outbox.kind) == "unit_receipt")).all()
    return Counter(row.message_pk for row in rows if row.message_pk is not None)


OUTLOOK_MSG = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x01\x02 Outlook item\r\n" * 40
"""An Outlook .msg dragged into the mailbox: the parser refuses it (no RFC 822 header)."""


def broken_docx() -> bytes:
    """A .docx that is a zip with no Word document inside (what a failed upload produces)."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        archive.writestr("word/document.xml", "<w:document><w:body><w:p>推荐")
    return buffer.getvalue()[:-40]


@functools.cache
def thousand_messages() -> tuple[bytes, ...]:
    return tuple(small_message(number, run="bulk") for number in range(1000))


@pytest.mark.slow
def test_a_thousand_messages_are_archived_once_byte_for_byte(db_url, tmp_path, dovecot):
    username, password = dovecot.user("bulk")
    appended = thousand_messages()
    with dovecot.client(username) as client:
        append_all(client, appended)
    counting = CountingMailbox(imap_mailbox(dovecot, username, password)())
    app = make_app(db_url, tmp_path, open_mailbox=lambda: counting)

    first = poll(app, process=False)

    assert first.ok and (first.listed, first.archived, first.duplicates) == (1000, 1000, 0)
    rows = ledger(app)
    assert len(rows) == 1000
    assert len({row.uid for row in rows}) == len({row.sha256 for row in rows}) == 1000
    wanted = {hashlib.sha256(raw).hexdigest(): raw for raw in appended}
    assert {row.sha256 for row in rows} == set(wanted)
    assert all(app.archive.get(row.sha256) == wanted[row.sha256] for row in rows)
    assert sorted(row.message_id for row in rows) == sorted(
        f"<bulk.{n}@unit{n % 97}.example.cn>" for n in range(1000)
    )

    counting.fetched_uids.clear()
    second = poll(app, process=False)

    assert second.ok and (second.listed, second.archived) == (0, 0)
    assert counting.fetched_uids == [] and counting.header_uids == []
    assert len(ledger(app)) == 1000
    app.engine.dispose()


def test_progress_reports_done_out_of_total_up_to_every_message(tmp_path, dovecot, sqlite_url):
    username, password = dovecot.user("progress")
    with dovecot.client(username) as client:
        append_all(client, [small_message(number, run="progress") for number in range(45)])
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"batch_size": 10},
    )
    seen: list[tuple[int, int]] = []

    poll(app, process=False, progress=lambda done, total: seen.append((done, total)))

    assert seen == [(0, 45), (10, 45), (20, 45), (30, 45), (40, 45), (45, 45)]


def test_a_new_uidvalidity_adds_only_the_new_mail(db_url, tmp_path, dovecot):
    username, password = dovecot.user("validity")
    old = [small_message(number, run="validity") for number in range(30)]
    new = [small_message(number, run="validity") for number in range(30, 40)]
    with dovecot.client(username) as client:
        append_all(client, old)
    app = make_app(db_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))
    assert poll(app, process=False).archived == 30
    validity_before = {row.uidvalidity for row in ledger(app)}

    dovecot.recreate_folder(username, "INBOX")
    with dovecot.client(username) as client:
        append_all(client, [*reversed(old), *new])  # same bytes, other UIDs
    report = poll(app, process=False)

    assert report.ok and (report.listed, report.archived, report.duplicates) == (40, 10, 30)
    rows = ledger(app)
    assert len(rows) == 40 and len({row.sha256 for row in rows}) == 40
    assert {row.uidvalidity for row in rows}.isdisjoint(validity_before)
    assert len({(row.uidvalidity, row.uid) for row in rows}) == 40
    assert poll(app, process=False).listed == 0
    app.engine.dispose()


def test_broken_messages_need_attention_and_the_mail_after_them_is_processed(
    sqlite_url, tmp_path, dovecot
):
    missing = [name for name in BROKEN_CORPUS_MESSAGES if not (CORPUS / name).is_file()]
    if missing:
        pytest.skip(f"real-world corpus incomplete at {CORPUS}: missing {missing[:3]}")
    username, password = dovecot.user("broken")
    received = datetime(2025, 7, 10, 9, 0, tzinfo=UTC)
    broken_attachments = mail(
        "office@unit1.example.cn",
        "推荐表",
        [
            File(
                "推荐表.docx",
                broken_docx(),
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            ),
            File("推荐表（盖章）.pdf", pdf("x.pdf").data[:1500], "application/pdf"),
        ],
        received=received,
    )
    good = small_message(1, run="after-the-broken-ones")
    messages = [
        *((CORPUS / name).read_bytes() for name in BROKEN_CORPUS_MESSAGES),
        OUTLOOK_MSG,
        broken_attachments,
        good,
    ]
    with dovecot.client(username) as client:
        append_all(
            client, messages, dates=[received + timedelta(minutes=n) for n in range(len(messages))]
        )
    app = make_app(sqlite_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))

    report = poll(app)

    assert report.ok and report.archived == len(messages)
    rows = ledger(app)
    assert all(row.status in ("processed", "needs_attention") for row in rows)
    assert all(row.problems for row in rows if row.status == "needs_attention")
    by_id = {row.message_id: row for row in rows}
    last = by_id["<after-the-broken-ones.1@unit1.example.cn>"]
    assert last.status == "processed"
    outlook = rows[len(BROKEN_CORPUS_MESSAGES)]
    assert outlook.status == "needs_attention"
    assert outlook.problems[0]["code"] == "message_is_outlook_file"
    assert app.archive.get(outlook.sha256) == OUTLOOK_MSG
    attachment_case = rows[len(BROKEN_CORPUS_MESSAGES) + 1]
    assert attachment_case.status in ("processed", "needs_attention")
    items = todo_items(register_of(app))
    assert any("另存为" in item.summary for item in items if item.kind == "needs_attention")
    app.engine.dispose()


def test_a_broken_form_named_like_a_form_needs_attention(sqlite_url, tmp_path, dovecot):
    username, password = dovecot.user("brokenform")
    docx_type = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
    broken = mail(
        "office@unit1.example.cn",
        "推荐表",
        [
            File("推荐表.docx", broken_docx(), docx_type),
            File("推荐表（盖章）.pdf", pdf("x.pdf").data[:1500], "application/pdf"),
        ],
        received=datetime(2025, 7, 10, 9, 0, tzinfo=UTC),
    )
    with dovecot.client(username) as client:
        append_all(client, [broken])
    app = make_app(sqlite_url, tmp_path, open_mailbox=imap_mailbox(dovecot, username, password))

    poll(app)

    (row,) = ledger(app)
    assert row.status == "needs_attention"
    files = {problem["params"].get("file") for problem in row.problems}
    assert {"推荐表.docx", "推荐表（盖章）.pdf"} <= files
    app.engine.dispose()


def folder_contents(dovecot, username, folder):
    """{SHA-256 of the message: its flags} in `folder`, or None if the folder does not exist."""
    with dovecot.client(username) as client:
        if not client.folder_exists(folder):
            return None
        client.select_folder(folder, readonly=True)
        answer = client.fetch(client.search("ALL"), ["FLAGS", "BODY.PEEK[]"])
    return {
        hashlib.sha256(item[b"BODY[]"]).hexdigest(): set(item[b"FLAGS"]) for item in answer.values()
    }


AFTER_MESSAGES = (small_message(1, run="after"), OUTLOOK_MSG, small_message(2, run="after"))
"""Two good messages around an unreadable one (which ends `needs_attention`)."""


@pytest.mark.parametrize("action", ["move:Processed", "move:已处理", "flag", "seen", "none"])
def test_the_after_action_applies_on_the_server_once_processing_is_committed(
    sqlite_url, tmp_path, dovecot, action
):
    username, password = dovecot.user("after")
    with dovecot.client(username) as client:
        append_all(client, AFTER_MESSAGES)
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"after": action},
    )

    archived_only = poll(app, process=False)
    untouched = folder_contents(dovecot, username, "INBOX")
    report = poll(app)

    assert archived_only.marked == 0 and len(untouched) == 3
    assert all(flags == set() for flags in untouched.values())
    assert report.ok and report.processed == 2 and report.needs_attention == 1
    inbox = folder_contents(dovecot, username, "INBOX")
    if action.startswith("move:"):
        target = action.removeprefix("move:")
        assert inbox == {}
        moved = folder_contents(dovecot, username, target)
        assert moved is not None
        assert set(moved) == {hashlib.sha256(raw).hexdigest() for raw in AFTER_MESSAGES}
        assert report.marked == 3
    elif action == "none":
        assert len(inbox) == 3 and all(flags == set() for flags in inbox.values())
        assert report.marked == 0
    else:
        flag = b"\\Flagged" if action == "flag" else b"\\Seen"
        assert len(inbox) == 3 and all(flag in flags for flags in inbox.values())
        assert report.marked == 3
    again = poll(app)
    assert again.ok and again.marked == 0 and again.listed == 0


def test_an_over_size_message_is_recorded_from_its_headers_for_staff(db_url, tmp_path, dovecot):
    username, password = dovecot.user("big")
    big = small_message(7, run="big", attachment_size=30_000)
    with dovecot.client(username) as client:
        append_all(client, [small_message(1, run="big"), big, small_message(2, run="big")])
    counting = CountingMailbox(imap_mailbox(dovecot, username, password)())
    app = make_app(
        db_url,
        tmp_path,
        open_mailbox=lambda: counting,
        mailbox={"max_message_size": 20_000, "after": "move:Processed"},
    )

    report = poll(app)

    assert report.ok and report.too_large == 1 and report.archived == 2
    assert 2 not in counting.fetched_uids and counting.header_uids == [2]
    row = next(row for row in ledger(app) if row.message_id == "<big.7@unit7.example.cn>")
    assert row.status == "needs_attention" and not row.downloaded
    assert row.problems[0]["code"] == "message_too_large"
    assert row.sender == "contact7@unit7.example.cn" and "第7号" in row.subject
    assert app.archive.get(row.sha256) == read_header_block(big)
    items = todo_items(register_of(app))
    assert any("未下载" in item.summary and "第7号" in item.where for item in items)
    assert set(folder_contents(dovecot, username, "INBOX")) == {hashlib.sha256(big).hexdigest()}
    assert poll(app).listed == 0
    app.engine.dispose()


def test_mail_older_than_since_is_ignored(sqlite_url, tmp_path, dovecot):
    username, password = dovecot.user("since")
    with dovecot.client(username) as client:
        append_all(
            client,
            [small_message(number, run="since") for number in range(6)],
            dates=[
                datetime(2025, 6, 28, 12, tzinfo=UTC) + timedelta(days=number)
                for number in range(6)
            ],
        )
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        mailbox={"since": datetime(2025, 7, 1, tzinfo=UTC)},
    )

    report = poll(app, process=False)

    assert report.ok and report.archived == 3
    assert sorted(row.message_id for row in ledger(app)) == [
        f"<since.{number}@unit{number}.example.cn>" for number in (3, 4, 5)
    ]


@pytest.mark.parametrize("reply_to_old_mail", [False, True])
def test_mail_received_before_the_campaign_starts_gets_no_receipt_unless_asked(
    sqlite_url, tmp_path, dovecot, reply_to_old_mail
):
    username, password = dovecot.user("starts")
    with dovecot.client(username) as client:
        append_all(client, [small_message(number, run="starts") for number in range(4)])
    starts = arrival(2)  # messages 0 and 1 arrived before the start
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=imap_mailbox(dovecot, username, password),
        campaign={"starts": starts.isoformat(), "reply_to_old_mail": reply_to_old_mail},
    )

    report = poll(app)

    assert report.ok and report.processed == 4
    receipts = receipts_per_message(app)
    answered = sorted(row.message_id for row in ledger(app) if receipts.get(row.id or 0) == 1)
    expected = range(4) if reply_to_old_mail else (2, 3)
    assert answered == [f"<starts.{number}@unit{number}.example.cn>" for number in expected]
