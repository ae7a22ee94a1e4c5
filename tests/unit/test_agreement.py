"""Does a sealed PDF list the same cases as its Word form: the rows compared by title."""

from __future__ import annotations

import pytest

from parsers.model import CaseRow, PdfForm, Problem
from parsers.ocr import LabelSpot, ScanReading
from service.agreement import check_agreement, title_score
from service.pairing_rules import KnownUnit, check_scan_unit
from service.scans import merge_reading, text_source_of
from service.workbook import agreement_words

WORD = [
    CaseRow(1, "数字孪生+智慧港口环境监测系统", "常州景行通信技术有限公司"),
    CaseRow(2, "AI大模型赋能智慧校园质量检测系统", "中移(南通)信息技术有限公司"),
    CaseRow(3, "《智慧矿山时空大数据综合运营管理系统》", "中移（苏州）信息技术"),
    CaseRow(4, "视觉大模型赋能智慧校园应急通信保障系统", "中国移动通信集团江苏有限公司常州分公司"),
]


def rows(*titles: str) -> list[CaseRow]:
    return [CaseRow(number, title, "某公司") for number, title in enumerate(titles, start=1)]


def test_the_same_rows_agree():
    agreement = check_agreement(WORD, WORD)

    assert agreement == {
        "rows_on_word": 4,
        "rows_on_pdf": 4,
        "rows_found": 4,
        "missing": [],
        "extra": [],
    }


@pytest.mark.parametrize(
    "on_pdf",
    [
        "数字孪生+智慧港口环境\n监测系统",  # wrapped in its cell
        "数字孪生 + 智慧港口 环境监测系统",  # spaces
        "“数字孪生＋智慧港口环境监测系统”",  # quotes, full-width plus
        "数字孪生+智慧港口环境监测",  # shortened
        "数字孪生+智慧港囗环境监测系统",  # one character misread by OCR
    ],
)
def test_a_wrapped_shortened_or_misread_title_still_agrees(on_pdf: str):
    agreement = check_agreement(WORD[:1], rows(on_pdf))

    assert agreement is not None
    assert agreement["rows_found"] == 1, title_score(WORD[0].title, on_pdf)
    assert agreement["missing"] == [] and agreement["extra"] == []


def test_punctuation_and_book_title_marks_do_not_count():
    agreement = check_agreement(WORD, rows(*(row.title.strip("《》") for row in WORD)))

    assert agreement is not None and agreement["rows_found"] == 4


def test_a_row_dropped_from_the_pdf_is_missing_with_its_word_row():
    agreement = check_agreement(WORD, [WORD[0], WORD[1], WORD[3]])

    assert agreement is not None
    assert agreement["rows_found"] == 3
    assert agreement["missing"] == [
        {"row": 3, "title": WORD[2].title, "applicant": WORD[2].applicant}
    ]
    assert agreement["extra"] == []


def test_a_row_added_on_the_pdf_is_extra_by_its_title():
    added = CaseRow(5, "5G专网赋能钢铁智能制造", "某钢铁集团")

    agreement = check_agreement(WORD, [*WORD, added])

    assert agreement is not None
    assert agreement["missing"] == []
    assert agreement["extra"] == ["5G专网赋能钢铁智能制造"]


def test_two_similar_titles_each_find_their_own_row():
    word = rows("智慧校园应急通信保障系统", "智慧校园质量检测系统")
    pdf = rows("智慧校园质量检测系统", "智慧校园应急通信保障系统")

    agreement = check_agreement(word, pdf)

    assert agreement is not None and agreement["rows_found"] == 2


def test_a_shared_phrase_is_not_the_same_case():
    agreement = check_agreement(rows("智慧校园"), rows("视觉大模型赋能智慧校园应急通信保障系统"))

    assert agreement is not None
    assert agreement["rows_found"] == 0


def test_nothing_to_compare_cannot_be_checked():
    assert check_agreement(WORD, []) is None
    assert check_agreement([], WORD) is None


