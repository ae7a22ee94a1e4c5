"""Classification of mail: auto-replies, bounces, big-attachment links, no-reply senders."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from parsers.classify import MessageFacts, classify, find_large_attachment_links
from parsers.mail import parse_message
from parsers.model import Attachment, AttachmentKind
from tests.unit.test_mail_parsing import file_part, html_part, message, multipart, text_part

QQ_BIG_ATTACHMENT_HTML = """
<div>推荐表太大，用超大附件发送。</div>
<div id="QQMailBigAttach" style="padding:2px;margin-bottom:15px;">
  <div style="padding:4px 0;"><b>从QQ邮箱发来的超大附件</b></div>
  <div style="clear:both;">
    <a href="https://mail.qq.com/cgi-bin/ftnExs_download?k=7a6&amp;t=exs_ftn_download&amp;code=9f1"
       target="_blank"><img src="https://rescdn.qqmail.com/zh_CN/images/ftn/zip.gif"></a>
    <span class="qqmailbgattach">
      <a href="https://mail.qq.com/cgi-bin/ftnExs_download?k=7a6&amp;t=exs_ftn_download&amp;code=9f1"
         target="_blank">镕喆-案例材料.zip</a>
      <span style="color:#a0a0a0;">(1.21G, 2025年08月20日 10:20 到期)</span>
    </span>
  </div>
</div>
"""

NETEASE_BIG_ATTACHMENT_HTML = """
<style id="cloudAttachStyle" type="text/css">
#divNeteaseBigAttach, #divNeteaseBigAttach_bak{display:none;}</style>
<div>盖章版太大，用网盘附件发送。</div>
<div id="divNeteaseBigAttach" style="background-color:#fef8f0;">
  <div><b>从网易163邮箱发来的云附件</b></div>
  <div><a href="https://mail.163.com/large-attachment-download/index.html?p=X&amp;file=Y"
    target="_blank">推荐表（盖章）.pdf</a> <span>(25.3M, 2025年8月30日 23:59 到期)</span></div>
