"""The register as one .xlsx workbook staff can work in: Chinese headers, frozen, filtered."""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter

from notifications.contexts import (
    ATTACHMENT_KIND_LABELS,
    MATCH_LABELS,
    MESSAGE_KIND_LABELS,
    RESULT_LABELS,
    SEAL_LABELS,
    SUBMISSION_STATUS_LABELS,
)
from service.todo import todo_items, todo_url

HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
MAX_WIDTH = 60

Column = tuple[str, Callable[[dict[str, Any]], Any]]

STATUS_CN = {
    **SUBMISSION_STATUS_LABELS,
    "processed": "已处理",
    "needs_attention": "需人工处理",
    "pending": "待发送",
    "unconfirmed": "未确认送达（将重发一次）",
    "sent": "已发送",
    "failed": "发送失败",
    "suppressed": "不发送",
}
MATCH_CN = MATCH_LABELS
OUTBOX_KIND_CN = {
    "unit_receipt": "推荐单位回执",
    "applicant_receipt": "申报单位回执",
    "result": "结果通知",
    "digest": "每日汇总",
}


def _cn(table: dict[str, str]) -> Callable[[Any], str]:
    return lambda value: table.get(str(value), "" if value is None else str(value))


def _sheet(
    workbook: Workbook, title: str, columns: Sequence[Column], rows: Sequence[dict[str, Any]]
) -> None:
    """One sheet, streamed (write-only): bold frozen header, a filter, widths from content."""
    sheet = workbook.create_sheet(title)
    values = [[_plain(read(row)) for _, read in columns] for row in rows]
    for index, (header, _) in enumerate(columns, start=1):
        sample = [header, *(str(line[index - 1] or "") for line in values[:500])]
        width = max(_display_width(text) for text in sample) + 2
        sheet.column_dimensions[get_column_letter(index)].width = min(width, MAX_WIDTH)
    sheet.freeze_panes = "A2"
    sheet.auto_filter.ref = f"A1:{get_column_letter(len(columns))}{len(rows) + 1}"
    header_cells = []
    for header, _ in columns:
        cell = WriteOnlyCell(sheet, value=header)
        cell.font = Font(bold=True)
        cell.fill = HEADER_FILL
        cell.alignment = Alignment(vertical="center")
        header_cells.append(cell)
    sheet.append(header_cells)
    for line in values:
        sheet.append(line)


def _display_width(text: str) -> int:
    return sum(2 if ord(ch) > 0x2E80 else 1 for ch in text)


def _plain(value: Any) -> Any:
    if isinstance(value, list):
        return "；".join(str(item) for item in value)
    if isinstance(value, bool):
        return "是" if value else "否"
    return value


