"""The queue of what needs a person, built from the register: one item per thing to do.

Each item says in Chinese what it is and what to do (`summary`), what it concerns
(`where`) and where in the workspace to do it (`link`). Ids are stable across reloads and
`intake reprocess`: a kind plus natural keys (unit, version, row, file hash, outbox row).
Status, the digest, the workbook and the workspace all read this one list.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from parsers.model import Problem
from parsers.problems import render, spec_of

KINDS = (
    "mailbox_unreadable",
    "needs_attention",
    "needs_reply",
    "late",
    "unplaced_pdf",
    "missing_word",
    "missing_pdf",
    "seal_unconfirmed",
    "pdf_mismatch",
    "ambiguous_row",
    "no_submission",
    "failed_mail",
)

KIND_LABELS: dict[str, str] = {
    "mailbox_unreadable": "邮箱无法读取",
    "needs_attention": "来信待处理",
    "needs_reply": "来信待回复",
    "late": "逾期送达",
    "unplaced_pdf": "盖章PDF待对应",
    "missing_word": "缺Word推荐表",
    "missing_pdf": "缺盖章PDF",
    "seal_unconfirmed": "公章待确认",
    "pdf_mismatch": "PDF与Word不一致",
    "ambiguous_row": "匹配待核对",
    "no_submission": "未在线申报",
    "failed_mail": "邮件发送失败",
}
"""The Chinese name of each kind, for the digest, the workbook and status."""

SEAL_WORDS = {"absent": "未检出公章", "unknown": "无法判断是否盖章"}


@dataclass(frozen=True)
class TodoItem:
    """One thing a person must do: what and what to do (`summary`), where, and its page."""

    id: str
    kind: str
    summary: str
    where: str
    link: str
    details: dict[str, Any] = field(default_factory=dict)
    actions: list[dict[str, Any]] = field(default_factory=list)

    @property
    def label(self) -> str:
        """The kind in Chinese, e.g. 匹配待核对."""
        return KIND_LABELS.get(self.kind, self.kind)


def todo_items(register: dict[str, Any]) -> list[TodoItem]:
    """Everything in the register that needs a person, most urgent kinds first."""
    items: list[TodoItem] = []
    items.extend(_mailbox_items(register))
    items.extend(_message_items(register))
    items.extend(_pdf_items(register))
    items.extend(_recommendation_items(register))
    items.extend(_mail_items(register))
    closed = {
        entry["target"]
        for entry in register.get("decisions", [])
        if entry.get("undone_at") is None and (entry["kind"], entry["action"]) in CLOSING
    }
    reminded = last_reminders(register)
    return [
        replace(
            _with_last_reminder(item, reminded.get(unit_of_target(item.id) or "")),
            actions=item_actions(item, register),
        )
        for item in items
        if item.id not in closed
    ]


REMINDABLE = ("missing_word", "missing_pdf", "no_submission", "pdf_mismatch")
"""Item kinds whose unit staff can remind (`remind`) of what is missing."""


def unit_of_target(item_id: str) -> str | None:
    """The unit key of a remindable item's id (`missing_pdf:<unit>:v2` → `<unit>`), else None."""
    kind, _, rest = item_id.partition(":")
    if kind not in REMINDABLE:
        return None
    if kind == "no_submission":
        rest = rest.rpartition(":")[0]
    return rest.rpartition(":v")[0] or None


def last_reminders(register: dict[str, Any]) -> dict[str, str]:
    """When each unit (by key) was last sent a reminder that was not undone (ISO time)."""
    last: dict[str, str] = {}
    for entry in register.get("decisions", []):
        if entry["action"] != "remind" or entry.get("undone_at") is not None:
            continue
        unit = unit_of_target(entry["target"])
        if unit is not None:
            last[unit] = max(last.get(unit, ""), entry["at"])
    return last


def _with_last_reminder(item: TodoItem, at: str | None) -> TodoItem:
    if item.kind not in REMINDABLE or not at:
        return item
    return replace(
        item,
        summary=f"{item.summary}（上次催办提醒：{minute(at)}）",
        details={**item.details, "last_reminder_at": at},
    )


