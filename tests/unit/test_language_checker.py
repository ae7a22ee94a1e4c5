"""The checker the language tests rely on finds English and commands, and nothing else."""

from __future__ import annotations

import pytest

from tests.support.language import assert_reads_chinese, english_in


@pytest.mark.parametrize(
    "text",
    [
        "请将《广东移动-推荐表（盖章）.pdf》对应的Word版推荐表发送至 cases@example.org。",
        "「KJCX2025-0005（得分 100）」与 ICT2025-0012 相近，请确认。",
        "基于5G-A与AI的智慧港口（ICT创新）",
        "在工作台处理：https://intake.example.org/units/3#row-2",
        "来信 <abc.123@mail.example.cn> 已存档，文件 9f86d081884c7d65 已保存。",
        "请用Word或WPS另存为.docx格式，或导出为PDF、Excel。",
    ],
)
def test_chinese_with_addresses_files_refs_urls_and_acronyms_passes(text):
    assert english_in(text) == []
    assert_reads_chinese(text, "sample")


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ("decide whether to accept it", ["decide", "whether", "to", "accept", "it"]),
        ("请运行 intake pair set --recommendation 3", ["intake pair", "--recommendation", "set"]),
        ("或由工作人员执行 `intake pair pdf`", ["`intake pair pdf`"]),
        ("附件: no Word form it belongs to yet", ["no", "form", "it", "belongs", "to", "yet"]),
        ("状态：needs_attention", ["needs_attention"]),
    ],
)
def test_english_words_and_command_lines_are_found(text, found):
    assert english_in(text) == found
    with pytest.raises(AssertionError):
        assert_reads_chinese(text, "sample")
