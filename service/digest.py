"""The staff's daily digest: what happened since the previous digest, totals, the queue.

"Since the previous digest" (自上次汇总以来) starts at the newest digest in the outbox
queued before now; the first digest covers everything since the campaign started.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from notifications.contexts import (
    AttentionItem,
    CampaignTotals,
    Digest,
    FailedSend,
    IntakeCounts,
    LateItem,
    OutageLine,
    RecommendationLine,
    SuppressedAddress,
    UnitActivity,
    delivery_failure_words,
)
from notifications.message import MailAttachment
from parsers.problems import render
from service.bootstrap import App
from service.models import Outbox
from service.outbox import queue_mail
from service.register import build_register
from service.todo import todo_items, todo_url
from service.workbook import register_workbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
SENT_WORDS = {"form_word": "Word推荐表", "form_pdf": "盖章PDF", "other": "其他材料"}
OUTAGE_WORDS = {
    "mailbox": "收信邮箱",
    "imap": "收信邮箱",
    "smtp": "发信服务器",
    "delivery": "发信服务器",
    "database": "数据库",
    "storage": "存档磁盘",
    "lock": "数据库（被其他操作占用）",
}
"""What a pending outage concerns, in the words of the digest (`outages[].what`)."""


def previous_digest_at(session: Session, now: datetime) -> datetime | None:
    """When the newest digest queued before `now` was queued, or None before the first."""
    return session.exec(
        select(sa.func.max(col(Outbox.created_at))).where(
            col(Outbox.kind) == "digest", col(Outbox.created_at) < now
        )
    ).one()


def _at(moment: str | None) -> datetime | None:
    return datetime.fromisoformat(moment) if moment else None


def _sent_lines(message: dict[str, Any]) -> list[str]:
    if message["kind"] == "large_attachment_link":
        return [f"超大附件下载链接「{message['subject']}」"]
    files = [
        f"{SENT_WORDS.get(item['kind'], '其他材料')}《{item['filename']}》"
        for item in message["attachments"]
    ]
    return files or [f"来信「{message['subject'] or '无主题'}」"]


def _senders(register: dict[str, Any], messages: list[dict[str, Any]]) -> list[UnitActivity]:
    """Who wrote (the unit its forms name, else the address) and what each sent, in order."""
    unit_of: dict[str, str] = {}
    for recommendation in register["recommendations"]:
        for part in ("word", "pdf"):
            ref = recommendation[part]
            if ref and ref.get("message_id"):
                unit_of.setdefault(ref["message_id"], recommendation["unit"])
    activity: dict[str, list[str]] = {}
    for message in messages:
        if message["kind"] in ("auto_reply", "bounce"):
            continue
        who = unit_of.get(message["message_id"] or "") or message["sender"] or "（无发件人）"
        activity.setdefault(who, []).extend(_sent_lines(message))
    return [UnitActivity(who=who, sent=sent) for who, sent in activity.items()]


def _new_recommendations(
    register: dict[str, Any], message_ids: set[str]
) -> tuple[list[RecommendationLine], list[RecommendationLine]]:
    """Current recommendations whose Word or PDF arrived in the period: complete, incomplete."""
    complete: list[RecommendationLine] = []
    incomplete: list[RecommendationLine] = []
    for recommendation in register["recommendations"]:
        if not recommendation["current"]:
            continue
        parts = [recommendation["word"], recommendation["pdf"]]
        if not any(part and part.get("message_id") in message_ids for part in parts):
            continue
        missing = [
            name
            for name, part in (
                ("Word推荐表", recommendation["word"]),
                ("盖章PDF", recommendation["pdf"]),
            )
            if part is None
        ]
        line = RecommendationLine(
            unit=recommendation["unit"], version=recommendation["version"], missing=missing
        )
        (complete if recommendation["complete"] else incomplete).append(line)
    return complete, incomplete


def _suppressed_in_words(reason: str) -> str:
    return "对方邮箱退信，已停止发信" if reason.startswith("bounced") else "已停止向该地址发信"


def digest_context(
    app: App, register: dict[str, Any], now: datetime, *, since: datetime | None = None
) -> Digest:
    """Fill the digest from the register as it stands at `now`; `since`: the previous one."""
    zone = app.settings.campaign.zone
    period = [
        message
        for message in register["messages"]
        if (moment := _at(message["received_at"])) is not None
        and (since is None or since <= moment)
        and moment <= now
    ]
    by_kind: dict[str, int] = {}
    for message in period:
        by_kind[str(message["kind"])] = by_kind.get(str(message["kind"]), 0) + 1
    current = [row for row in register["recommendations"] if row["current"]]
    statuses: dict[str, int] = {}
    for row in register["submissions"]:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    # Calendar days in the campaign's zone: 0 on the deadline's day, negative after it.
    days_left = (
        app.settings.campaign.deadline.astimezone(zone).date() - now.astimezone(zone).date()
    ).days
    complete, incomplete = _new_recommendations(
        register, {message["message_id"] for message in period if message["message_id"]}
    )
    return Digest(
        campaign_name=app.settings.campaign.name,
        deadline=app.settings.campaign.deadline,
        now=now.astimezone(zone),
        days_left=days_left,
        since=since.astimezone(zone) if since else None,
        period=IntakeCounts(
            messages_by_kind=by_kind,
            new_recommendations=sum(
                1
                for message in period
                for item in message["attachments"]
                if item["kind"] == "form_word"
            ),
        ),
        totals=CampaignTotals(
            units=len({row["unit"] for row in current}),
            recommendations_complete=sum(1 for row in current if row["complete"]),
            recommendations_incomplete=sum(1 for row in current if not row["complete"]),
            submissions_by_status=statuses,
        ),
        senders=_senders(register, period),
        new_complete=complete,
        new_incomplete=incomplete,
        attention=[
            AttentionItem(
                category=item.label,
                summary=item.summary,
                where=item.where,
                url=todo_url(item, app.settings.web.base_url),
            )
            for item in todo_items(register)
        ],
        failed_sends=[
            FailedSend(
                kind=row["kind"],
                recipients=row["to"],
                subject=row["subject"],
                reason=(render("mail_unconfirmed", {}, "staff") or "")
                if row.get("unconfirmed")
                else delivery_failure_words(row["last_error"]),
                attempts=row["attempts"],
            )
            for row in register["outbox"]
            if row["status"] == "failed"
        ],
        suppressed=[
            SuppressedAddress(address=row["address"], reason=_suppressed_in_words(row["reason"]))
            for row in register["suppressed"]
        ],
        late=[
            LateItem(
                what=f"{message['sender']}「{message['subject']}」",
                received_at=datetime.fromisoformat(message["received_at"]).astimezone(zone),
            )
            for message in register["messages"]
            if message["late"]
        ],
        outages=[
            OutageLine(
                what=OUTAGE_WORDS.get(str(outage.get("what")), str(outage.get("what") or "")),
                since=(_at(outage.get("since")) or now).astimezone(zone),
                retries=int(outage.get("retries") or 0),
            )
            for outage in register.get("outages", [])
        ],
    )


def queue_digest(app: App, *, now: datetime | None = None) -> int:
    """Queue today's digest to every staff address, once per day; returns how many were queued.

    "Today" is the calendar day at `now` in the campaign's time zone.
    """
    now = now or app.clock()
    day = now.astimezone(app.settings.campaign.zone).date().isoformat()
    with Session(app.engine) as session:
        due = [
            address
            for address in app.settings.campaign.staff
            if session.exec(
                select(Outbox.id).where(Outbox.idempotency_key == _digest_key(day, address))
            ).first()
            is None
        ]
        if not due:
            return 0
        register = build_register(session, app.settings)
        context = digest_context(app, register, now, since=previous_digest_at(session, now))
        workbook = MailAttachment(
            filename=f"案例征集登记表-{day}.xlsx",
            content_type=XLSX,
            data=register_workbook(register, base_url=app.settings.web.base_url),
        )
        queued = 0
        for address in due:
            if (
                queue_mail(
                    app,
                    session,
                    key=_digest_key(day, address),
                    context=context,
                    to=[address],
                    attachments=[workbook],
                )
                is not None
            ):
                queued += 1
        session.commit()
    return queued


def _digest_key(day: str, address: str) -> str:
    return f"digest:{day}:{address.strip().lower()}"


def render_digest(app: App, *, now: datetime | None = None) -> str:
    """The digest's text part as it would go out now (for `intake digest --print`)."""
    now = now or app.clock()
    with Session(app.engine) as session:
        register = build_register(session, app.settings)
        since = previous_digest_at(session, now)
    rendered = app.renderer.render(digest_context(app, register, now, since=since))
    return f"Subject: {rendered.subject}\n\n{rendered.text}"