def register_workbook(register: dict[str, Any], *, base_url: str | None = None) -> bytes:
    """Sheets 推荐单位, 案例, 在线申报, 待处理, 邮件 (received) and 发出邮件 as .xlsx bytes."""
    workbook = Workbook(write_only=True)
    _sheet(
        workbook,
        "推荐单位",
        [
            ("编号", lambda r: r["id"]),
            ("推荐单位", lambda r: r["unit"]),
            ("版本", lambda r: r["version"]),
            ("当前版本", lambda r: r["current"]),
            ("完整", lambda r: r["complete"]),
            ("逾期", lambda r: r["late"]),
            ("联系人", lambda r: r["contact"]["name"]),
            ("职务", lambda r: r["contact"]["title"]),
            ("办公电话", lambda r: r["contact"]["phone"]),
            ("手机", lambda r: r["contact"]["mobile"]),
            ("电子邮箱", lambda r: r["contact"]["email"]),
            ("Word推荐表", lambda r: (r["word"] or {}).get("filename")),
            ("盖章PDF", lambda r: (r["pdf"] or {}).get("filename")),
            ("公章检查", lambda r: _cn(SEAL_LABELS)((r["pdf"] or {}).get("seal"))),
            ("案例数", lambda r: len(r["cases"])),
            ("发件人", lambda r: r["sender"]),
        ],
        register["recommendations"],
    )
    cases = [
        {
            **case,
            "unit": row["unit"],
            "version": row["version"],
            "current": row["current"],
        }
        for row in register["recommendations"]
        for case in row["cases"]
    ]
    _sheet(
        workbook,
        "案例",
        [
            ("推荐单位", lambda r: r["unit"]),
            ("版本", lambda r: r["version"]),
            ("当前版本", lambda r: r["current"]),
            ("序号", lambda r: r["row"]),
            ("案例名称", lambda r: r["title"]),
            ("申报单位", lambda r: r["applicant"]),
            ("案例类别", lambda r: r["category"]),
            ("表上申报编号", lambda r: r["ref_on_form"]),
            ("匹配申报编号", lambda r: r["submission_ref"]),
            ("匹配方式", lambda r: _cn(MATCH_CN)(r["match"])),
            ("得分", lambda r: r["score"]),
            ("候选", lambda r: [f"{ref}({score})" for ref, score in r["candidates"]]),
            ("提示", lambda r: [entry["text"] for entry in r["warnings"]]),
        ],
        cases,
    )
    _sheet(
        workbook,
        "在线申报",
        [
            ("申报编号", lambda r: r["ref"]),
            ("案例名称", lambda r: r["title"]),
            ("申报单位", lambda r: r["applicant"]),
            ("统一社会信用代码", lambda r: r["uscc"]),
            ("代码有效", lambda r: r["uscc_valid"]),
            ("案例类别", lambda r: r["category"]),
            ("所属领域", lambda r: r["field"]),
            ("申报方式", lambda r: "推荐申报" if r["route"] == "recommended" else "自愿申报"),
            ("推荐单位", lambda r: r["recommender"]),
            ("联系人", lambda r: r["contact"]),
            ("手机", lambda r: r["mobile"]),
            ("电子邮箱", lambda r: r["email"]),
            ("提交时间", lambda r: r["submitted_at"]),
            ("状态", lambda r: _cn(STATUS_CN)(r["status"])),
            ("推荐表编号", lambda r: r["recommendation_id"]),
            ("结果", lambda r: _cn(RESULT_LABELS)(r["result"])),
            ("已撤回", lambda r: r["withdrawn"]),
        ],
        register["submissions"],
    )
    _sheet(
        workbook,
        "待处理",
        [
            ("类别", lambda r: r["category"]),
            ("事项与处理办法", lambda r: r["summary"]),
            ("涉及", lambda r: r["where"]),
            ("工作台链接", lambda r: r["url"] or "请在工作台的“待处理”页面处理"),
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
        "邮件",
        [
            ("收到时间", lambda r: r["received_at"]),
            ("发件人", lambda r: r["sender"]),
            ("主题", lambda r: r["subject"]),
            ("类型", lambda r: _cn(MESSAGE_KIND_LABELS)(r["kind"])),
            ("状态", lambda r: _cn(STATUS_CN)(r["status"])),
            ("逾期", lambda r: r["late"]),
            (
                "附件",
                lambda r: [
                    f"{item['filename']}({ATTACHMENT_KIND_LABELS.get(item['kind'], item['kind'])})"
                    for item in r["attachments"]
                ],
            ),
            ("问题", lambda r: [entry["text"] for entry in r["problems"]]),
            ("Message-ID", lambda r: r["message_id"]),
        ],
        register["messages"],
    )
    _sheet(
        workbook,
        "发出邮件",
        [
            ("类型", lambda r: _cn(OUTBOX_KIND_CN)(r["kind"])),
            ("收件人", lambda r: r["to"]),
            ("主题", lambda r: r["subject"]),
            ("状态", lambda r: _cn(STATUS_CN)(r["status"])),
            ("尝试次数", lambda r: r["attempts"]),
            ("申报编号", lambda r: r["submission_ref"]),
            ("原因", lambda r: r["last_error"]),
        ],
        register["outbox"],
    )
    buffer = io.BytesIO()
    workbook.save(buffer)
    return buffer.getvalue()
