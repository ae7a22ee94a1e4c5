"""The outbox: every mail to send is a row, queued with the change that causes it, sent once.

Queuing renders the mail and stores it under an idempotency key (event + recipient), so no
replay, reprocess or restart queues it twice. Delivery locks one row at a time (`FOR UPDATE
SKIP LOCKED` on PostgreSQL), sends it, and marks it sent in the same transaction: the only
window for a duplicate is a crash after the SMTP server accepted a mail and before that
commit, and it is one message wide.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

from sqlmodel import Session, col, select

from config.errors import DeliveryError, IntakeError
from notifications.contexts import (
    ApplicantEvent,
    ApplicantReceipt,
    AttachmentKind,
    CaseLine,
    LinkedFile,
    MailContext,
    MailKind,
    MatchKind,
    ReceiptMessageKind,
    ReceivedFile,
    Seal,
    UnitReceipt,
    kind_of,
)
from notifications.message import (
    AutoSubmitted,
    MailAttachment,
    OutgoingMail,
    build_message,
    make_message_id,
)
from notifications.render import RenderedMail
from service.bootstrap import App
from service.db import is_postgres
from service.models import (
    Attachment,
    CaseRow,
    Message,
    Outbox,
    Recommendation,
    Submission,
    Suppression,
)

logger = logging.getLogger(__name__)

NO_REPLY_KINDS = {"auto_reply", "bounce"}
RECEIPT_KINDS = {"recommendation", "other", "large_attachment_link"}
MAX_BACKOFF = timedelta(hours=6)


def _domain_of(address: str) -> str:
    return email.utils.parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _is_suppressed(session: Session, address: str) -> bool:
    return session.get(Suppression, address.lower()) is not None


def queue_mail(
    app: App,
    session: Session,
    *,
    key: str,
    context: MailContext,
    to: Sequence[str],
    cc: Sequence[str] = (),
    in_reply_to: str | None = None,
    references: Sequence[str] = (),
    message_pk: int | None = None,
    submission_ref: str | None = None,
    attachments: Sequence[MailAttachment] = (),
    status: str = "pending",
    reason: str | None = None,
) -> Outbox | None:
    """Render and queue one mail under `key`; None when that key was already queued."""
    if session.exec(select(Outbox.id).where(Outbox.idempotency_key == key)).first() is not None:
        return None
    for pending in session.new:
        if isinstance(pending, Outbox) and pending.idempotency_key == key:
            return None
    rendered = app.renderer.render(context)
    kind = kind_of(context)
    recipients = [address.lower() for address in to if address]
    if status == "pending" and any(_is_suppressed(session, address) for address in recipients):
        status, reason = "suppressed", "address suppressed after a bounce"
    stored_attachments = [
        {
            "filename": item.filename,
            "content_type": item.content_type,
            "sha256": app.archive.put(item.data),
        }
        for item in attachments
    ]
    now = app.clock()
    row = Outbox(
        idempotency_key=key,
        kind=kind,
        recipients=recipients,
        cc=[address.lower() for address in cc if address],
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        in_reply_to=in_reply_to,
        references=list(references),
        auto_submitted="auto-generated" if kind == "digest" else "auto-replied",
        attachments=stored_attachments,
        mail_message_id=make_message_id(_domain_of(app.settings.smtp.from_address)),
        status=status,
        last_error=reason,
        next_attempt_at=now,
        message_pk=message_pk,
        submission_ref=submission_ref,
        created_at=now,
    )
    session.add(row)
    session.flush()
    return row


def _replies_allowed(app: App, message: Message) -> bool:
    if message.no_reply or message.kind in NO_REPLY_KINDS or message.kind not in RECEIPT_KINDS:
        return False
    start = app.settings.campaign.starts
    return app.settings.campaign.reply_to_old_mail or start is None or message.received_at >= start


def _sent_today(session: Session, address: str, now: datetime) -> int:
    rows = session.exec(
        select(Outbox.recipients).where(
            Outbox.created_at >= now - timedelta(days=1), Outbox.kind == "unit_receipt"
        )
    ).all()
    return sum(1 for recipients in rows if address in recipients)


def queue_unit_receipt(
    app: App, session: Session, message: Message, touched: Sequence[Recommendation]
) -> Outbox | None:
    """Queue the receipt to the sender of a human-written message, once per message."""
    if not _replies_allowed(app, message) or not message.sender:
        return None
    to = message.reply_to[:1] or [message.sender]
    recipient = to[0].lower()
    key = f"unit_receipt:{message.sha256}:{recipient}"
    context = unit_receipt_context(app, session, message, touched)
    status, reason = "pending", None
    if _sent_today(session, recipient, app.clock()) >= app.settings.smtp.per_recipient_daily_cap:
        status = "suppressed"
        reason = (
            f"more than {app.settings.smtp.per_recipient_daily_cap} receipts to this address today"
        )
    references = [*message.references]
    if message.message_id and message.message_id not in references:
        references.append(message.message_id)
    return queue_mail(
        app,
        session,
        key=key,
        context=context,
        to=[recipient],
        in_reply_to=message.message_id,
        references=references[-10:],
        message_pk=message.id,
        status=status,
        reason=reason,
    )


def unit_receipt_context(
    app: App, session: Session, message: Message, touched: Sequence[Recommendation]
) -> UnitReceipt:
    """What the unit receipt tells the sender about their message."""
    attachments = session.exec(
        select(Attachment)
        .where(col(Attachment.message_pk) == message.id)
        .order_by(col(Attachment.position))
    ).all()
    files = [
        ReceivedFile(
            filename=item.filename,
            kind=cast(AttachmentKind, item.kind),
            seal=cast(Seal, item.seal) if item.kind == "form_pdf" else None,
        )
        for item in attachments
    ]
    recommendation = touched[0] if touched else None
    cases: list[CaseLine] = []
    missing: list[str] = []
    if recommendation is not None:
        titles = {sub.ref: sub.title for sub in session.exec(select(Submission)).all()}
        for row in session.exec(
            select(CaseRow)
            .where(col(CaseRow.recommendation_id) == recommendation.id)
            .order_by(col(CaseRow.row))
        ).all():
            cases.append(
                CaseLine(
                    row=row.row,
                    title=row.title,
                    applicant=row.applicant,
                    match=cast(MatchKind, row.match),
                    submission_ref=row.submission_ref,
                    submission_title=titles.get(row.submission_ref or ""),
                )
            )
        if recommendation.pdf_attachment_id is None:
            missing.append("加盖公章的PDF版推荐表")
        if recommendation.word_attachment_id is None:
            missing.append("Word版推荐表")
    elif any(item.kind == "form_pdf" for item in attachments):
        missing.append("Word版推荐表（盖章PDF已收到，尚待与Word版对应）")
    links = [
        LinkedFile(
            filename=str(link.get("filename", "")),
            url=str(link.get("url", "")),
            expires=link.get("expires"),
        )
        for link in message.details.get("links", [])
        if isinstance(link, dict)
    ]
    kind = message.kind if message.kind in RECEIPT_KINDS else "other"
    return UnitReceipt(
        campaign_name=app.settings.campaign.name,
        deadline=app.settings.campaign.deadline,
        received_at=message.received_at,
        late=message.late,
        message_subject=message.subject,
        message_kind=cast(ReceiptMessageKind, kind),
        sender_name=message.sender_name or message.sender,
        attachments=files,
        unit=recommendation.unit if recommendation else None,
        contact_name=recommendation.contact_name if recommendation else None,
        cases=cases,
        missing=missing,
        large_attachment_links=links,
        problems=[problem for problem in message.problems if "internal error" not in problem][:10],
        recommendation_complete=bool(recommendation and recommendation.complete),
        version=recommendation.version if recommendation else 1,
        supersedes_earlier=bool(recommendation and recommendation.version > 1),
    )


def queue_applicant_receipts(
    app: App, session: Session, recommendation: Recommendation, *, allowed: bool
) -> int:
    """Tell each matched applicant, once when found and once more when complete."""
    if not allowed:
        return 0
    queued = 0
    rows = session.exec(
        select(CaseRow).where(
            col(CaseRow.recommendation_id) == recommendation.id,
            col(CaseRow.submission_ref).is_not(None),
            col(CaseRow.match).in_(["ref", "name", "manual"]),
        )
    ).all()
    for row in rows:
        submission = session.get(Submission, row.submission_ref)
        if submission is None or not submission.email or submission.withdrawn:
            continue
        event = "complete" if recommendation.complete else "found"
        address = submission.email.lower()
        key = f"applicant_receipt:{submission.ref}:{event}:{address}"
        missing = [] if recommendation.complete else ["推荐单位加盖公章的PDF版推荐表"]
        context = ApplicantReceipt(
            campaign_name=app.settings.campaign.name,
            deadline=app.settings.campaign.deadline,
            submission_ref=submission.ref,
            submission_title=submission.title,
            applicant=submission.applicant,
            contact_name=submission.contact,
            unit=recommendation.unit,
            event=cast(ApplicantEvent, event),
            complete=recommendation.complete,
            missing=missing,
        )
        if (
            queue_mail(
                app, session, key=key, context=context, to=[address], submission_ref=submission.ref
            )
            is not None
        ):
            queued += 1
    return queued


def suppress_bounced(app: App, session: Session, message: Message, addresses: list[str]) -> None:
    """A bounce of our own mail: never write to those addresses again."""
    ours = message.in_reply_to or ""
    status = message.details.get("bounce", {}).get("status") or "no status"
    for failed in addresses:
        address = failed.lower().strip()
        if not address or session.get(Suppression, address) is not None:
            continue
        session.add(
            Suppression(
                address=address,
                reason=f"bounced ({status}) {('in reply to ' + ours) if ours else ''}".strip(),
                created_at=app.clock(),
            )
        )
    session.flush()


@dataclass
class DeliveryReport:
    """What one delivery run did."""

    sent: int = 0
    retried: int = 0
    failed: int = 0
    errors: list[str] = field(default_factory=list)


def _claim_next(session: Session, app: App, now: datetime, skip: set[int]) -> Outbox | None:
    query = (
        select(Outbox)
        .where(col(Outbox.status) == "pending", col(Outbox.next_attempt_at) <= now)
        .order_by(col(Outbox.id))
        .limit(1)
    )
    if skip:
        query = query.where(col(Outbox.id).not_in(skip))
    if is_postgres(app.engine):
        query = query.with_for_update(skip_locked=True)
    return session.exec(query).first()


def _to_outgoing(app: App, row: Outbox) -> OutgoingMail:
    attachments = [
        MailAttachment(
            filename=str(item["filename"]),
            content_type=str(item["content_type"]),
            data=app.archive.get(str(item["sha256"])),
        )
        for item in row.attachments
    ]
    return OutgoingMail(
        kind=cast(MailKind, row.kind),
        to=row.recipients,
        cc=row.cc,
        rendered=RenderedMail(subject=row.subject, text=row.text_body, html=row.html_body),
        in_reply_to=row.in_reply_to,
        references=row.references,
        auto_submitted=cast(AutoSubmitted, row.auto_submitted),
        attachments=attachments,
    )


def deliver(app: App, *, limit: int | None = None) -> DeliveryReport:
    """Send what the outbox holds, one locked row at a time over one connection."""
    report = DeliveryReport()
    settings = app.settings.smtp
    skip: set[int] = set()
    with Session(app.engine) as probe:
        waiting = probe.exec(
            select(Outbox.id).where(
                Outbox.status == "pending", Outbox.next_attempt_at <= app.clock()
            )
        ).first()
    if waiting is None:
        return report
    try:
        with app.transport.connect() as sender:
            while limit is None or report.sent + report.failed + report.retried < limit:
                with Session(app.engine) as session:
                    now = app.clock()
                    row = _claim_next(session, app, now, skip)
                    if row is None:
                        break
                    assert row.id is not None
                    skip.add(row.id)
                    try:
                        message = build_message(
                            _to_outgoing(app, row),
                            from_address=settings.from_address,
                            message_id=row.mail_message_id,
                            date=now,
                        )
                        sender.send(message, [*row.recipients, *row.cc])
                    except DeliveryError as exc:
                        _record_failure(app, row, exc, now, report)
                    except IntakeError as exc:
                        _record_failure(
                            app, row, DeliveryError(str(exc), permanent=True), now, report
                        )
                    else:
                        row.status = "sent"
                        row.sent_at = now
                        row.attempts += 1
                        row.last_error = None
                        report.sent += 1
                        recipients = ", ".join(row.recipients)
                        app.log(f"mail sent: {row.kind} to {recipients} ({row.mail_message_id})")
                    session.add(row)
                    session.commit()
    except DeliveryError as exc:
        report.errors.append(str(exc))
        logger.warning("delivery stopped: %s", exc)
    return report


def _record_failure(
    app: App, row: Outbox, exc: DeliveryError, now: datetime, report: DeliveryReport
) -> None:
    row.attempts += 1
    row.last_error = str(exc)[:2000]
    if exc.permanent or row.attempts >= app.settings.smtp.max_attempts:
        row.status = "failed"
        report.failed += 1
        app.log(f"mail failed for good: {row.kind} to {', '.join(row.recipients)}: {exc}")
    else:
        backoff = app.settings.smtp.retry_base * (2 ** (row.attempts - 1))
        row.next_attempt_at = now + min(backoff, MAX_BACKOFF)
        report.retried += 1
    report.errors.append(f"{', '.join(row.recipients)}: {exc}")
