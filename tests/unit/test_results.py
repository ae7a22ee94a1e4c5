"""Reading staff decisions: 申报编号, 结果 (入选 / 未入选), 备注."""

from __future__ import annotations

import csv
import io

import openpyxl
import pytest

from config.errors import ParseError
from parsers.results import read_results


def csv_bytes(rows: list[list[str]], encoding: str = "utf-8") -> bytes:
    buffer = io.StringIO(newline="")
    csv.writer(buffer).writerows(rows)
    return buffer.getvalue().encode(encoding)


def xlsx_bytes(rows: list[list[str]]) -> bytes:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()


ROWS = [
    ["申报编号", "结果", "备注"],
    ["KJCX2025-0001", "入选", "优秀案例"],
    ["KJCX2025-0002", "未入选", ""],
]


@pytest.mark.parametrize("build", [csv_bytes, xlsx_bytes], ids=["csv", "xlsx"])
def test_selected_and_not_selected_are_read_with_their_notes(build) -> None:
    decisions = read_results(build(ROWS), "results")

    assert [(d.ref, d.result, d.note) for d in decisions.decisions] == [
        ("KJCX2025-0001", "selected", "优秀案例"),
        ("KJCX2025-0002", "not_selected", None),
    ]
    assert decisions.rejected == []


def test_gbk_csv_with_columns_in_another_order_reads() -> None:
    rows = [["备注", "结果", "申报编号"], ["镕喆", "入选", "KJCX2025-0003"]]

    decisions = read_results(csv_bytes(rows, "gbk"), "results.csv")

    assert decisions.decisions[0].ref == "KJCX2025-0003"
    assert decisions.decisions[0].note == "镕喆"


def test_bad_rows_are_rejected_with_reasons_and_the_rest_kept() -> None:
    rows = [
        *ROWS,
        ["", "入选", ""],
        ["KJCX2025-0004", "待定", ""],
        ["KJCX2025-0001", "未入选", ""],
    ]

    decisions = read_results(csv_bytes(rows), "results.csv")

    assert len(decisions.decisions) == 2
    assert [(row.row_number, row.reason) for row in decisions.rejected] == [
        (4, "no 申报编号"),
        (5, "KJCX2025-0004: unknown 结果 '待定' (expected 入选 or 未入选)"),
        (6, "duplicate 申报编号 KJCX2025-0001 (first on row 2)"),
    ]


def test_file_without_a_result_column_is_a_parse_error() -> None:
    with pytest.raises(ParseError, match="结果"):
        read_results(csv_bytes([["申报编号", "备注"], ["KJCX2025-0001", ""]]), "results.csv")