ACTION_LABELS: dict[tuple[str, str], str] = {
    ("ambiguous_row", "choose"): "确认对应这一项在线申报",
    ("ambiguous_row", "none"): "没有对应的在线申报",
    ("unplaced_pdf", "place"): "放入所选的推荐表",
    ("unplaced_pdf", "not_a_form"): "这不是推荐表",
    ("late", "accept"): "受理",
    ("late", "reject"): "不予受理",
    ("needs_attention", "reprocess"): "重新处理",
    ("needs_attention", "handled"): "已人工处理",
    ("needs_reply", "replied"): "已回复",
    ("seal_unconfirmed", "seal_present"): "已盖公章",
    ("seal_unconfirmed", "seal_absent"): "未盖公章",
    ("failed_mail", "retry"): "重新发送",
    ("failed_mail", "drop"): "不再发送",
    ("missing_word", "remind"): "发送催办提醒",
    ("missing_pdf", "remind"): "发送催办提醒",
    ("no_submission", "remind"): "发送催办提醒",
    ("pdf_mismatch", "remind"): "提醒补发与Word版一致的盖章PDF",
    ("pdf_mismatch", "handled"): "已人工处理",
}
"""Every action staff can take on a queue item, by (kind, action), with its Chinese label."""

CLOSING = {
    ("unplaced_pdf", "not_a_form"),
    ("late", "accept"),
    ("late", "reject"),
    ("needs_attention", "handled"),
    ("needs_reply", "replied"),
    ("seal_unconfirmed", "seal_present"),
    ("seal_unconfirmed", "seal_absent"),
    ("failed_mail", "drop"),
    ("pdf_mismatch", "handled"),
}
"""Decisions that take their item off the queue by themselves (the others change the data
the item comes from: a row tied, a PDF placed, a mail queued again, a message re-read)."""

NOTE = {"name": "note", "label": "说明", "type": "text", "required": True}


def item_actions(item: TodoItem, register: dict[str, Any]) -> list[dict[str, Any]]:
    """The actions on `item` as `/api/todo` publishes them: `{name, label, params}`."""
    actions = []
    for (kind, name), label in ACTION_LABELS.items():
        if kind != item.kind:
            continue
        params: list[dict[str, Any]] = []
        if name == "choose":
            params.append(
                {
                    "name": "submission_ref",
                    "label": "在线申报",
                    "type": "choice",
                    "required": True,
                    "choices": [
                        {
                            "value": candidate["ref"],
                            "label": f"{candidate['ref']}「{candidate.get('title') or ''}」"
                            f"{candidate.get('applicant') or ''}",
                        }
                        for candidate in item.details.get("candidates", [])
                    ],
                }
            )
        elif name == "place":
            params.append(
                {
                    "name": "recommendation_id",
                    "label": "推荐表",
                    "type": "choice",
                    "required": True,
                    "choices": [
                        {
                            "value": row["id"],
                            "label": f"{row['unit']}（第{row['version']}版"
                            + ("，已有盖章PDF" if row["pdf"] else "")
                            + "）",
                        }
                        for row in register["recommendations"]
                        if row["current"]
                    ],
                }
            )
        elif name in ("handled", "replied"):
            params.append(dict(NOTE))
        actions.append({"name": name, "label": label, "params": params})
    return actions


def todo_json(item: TodoItem) -> dict[str, Any]:
    """The item as `/api/todo` publishes it: `{id, kind, summary, actions, **details}`."""
    return {
        "id": item.id,
        "kind": item.kind,
        "summary": item.summary,
        "actions": list(item.actions),
        **item.details,
    }


def todo_url(item: TodoItem, base_url: str | None) -> str | None:
    """The item's page in the workspace, or None when no `web.base_url` is configured."""
    if not base_url:
        return None
    return base_url.rstrip("/") + item.link


def minute(moment: str | None) -> str:
    """An ISO time from the register (already in the campaign's zone), to the minute."""
    if not moment:
        return ""
    return datetime.fromisoformat(moment).strftime("%Y-%m-%d %H:%M")


def _message_where(message: dict[str, Any]) -> str:
    subject = message["subject"] or "（无主题）"
    return f"{message['sender'] or '（无发件人）'}「{subject}」（{minute(message['received_at'])}）"


def _short(sha256: str | None) -> str:
    return (sha256 or "")[:16]


def _mailbox_items(register: dict[str, Any]) -> list[TodoItem]:
    items = []
    for mailbox in register.get("mailboxes", []):
        if not mailbox.get("last_error"):
            continue
        where = f"{mailbox['account']}/{mailbox['folder']}"
        since = minute(mailbox.get("failing_since"))
        items.append(
            TodoItem(
                id=f"mailbox_unreadable:{where}",
                kind="mailbox_unreadable",
                summary=f"邮箱{where}{('自' + since + '起') if since else ''}无法读取，"
                "新来信收不到。请检查邮箱的设置和邮件服务器；恢复后系统会自动继续收信。",
                where=where,
                link="/status",
                details={"account": mailbox["account"], "folder": mailbox["folder"]},
            )
        )
    return items


