"""Reading the online system's export: the sample .xlsx, the same data as CSV, bad rows."""

from __future__ import annotations

import csv
import io
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import openpyxl
import pytest

from config.errors import ConfigError, ParseError
from parsers.submissions import read_submissions

SAMPLES = Path("/work/shared/samples")
SAMPLE_XLSX = SAMPLES / "submissions.xlsx"
TRUTH = json.loads((SAMPLES / "truth.json").read_text(encoding="utf-8"))

HEADER = [
    "申报编号", "案例名称", "申报单位", "统一社会信用代码", "案例类别", "所属领域", "申报方式",
    "推荐单位", "联系人", "手机", "电子邮箱", "提交时间", "参加智慧企业案例征集",
]  # fmt: skip
GOOD_ROW = [
    "KJCX2025-0101", "5G专网赋能智慧矿山", "某某科技有限公司", "91320400562819480J", "新技术",
    "5G网络", "自愿申报", "", "张三", "13800000000", "zhangsan@example.com",
    "2025-07-01 09:30:00", "是",
]  # fmt: skip


def sample_rows() -> list[list[str]]:
    """The sample export's rows as text, the way a CSV export would write them."""
    workbook = openpyxl.load_workbook(SAMPLE_XLSX, read_only=True)
    rows = []
    for values in workbook.active.iter_rows(values_only=True):
        rows.append(
            [
                value.strftime("%Y-%m-%d %H:%M:%S")
                if isinstance(value, datetime)
                else ""
                if value is None
                else str(value)
                for value in values
            ]
        )
    workbook.close()
    return rows


def csv_bytes(rows: list[list[str]], encoding: str) -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def with_cell(row: list[str], column: str, value: str) -> list[str]:
    changed = list(row)
    changed[HEADER.index(column)] = value
    return changed


def test_sample_export_has_fifteen_records_ten_recommended_five_voluntary() -> None:
    export = read_submissions(SAMPLE_XLSX.read_bytes(), SAMPLE_XLSX.name)

    assert len(export.records) == 15
    assert [record.route for record in export.records].count("recommended") == 10
    assert [record.route for record in export.records].count("voluntary") == 5
    assert export.rejected == []


@pytest.mark.parametrize("expected", TRUTH["submissions"], ids=lambda item: item["ref"])
def test_sample_export_record_matches_the_truth(expected: dict[str, Any]) -> None:
    export = read_submissions(SAMPLE_XLSX.read_bytes(), SAMPLE_XLSX.name)
    record = next(record for record in export.records if record.ref == expected["ref"])

    assert record.title == expected["title"]
    assert record.applicant == expected["applicant"]
    assert record.uscc == expected["uscc"]
    assert record.uscc_valid is expected["uscc_valid"]
    assert record.route == expected["route"]
    assert record.recommender == expected["recommender_field"]
    assert record.email == expected["email"]
    assert record.submitted_at == datetime.fromisoformat(expected["submitted_at"])
    assert record.submitted_at is not None and record.submitted_at.tzinfo is not None


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gbk"])
def test_the_sample_as_csv_reads_exactly_like_the_xlsx(encoding: str) -> None:
    from_xlsx = read_submissions(SAMPLE_XLSX.read_bytes(), SAMPLE_XLSX.name)

    from_csv = read_submissions(csv_bytes(sample_rows(), encoding), "submissions.csv")

    assert from_csv.records == from_xlsx.records
    assert from_csv.rejected == []


def test_gbk_only_characters_survive_a_gbk_csv() -> None:
    rows = [
        HEADER,
        with_cell(with_cell(GOOD_ROW, "案例名称", "镕喆堃昇智能平台"), "联系人", "王喆"),
    ]

    export = read_submissions(csv_bytes(rows, "gbk"), "export.csv")

    assert export.records[0].title == "镕喆堃昇智能平台"
    assert export.records[0].contact == "王喆"


def test_shuffled_columns_with_synonym_headers_read() -> None:
    synonyms = {"申报编号": "案例编号", "案例名称": "项目名称", "申报单位": "单位名称",
                "统一社会信用代码": "信用代码", "手机": "手机号码", "电子邮箱": "邮箱"}  # fmt: skip
    order = [12, 3, 0, 6, 2, 1, 11, 10, 9, 8, 7, 5, 4]
    header = [synonyms.get(HEADER[index], HEADER[index]) for index in order]
    row = [GOOD_ROW[index] for index in order]

    export = read_submissions(csv_bytes([header, row], "utf-8"), "shuffled.csv")

    record = export.records[0]
    assert (record.ref, record.title, record.applicant) == (
        "KJCX2025-0101",
        "5G专网赋能智慧矿山",
        "某某科技有限公司",
    )
    assert record.mobile == "13800000000"
    assert record.email == "zhangsan@example.com"
    assert record.smart_enterprise is True


def test_title_row_above_the_header_is_skipped() -> None:
    rows = [["2025信息通信行业科技创新案例申报列表"], [], HEADER, GOOD_ROW]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert [record.row_number for record in export.records] == [4]


