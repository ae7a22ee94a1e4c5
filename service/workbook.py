"""The register as one .xlsx workbook staff work in and print: Chinese throughout.

Every sheet: a bold frozen header row with a filter, times as real Excel date-times in the
campaign's time zone (sortable, filterable) with a Chinese number format, long columns
wrapped, and set up to print (landscape, fit to width, the header row repeated on each
page, the campaign's name and page numbers in the header and footer).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from notifications.contexts import (
    ATTACHMENT_KIND_LABELS,
    MATCH_LABELS,
    MESSAGE_KIND_LABELS,
    MESSAGE_STATUS_LABELS,
    OUTBOX_KIND_LABELS,
    OUTBOX_STATUS_LABELS,
    RESULT_LABELS,
    SEAL_LABELS,
    SUBMISSION_STATUS_LABELS,
    delivery_failure_words,
)
from service.seals import STAFF_SEAL_LABELS
from service.todo import candidate_label, todo_items, todo_url

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
MAX_WIDTH = 60
WRAP_WIDTH = 40
"""Columns whose content is wider than this wrap (and are as wide as this)."""
DATETIME_FORMAT = 'yyyy"年"m"月"d"日" hh:mm'
PAPER_A4 = "9"


@dataclass(frozen=True)
class Column:
    """One column: its Chinese title, how to read it from a row, and whether it is a time."""

    title: str
    read: Callable[[dict[str, Any]], Any]
    time: bool = False


def seal_text(pdf: dict[str, Any] | None) -> str:
    """A recommendation's seal in words: staff's confirmation (and who) when there is one."""
    if pdf is None:
        return ""
    confirmed = pdf.get("seal_confirmed")
    if confirmed and pdf.get("seal") in STAFF_SEAL_LABELS:
        return f"{STAFF_SEAL_LABELS[pdf['seal']]}（{confirmed['by']}确认）"
    return _cn(SEAL_LABELS)(pdf.get("seal"))


def _cn(table: dict[str, str]) -> Callable[[Any], str]:
    return lambda value: table.get(str(value), "" if value is None else str(value))


def agreement_words(agreement: dict[str, Any] | None) -> str:
    """Whether the sealed PDF lists the Word form's cases, in words: 一致, or what differs;
    empty when it could not be checked."""
    if not agreement:
        return ""
    missing = [f"「{row['title']}」" for row in agreement.get("missing") or []]
    extra = [f"「{title}」" for title in agreement.get("extra") or []]
    if not missing and not extra:
        return "一致"
    parts = [
        f"PDF缺少{'、'.join(missing)}" if missing else "",
        f"PDF多出{'、'.join(extra)}" if extra else "",
    ]
    return "不一致：" + "；".join(part for part in parts if part)


def _time(value: str | None) -> datetime | None:
    """An ISO time of the register (already in the campaign's zone) as Excel's local time."""
    if not value:
        return None
    return datetime.fromisoformat(value).replace(tzinfo=None)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return "；".join(str(item) for item in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def _display_width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _sheet(
    workbook: Workbook,
    campaign: str,
    title: str,
    columns: Sequence[Column],
    rows: Sequence[dict[str, Any]],
) -> None:
    """One sheet, streamed (write-only): header, filter, widths from content, print setup."""
    sheet = workbook.create_sheet(title)
    values = [
        [_time(column.read(row)) if column.time else _plain(column.read(row)) for column in columns]
        for row in rows
    ]
    wrapped: set[int] = set()
    for index, column in enumerate(columns):
        if column.time:
            width = 20
        else:
            sample = [column.title, *(str(line[index] or "") for line in values[:500])]
            width = max(_display_width(text) for text in sample) + 2
            if width > WRAP_WIDTH:
                wrapped.add(index)
                width = WRAP_WIDTH
        sheet.column_dimensions[get_column_letter(index + 1)].width = min(width, MAX_WIDTH)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"
    _print_setup(sheet, campaign, title)
    header_cells = []
    for column in columns:
        cell = WriteOnlyCell(sheet, value=column.title)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center", wrap_text=True)
        header_cells.append(cell)
    sheet.append(header_cells)
    wrap = Alignment(wrap_text=True, vertical="top")
    top = Alignment(vertical="top")
    for line in values:
        cells = []
        for index, (column, value) in enumerate(zip(columns, line, strict=True)):
            cell = WriteOnlyCell(sheet, value=value)
            if column.time and value is not None:
                cell.number_format = DATETIME_FORMAT
            cell.alignment = wrap if index in wrapped else top
            cells.append(cell)
        sheet.append(cells)


def _print_setup(sheet: Any, campaign: str, title: str) -> None:
    """Landscape A4, one page wide, the header row on every page, name and page numbers.

    `sheet` is a write-only worksheet: its print attributes are set up at run time, which
    openpyxl's type stubs do not describe.
    """
    sheet.page_setup.orientation = "landscape"
    sheet.page_setup.paperSize = PAPER_A4
    sheet.page_setup.fitToWidth = 1
    sheet.page_setup.fitToHeight = 0
    sheet.sheet_properties.pageSetUpPr.fitToPage = True
    sheet.print_title_rows = "1:1"
    sheet.print_options.gridLines = True
    sheet.oddHeader.center.text = f"{campaign}　{title}"
    sheet.oddFooter.center.text = "第 &P 页，共 &N 页"
    sheet.evenHeader.center.text = f"{campaign}　{title}"
    sheet.evenFooter.center.text = "第 &P 页，共 &N 页"


def _submission_note(row: dict[str, Any]) -> str:
    """备注: the note to the applicant on the decision, and what is odd about the record
    (staff's internal remark has its own column, 内部备注)."""
    notes = []
    if row.get("result_note"):
        notes.append(str(row["result_note"]))
    if row.get("withdrawn"):
        notes.append("已从在线系统撤回")
    if not row.get("uscc"):
        notes.append("未填统一社会信用代码")
    elif not row.get("uscc_valid"):
        notes.append("统一社会信用代码校验不通过，请核实")
    return "；".join(notes)


def register_workbook(register: dict[str, Any], *, base_url: str | None = None) -> bytes:
    """Sheets 推荐单位, 案例, 在线申报, 待处理, 来信 and 发出邮件 as .xlsx bytes."""
    workbook = Workbook(write_only=True)
    campaign = str(register["campaign"]["name"])
    _sheet(
        workbook,
        campaign,
        "推荐单位",
        [
            Column("编号", lambda r: r["id"]),
            Column("推荐单位", lambda r: r["unit"]),
            Column("版本", lambda r: r["version"]),
            Column("当前版本", lambda r: r["current"]),
            Column("材料齐全", lambda r: r["complete"]),
            Column("逾期", lambda r: r["late"]),
            Column("联系人", lambda r: r["contact"]["name"]),
            Column("职务", lambda r: r["contact"]["title"]),
            Column("办公电话", lambda r: r["contact"]["phone"]),
            Column("手机", lambda r: r["contact"]["mobile"]),
            Column("电子邮箱", lambda r: r["contact"]["email"]),
            Column("Word推荐表", lambda r: (r["word"] or {}).get("filename")),
            Column("盖章PDF", lambda r: (r["pdf"] or {}).get("filename")),
            Column("公章检查", lambda r: seal_text(r["pdf"])),
            Column(
                "PDF与Word是否一致", lambda r: agreement_words((r["pdf"] or {}).get("agreement"))
            ),
            Column("案例数", lambda r: len(r["cases"])),
            Column("发件人", lambda r: r["sender"]),
        ],
        register["recommendations"],
    )
    titles = {row["ref"]: row["title"] for row in register["submissions"]}
    cases = [
        {**case, "unit": row["unit"], "version": row["version"], "current": row["current"]}
        for row in register["recommendations"]
        for case in row["cases"]
    ]
    _sheet(
        workbook,
        campaign,
        "案例",
        [
            Column("推荐单位", lambda r: r["unit"]),
            Column("版本", lambda r: r["version"]),
            Column("当前版本", lambda r: r["current"]),
            Column("序号", lambda r: r["row"]),
            Column("案例名称", lambda r: r["title"]),
            Column("申报单位", lambda r: r["applicant"]),
            Column("案例类别", lambda r: r["category"]),
            Column("表上申报编号", lambda r: r["ref_on_form"]),
            Column("对应申报编号", lambda r: r["submission_ref"]),
            Column("在线申报名称", lambda r: titles.get(r["submission_ref"] or "")),
            Column("匹配方式", lambda r: _cn(MATCH_LABELS)(r["match"])),
            Column("得分", lambda r: r["score"]),
            Column(
                "候选",
                lambda r: "、".join(candidate_label(ref, score) for ref, score in r["candidates"]),
            ),
            Column("提示", lambda r: [entry["text"] for entry in r["warnings"]]),
        ],
        cases,
    )
    _sheet(
        workbook,
        campaign,
        "在线申报",
        [
            Column("申报编号", lambda r: r["ref"]),
            Column("案例名称", lambda r: r["title"]),
            Column("申报单位", lambda r: r["applicant"]),
            Column("统一社会信用代码", lambda r: r["uscc"]),
            Column("代码有效", lambda r: r["uscc_valid"]),
            Column("案例类别", lambda r: r["category"]),
            Column("所属领域", lambda r: r["field"]),
            Column("申报方式", lambda r: "推荐申报" if r["route"] == "recommended" else "自愿申报"),
            Column("推荐单位", lambda r: r["recommender"]),
            Column("联系人", lambda r: r["contact"]),
            Column("手机", lambda r: r["mobile"]),
            Column("电子邮箱", lambda r: r["email"]),
            Column("提交时间", lambda r: r["submitted_at"], time=True),
            Column("状态", lambda r: _cn(SUBMISSION_STATUS_LABELS)(r["status"])),
            Column("推荐表编号", lambda r: r["recommendation_id"]),
            Column("结果", lambda r: _cn(RESULT_LABELS)(r["result"])),
            Column("已撤回", lambda r: r["withdrawn"]),
            Column("备注", _submission_note),
            Column("内部备注", lambda r: r.get("result_remark") or ""),
        ],
        register["submissions"],
    )
    _sheet(
        workbook,
        campaign,
        "待处理",
        [
            Column("类别", lambda r: r["category"]),
            Column("事项与处理办法", lambda r: r["summary"]),
            Column("涉及", lambda r: r["where"]),
            Column("工作台链接", lambda r: r["url"] or "请在工作台的“待处理”页面处理"),
        ],
        [
            {
                "category": item.label,
                "summary": item.summary,
                "where": item.where,
                "url": todo_url(item, base_url),
            }
            for item in todo_items(register)
        ],
    )
    _sheet(
        workbook,
        campaign,
        "来信",
        [
            Column("收到时间", lambda r: r["received_at"], time=True),
            Column("发件人", lambda r: r["sender"]),
            Column("主题", lambda r: r["subject"]),
            Column("类型", lambda r: _cn(MESSAGE_KIND_LABELS)(r["kind"])),
            Column("状态", lambda r: _cn(MESSAGE_STATUS_LABELS)(r["status"])),
            Column("逾期", lambda r: r["late"]),
            Column(
                "附件",
                lambda r: [
                    f"{item['filename']}（{ATTACHMENT_KIND_LABELS.get(item['kind'], '其他材料')}）"
                    for item in r["attachments"]
                ],
            ),
            Column("问题与处理办法", lambda r: [entry["text"] for entry in r["problems"]]),
            Column("邮件标识", lambda r: r["message_id"]),
        ],
        register["messages"],
    )
    _sheet(
        workbook,
        campaign,
        "发出邮件",
        [
            Column("类型", lambda r: _cn(OUTBOX_KIND_LABELS)(r["kind"])),
            Column("收件人", lambda r: r["to"]),
            Column("主题", lambda r: r["subject"]),
            Column("状态", lambda r: _cn(OUTBOX_STATUS_LABELS)(r["status"])),
            Column("尝试次数", lambda r: r["attempts"]),
            Column("申报编号", lambda r: r["submission_ref"]),
            Column("生成时间", lambda r: r.get("created_at"), time=True),
            Column("发出时间", lambda r: r.get("sent_at"), time=True),
            Column(
                "未送达原因",
                lambda r: (
                    delivery_failure_words(r["last_error"]) if r["status"] == "failed" else ""
                ),
            ),
        ],
        register["outbox"],
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
