"""Read a staff results sheet (.xlsx or .csv) into a `DecisionFile`.

Columns: 申报编号, 结果 (入选 / 未入选), 给申报单位的说明 (also 备注 / 说明: the note the
result mail carries to the applicant) and 内部备注 (staff's own remark, never in any
mail). A blank 结果 is no decision yet: the row is counted, not rejected. A blank note or
remark keeps what is stored; a cell saying 清空 clears it (in 结果: the recorded result).
"""

from __future__ import annotations

import re
from typing import Final

from parsers.model import CLEARED, Decision, DecisionFile, Problem, RejectedRow, Result
from parsers.submissions import SUBMISSION_HEADERS
from parsers.tabular import read_table

RESULT_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "ref": SUBMISSION_HEADERS["ref"],
    "result": ("结果", "评审结果", "入选结果"),
    "note": ("给申报单位的说明", "给申报单位说明", "备注", "说明"),
    "remark": ("内部备注", "内部说明", "工作人员备注"),
}
"""Our field name -> the header texts a results file may use for it (first is canonical)."""

RESULTS: Final[dict[str, Result]] = {"入选": "selected", "未入选": "not_selected"}

CLEAR_WORD: Final = "清空"
"""A cell holding only this word clears what is stored (a blank cell keeps it)."""

_SPACES = re.compile(r"\s+")


def read_results(data: bytes, filename: str) -> DecisionFile:
    """Read decisions; rows without 申报编号, with an unknown 结果 or a repeated ref are rejected,
    rows with a blank 结果 are counted in `blank_rows`.

    Raises `ParseError` when the file is not a readable .xlsx/.csv or has no header row.
    """
    table = read_table(data, filename, RESULT_HEADERS, required=("ref", "result"))
    decisions: list[Decision] = []
    rejected: list[RejectedRow] = []
    blank_rows: list[int] = []
    first_row_of_ref: dict[str, int] = {}
    for record in table.records:
        ref = record.text("ref")
        row = record.row_number
        result = _SPACES.sub("", record.text("result"))
        if not ref:
            rejected.append(
                RejectedRow(row, "no 申报编号", Problem("import_row_no_ref", {"row": row}))
            )
        elif ref in first_row_of_ref:
            first = first_row_of_ref[ref]
            rejected.append(
                RejectedRow(
                    row,
                    f"duplicate 申报编号 {ref} (first on row {first})",
                    Problem("import_row_duplicate_ref", {"row": row, "ref": ref, "first": first}),
                )
            )
        elif not result:
            blank_rows.append(row)
        elif result not in RESULTS and result != CLEAR_WORD:
            value = record.text("result")
            rejected.append(
                RejectedRow(
                    row,
                    f"{ref}: unknown 结果 {value!r} (expected 入选 or 未入选)",
                    Problem("result_unknown", {"row": row, "ref": ref, "value": value}),
                )
            )
        else:
            first_row_of_ref[ref] = row
            decisions.append(
                Decision(
                    row_number=row,
                    ref=ref,
                    result=RESULTS.get(result),
                    note=_kept_or_cleared(record.text("note")),
                    remark=_kept_or_cleared(record.text("remark")),
                )
            )
    return DecisionFile(decisions=decisions, rejected=rejected, blank_rows=blank_rows)


def _kept_or_cleared(text: str) -> str | None:
    """None for a blank cell (keep what is stored), `CLEARED` for 清空, else the text."""
    if not text:
        return None
    if _SPACES.sub("", text) == CLEAR_WORD:
        return CLEARED
    return text
