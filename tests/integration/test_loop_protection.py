"""Never answer machines, never flood one address, never write to an address that bounced,
and never let text from a message or a form turn into a header or a recipient."""

from __future__ import annotations

import email.utils
from email.header import Header
from email.message import EmailMessage

import pytest

from service.bootstrap import App
from service.digest import render_digest
from service.outbox import deliver
from tests.support.apps import make_app, register_of
from tests.support.mailmaker import Case, Form, MailDrop, at, mail, pdf, word
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

HEADERS_WE_WRITE = {
    "from",
    "to",
    "subject",
    "date",
    "message-id",
    "in-reply-to",
    "references",
    "auto-submitted",
    "x-auto-response-suppress",
    "precedence",
    "x-intake-kind",
    "mime-version",
    "content-type",
}


def app_on(db_url: str, tmp_path, sink: SmtpSink, drop: MailDrop) -> App:
    transport = sink.transport()
    return make_app(
        db_url, tmp_path, open_mailbox=drop.mailbox, transport=transport, clock=lambda: at(21)
    )


def with_headers(raw: bytes, **headers: str) -> bytes:
    """The message with extra header lines on top (names written with '-' for '_')."""
    lines = b"".join(
        f"{name.replace('_', '-')}: {value}\r\n".encode() for name, value in headers.items()
    )
    return lines + raw


def bounce_of(receipt: EmailMessage, address: str) -> bytes:
    """A DSN (RFC 3464) from the recipient's server saying `address` does not exist."""
    when = email.utils.format_datetime(at(20, 12))
    return f"""Received: from mx.example.cn by mx.cace.example; {when}\r
From: Mail Delivery System <MAILER-DAEMON@mx.example.cn>\r
To: cases@cace.example\r
Subject: Undelivered Mail Returned to Sender\r
Date: {when}\r
Message-ID: <dsn.1@mx.example.cn>\r
Auto-Submitted: auto-replied\r
In-Reply-To: {receipt["Message-ID"].strip()}\r
MIME-Version: 1.0\r
Content-Type: multipart/report; report-type=delivery-status; boundary="dsnb"\r
\r
--dsnb\r
Content-Type: text/plain\r
\r
<{address}>: host mx.example.cn said: 550 5.1.1 no such user\r
--dsnb\r
Content-Type: message/delivery-status\r
\r
Reporting-MTA: dns; mx.example.cn\r
\r
Final-Recipient: rfc822; {address}\r
Action: failed\r
Status: 5.1.1\r
\r
--dsnb\r
Content-Type: text/rfc822-headers\r
\r
Message-ID: {receipt["Message-ID"].strip()}\r
Subject: receipt\r
--dsnb--\r
""".encode()


HUMAN = "wangfang@hb.chinaunicom.example"


@pytest.mark.parametrize(
    ("sender", "extra"),
    [
        ("wangfang@hb.chinaunicom.example", {"Auto_Submitted": "auto-replied"}),
        ("wangfang@hb.chinaunicom.example", {"X_Autoreply": "yes"}),
        ("news@mail.vendor.example", {"List_Unsubscribe": "<mailto:unsub@vendor.example>"}),
        ("news@mail.vendor.example", {"Precedence": "bulk"}),
        ("noreply@vendor.example", {}),
        ("no-reply@notice.example", {}),
    ],
    ids=[
        "auto-submitted",
        "x-autoreply",
        "list-unsubscribe",
        "precedence-bulk",
        "noreply",
        "no-reply",
    ],
)
def test_machines_lists_and_no_reply_senders_get_no_receipt(
    sqlite_url, tmp_path, smtp_sink, sender, extra
):
    # Which mail is a machine's is decided from its headers alone: one backend is enough.
    drop = MailDrop(tmp_path / "drop")
    app = app_on(sqlite_url, tmp_path, smtp_sink, drop)
    drop.arrive(app, with_headers(mail(sender, "关于案例征集的通知", received=at(20)), **extra))
    deliver(app)

    assert register_of(app)["outbox"] == []
    assert smtp_sink.received == []
    app.engine.dispose()


def test_an_out_of_office_reply_by_subject_alone_gets_no_receipt(sqlite_url, tmp_path, smtp_sink):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(sqlite_url, tmp_path, smtp_sink, drop)
    drop.arrive(app, mail(HUMAN, "自动回复：推荐材料已收到", received=at(20)))
    deliver(app)

    assert smtp_sink.received == []
    app.engine.dispose()


