"""A Word form finds its sealed PDF on evidence people would accept, and never on a hunch."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta, timezone

import pytest

from service.pairing_rules import (
    DocumentFacts,
    best_pdf_for_word,
    organisation_domain,
    score_pair,
    unit_for_pdf,
)

SHANGHAI = timezone(timedelta(hours=8))
SENT = datetime(2025, 7, 12, 10, 20, tzinfo=SHANGHAI)
JIANGSU_MOBILE = "中国移动通信集团江苏有限公司"

WORD = DocumentFacts(
    message_key="msg-1",
    sender="fudongting@js.chinamobile.example",
    sender_domain="js.chinamobile.example",
    received_at=SENT,
    filename="推荐表.docx",
    subject="2025信息通信行业科技创新案例推荐表",
    unit=JIANGSU_MOBILE,
    pdf_text="",
    titles=("数字孪生+智慧港口环境监测系统", "AI大模型赋能智慧校园质量检测系统"),
)
SAME_MESSAGE_PDF = replace(WORD, filename="推荐表（盖章）.pdf", unit=None, titles=())
COLLEAGUE_PDF = DocumentFacts(
    message_key="msg-2",
    sender="wanglei@chinamobile.example",
    sender_domain="chinamobile.example",
    received_at=SENT + timedelta(days=1),
    filename="江苏移动-推荐表（盖章）.pdf",
    subject="推荐表盖章版",
    unit=None,
    pdf_text="",
    titles=(),
)
STRANGER_PDF = DocumentFacts(
    message_key="msg-3",
    sender="12345678@qq.com",
    sender_domain="qq.com",
    received_at=SENT + timedelta(hours=3),
    filename="扫描件.pdf",
    subject="材料",
    unit=None,
    pdf_text="",
    titles=(),
)


def test_a_pdf_in_the_same_message_pairs() -> None:
    score = score_pair(WORD, SAME_MESSAGE_PDF)
    assert score.score >= 0.9
    assert "same message" in score.evidence


def test_the_pdf_of_the_same_message_wins_over_a_later_one() -> None:
    index, best, scores = best_pdf_for_word(WORD, [COLLEAGUE_PDF, SAME_MESSAGE_PDF])
    assert index == 1
    assert best == scores[1]


def test_a_pdf_a_day_later_from_a_colleague_naming_the_unit_pairs() -> None:
    index, best, _ = best_pdf_for_word(WORD, [COLLEAGUE_PDF])
    assert index == 0
    assert "same organisation domain (chinamobile.example)" in best.evidence
    assert any("file name" in reason for reason in best.evidence)


def test_a_pdf_from_an_unrelated_webmail_sender_without_unit_evidence_does_not_pair() -> None:
    index, best, _ = best_pdf_for_word(WORD, [STRANGER_PDF])
    assert index is None
    assert best.score < 0.6


def test_two_webmail_senders_share_no_organisation() -> None:
    word = replace(WORD, sender="a@qq.com", sender_domain="qq.com")
    assert not any("organisation" in reason for reason in score_pair(word, STRANGER_PDF).evidence)


def test_a_pdf_sent_as_a_reply_by_the_same_sender_pairs() -> None:
    word = replace(
        WORD,
        sender="shaoweichen@shca.example",
        sender_domain="shca.example",
        subject="上海市通信行业协会推荐表（Word版）",
        unit="上海市通信行业协会",
    )
    pdf = DocumentFacts(
        message_key="msg-4",
        sender="shaoweichen@shca.example",
        sender_domain="shca.example",
        received_at=SENT + timedelta(days=1),
        filename="盖章版.pdf",
        subject="Re: 上海市通信行业协会推荐表（Word版）",
        unit=None,
        pdf_text="",
        titles=(),
    )
    index, best, _ = best_pdf_for_word(word, [pdf])
    assert index == 0
    assert "same sender" in best.evidence
    assert "the PDF came in a reply to the Word form's message" in best.evidence


def test_case_titles_in_the_pdf_text_count_as_evidence() -> None:
    pdf = replace(STRANGER_PDF, pdf_text="序号 案例名称\n1 数字孪生+智慧港口环境监测系统\n")
    assert score_pair(WORD, pdf).score > score_pair(WORD, STRANGER_PDF).score
    assert "1 of 2 case titles in the PDF" in score_pair(WORD, pdf).evidence


def test_a_pdf_naming_another_unit_does_not_pair_even_from_the_same_sender() -> None:
    pdf = replace(
        COLLEAGUE_PDF,
        sender=WORD.sender,
        filename="推荐表（盖章）.pdf",
        unit="中国电信股份有限公司浙江分公司",
    )
    index, best, _ = best_pdf_for_word(WORD, [pdf])
    assert index is None
    assert any("another unit" in reason for reason in best.evidence)


def test_two_equally_likely_pdfs_are_left_to_staff() -> None:
    index, _, scores = best_pdf_for_word(WORD, [COLLEAGUE_PDF, replace(COLLEAGUE_PDF)])
    assert index is None
    assert scores[0].score >= 0.6


def test_no_candidate_pdf_pairs_nothing() -> None:
    index, best, scores = best_pdf_for_word(WORD, [])
    assert (index, best.score, scores) == (None, 0.0, [])


@pytest.mark.parametrize(
    ("address", "organisation"),
    [
        ("fudongting@js.chinamobile.example", "chinamobile.example"),
        ("zj.chinatelecom.example", "chinatelecom.example"),
        ("someone@mail.example.com.cn", "example.com.cn"),
        ("office@jsca.js.cn", "jsca.js.cn"),
        ("Person@Example.ORG", "example.org"),
        ("123456@qq.com", ""),
        ("someone@vip.163.com", ""),
        ("someone@126.com", ""),
        ("someone@sina.cn", ""),
        ("someone@gmail.com", ""),
        ("someone@outlook.com", ""),
        ("2927149972@qq.example", ""),
        ("", ""),
    ],
)
def test_the_organisation_of_an_address_is_its_registrable_domain_unless_webmail(
    address: str, organisation: str
) -> None:
    assert organisation_domain(address) == organisation


UNITS = [JIANGSU_MOBILE, "中国电信股份有限公司浙江分公司", "上海市通信行业协会"]


def test_a_lone_pdf_naming_one_unit_by_its_short_name_belongs_to_it() -> None:
    assert unit_for_pdf(COLLEAGUE_PDF, UNITS) == JIANGSU_MOBILE


def test_a_lone_pdf_naming_the_unit_in_its_text_belongs_to_it() -> None:
    pdf = replace(STRANGER_PDF, pdf_text="推荐单位（盖章）：上海市通信行业协会")
    assert unit_for_pdf(pdf, UNITS) == "上海市通信行业协会"


def test_a_lone_pdf_naming_no_unit_belongs_to_none() -> None:
    assert unit_for_pdf(STRANGER_PDF, UNITS) is None


def test_a_lone_pdf_naming_two_units_belongs_to_none() -> None:
    pdf = replace(STRANGER_PDF, filename="江苏移动 浙江电信 推荐表.pdf")
    assert unit_for_pdf(pdf, UNITS) is None


def test_a_branch_named_in_full_wins_over_its_parent_named_inside_it() -> None:
    branch = "中国移动通信集团江苏有限公司常州分公司"
    pdf = replace(STRANGER_PDF, filename=f"{branch}推荐表.pdf")
    assert unit_for_pdf(pdf, [*UNITS, branch]) == branch
