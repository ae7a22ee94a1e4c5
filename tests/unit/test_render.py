"""What the rendered mails say, and how template overrides behave."""

from __future__ import annotations

import dataclasses
from datetime import datetime, timedelta, timezone
from html.parser import HTMLParser
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.errors import TemplateError
from notifications.contexts import (
    MAIL_KINDS,
    ApplicantReceipt,
    CaseLine,
    LinkedFile,
    ReceivedFile,
    ResultNotice,
    UnitReceipt,
    sample_context,
)
from notifications.render import BUILTIN_TEMPLATES, Renderer

SHANGHAI = timezone(timedelta(hours=8))


def unit_receipt(**changes: Any) -> UnitReceipt:
    receipt = sample_context("unit_receipt")
    assert isinstance(receipt, UnitReceipt)
    return dataclasses.replace(receipt, **changes)


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer()


@pytest.mark.parametrize("kind", MAIL_KINDS)
def test_every_kind_renders_a_one_line_subject_and_both_bodies(renderer, kind):
    mail = renderer.render(sample_context(kind))

    assert mail.subject and "\n" not in mail.subject
    assert mail.text.strip()
    assert mail.html.lstrip().startswith("<!DOCTYPE html>")


def test_the_built_in_templates_pass_their_own_check(renderer):
    assert renderer.check() == []


@pytest.mark.parametrize("part", ["text", "html"])
def test_unit_receipt_names_the_unit_every_case_and_each_match(renderer, part):
    body = getattr(renderer.render(unit_receipt()), part)

    assert "中国移动通信集团浙江有限公司" in body
    for title in ["基于5G-A的智慧港口远程操控系统", "工业互联网标识解析赋能纺织产业链"]:
        assert title in body
    assert "ICT2025-0012" in body
    assert "有多个相近的在线申报，工作人员将人工核对" in body
    assert "未找到在线申报记录，请申报单位尽快在线提交" in body


@pytest.mark.parametrize("part", ["text", "html"])
def test_unit_receipt_lists_the_files_with_their_kind_and_seal_check(renderer, part):
    body = getattr(renderer.render(unit_receipt()), part)

    assert "推荐表(Word)" in body
    assert "盖章推荐表(PDF)" in body
    assert "有公章" in body
    assert "其他材料" in body


@pytest.mark.parametrize("part", ["text", "html"])
def test_unit_receipt_says_what_is_still_missing_and_that_it_came_late(renderer, part):
    receipt = unit_receipt(
        attachments=[ReceivedFile(filename="推荐表.docx", kind="form_word")],
        missing=["加盖公章的PDF版推荐表"],
        recommendation_complete=False,
        late=True,
        received_at=datetime(2025, 8, 2, 9, 0, tzinfo=SHANGHAI),
    )

    body = getattr(renderer.render(receipt), part)

    assert "加盖公章的PDF版推荐表" in body
    assert "逾期" in body
    assert "已齐全" not in body
    assert "逾期" in renderer.render(receipt).subject


def test_unit_receipt_uses_the_services_own_sentence_for_what_the_applicant_must_do(renderer):
    case = CaseLine(
        row=4, title="边缘云", applicant="某公司", match="none", next_step="请核对申报编号后回复"
    )

    mail = renderer.render(unit_receipt(cases=[case]))

    assert "请核对申报编号后回复" in mail.text
    assert "请核对申报编号后回复" in mail.html


def test_a_second_version_says_it_replaces_the_first(renderer):
    mail = renderer.render(unit_receipt(version=2, supersedes_earlier=True))

    assert "第2版" in mail.subject
    assert "替代此前报送的版本" in mail.text


def test_a_large_attachment_link_gets_a_polite_request_for_real_attachments(renderer):
    receipt = unit_receipt(
        message_kind="large_attachment_link",
        attachments=[],
        cases=[],
        large_attachment_links=[
            LinkedFile(filename="推荐表.pdf", url="https://mail.qq.com/x", expires="2025年8月5日")
        ],
    )

    mail = renderer.render(receipt)

    assert "附件" in mail.subject
    for body in (mail.text, mail.html):
        assert "推荐表.pdf" in body
        assert "直接作为邮件附件" in body
        assert "敬请谅解" in body


def test_other_mail_gets_a_short_acknowledgement(renderer):
    mail = renderer.render(unit_receipt(message_kind="other", message_subject="关于申报时间的咨询"))

    assert "关于申报时间的咨询" in mail.subject
    assert "工作人员将尽快阅读" in mail.text
    assert "推荐表内容" not in mail.text


def test_html_escapes_markup_from_a_case_title_and_text_keeps_it_verbatim(renderer):
    title = "<script>alert('x')</script>智慧工厂"
    case = CaseLine(row=1, title=title, applicant="A&B 公司", match="none")

    mail = renderer.render(unit_receipt(cases=[case]))

    assert "<script>" not in mail.html
    assert "&lt;script&gt;" in mail.html
    assert "A&amp;B 公司" in mail.html
    assert title in mail.text


def test_a_title_with_line_breaks_still_gives_a_one_line_subject(renderer):
    notice = sample_context("result")
    assert isinstance(notice, ResultNotice)

    mail = renderer.render(dataclasses.replace(notice, submission_title="第一行\r\nBcc: x@evil"))

    assert "\n" not in mail.subject and "\r" not in mail.subject
    assert "第一行 Bcc: x@evil" in mail.subject


def test_applicant_receipt_names_the_recommending_unit_and_what_is_missing(renderer):
    mail = renderer.render(sample_context("applicant_receipt"))

    assert "中国移动通信集团浙江有限公司" in mail.text
    assert "加盖公章的PDF版推荐表" in mail.html


