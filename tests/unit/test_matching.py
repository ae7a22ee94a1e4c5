"""Form rows are linked to online submissions exactly when it is safe, else staff decide."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from config.settings import SAMPLES
from service.matching import Candidate, RowMatch, RowToMatch, SubmissionIndex, Thresholds

TRUTH: dict[str, Any] = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))
SAMPLE_INDEX = SubmissionIndex(
    Candidate(
        ref=submission["ref"],
        title=submission["title"],
        applicant=submission["applicant"],
        recommender=submission["recommender_field"],
        route=submission["route"],
    )
    for submission in TRUTH["submissions"]
)
SAMPLE_CASES = [
    (recommendation["unit"], case)
    for recommendation in TRUTH["recommendations"]
    for case in recommendation["cases"]
]
JIANGSU_MOBILE = "中国移动通信集团江苏有限公司"


def case_id(unit_and_case: tuple[str, dict[str, Any]]) -> str:
    unit, case = unit_and_case
    return f"{unit}-{case['row']}"


def match_one(
    index: SubmissionIndex, row: RowToMatch, *, unit: str | None = JIANGSU_MOBILE
) -> RowMatch:
    return index.match_rows([row], unit=unit)[0]


def row_of(case: dict[str, Any], *, with_ref: bool = True) -> RowToMatch:
    return RowToMatch(
        row=case["row"],
        title=case["title_on_form"],
        applicant=case["applicant_on_form"],
        ref=case["ref_on_form"] if with_ref else None,
    )


@pytest.mark.parametrize("unit_and_case", SAMPLE_CASES, ids=case_id)
def test_every_sample_row_matches_the_submission_truth_names(
    unit_and_case: tuple[str, dict[str, Any]],
) -> None:
    unit, case = unit_and_case
    decision = match_one(SAMPLE_INDEX, row_of(case), unit=unit)
    assert decision.submission_ref == case["submission_ref"]
    assert decision.method in case["match"]
    assert decision.warnings == ()


@pytest.mark.parametrize("unit_and_case", SAMPLE_CASES, ids=case_id)
def test_every_sample_row_still_matches_by_names_when_the_ref_is_left_out(
    unit_and_case: tuple[str, dict[str, Any]],
) -> None:
    unit, case = unit_and_case
    decision = match_one(SAMPLE_INDEX, row_of(case, with_ref=False), unit=unit)
    assert (decision.method, decision.submission_ref) == ("name", case["submission_ref"])


def test_whole_sample_forms_match_row_by_row() -> None:
    for recommendation in TRUTH["recommendations"]:
        rows = [row_of(case) for case in recommendation["cases"]]
        decisions = SAMPLE_INDEX.match_rows(rows, unit=recommendation["unit"])
        assert [decision.submission_ref for decision in decisions] == [
            case["submission_ref"] for case in recommendation["cases"]
        ]


def test_a_name_match_says_why() -> None:
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(1, "《数字孪生赋能智能电网资产数字化管理平台》", "上海宏图电 子科技"),
        unit="上海市通信行业协会",
    )
    assert decision.evidence[:3] == (
        "title 100",
        "applicant 100 (core)",
        "recommender matches unit",
    )


@pytest.mark.parametrize(
    ("title", "applicant"),
    [
        ("《数字孪生+智慧港口环境监测系统》", "常州景行通信技术有限公司"),
        ("“数字孪生+智慧港口环境监测系统”", "常州景行通信技术"),
        ("数字孪生＋智慧港口 环境监测系统", "常州景行通信技术有限公司"),
        ("数字孪生+智慧港口\u3000环境监测系统", "常州景行 通信技术有限公司"),
        ("智慧港口环境监测系统", "常州景行通信技术有限公司"),  # prefix dropped
        ("智慧养老多源数据融合质量检测系统", "上海星河物联网科技有限公司"),  # (一期) dropped
        ("5G RedCap的低空经济精准定位系统", "天翼(绍兴)数字科技"),
    ],
)
def test_rows_written_the_way_people_write_them_still_match(title: str, applicant: str) -> None:
    decision = match_one(SAMPLE_INDEX, RowToMatch(1, title, applicant), unit=None)
    assert decision.method == "name", decision
    assert decision.score >= Thresholds().accept


def test_a_row_with_no_online_submission_matches_none() -> None:
    decision = match_one(
        SAMPLE_INDEX, RowToMatch(5, "基于卫星互联网的远洋渔船通信服务平台", "舟山海联科技有限公司")
    )
    assert (decision.method, decision.submission_ref, decision.candidates) == ("none", None, ())


def test_another_case_of_the_same_applicant_is_not_taken_for_an_unsubmitted_one() -> None:
    decision = match_one(
        SAMPLE_INDEX, RowToMatch(5, "智慧港口5G专网安全运营平台", "常州景行通信技术有限公司")
    )
    assert decision.submission_ref is None


def test_a_wrong_ref_falls_back_to_names_with_a_warning() -> None:
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(1, "数字孪生+智慧港口环境监测系统", "常州景行通信技术有限公司", "KJCX2025-9999"),
    )
    assert (decision.method, decision.submission_ref) == ("name", "KJCX2025-0003")
    assert [(w.code, w.params["ref"]) for w in decision.warnings] == [
        ("ref_not_in_export", "KJCX2025-9999")
    ]


def test_a_ref_written_in_full_width_characters_is_found() -> None:
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(
            1, "数字孪生+智慧港口环境监测系统", "常州景行通信技术", "ＫＪＣＸ２０２５－０００３"
        ),
    )
    assert (decision.method, decision.submission_ref, decision.score) == (
        "ref",
        "KJCX2025-0003",
        100.0,
    )


def test_a_ref_whose_record_has_another_title_matches_with_a_warning() -> None:
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(1, "智慧工厂设备巡检机器人", "常州景行通信技术有限公司", "KJCX2025-0003"),
    )
    assert (decision.method, decision.submission_ref) == ("ref", "KJCX2025-0003")
    assert "title_differs" in [warning.code for warning in decision.warnings]


def test_a_ref_contradicted_by_title_and_applicant_that_name_another_case_is_left_to_staff() -> (
    None
):
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(1, "AI大模型赋能智慧校园质量检测系统", "中移(南通)信息技术", "KJCX2025-0012"),
    )
    assert (decision.method, decision.submission_ref) == ("ambiguous", None)
    assert {ref for ref, _ in decision.candidates} == {"KJCX2025-0002", "KJCX2025-0012"}


PORT_PHASES = SubmissionIndex(
    [
        Candidate(
            "P-1", "智慧港口环境监测系统", "常州景行通信技术有限公司", "江苏移动", "recommended"
        ),
        Candidate(
            "P-2", "智慧港口环境监测系统二期", "常州景行通信技术有限公司", "江苏移动", "recommended"
        ),
    ]
)


@pytest.mark.parametrize(
    "title",
    ["智慧港口环境监测系统(二期)", "智慧港口环境监测系统", "智慧港口 环境监测系统 二期"],
)
def test_two_phases_of_one_applicants_case_are_left_to_staff(title: str) -> None:
    decision = match_one(PORT_PHASES, RowToMatch(1, title, "常州景行通信技术有限公司"))
    assert (decision.method, decision.submission_ref) == ("ambiguous", None)
    assert {ref for ref, _ in decision.candidates} == {"P-1", "P-2"}


def test_a_row_naming_phase_one_is_not_taken_for_phase_two() -> None:
    decision = match_one(
        PORT_PHASES, RowToMatch(1, "《智慧港口环境监测系统（一期）》", "常州景行通信技术有限公司")
    )
    assert decision.submission_ref != "P-2"


def test_a_phase_that_contradicts_the_only_submission_is_not_matched() -> None:
    index = SubmissionIndex(
        [
            Candidate(
                "P-2", "智慧港口环境监测系统（二期）", "常州景行通信技术有限公司", None, "voluntary"
            )
        ]
    )
    decision = match_one(index, RowToMatch(1, "智慧港口环境监测系统(三期)", "常州景行通信技术"))
    assert decision.submission_ref is None


def test_one_case_under_two_similar_applicant_names_is_left_to_staff() -> None:
    index = SubmissionIndex(
        [
            Candidate("A", "智慧园区综合管理平台", "上海宏图电子科技有限公司", None, "voluntary"),
            Candidate(
                "B", "智慧园区综合管理平台", "上海宏图电子科技股份有限公司", None, "voluntary"
            ),
        ]
    )
    decision = match_one(index, RowToMatch(1, "智慧园区综合管理平台", "上海宏图电子科技"))
    assert decision.method == "ambiguous"


def test_the_same_title_from_an_unrelated_applicant_is_not_matched() -> None:
    decision = match_one(
        SAMPLE_INDEX, RowToMatch(1, "数字孪生+智慧港口环境监测系统", "杭州云海数据科技有限公司")
    )
    assert decision.submission_ref is None


def test_a_voluntary_submission_can_be_matched_on_a_form() -> None:
    decision = match_one(
        SAMPLE_INDEX,
        RowToMatch(1, "城市应急行业大模型数据共享平台", "湖州光启物联网科技"),
        unit="浙江电信",
    )
    assert (decision.method, decision.submission_ref) == ("name", "KJCX2025-0012")
    assert "voluntary submission" in decision.evidence


def test_the_submissions_own_recommender_counts_for_it() -> None:
    row = RowToMatch(1, "智慧港口环境监测系统", "常州景行通信技术有限公司")
    own = match_one(SAMPLE_INDEX, row, unit="江苏移动")
    other = match_one(SAMPLE_INDEX, row, unit="浙江电信")
    assert "recommender matches unit" in own.evidence
    assert own.score > other.score
    assert any("江苏移动" in warning.staff_text for warning in other.warnings)


def test_a_duplicate_online_submission_is_left_to_staff() -> None:
    index = SubmissionIndex(
        [
            Candidate(
                "J", "智慧园区综合管理平台", "南京景行科技有限公司", "江苏移动", "recommended"
            ),
            Candidate("V", "智慧园区综合管理平台", "南京景行科技有限公司", None, "voluntary"),
        ]
    )
    decision = match_one(index, RowToMatch(1, "智慧园区综合管理平台", "南京景行科技有限公司"))
    assert (decision.method, decision.submission_ref) == ("ambiguous", None)


def test_two_rows_of_one_form_never_claim_the_same_submission() -> None:
    rows = [
        RowToMatch(1, "智慧养老多源数据融合质量检测系统", "上海星河物联网科技有限公司"),
        RowToMatch(2, "《智慧养老多源数据融合质量检测系统（一期）》", "上海星河物联网科技"),
    ]
    first, second = SAMPLE_INDEX.match_rows(rows, unit="上海市通信行业协会")
    assert (second.method, second.submission_ref) == ("name", "KJCX2025-0009")
    assert (first.method, first.submission_ref) == ("ambiguous", None)
    assert any(w.params.get("row") == 2 for w in first.warnings if w.code == "ref_claimed")


def test_a_submission_a_staff_decision_gave_another_row_is_not_claimed_again() -> None:
    row = RowToMatch(3, "北斗高精度定位赋能智慧仓储物流网络运维智能体", "北京邮电大学")
    decision = SAMPLE_INDEX.match_rows(
        [row], unit="上海市通信行业协会", taken={"KJCX2025-0001": 7}
    )[0]
    assert (decision.method, decision.submission_ref) == ("ambiguous", None)
    assert any(w.params.get("row") == 7 for w in decision.warnings if w.code == "ref_claimed")


def test_stricter_thresholds_turn_a_match_into_a_question() -> None:
    row = RowToMatch(1, "智慧港口环境监测系统", "常州景行通信技术有限公司")
    decision = SAMPLE_INDEX.match_rows([row], unit=None, thresholds=Thresholds(accept=99.0))[0]
    assert decision.method == "ambiguous"


TITLE_PARTS = [
    "智慧",
    "港口",
    "医院",
    "校园",
    "环境",
    "监测",
    "系统",
    "平台",
    "二期",
    "5G",
    "大模型",
]
titles = st.lists(st.sampled_from(TITLE_PARTS), min_size=1, max_size=5).map("".join)
applicants = st.sampled_from(
    ["常州景行通信技术有限公司", "常州景行通信技术", "台州景行电子科技有限公司"]
)


@settings(max_examples=150, deadline=None)
@given(
    submissions=st.lists(st.tuples(titles, applicants), min_size=1, max_size=6),
    rows=st.lists(st.tuples(titles, applicants), min_size=1, max_size=4),
    accept=st.floats(min_value=60.0, max_value=100.0),
)
def test_a_name_match_never_scores_below_the_acceptance_threshold(
    submissions: list[tuple[str, str]], rows: list[tuple[str, str]], accept: float
) -> None:
    index = SubmissionIndex(
        Candidate(f"R-{number}", title, applicant, "江苏移动", "recommended")
        for number, (title, applicant) in enumerate(submissions)
    )
    thresholds = Thresholds(accept=accept)
    decisions = index.match_rows(
        [RowToMatch(number, title, applicant) for number, (title, applicant) in enumerate(rows)],
        unit=JIANGSU_MOBILE,
        thresholds=thresholds,
    )
    claimed = [decision.submission_ref for decision in decisions if decision.submission_ref]
    assert len(claimed) == len(set(claimed))
    for decision in decisions:
        if decision.method == "name":
            assert decision.submission_ref is not None
            assert decision.score >= accept
        else:
            assert decision.submission_ref is None


APPLICANT = "南京鼎信通信技术有限公司"
EDGE_PORT = Candidate(
    "S-1", "基于边缘计算的南京智慧港口环境监测系统", APPLICANT, "江苏移动", "recommended"
)
SME_PORT = Candidate(
    "S-2", "面向中小企业的南京智慧港口环境监测平台", APPLICANT, "江苏移动", "recommended"
)
OTHER_CASE = Candidate(
    "S-3", "数字孪生+南京智慧园区精准定位系统", APPLICANT, "江苏移动", "recommended"
)


@pytest.mark.parametrize(
    "title",
    [
        "南京智慧港口环境监测",
        "南京智慧港口环境监测系统",
        "基于边缘计算的南京智慧港口环境监测",
        "“南京智慧港口 环境监测”",
    ],
)
def test_a_title_the_unit_shortened_matches_by_name_when_nothing_rivals_it(title: str) -> None:
    index = SubmissionIndex([EDGE_PORT, OTHER_CASE])

    decision = match_one(index, RowToMatch(1, title, "南京鼎信通信技术"), unit="江苏移动")

    assert (decision.method, decision.submission_ref) == ("name", "S-1")
    assert any("shortened" in item for item in decision.evidence)


def test_a_shortened_title_that_fits_two_cases_of_the_applicant_is_left_to_staff() -> None:
    index = SubmissionIndex([EDGE_PORT, SME_PORT, OTHER_CASE])

    decision = match_one(index, RowToMatch(1, "南京智慧港口环境监测", APPLICANT), unit="江苏移动")

    assert (decision.method, decision.submission_ref) == ("ambiguous", None)
    assert {ref for ref, _ in decision.candidates} >= {"S-1", "S-2"}


def test_a_rival_that_another_row_of_the_form_names_in_full_does_not_block_the_short_row():
    index = SubmissionIndex([EDGE_PORT, SME_PORT, OTHER_CASE])
    rows = [
        RowToMatch(1, "南京智慧港口环境监测", APPLICANT),
        RowToMatch(2, "面向中小企业的南京智慧港口环境监测平台", APPLICANT),
    ]

    short, full = index.match_rows(rows, unit="江苏移动")

    assert (full.method, full.submission_ref) == ("name", "S-2")
    assert (short.method, short.submission_ref) == ("name", "S-1")
    assert "S-2 is row 2's" in short.evidence


def test_a_form_title_longer_than_the_submission_is_not_taken_for_a_shortening() -> None:
    index = SubmissionIndex(
        [Candidate("S-9", "南京智慧港口环境监测", APPLICANT, "江苏移动", "recommended")]
    )

    decision = match_one(
        index, RowToMatch(1, "基于边缘计算的南京智慧港口环境监测系统", APPLICANT), unit="江苏移动"
    )

    assert not any("shortened" in item for item in decision.evidence)