def _message_items(register: dict[str, Any]) -> list[TodoItem]:
    items = []
    for message in register["messages"]:
        key = _short(message.get("sha256")) or str(message["id"])
        link = f"/messages/{message['id']}"
        details = {"message_id": message["id"]}
        where = _message_where(message)
        if message["status"] == "needs_attention":
            if message["kind"] == "large_attachment_link":
                summary = (
                    "来信以网盘或超大附件下载链接提供材料，系统无法自动存档。请下载链接中的文件"
                    "（链接会过期），或等待推荐单位按回执的提醒改以附件重新发送。"
                )
            else:
                texts = _worth_a_person(message["problems"])
                summary = (
                    "".join(dict.fromkeys(texts))
                    if texts
                    else "这封来信需要人工处理。请打开来信阅读并处理。"
                )
            items.append(
                TodoItem(
                    id=f"needs_attention:{key}",
                    kind="needs_attention",
                    summary=summary,
                    where=where,
                    link=link,
                    details=details,
                )
            )
        if message.get("needs_reply"):
            reasons = message.get("reply_reasons") or ["question_needs_reply"]
            items.append(
                TodoItem(
                    id=f"needs_reply:{key}",
                    kind="needs_reply",
                    summary="".join(render(reason, {}, "staff") or "" for reason in reasons),
                    where=where,
                    link=link,
                    details=details,
                )
            )
        if message["late"] and message["kind"] in (
            "recommendation",
            "other",
            "large_attachment_link",
        ):
            items.append(
                TodoItem(
                    id=f"late:{key}",
                    kind="late",
                    summary="这封来信在截止时间之后送达，已登记并标为逾期。请决定是否受理。",
                    where=where,
                    link=link,
                    details=details,
                )
            )
    return items


def _worth_a_person(problems: list[dict[str, Any]]) -> list[str]:
    """The staff texts of a message's problems; notes that need nothing go when others do."""
    texts = [(spec_of(entry["code"]).severity, entry["text"]) for entry in problems]
    serious = [text for severity, text in texts if severity != "info" and text]
    return serious or [text for _, text in texts if text]


def _pdf_items(register: dict[str, Any]) -> list[TodoItem]:
    ledger = {message["message_id"]: message for message in register["messages"]}
    items = []
    for pdf in register["unplaced_pdfs"]:
        message = ledger.get(pdf["message_id"])
        ledger_id = pdf.get("message") or (message["id"] if message else None)
        items.append(
            TodoItem(
                id=f"unplaced_pdf:{_short(pdf['sha256'])}",
                kind="unplaced_pdf",
                summary=f"盖章PDF《{pdf['filename']}》还没有对应的推荐表。请在工作台为它选择所属的推荐表，"
                "或等待推荐单位发来Word版推荐表。",
                where=_message_where(message) if message else pdf["filename"],
                link=f"/messages/{ledger_id}" if ledger_id is not None else "/messages",
                details={
                    "message_id": ledger_id,
                    "sha256": pdf["sha256"],
                    "filename": pdf["filename"],
                },
            )
        )
    return items