</div>
"""

NETEASE_BOILERPLATE_ONLY = """
<style id="cloudAttachStyle" type="text/css">
#divNeteaseBigAttach, #divNeteaseBigAttach_bak{display:none;}</style>
<div>请问截止日期是哪天？<a href="https://www.example.cn/notice.pdf">通知.pdf</a></div>
"""


BASE_FACTS = MessageFacts(
    headers={},
    sender="unit@example.cn",
    subject="推荐表",
    content_type="text/plain",
    report_type=None,
    text="",
    html="",
    attachments=[],
)


def facts(**overrides: Any) -> MessageFacts:
    return replace(BASE_FACTS, **overrides)


def form(kind: AttachmentKind) -> Attachment:
    return Attachment("f", "f", "application/octet-stream", b"", "0" * 64, kind=kind)


@pytest.mark.parametrize(
    "headers",
    [
        "Auto-Submitted: auto-replied",
        "X-Autoreply: yes",
        "X-Autorespond: Out of office",
        "X-QQ-AUTO-REPLY: true",
        "X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: unit@example.cn",
        "Precedence: auto_reply",
    ],
)
def test_mail_generated_in_answer_is_an_auto_reply_that_is_never_answered(headers):
    parsed = parse_message(message(headers))

    assert parsed.kind == "auto_reply"
    assert parsed.no_reply is True


@pytest.mark.parametrize(
    ("headers", "sender"),
    [
        ("Auto-Submitted: auto-generated; owner-email=x@example.cn", "Unit <unit@example.cn>"),
        ("Auto-Submitted: auto-notified", "Unit <unit@example.cn>"),
        ("Precedence: bulk", "Unit <unit@example.cn>"),
        ("Precedence: junk", "Unit <unit@example.cn>"),
        ("Precedence: list", "Unit <unit@example.cn>"),
        ("List-Unsubscribe: <mailto:leave@lists.example.cn>", "Unit <unit@example.cn>"),
        ("List-Id: <news.example.cn>", "Unit <unit@example.cn>"),
        ("", "系统通知 <noreply@system.example.cn>"),
    ],
)
def test_newsletters_lists_and_notices_are_other_automated_and_never_answered(headers, sender):
    parsed = parse_message(message(headers, sender=sender))

    assert (parsed.kind, parsed.automated, parsed.no_reply) == ("other", True, True)


@pytest.mark.parametrize("headers", ["List-Id: <all.unit.example.cn>", "Precedence: list"])
def test_a_form_relayed_by_a_group_alias_is_a_recommendation_that_is_answered(headers):
    relayed = facts(
        headers={name.lower(): [value.strip()] for name, value in [headers.split(":", 1)]},
        attachments=[form("form_word")],
    )

    verdict = classify(relayed)

    assert (verdict.kind, verdict.automated, verdict.no_reply) == ("recommendation", False, False)


def test_a_form_a_system_generated_is_still_read_but_never_answered():
    verdict = classify(
        facts(headers={"auto-submitted": ["auto-generated"]}, attachments=[form("form_pdf")])
    )

    assert (verdict.kind, verdict.automated, verdict.no_reply) == ("recommendation", True, True)


def test_human_mail_is_not_automated():
    parsed = parse_message(message(""))

    assert (parsed.kind, parsed.automated, parsed.no_reply) == ("other", False, False)


@pytest.mark.parametrize(
    "subject",
    [
        "自动回复：推荐表",
        "自动答复: 关于推荐表",
        "Auto reply: 推荐表",
        "Automatic reply: 推荐表",
        "Out of Office: 推荐表",
        "【休假】推荐表已收到",
        "Re: 自动回复: 推荐表",
    ],
)
def test_auto_reply_subjects_are_recognised(subject):
    raw = message("").replace(b"Subject: test", f"Subject: {subject}".encode())

    assert parse_message(raw).kind == "auto_reply"


@pytest.mark.parametrize(
    "headers",
    ["Auto-Submitted: no", "X-Auto-Response-Suppress: All", "Precedence: normal"],
)
def test_ordinary_mail_with_harmless_headers_stays_human(headers):
    parsed = parse_message(message(headers))

    assert parsed.kind == "other"
    assert parsed.no_reply is False


def test_a_delivery_status_report_is_a_bounce_with_the_failed_recipient_and_status():
    dsn = (
        b"Content-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mx.cace.example\r\n\r\n"
        b"Original-Recipient: rfc822; Wrong@Unit.example.cn\r\n"
        b"Final-Recipient: rfc822; wrong@unit.example.cn\r\n"
        b"Action: failed\r\nStatus: 5.1.1\r\n"
        b"Diagnostic-Code: smtp; 550 5.1.1 user unknown\r\n"
    )
    raw = multipart(
        [text_part("投递失败"), dsn],
        subtype="report",
        params="; report-type=delivery-status",
        sender="Mail Delivery System <MAILER-DAEMON@cace.example>",
        subject="Undelivered Mail Returned to Sender",
    )

    parsed = parse_message(raw)

    assert parsed.kind == "bounce"
    assert parsed.no_reply is True
    assert parsed.bounce is not None
    assert parsed.bounce.failed_recipients == ("wrong@unit.example.cn",)
    assert parsed.bounce.status == "5.1.1"


def test_a_plain_text_bounce_from_postmaster_names_the_failed_recipient():
    body = (
        "Hi. This is the qmail-send program.\r\n"
        "<nobody@unit.example.cn>:\r\n"
        "Sorry, no mailbox here by that name. (#5.1.1)\r\n"
    )
    raw = message("", body, sender="postmaster@unit.example.cn")

    parsed = parse_message(raw)

    assert parsed.kind == "bounce"
    assert parsed.bounce is not None
    assert parsed.bounce.failed_recipients == ("nobody@unit.example.cn",)
    assert parsed.bounce.status == "5.1.1"


def test_a_qq_big_attachment_message_yields_the_file_link_and_expiry():
    raw = multipart(
        [text_part("见超大附件"), html_part(QQ_BIG_ATTACHMENT_HTML)], subtype="alternative"
    )

    parsed = parse_message(raw)

    assert parsed.kind == "large_attachment_link"
    assert len(parsed.links) == 1
    link = parsed.links[0]
    assert link.provider == "qq"
    assert link.filename == "镕喆-案例材料.zip"
    assert link.url.startswith("https://mail.qq.com/cgi-bin/ftnExs_download?k=7a6&t=")
    assert link.expires == "2025年08月20日 10:20"


def test_a_netease_cloud_attachment_message_yields_the_file_link_and_expiry():
    parsed = parse_message(multipart([html_part(NETEASE_BIG_ATTACHMENT_HTML)]))

    assert parsed.kind == "large_attachment_link"
    assert [(link.provider, link.filename, link.expires) for link in parsed.links] == [
        ("netease", "推荐表（盖章）.pdf", "2025年8月30日 23:59")
    ]


def test_the_netease_style_sheet_alone_is_not_a_big_attachment():
    assert find_large_attachment_links(NETEASE_BOILERPLATE_ONLY, "") == []


def test_a_message_with_a_real_form_and_a_big_file_link_is_still_a_recommendation():
    verdict = classify(facts(html=QQ_BIG_ATTACHMENT_HTML, attachments=[form("form_word")]))

    assert verdict.kind == "recommendation"
    assert [link.filename for link in verdict.links] == ["镕喆-案例材料.zip"]


def test_a_bounce_wins_over_an_auto_reply_and_an_auto_reply_over_a_form():
    bounce = classify(
        facts(sender="mailer-daemon@x.cn", headers={"auto-submitted": ["auto-replied"]})
    )
    auto_reply = classify(
        facts(headers={"auto-submitted": ["auto-replied"]}, attachments=[form("form_pdf")])
    )

    assert bounce.kind == "bounce"
    assert auto_reply.kind == "auto_reply"


@pytest.mark.parametrize(
    "sender",
    [
        "noreply@example.cn",
        "no-reply@example.cn",
        "donotreply@example.cn",
        "do-not-reply@example.cn",
        "MAILER-DAEMON@example.cn",
        "postmaster@example.cn",
    ],
)
def test_no_reply_senders_are_never_answered(sender):
    verdict = classify(facts(sender=sender.lower()))

    assert verdict.no_reply is True


def test_a_person_whose_name_contains_reply_is_answered():
    assert classify(facts(sender="replyzhang@example.cn")).no_reply is False


@pytest.mark.parametrize(
    "body",
    ["您好，推荐表见附件，请查收。", "材料详见附件。", "附件是我单位的推荐表"],
)
def test_a_human_mail_that_says_files_are_attached_but_has_none_needs_a_reply(body):
    parsed = parse_message(message("", body))

    assert parsed.needs_reply is True
    assert [problem.code for problem in parsed.problems] == ["attachment_mentioned_missing"]


@pytest.mark.parametrize(
    "body", ["请问截止日期是哪天", "推荐表需要盖章吗？", "Can we send it late?"]
)
def test_a_human_mail_that_asks_a_question_needs_a_reply(body):
    parsed = parse_message(message("", body))

    assert parsed.needs_reply is True
    assert [problem.code for problem in parsed.problems] == ["question_needs_reply"]


@pytest.mark.parametrize(
    "body",
    [
        "收到，谢谢。",
        "材料已按通知附件3的格式填写。",
        "好的。\r\n\r\n-----原始邮件-----\r\n发件人: staff@cace.example\r\n请问是否需要盖章？",
        "好的。\r\n> 推荐表见附件，请查收？",
        "资料下载：https://www.example.cn/notice?id=3",
    ],
)
def test_thanks_annex_numbers_quoted_mail_and_links_need_no_reply(body):
    parsed = parse_message(message("", body))

    assert parsed.needs_reply is False
    assert parsed.problems == []


def test_files_attached_as_said_need_no_reply():
    parsed = parse_message(
        multipart(
            [text_part("推荐表见附件，请查收。"), file_part(b"%PDF-1.4 x", "; filename=a.pdf")]
        )
    )

    assert parsed.needs_reply is False


def test_automated_mail_never_needs_a_reply():
    parsed = parse_message(message("List-Id: <news.example.cn>", "本期简报见附件，有问题吗？"))

    assert (parsed.automated, parsed.needs_reply) == (True, False)