def test_twenty_messages_from_one_sender_in_a_day_get_no_more_receipts_than_the_cap(
    db_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(db_url, tmp_path, smtp_sink, drop)
    cap = app.settings.smtp.per_recipient_daily_cap
    for number in range(20):
        drop.drop(mail(HUMAN, f"咨询第{number + 1}封", received=at(20, 8 + number // 3)))
    drop.arrive(app, mail(HUMAN, "咨询第21封", received=at(20, 16)))
    deliver(app)

    receipts = [item for item in register_of(app)["outbox"] if item["kind"] == "unit_receipt"]
    assert len(receipts) == 21
    assert len(smtp_sink.received) == cap
    held = [item for item in receipts if item["status"] == "suppressed"]
    assert len(held) == 21 - cap
    assert all(f"more than {cap} receipts" in item["last_error"] for item in held)
    app.engine.dispose()


def test_a_bounce_of_our_receipt_suppresses_the_address_the_digest_says_so_and_later_mail_waits(
    db_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(db_url, tmp_path, smtp_sink, drop)
    drop.arrive(app, mail(HUMAN, "咨询推荐表格式", received=at(20, 9)))
    deliver(app)
    [receipt] = smtp_sink.received

    drop.arrive(app, bounce_of(receipt.message, HUMAN))
    drop.arrive(app, mail(HUMAN, "再次咨询推荐表格式", received=at(20, 15)))
    deliver(app)

    register = register_of(app)
    assert [row["address"] for row in register["suppressed"]] == [HUMAN]
    assert [mail_["status"] for mail_ in register["outbox"]] == ["sent", "suppressed"]
    assert len(smtp_sink.received) == 1  # nothing to the bounce, nothing more to the address
    stopped = render_digest(app).split("五、已停止发信的地址（1个）")[1].split("六、")[0]
    assert HUMAN in stopped
    app.engine.dispose()


INJECTION = "\r\nBcc: x@evil.example"


def assert_no_smuggled_header_or_recipient(sink: SmtpSink, recipient: str) -> None:
    for item in sink.received:
        assert item.rcpt_tos == [recipient]
        assert {name.lower() for name in item.message} <= HEADERS_WE_WRITE
        assert "x@evil.example" not in item.message["To"]
        assert "\n" not in str(item.message["Subject"])  # the text stays inside one Subject
        head = item.data.split(b"\r\n\r\n", 1)[0]
        fields = [line for line in head.split(b"\r\n") if not line[:1].isspace()]
        assert not any(line.lower().startswith(b"bcc:") for line in fields)


def test_a_line_break_and_bcc_in_a_form_never_reach_the_headers_or_the_envelope(
    db_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(db_url, tmp_path, smtp_sink, drop)
    form = Form(
        unit=f"河北某某协会{INJECTION}",
        cases=[Case(f"智慧农业平台{INJECTION}", f"河北某某科技有限公司{INJECTION}")],
    )
    drop.arrive(
        app,
        mail(HUMAN, "推荐表", [word("推荐表.docx", form), pdf("推荐表.pdf")], received=at(20)),
    )
    deliver(app)

    [receipt] = smtp_sink.received
    assert "河北某某协会" in str(receipt.message["Subject"])
    assert_no_smuggled_header_or_recipient(smtp_sink, HUMAN)
    app.engine.dispose()


def test_a_line_break_and_bcc_in_an_encoded_subject_never_reach_the_headers(
    db_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(db_url, tmp_path, smtp_sink, drop)
    raw = mail(HUMAN, "placeholder", received=at(20))
    encoded = Header(f"咨询{INJECTION}", "utf-8").encode()
    raw = raw.replace(b"Subject: placeholder", f"Subject: {encoded}".encode())
    drop.arrive(app, raw)
    deliver(app)

    [receipt] = smtp_sink.received
    assert "咨询" in str(receipt.message["Subject"])
    assert_no_smuggled_header_or_recipient(smtp_sink, HUMAN)
    app.engine.dispose()


def test_a_form_relayed_by_a_group_alias_gets_its_receipt_and_a_newsletter_none(
    sqlite_url, tmp_path, smtp_sink
):
    drop = MailDrop(tmp_path / "drop")
    app = app_on(sqlite_url, tmp_path, smtp_sink, drop)
    form = Form(unit="中国联通湖北分公司", cases=[Case("智慧工厂", "湖北某某科技有限公司")])
    relayed = with_headers(
        mail(HUMAN, "推荐表", [word("推荐表.docx", form)], received=at(20)),
        List_Id="<all.hb.chinaunicom.example>",
        Precedence="list",
    )
    newsletter = with_headers(
        mail("news@mail.vendor.example", "本周资讯", received=at(20, 11)),
        List_Id="<news.vendor.example>",
    )
    drop.arrive(app, relayed)
    drop.arrive(app, newsletter)
    deliver(app)

    messages = register_of(app)["messages"]
    assert [(m["kind"], m["automated"]) for m in messages] == [
        ("recommendation", False),
        ("other", True),
    ]
    assert [item.rcpt_tos for item in smtp_sink.received] == [[HUMAN]]
    app.engine.dispose()
