"""The staff's daily digest: the day's intake, totals, what needs a person, days left."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlmodel import Session, select

from notifications.contexts import (
    AttentionItem,
    CampaignTotals,
    Digest,
    FailedSend,
    IntakeCounts,
    LateItem,
    SuppressedAddress,
)
from notifications.message import MailAttachment
from parsers.problems import render
from service.bootstrap import App
from service.models import Outbox
from service.outbox import queue_mail
from service.register import OUTAGE_LABELS, build_register
from service.todo import todo_items, todo_url
from service.workbook import register_workbook

XLSX = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"


def digest_context(app: App, register: dict[str, Any], now: datetime) -> Digest:
    """Fill the digest from the register as it stands at `now`."""
    since = now - timedelta(days=1)
    today_messages = [
        message
        for message in register["messages"]
        if message["received_at"] and since <= datetime.fromisoformat(message["received_at"]) <= now
    ]
    by_kind: dict[str, int] = {}
    for message in today_messages:
        by_kind[str(message["kind"])] = by_kind.get(str(message["kind"]), 0) + 1
    current = [row for row in register["recommendations"] if row["current"]]
    statuses: dict[str, int] = {}
    for row in register["submissions"]:
        statuses[row["status"]] = statuses.get(row["status"], 0) + 1
    zone = app.settings.campaign.zone
    # Calendar days in the campaign's zone: 0 on the deadline's day, negative after it.
    days_left = (
        app.settings.campaign.deadline.astimezone(zone).date() - now.astimezone(zone).date()
    ).days
    return Digest(
        campaign_name=app.settings.campaign.name,
        deadline=app.settings.campaign.deadline,
        now=now.astimezone(zone),
        days_left=days_left,
        today=IntakeCounts(
            messages_by_kind=by_kind,
            new_recommendations=sum(
                1
                for message in today_messages
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
        attention=[
            AttentionItem(
                category=item.label,
                summary=item.summary,
                where=item.where,
                url=todo_url(item, app.settings.web.base_url),
            )
            for item in todo_items(register)
        ],
        outages=[outage_sentence(outage) for outage in register.get("outages", [])],
        failed_sends=[
            FailedSend(
                kind=row["kind"],
                recipients=row["to"],
                subject=row["subject"],
                reason=(render("mail_unconfirmed", {}, "staff") or "")
                if row.get("unconfirmed")
                else row["last_error"] or "",
                attempts=row["attempts"],
            )
            for row in register["outbox"]
            if row["status"] == "failed"
        ],
        suppressed=[
            SuppressedAddress(address=row["address"], reason=row["reason"])
            for row in register["suppressed"]
        ],
        late=[
            LateItem(
                what=f"{message['sender']} «{message['subject']}»",
                received_at=datetime.fromisoformat(message["received_at"]).astimezone(zone),
            )
            for message in register["messages"]
            if message["late"]
        ],
    )


def outage_sentence(outage: dict[str, Any]) -> str:
    """A register `outages` entry as staff read it: what is down, since when, what waits."""
    what = OUTAGE_LABELS.get(outage["what"], outage["what"])
    text = render("transient_failure", {"what": what}, "staff") or ""
    return f"{text}（{outage['messages']}封来信待处理，已重试{outage['retries']}次）"


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
        context = digest_context(app, register, now)
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
    rendered = app.renderer.render(digest_context(app, register, now))
    return f"Subject: {rendered.subject}\n\n{rendered.text}"