def _recommendation_items(register: dict[str, Any]) -> list[TodoItem]:
    submissions = {row["ref"]: row for row in register["submissions"]}
    items = []
    for recommendation in register["recommendations"]:
        if not recommendation["current"]:
            continue
        unit = recommendation["unit"]
        version = recommendation["version"]
        key = f"{recommendation.get('unit_key') or unit}:v{version}"
        rid = recommendation["id"]
        where = f"{unit}（第{version}版推荐表）"
        base = {"recommendation_id": rid}
        if recommendation["word"] is None:
            items.append(
                TodoItem(
                    id=f"missing_word:{key}",
                    kind="missing_word",
                    summary=render("awaiting_word", {"unit": unit}, "staff") or "",
                    where=where,
                    link=f"/units/{rid}",
                    details=base,
                )
            )
        pdf = recommendation["pdf"]
        if pdf is None:
            items.append(
                TodoItem(
                    id=f"missing_pdf:{key}",
                    kind="missing_pdf",
                    summary=f"{unit}的推荐表还缺盖章PDF。请等待，或联系推荐单位补发加盖公章的PDF版推荐表。",
                    where=where,
                    link=f"/units/{rid}",
                    details=base,
                )
            )
        else:
            if pdf.get("seal") != "present":
                seal = SEAL_WORDS.get(str(pdf.get("seal")), SEAL_WORDS["unknown"])
                items.append(
                    TodoItem(
                        id=f"seal_unconfirmed:{key}:{_short(pdf['sha256'])}",
                        kind="seal_unconfirmed",
                        summary=f"盖章PDF《{pdf['filename']}》{seal}。请打开PDF查看是否加盖了公章，"
                        "未盖章的请联系推荐单位补发。",
                        where=where,
                        link=f"/units/{rid}",
                        details={**base, "filename": pdf["filename"]},
                    )
                )
            agreement = pdf.get("agreement")
            if agreement and (agreement.get("missing") or agreement.get("extra")):
                problem = mismatch_problem(agreement)
                items.append(
                    TodoItem(
                        id=f"pdf_mismatch:{key}:{_short(pdf['sha256'])}",
                        kind="pdf_mismatch",
                        summary=problem.staff_text,
                        where=where,
                        link=f"/units/{rid}",
                        details={**base, "agreement": agreement},
                    )
                )
        for case in recommendation["cases"]:
            row = case["row"]
            if case["match"] == "ambiguous":
                candidates = [
                    {
                        "ref": ref,
                        "score": score,
                        "title": submissions.get(ref, {}).get("title"),
                        "applicant": submissions.get(ref, {}).get("applicant"),
                    }
                    for ref, score in case["candidates"]
                ]
                shown = "、".join(
                    candidate_label(item["ref"], item["score"]) for item in candidates
                )
                items.append(
                    TodoItem(
                        id=f"ambiguous_row:{key}:{row}",
                        kind="ambiguous_row",
                        summary=f"第{row}行「{case['title']}」有几项相近的在线申报"
                        f"{('：' + shown) if shown else ''}。请确认这一行对应哪一项。",
                        where=where,
                        link=f"/units/{rid}#row-{row}",
                        details={**base, "row": row, "candidates": candidates},
                    )
                )
            elif case["match"] == "none":
                items.append(
                    TodoItem(
                        id=f"no_submission:{key}:{row}",
                        kind="no_submission",
                        summary=f"第{row}行「{case['title']}」（{case['applicant']}）在在线申报名单中找不到。"
                        "请提醒申报单位在线提交；导入新的在线申报名单后系统会自动匹配。",
                        where=where,
                        link=f"/units/{rid}#row-{row}",
                        details={**base, "row": row},
                    )
                )
    return items


def mismatch_problem(agreement: dict[str, Any]) -> Problem:
    """`pdf_mismatch` for a PDF's agreement with its Word form: which Word rows the PDF
    lacks (「title」), which rows it has that the Word form does not."""
    missing = [
        f"「{row['title']}」" if isinstance(row, dict) else f"「{row}」"
        for row in agreement.get("missing") or []
    ]
    extra = [f"「{title}」" for title in agreement.get("extra") or []]
    return Problem(
        "pdf_mismatch", {"missing": "、".join(missing) or "无", "extra": "、".join(extra) or "无"}
    )


def candidate_label(ref: str, score: float | int | None) -> str:
    """A candidate as staff read it: 「KJCX2025-0005（得分 100）」."""
    if score is None:
        return f"「{ref}」"
    return f"「{ref}（得分 {float(score):.0f}）」"


def _mail_items(register: dict[str, Any]) -> list[TodoItem]:
    items = []
    for position, mail in enumerate(register["outbox"], start=1):
        if mail["status"] != "failed":
            continue
        outbox_id = mail.get("id", position)
        to = "、".join(mail["to"])
        summary = (
            f"发给{to}的邮件「{mail['subject']}」已发出两次，"
            + (render("mail_unconfirmed", {}, "staff") or "")
            if mail.get("unconfirmed")
            else f"发给{to}的邮件「{mail['subject']}」未能送达。请核对收件地址，"
            "必要时改用电话等其他方式联系对方。"
        )
        items.append(
            TodoItem(
                id=f"failed_mail:{outbox_id}",
                kind="failed_mail",
                summary=summary,
                where=to,
                link=f"/outbox/{outbox_id}",
                details={"outbox_id": outbox_id},
            )
        )
    return items