def test_column_override_names_a_header_the_synonyms_do_not_know() -> None:
    rows = [with_cell(HEADER, "提交时间", "申报提交日期"), GOOD_ROW]

    export = read_submissions(
        csv_bytes(rows, "utf-8"), "export.csv", column_overrides={"submitted_at": "申报提交日期"}
    )

    assert export.records[0].submitted_at == datetime.fromisoformat("2025-07-01T09:30:00+08:00")


def test_column_override_for_an_unknown_field_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown fields"):
        read_submissions(
            csv_bytes([HEADER, GOOD_ROW], "utf-8"), "export.csv", column_overrides={"foo": "x"}
        )


def test_bad_uscc_keeps_the_record_with_a_warning_naming_the_row() -> None:
    rows = [HEADER, with_cell(GOOD_ROW, "统一社会信用代码", "91320400562819480K")]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert export.records[0].uscc_valid is False
    assert export.records[0].uscc == "91320400562819480K"
    assert [problem.code for problem in export.problems] == ["uscc_invalid"]
    assert export.problems[0].params["row"] == 2
    assert "第2行" in export.problems[0].staff_text


def test_full_width_uscc_with_spaces_is_normalised_and_valid() -> None:
    rows = [
        HEADER,
        with_cell(GOOD_ROW, "统一社会信用代码", " ９１３２０４００５６２８１９４８０Ｊ "),
    ]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert export.records[0].uscc == "91320400562819480J"
    assert export.records[0].uscc_valid is True


def test_row_without_ref_is_rejected_with_its_row_number_and_the_rest_kept() -> None:
    second = with_cell(GOOD_ROW, "申报编号", "KJCX2025-0102")
    rows = [HEADER, GOOD_ROW, with_cell(GOOD_ROW, "申报编号", ""), second]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert [record.ref for record in export.records] == ["KJCX2025-0101", "KJCX2025-0102"]
    assert [(row.row_number, row.reason) for row in export.rejected] == [(3, "no 申报编号")]


@pytest.mark.parametrize(
    ("column", "value", "reason_part"),
    [
        ("案例名称", "", "no 案例名称"),
        ("申报方式", "线下申报", "unknown 申报方式"),
        ("申报单位", "  ", "no 申报单位"),
    ],
)
def test_row_with_a_missing_or_unknown_value_is_rejected(
    column: str, value: str, reason_part: str
) -> None:
    rows = [HEADER, with_cell(GOOD_ROW, column, value)]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert export.records == []
    assert export.rejected[0].row_number == 2
    assert reason_part in export.rejected[0].reason


def test_duplicate_ref_keeps_the_first_row_and_rejects_the_second() -> None:
    rows = [HEADER, GOOD_ROW, with_cell(GOOD_ROW, "案例名称", "另一个案例")]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert [record.title for record in export.records] == ["5G专网赋能智慧矿山"]
    assert export.rejected[0].row_number == 3
    assert "duplicate 申报编号 KJCX2025-0101 (first on row 2)" in export.rejected[0].reason


def test_naive_times_are_read_in_the_given_timezone_and_offsets_are_kept() -> None:
    rows = [
        HEADER,
        GOOD_ROW,
        with_cell(with_cell(GOOD_ROW, "申报编号", "B"), "提交时间", "2025-07-01T01:30:00+00:00"),
    ]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv", timezone="Europe/Paris")

    assert export.records[0].submitted_at == datetime.fromisoformat("2025-07-01T09:30:00+02:00")
    assert export.records[1].submitted_at == datetime.fromisoformat("2025-07-01T09:30:00+08:00")


def test_unreadable_time_is_a_warning_not_a_rejection() -> None:
    rows = [HEADER, with_cell(GOOD_ROW, "提交时间", "昨天下午")]

    export = read_submissions(csv_bytes(rows, "utf-8"), "export.csv")

    assert export.records[0].submitted_at is None
    assert [problem.code for problem in export.problems] == ["time_unreadable"]


def test_file_without_a_header_row_is_a_parse_error_saying_what_is_missing() -> None:
    with pytest.raises(ParseError, match=r"missing .*申报编号") as raised:
        read_submissions(csv_bytes([["a", "b"], ["1", "2"]], "utf-8"), "wrong.csv")

    assert raised.value.filename == "wrong.csv"
    assert "column override" in str(raised.value)


@pytest.mark.parametrize(
    ("data", "filename", "message"),
    [
        (b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1" + b"\x00" * 100, "old.xls", "save it as .xlsx"),
        (b"PK\x03\x04 not really a zip", "broken.xlsx", "download the export again"),
        (b"not a zip", "renamed.xlsx", "not a zip package"),
        (bytes(range(256)) * 4, "binary.csv", "neither an .xlsx nor a text CSV"),
    ],
    ids=["xls", "broken-zip", "renamed", "binary"],
)
def test_unreadable_files_raise_a_parse_error_saying_what_to_do(
    data: bytes, filename: str, message: str
) -> None:
    with pytest.raises(ParseError, match=message):
        read_submissions(data, filename)
