"""Read a staff decisions file (.xlsx or .csv: 申报编号, 结果, 备注) into a `DecisionFile`."""

from __future__ import annotations

import re
from typing import Final

from parsers.model import Decision, DecisionFile, RejectedRow, Result
from parsers.submissions import SUBMISSION_HEADERS
from parsers.tabular import read_table

RESULT_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "ref": SUBMISSION_HEADERS["ref"],
    "result": ("结果", "评审结果", "入选结果"),
    "note": ("备注", "说明"),
}
"""Our field name -> the header texts a results file may use for it."""

RESULTS: Final[dict[str, Result]] = {"入选": "selected", "未入选": "not_selected"}

_SPACES = re.compile(r"\s+")


def read_results(data: bytes, filename: str) -> DecisionFile:
    """Read decisions; rows without 申报编号, with an unknown 结果 or a repeated ref are rejected.

    Raises `ParseError` when the file is not a readable .xlsx/.csv or has no header row.
    """
    table = read_table(data, filename, RESULT_HEADERS, required=("ref", "result"))
    decisions: list[Decision] = []
    rejected: list[RejectedRow] = []
    first_row_of_ref: dict[str, int] = {}
    for record in table.records:
        ref = record.text("ref")
        result = _SPACES.sub("", record.text("result"))
        if not ref:
            rejected.append(RejectedRow(record.row_number, "no 申报编号"))
        elif ref in first_row_of_ref:
            rejected.append(
                RejectedRow(
                    record.row_number,
                    f"duplicate 申报编号 {ref} (first on row {first_row_of_ref[ref]})",
                )
            )
        elif result not in RESULTS:
            rejected.append(
                RejectedRow(
                    record.row_number,
                    f"{ref}: unknown 结果 {record.text('result')!r} (expected 入选 or 未入选)",
                )
            )
        else:
            first_row_of_ref[ref] = record.row_number
            decisions.append(
                Decision(
                    row_number=record.row_number,
                    ref=ref,
                    result=RESULTS[result],
                    note=record.text("note") or None,
                )
            )
    return DecisionFile(decisions=decisions, rejected=rejected)
