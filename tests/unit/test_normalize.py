"""Spellings people use for one title, applicant, unit or code compare equal."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from config.settings import SAMPLES
from parsers.normalize import (
    USCC_ALPHABET,
    applicant_core,
    find_unit_mention,
    full_unit_name,
    normalize_applicant,
    normalize_ref,
    normalize_text,
    normalize_title,
    normalize_unit,
    normalize_uscc,
    title_core,
    units_match,
    uscc_is_valid,
)

TRUTH: dict[str, Any] = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("《数字孪生赋能智能电网资产数字化管理平台》", "数字孪生赋能智能电网资产数字化管理平台"),
        ("“智慧养老多源数据融合质量检测系 统(一期)” ", "智慧养老多源数据融合质量检测系统（一期）"),
        ("「智慧港口」环境监测系统", "智慧港口环境监测系统"),
        ("基于5G\u3000RedCap的低空经济精准定位系统", "基于5G RedCap的低空经济精准定位系统"),
        ("基于ＮＢ－ＩｏＴ的钢铁冶炼平台", "基于NB-IoT的钢铁冶炼平台"),
        ("'AI大模型' 赋能", "ai大模型赋能"),
    ],
)
def test_titles_written_differently_share_one_key(written: str, recorded: str) -> None:
    assert normalize_title(written) == normalize_title(recorded)


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("中移(南通)信息技术有限公司", "中移（南通）信息技术有限公司"),
        ("天翼(绍兴)数　字科技有限公司 ", "天翼（绍兴）数字科技有限公司"),
    ],
)
def test_applicants_with_other_brackets_or_spaces_share_the_full_key(
    written: str, recorded: str
) -> None:
    assert normalize_applicant(written) == normalize_applicant(recorded)


@pytest.mark.parametrize(
    ("written", "recorded"),
    [
        ("中移（苏州）信息技术", "中移（苏州）信息技术有限公司"),
        ("上海宏图电 子科技", "上海宏图电子科技有限公司"),
        ("北京数智数字科技", "北京数智数字科技有限责任公司"),
        ("光启集团", "光启集团股份有限公司"),
        ("中国电信浙江分公司", "中国电信股份有限公司浙江分公司"),
    ],
)
def test_an_applicant_without_its_company_suffix_shares_the_core(
    written: str, recorded: str
) -> None:
    assert normalize_applicant(written) != normalize_applicant(recorded)
    assert applicant_core(written) == applicant_core(recorded)


def test_a_branch_keeps_its_ending_in_the_core() -> None:
    assert applicant_core("中国移动通信集团江苏有限公司常州分公司").endswith("常州分公司")


def test_a_name_that_is_only_a_suffix_is_not_emptied() -> None:
    assert applicant_core("有限公司") == "有限公司"


def test_refs_written_with_full_width_characters_and_spaces_are_found() -> None:
    assert normalize_ref(" ｋｊｃｘ２０２５－０００３ ") == "KJCX2025-0003"
    assert normalize_ref("KJCX2025—0003") == "KJCX2025-0003"


@pytest.mark.parametrize(
    ("short_name", "full_name"),
    [
        ("江苏移动", "中国移动通信集团江苏有限公司"),
        ("浙江电信", "中国电信股份有限公司浙江分公司"),
        ("中国电信浙江分公司", "中国电信股份有限公司浙江分公司"),
        ("广东联通", "中国联合网络通信有限公司广东省分公司"),
        ("中国联通广西分公司", "中国联合网络通信有限公司广西壮族自治区分公司"),
        ("四川铁塔", "中国铁塔股份有限公司四川省分公司"),
        ("江苏省邮政公司", "中国邮政集团有限公司江苏省分公司"),
        ("山东广电", "中国广电山东网络股份有限公司"),
        ("中国移动新疆公司", "中国移动通信集团新疆有限公司"),
    ],
)
def test_short_names_of_central_group_companies_match_their_full_names(
    short_name: str, full_name: str
) -> None:
    assert full_unit_name(short_name) == full_name
    assert units_match(short_name, full_name)


def test_every_province_and_group_has_a_short_name() -> None:
    assert full_unit_name("黑龙江移动") == "中国移动通信集团黑龙江有限公司"
    assert full_unit_name("宁夏电信") == "中国电信股份有限公司宁夏分公司"


@pytest.mark.parametrize(
    ("first", "second"),
    [
        ("江苏移动", "浙江移动"),
        ("江苏移动", "江苏电信"),
        ("江苏移动", "江苏移动常州分公司"),
        ("中国移动", "江苏移动"),
        ("上海市通信行业协会", "江苏省通信行业协会"),
    ],
)
def test_different_units_do_not_match(first: str, second: str) -> None:
    assert not units_match(first, second)


def test_a_missing_unit_matches_nothing() -> None:
    assert not units_match(None, "江苏移动")
    assert not units_match("", "")


def test_an_association_written_without_its_province_suffix_matches() -> None:
    assert units_match("上海通信行业协会", "上海市通信行业协会")
    assert normalize_unit("上海市通信行业协会") == normalize_unit("上海 通信行业协会")


def test_a_unit_is_found_in_a_file_name_under_its_short_name() -> None:
    assert find_unit_mention("江苏移动-推荐表（盖章）.pdf", "中国移动通信集团江苏有限公司")
    assert find_unit_mention("浙江电信-推荐表.docx", "中国移动通信集团江苏有限公司") is None


@pytest.mark.parametrize(
    "submission", TRUTH["submissions"], ids=lambda submission: submission["ref"]
)
def test_the_sample_uscc_codes_are_valid_as_truth_says(submission: dict[str, Any]) -> None:
    assert uscc_is_valid(normalize_uscc(submission["uscc"])) is submission["uscc_valid"]


def test_a_uscc_with_one_character_changed_is_invalid() -> None:
    code = TRUTH["submissions"][0]["uscc"]
    changed = code[:5] + ("1" if code[5] != "1" else "2") + code[6:]
    assert not uscc_is_valid(changed)


def test_a_uscc_written_with_full_width_characters_spaces_and_hyphens_is_valid() -> None:
    assert uscc_is_valid(normalize_uscc("９１３２ ０６００-Ｍ３７８６５７９６ｒ"))


def test_a_uscc_with_a_letter_outside_the_alphabet_is_invalid() -> None:
    assert not uscc_is_valid("91320600I37865796R")
    assert not uscc_is_valid("9132060037865796R")


@given(st.text(alphabet=USCC_ALPHABET, min_size=17, max_size=17))
def test_exactly_one_check_character_completes_any_uscc_body(body: str) -> None:
    assert sum(uscc_is_valid(body + check) for check in USCC_ALPHABET) == 1


@given(st.text())
def test_normalising_text_twice_changes_nothing(value: str) -> None:
    once = normalize_text(value)
    assert normalize_text(once) == once


@pytest.mark.parametrize(
    ("title", "core"),
    [
        ("基于边缘计算的智慧港口环境监测系统", "智慧港口环境监测"),
        ("面向中小企业的数据共享平台（试点）", "数据共享"),
        ("设备预测性维护解决方案（一期）", "设备预测性维护"),
        ("智慧港口", "智慧港口"),
        ("基于AI的系统", "基于ai的系统"),
    ],
)
def test_a_title_core_drops_what_units_leave_out_when_they_shorten(title, core):
    assert title_core(normalize_title(title)) == core