def scanned_form() -> PdfForm:
    return PdfForm(pages=1, text="", scanned=True, seal="unknown", seal_evidence="no seal found")


def reading(**values: object) -> ScanReading:
    base: dict[str, object] = {
        "engine": "test",
        "pages": 1,
        "page_texts": ["推荐单位 中国移动通信集团江苏有限公司", "序号 案例名称"],
        "unit": "中国移动通信集团江苏有限公司",
        "cases": list(WORD),
    }
    base.update(values)
    return ScanReading(**base)  # type: ignore[arg-type]


def test_a_reading_fills_the_scans_form_as_a_text_layer_would():
    merged = merge_reading(scanned_form(), reading())

    assert merged.unit == "中国移动通信集团江苏有限公司"
    assert merged.cases == WORD
    assert merged.titles == [row.title for row in WORD]
    assert "推荐单位" in merged.text
    assert merged.reads_as_form
    assert text_source_of(merged) == "ocr"
    assert text_source_of(scanned_form()) == "none"
    assert merged.seal == "unknown"  # OCR judged no seal: the seal check stands


def test_a_seal_ocr_found_by_the_label_counts_and_its_problems_are_kept():
    problem = Problem("pdf_seal_check_failed", {"detail": "x"})
    merged = merge_reading(
        scanned_form(),
        reading(seal="present", seal_label=LabelSpot(1, 0.6, 0.7, 0.8, 0.75), problems=[problem]),
    )

    assert merged.seal == "present"
    assert merged.problems == [problem]


KNOWN = [
    KnownUnit("中国移动通信集团江苏有限公司", ("fu@js.chinamobile.example",)),
    KnownUnit("中国电信股份有限公司浙江分公司", ("li@zj.chinatelecom.example",)),
    KnownUnit("上海市通信行业协会", ("ge@shca.example",)),
]


def test_a_scans_unit_naming_a_known_unit_is_taken_under_its_known_name():
    checked = check_scan_unit("江苏移动", KNOWN, sender="x@qq.example")

    assert checked.unit == "中国移动通信集团江苏有限公司"


def test_a_misread_character_still_finds_the_known_unit():
    checked = check_scan_unit("中国电信股份有限公司浙江分公可", KNOWN, sender="x@qq.example")

    assert checked.unit == "中国电信股份有限公司浙江分公司"


def test_a_near_miss_is_trusted_only_when_the_sender_sent_that_units_forms():
    misread = "上海币通信行亚协会"  # two characters of nine misread

    assert check_scan_unit(misread, KNOWN, sender="x@qq.example").unit is None
    assert check_scan_unit(misread, KNOWN, sender="ge@shca.example").unit == "上海市通信行业协会"


def test_a_unit_like_no_known_one_is_a_new_unit():
    checked = check_scan_unit("广东省通信学会", KNOWN, sender="x@gdca.example")

    assert checked.unit == "广东省通信学会"


def test_no_unit_read_is_no_unit():
    assert check_scan_unit(None, KNOWN, sender="x@qq.example").unit is None


def test_the_workbook_says_in_words_whether_the_pdf_agrees():
    assert agreement_words(None) == ""
    assert agreement_words(check_agreement(WORD, WORD)) == "一致"
    differing = check_agreement(WORD[:3], [*WORD[:2], WORD[3]])
    assert agreement_words(differing) == (
        f"不一致：PDF缺少「{WORD[2].title}」；PDF多出「{WORD[3].title}」"
    )


@pytest.mark.parametrize(
    "unit",
    [
        "中国移动通信集团四川有限公司",  # another province of a known group
        "山西省通信行业协会",  # another province's association
        "中国移动通信集团江苏有限公司常州分公司",  # a known unit's branch
        "中国铁塔股份有限公司湖北省分公司",
    ],
)
def test_a_unit_alike_a_known_one_but_of_another_province_or_a_branch_is_a_new_unit(unit: str):
    assert check_scan_unit(unit, KNOWN, sender="x@qq.example").unit == unit