def test_applicant_receipt_on_completion_says_it_is_complete(renderer):
    receipt = sample_context("applicant_receipt")
    assert isinstance(receipt, ApplicantReceipt)

    mail = renderer.render(
        dataclasses.replace(receipt, event="complete", complete=True, missing=[])
    )

    assert "已齐全" in mail.subject
    assert "已完整" in mail.text


def test_a_result_correction_says_it_replaces_the_earlier_notice(renderer):
    notice = sample_context("result")
    assert isinstance(notice, ResultNotice)

    mail = renderer.render(dataclasses.replace(notice, result="not_selected", correction=True))

    assert mail.subject.startswith("【") and "更正" in mail.subject
    assert "未入选" in mail.text
    assert "以本通知为准" in mail.html


def test_the_digest_counts_days_left_and_lists_what_needs_a_person(renderer):
    mail = renderer.render(sample_context("digest"))

    assert "10天" in mail.subject
    for body in (mail.text, mail.html):
        assert "请确认这一行对应哪一项" in body
        assert "old-contact@example.net" in body
        assert "noreply@example.com" in body


def test_an_override_replaces_exactly_one_template(tmp_path, renderer):
    (tmp_path / "result.subject.j2").write_text("结果：{{ submission_ref }}", encoding="utf-8")

    overridden = Renderer(override_dir=tmp_path).render(sample_context("result"))
    built_in = renderer.render(sample_context("result"))

    assert overridden.subject == "结果：ICT2025-0012"
    assert overridden.text == built_in.text
    assert overridden.html == built_in.html


def test_check_names_the_override_with_a_misspelt_variable(tmp_path):
    (tmp_path / "unit_receipt.txt.j2").write_text("{{ untis }}", encoding="utf-8")

    problems = Renderer(override_dir=tmp_path).check()

    assert len(problems) == 1
    assert "unit_receipt.txt.j2" in problems[0]
    assert "untis" in problems[0]


def test_check_reports_a_syntax_error_with_its_line(tmp_path):
    (tmp_path / "digest.html.j2").write_text("<p>\n{% if days_left %}\n", encoding="utf-8")

    problems = Renderer(override_dir=tmp_path).check()

    assert any("digest.html.j2" in problem and "line" in problem for problem in problems)


def test_check_reports_an_override_file_that_replaces_nothing(tmp_path):
    (tmp_path / "unit_reciept.txt.j2").write_text("x", encoding="utf-8")

    problems = Renderer(override_dir=tmp_path).check()

    assert any("unit_reciept.txt.j2" in problem for problem in problems)


def test_render_raises_template_error_naming_the_template(tmp_path):
    (tmp_path / "result.txt.j2").write_text("{{ note.nonexistent }}", encoding="utf-8")

    with pytest.raises(TemplateError) as failure:
        Renderer(override_dir=tmp_path).render(sample_context("result"))

    assert failure.value.template == "result.txt.j2"


def test_every_built_in_template_has_three_parts_per_kind():
    names = {path.name for path in BUILTIN_TEMPLATES.glob("*.j2")}
    for kind in MAIL_KINDS:
        assert {f"{kind}.subject.j2", f"{kind}.txt.j2", f"{kind}.html.j2"} <= names


SHARED_RENDERER = Renderer()


class MarkupOutline(HTMLParser):
    """The markup of an HTML document without its text: tags, their attribute names, comments."""

    def __init__(self, document: str) -> None:
        super().__init__(convert_charrefs=True)
        self.outline: list[tuple[str, ...]] = []
        self.feed(document)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.outline.append(("start", tag, *(name for name, _ in attrs)))

    def handle_endtag(self, tag: str) -> None:
        self.outline.append(("end", tag))

    def handle_comment(self, data: str) -> None:
        self.outline.append(("comment",))

    def handle_decl(self, decl: str) -> None:
        self.outline.append(("decl", decl))

    def handle_pi(self, data: str) -> None:
        self.outline.append(("pi",))


def html_outline_with(title: str) -> list[tuple[str, ...]]:
    """The markup outline of a unit receipt whose case and subject carry `title`."""
    case = CaseLine(row=1, title=title, applicant="申报单位", match="none")
    mail = SHARED_RENDERER.render(unit_receipt(cases=[case], message_subject=title))
    return MarkupOutline(mail.html).outline


PLAIN_TITLE_OUTLINE = html_outline_with("智慧工厂")


@given(st.text(max_size=200))
def test_no_case_title_can_break_the_html_or_the_subject(title):
    case = CaseLine(row=1, title=title, applicant="申报单位", match="none")

    mail = SHARED_RENDERER.render(unit_receipt(cases=[case], message_subject=title))

    assert "\n" not in mail.subject and "\r" not in mail.subject
    # The title may only ever be text: the markup is the same as with a plain title. (Looking
    # for the raw title in the HTML fails for a title such as "<", which any HTML contains.)
    assert MarkupOutline(mail.html).outline == PLAIN_TITLE_OUTLINE


def test_values_from_forms_are_shown_without_stray_spaces_between_chinese_characters():
    from notifications.contexts import tidy

    assert (
        tidy("智慧养老多源数据融合质量检测系 统(一期)") == "智慧养老多源数据融合质量检测系统(一期)"
    )
    assert tidy("中国移动　浙江 公司") == "中国移动浙江公司"
    assert tidy("基于 5G 的 AI 平台") == "基于 5G 的 AI 平台"  # spaces next to Latin stay
    assert tidy(None) is None
