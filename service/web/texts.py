"""The workspace's words: every status, kind and error shown to staff, in Chinese.

One place for each label (style: one place for each fact). Raw error texts from servers are
English: they are turned into a Chinese sentence here and kept only as a tooltip.
"""

from __future__ import annotations

from datetime import datetime, tzinfo

MESSAGE_KIND = {
    "recommendation": "推荐材料",
    "other": "其他来信",
    "auto_reply": "自动回复",
    "bounce": "退信",
    "large_attachment_link": "超大附件链接",
}
MESSAGE_STATUS = {
    "processed": "已处理",
    "needs_attention": "需人工处理",
    "pending": "等待解析",
}
ATTACHMENT_KIND = {
    "form_word": "推荐表（Word）",
    "form_pdf": "推荐表（盖章PDF）",
    "other": "其他附件",
}
SEAL = {"present": "已检出公章", "absent": "未检出公章", "unknown": "无法判断是否盖章"}
MATCH = {
    "ref": "按申报编号对应",
    "name": "按案例名称和申报单位对应",
    "manual": "工作人员指定",
    "ambiguous": "有多个相近的在线申报，待人工核对",
    "none": "未找到在线申报",
}
SUBMISSION_STATUS = {
    "complete": "材料齐全",
    "awaiting_recommendation": "等待推荐表",
    "awaiting_pdf": "等待盖章PDF",
    "awaiting_word": "等待Word版推荐表",
    "withdrawn": "已撤回",
}
ROUTE = {"recommended": "推荐申报", "voluntary": "自愿申报"}
RESULT = {"selected": "入选", "not_selected": "未入选"}
OUTBOX_KIND = {
    "unit_receipt": "推荐单位回执",
    "applicant_receipt": "申报单位回执",
    "result": "结果通知",
    "digest": "每日汇总",
    "reminder": "催办提醒",
}
OUTBOX_STATUS = {
    "pending": "等待发送",
    "sent": "已发送",
    "failed": "发送失败",
    "suppressed": "不再发送",
}
ROLE = {"staff": "工作人员", "viewer": "只读查看"}


def label(table: dict[str, str], value: object, missing: str = "—") -> str:
    """The Chinese label of `value` in `table` (unknown values: a neutral word, not English)."""
    if value is None or value == "":
        return missing
    return table.get(str(value), "其他")


def when(moment: datetime | None, zone: tzinfo) -> str:
    """An instant as staff read it: local date and minute in the campaign's zone."""
    return "—" if moment is None else moment.astimezone(zone).strftime("%Y-%m-%d %H:%M")


def mail_error(error: str | None) -> str:
    """An SMTP error in words: what happened and what to do."""
    if not error:
        return ""
    text = error.lower()
    if "timed out" in text or "timeout" in text:
        return "连接发信服务器超时，系统会自动重试。"
    if "auth" in text or "535" in text or "password" in text:
        return "发信服务器拒绝登录，请检查发信账号和密码设置。"
    if any(code in text for code in ("550", "551", "553", "554", "recipient", "mailbox")):
        return "对方邮件服务器拒收，请核对收件地址是否正确。"
    if "refused" in text or "connect" in text or "resolve" in text or "network" in text:
        return "无法连接发信服务器，系统会自动重试；持续失败请检查网络和服务器设置。"
    if "unconfirmed" in text or "confirm" in text:
        return "发信服务器没有确认收下这封邮件，系统会核实后再发。"
    return "发信服务器没有接受这封邮件，系统会按计划重试；多次失败请联系技术人员。"


def mailbox_error(error: str | None) -> str:
    """A mailbox (IMAP) error in words."""
    if not error:
        return ""
    text = error.lower()
    if "auth" in text or "login" in text or "password" in text or "credentials" in text:
        return "邮箱拒绝登录，请检查邮箱账号和密码设置。"
    if "timed out" in text or "timeout" in text:
        return "连接邮箱服务器超时，系统会自动重试。"
    if "uidvalidity" in text:
        return "邮箱文件夹被重建过，系统已重新核对已收邮件。"
    if "folder" in text or "mailbox" in text or "select" in text:
        return "找不到设置的邮箱文件夹，请检查文件夹名称。"
    return "暂时无法读取邮箱，系统会自动重试；持续失败请检查网络和邮箱服务器。"


def import_value(name: str, value: object, zone: tzinfo) -> str:
    """A field's value as an import preview shows it (stored form in, Chinese out)."""
    if value is None or value == "":
        return "（空）"
    if name == "route":
        return label(ROUTE, value)
    if name == "result":
        return label(RESULT, value)
    if isinstance(value, bool):
        return "是" if value else "否"
    if name in ("submitted_at", "imported_at") and isinstance(value, str):
        return when(datetime.fromisoformat(value), zone)
    return str(value)
