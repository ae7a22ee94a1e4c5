"""Read the online system's export of submissions (.xlsx or .csv) into `SubmissionRecord`s.

A bad row is rejected with its row number and the rest are kept; a bad USCC is only a
warning. A status column (申报状态) that says 撤回 / 撤销 marks the row withdrawn: the only
way an export says so (a row missing from a file says nothing). Naive submission times
are read in the campaign's time zone.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from config.errors import ConfigError
from parsers.model import (
    Problem,
    RejectedRow,
    Route,
    SubmissionExport,
    SubmissionRecord,
)
from parsers.normalize import normalize_uscc, uscc_is_valid
from parsers.tabular import CellValue, TableRecord, cell_text, read_table

SUBMISSION_HEADERS: Final[dict[str, tuple[str, ...]]] = {
    "ref": ("申报编号", "编号", "案例编号"),
    "title": ("案例名称", "项目名称"),
    "applicant": ("申报单位", "单位名称", "申报单位名称"),
    "uscc": ("统一社会信用代码", "信用代码", "社会信用代码"),
    "category": ("案例类别",),
    "field": ("所属领域",),
    "route": ("申报方式",),
    "recommender": ("推荐单位",),
    "contact": ("联系人",),
    "mobile": ("手机", "手机号码", "手机号"),
    "email": ("电子邮箱", "邮箱"),
    "submitted_at": ("提交时间",),
    "smart_enterprise": ("参加智慧企业案例征集",),
    "status": ("申报状态", "状态", "审核状态"),
}
"""Our field name -> the header texts the export may use for it (first is the canonical one)."""

REQUIRED_COLUMNS: Final = ("ref", "title", "applicant", "route")

ROUTES: Final[dict[str, Route]] = {
    "推荐申报": "recommended",
    "推荐": "recommended",
    "自愿申报": "voluntary",
    "自愿": "voluntary",
}
YES_NO: Final[dict[str, bool]] = {
    "是": True,
    "否": False,
    "y": True,
    "n": False,
    "yes": True,
    "no": False,
    "true": True,
    "false": False,
    "1": True,
    "0": False,
}

WITHDRAWN_WORDS: Final = ("撤回", "撤销", "撤消", "withdrawn")
"""A status cell containing one of these says the applicant withdrew the submission."""

_TIME_FORMATS: Final = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M",
    "%Y/%m/%d %H:%M:%S",
    "%Y/%m/%d %H:%M",
    "%Y-%m-%d",
    "%Y/%m/%d",
    "%Y年%m月%d日 %H:%M:%S",
    "%Y年%m月%d日 %H:%M",
    "%Y年%m月%d日",
)
_SPACES = re.compile(r"\s+")


def read_submissions(
    data: bytes,
    filename: str,
    *,
    column_overrides: Mapping[str, str] | None = None,
    timezone: str = "Asia/Shanghai",
) -> SubmissionExport:
    """Read an export; raise `ParseError` when the file or its header row cannot be read.

    `column_overrides` maps a field name (a key of `SUBMISSION_HEADERS`) to the header text
    this file uses; `timezone` is where naive submission times were written.
    """
    try:
        zone = ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ConfigError(f"unknown time zone {timezone!r}", key="timezone") from exc
    table = read_table(
        data,
        filename,
        SUBMISSION_HEADERS,
        required=REQUIRED_COLUMNS,
        column_overrides=column_overrides,
    )
    export = SubmissionExport(records=[], rejected=[], problems=list(table.problems))
    first_row_of_ref: dict[str, int] = {}
    for record in table.records:
        rejection = _rejection(record, first_row_of_ref)
        if rejection is not None:
            export.rejected.append(rejection)
            continue
        first_row_of_ref[record.text("ref")] = record.row_number
        export.records.append(_submission(record, zone, export.problems))
    return export


def _rejection(record: TableRecord, first_row_of_ref: Mapping[str, int]) -> RejectedRow | None:
    """Why a row cannot be accepted (English for logs, a problem for staff), or None."""
    ref, row = record.text("ref"), record.row_number
    if not ref:
        return RejectedRow(row, "no 申报编号", Problem("import_row_no_ref", {"row": row}))
    if ref in first_row_of_ref:
        first = first_row_of_ref[ref]
        return RejectedRow(
            row,
            f"duplicate 申报编号 {ref} (first on row {first})",
            Problem("import_row_duplicate_ref", {"row": row, "ref": ref, "first": first}),
        )
    for name in ("title", "applicant"):
        if not record.text(name):
            label = SUBMISSION_HEADERS[name][0]
            return RejectedRow(
                row,
                f"{ref}: no {label}",
                Problem("import_row_missing", {"row": row, "ref": ref, "column": label}),
            )
    route = record.text("route")
    if _SPACES.sub("", route) not in ROUTES:
        return RejectedRow(
            row,
            f"{ref}: unknown 申报方式 {route!r} (expected 推荐申报 or 自愿申报)",
            Problem("import_row_unknown_route", {"row": row, "ref": ref, "value": route}),
        )
    return None


def _submission(record: TableRecord, zone: ZoneInfo, problems: list[Problem]) -> SubmissionRecord:
    """Build the record of an accepted row, adding warnings for a bad USCC, time or yes/no."""
    row, ref = record.row_number, record.text("ref")
    uscc = normalize_uscc(record.text("uscc")) or None
    uscc_valid = uscc is not None and uscc_is_valid(uscc)
    if uscc is None:
        problems.append(Problem("uscc_missing", {"row": row, "ref": ref}))
    elif not uscc_valid:
        problems.append(Problem("uscc_invalid", {"row": row, "ref": ref, "uscc": uscc}))
    return SubmissionRecord(
        row_number=row,
        ref=ref,
        title=record.text("title"),
        applicant=record.text("applicant"),
        uscc=uscc,
        uscc_valid=uscc_valid,
        category=record.text("category") or None,
        field=record.text("field") or None,
        route=ROUTES[_SPACES.sub("", record.text("route"))],
        recommender=record.text("recommender") or None,
        contact=record.text("contact") or None,
        mobile=record.text("mobile") or None,
        email=record.text("email") or None,
        submitted_at=_submitted_at(record.values.get("submitted_at", ""), zone, row, problems),
        smart_enterprise=_yes_no(record.text("smart_enterprise"), row, problems),
        withdrawn=_withdrawn(record.text("status")),
    )


def _withdrawn(status: str) -> bool | None:
    """What a status cell says about withdrawal; None without a status."""
    if not status:
        return None
    return any(word in status.casefold() for word in WITHDRAWN_WORDS)


def parse_time(value: CellValue, zone: ZoneInfo) -> datetime | None:
    """A cell as an aware date-time (naive values are in `zone`), or None when unreadable."""
    if isinstance(value, datetime):
        moment = value
    else:
        text = cell_text(value)
        moment_or_none = _parse_time_text(text)
        if moment_or_none is None:
            return None
        moment = moment_or_none
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=zone)


def _parse_time_text(text: str) -> datetime | None:
    """Parse ISO 8601 or the usual Chinese spreadsheet formats."""
    if not text:
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        pass
    for time_format in _TIME_FORMATS:
        try:
            return datetime.strptime(text, time_format)
        except ValueError:
            continue
    return None


def _submitted_at(
    value: CellValue, zone: ZoneInfo, row: int, problems: list[Problem]
) -> datetime | None:
    moment = parse_time(value, zone)
    if moment is None and cell_text(value):
        problems.append(Problem("time_unreadable", {"row": row, "value": cell_text(value)}))
    return moment


def _yes_no(text: str, row: int, problems: list[Problem]) -> bool | None:
    if not text:
        return None
    answer = YES_NO.get(text.casefold())
    if answer is None:
        problems.append(Problem("yes_no_unreadable", {"row": row, "value": text}))
    return answer
