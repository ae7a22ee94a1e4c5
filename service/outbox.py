"""The outbox: every mail to send is a row, queued with the change that causes it, sent once.

Queuing renders the mail and stores it under an idempotency key (event + recipient), so no
replay, reprocess or restart queues it twice. Delivery claims one row at a time (`FOR UPDATE
SKIP LOCKED` on PostgreSQL, held while the mail is handed over, so two instances never send
the same row), sends it, and marks it sent right after the server's 250.

Rows are claimed by next attempt time, so a row waiting out its back-off never holds up
the rows behind it, and one run goes on past a row that failed.

Exactly once, with two windows. SMTP offers no way to ask a server "did you take this?":
- if the process dies (or the database is lost) after the SMTP server accepted a mail and
  before "sent" is committed, the row is still pending and the next delivery sends it again
  (at most one message per crash: one row is in flight at a time);
- if the connection drops or times out after the message was sent, before the server's
  reply, the mail is `unconfirmed`: that counts as an attempt, and it is sent once more after
  `smtp.resend_unconfirmed_after`; when that send is not confirmed either, it is `failed`
  for a person to check. So a mail reaches the server at most twice.
A duplicate carries the same Message-ID, so most mail clients show it once.
"""

from __future__ import annotations

import email.utils
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import cast

import sqlalchemy as sa
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
    MissingCase,
    ReceiptMessageKind,
    ReceivedFile,
    Seal,
    UnitReceipt,
    UnitReminder,
    kind_of,
    tidy,
)
from notifications.message import (
    AutoSubmitted,
    MailAttachment,
    OutgoingMail,
    build_message,
    make_message_id,
)
from notifications.render import RenderedMail
from notifications.transport import Sender
from parsers.classify import is_no_reply_address
from parsers.model import Problem
from service.agreement import disagrees
from service.bootstrap import App
from service.db import is_postgres
from service.leases import LeaseBusyError, held_lease
from service.models import (
    Attachment,
    CaseRow,
    Message,
    Outbox,
    Recommendation,
    Submission,
    Suppression,
)
from service.todo import mismatch_problem

logger = logging.getLogger(__name__)

NO_REPLY_KINDS = {"auto_reply", "bounce"}
RECEIPT_KINDS = {"recommendation", "other", "large_attachment_link"}
DELIVERY_LEASE = timedelta(minutes=15)
MAX_BACKOFF = timedelta(hours=6)


def _domain_of(address: str) -> str:
    return email.utils.parseaddr(address)[1].rpartition("@")[2] or "localhost"


def _bare(address: str) -> str:
    """The addr-spec of `Name <addr>` or of a bare address, lower-cased."""
    return (email.utils.parseaddr(address)[1] or address).strip().lower()


def _is_suppressed(session: Session, address: str) -> bool:
    return session.get(Suppression, _bare(address)) is not None


def _already_queued(session: Session, key: str) -> bool:
    if session.exec(select(Outbox.id).where(Outbox.idempotency_key == key)).first() is not None:
        return True
    return any(
        isinstance(pending, Outbox) and pending.idempotency_key == key for pending in session.new
    )


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
    known_new: bool = False,
    recipients_checked: bool = False,
) -> Outbox | None:
    """Render and queue one mail under `key`; None when that key was already queued.

    A recipient that bounced before makes the row `suppressed`; a bounced copy address is
    left out of Cc. `known_new` and `recipients_checked` skip lookups the caller just made.
    """
    if not known_new and _already_queued(session, key):
        return None
    rendered = app.renderer.render(context)
    kind = kind_of(context)
    recipients = [address.lower() for address in to if address]
    copies = [address.lower() for address in cc if address and not _is_suppressed(session, address)]
    if (
        status == "pending"
        and not recipients_checked
        and any(_is_suppressed(session, address) for address in recipients)
    ):
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
        recipient=recipients[0] if recipients else "",
        cc=copies,
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
    return replies_to_old_mail_allowed(app, message)


def replies_to_old_mail_allowed(app: App, message: Message) -> bool:
    """Whether `message` may get automatic replies, judged by when it came.

    `campaign.reply_to_old_mail` allows all; else `campaign.starts`, when set, decides; else
    mail that was already in the mailbox at its first poll gets none.
    """
    campaign = app.settings.campaign
    if campaign.reply_to_old_mail:
        return True
    if campaign.starts is not None:
        return message.received_at >= campaign.starts
    return not message.before_first_poll


def _receipts_today(session: Session, address: str, now: datetime) -> tuple[int, bool]:
    """Receipts and reminders queued to `address` in the last 24 hours (sent, pending or
    held back), and whether the address is suppressed after a bounce: one round trip for both."""
    sent_today = (
        select(sa.func.count(col(Outbox.id)))
        .where(
            col(Outbox.recipient) == address,
            col(Outbox.kind).in_(("unit_receipt", "reminder")),
            col(Outbox.created_at) >= now - timedelta(days=1),
        )
        .scalar_subquery()
    )
    suppressed = sa.exists().where(col(Suppression.address) == _bare(address))
    count, bounced = session.execute(sa.select(sent_today, suppressed)).one()
    return int(count), bool(bounced)


def queue_unit_receipt(
    app: App,
    session: Session,
    message: Message,
    touched: Sequence[Recommendation],
    *,
    attachments: Sequence[Attachment] | None = None,
) -> Outbox | None:
    """Queue the receipt to the sender of a human-written message, once per message.

    `attachments`: the message's attachment rows when the caller holds them (saves a query).
    """
    if not _replies_allowed(app, message) or not message.sender:
        return None
    if _bare(message.sender) in {_bare(address) for address in app.settings.campaign.staff}:
        return None  # staff writing to the contact mailbox need no receipt
    to = message.reply_to[:1] or [message.sender]
    recipient = _bare(to[0])
    if not recipient or is_no_reply_address(recipient):
        return None
    key = f"unit_receipt:{message.sha256}:{recipient}"
    if _already_queued(session, key):
        return None
    context = unit_receipt_context(app, session, message, touched, attachments=attachments)
    status, reason = "pending", None
    sent_today, bounced = _receipts_today(session, recipient, app.clock())
    if sent_today >= app.settings.smtp.per_recipient_daily_cap:
        status = "suppressed"
        reason = (
            f"more than {app.settings.smtp.per_recipient_daily_cap} receipts to this address today"
        )
    elif bounced:
        status, reason = "suppressed", "address suppressed after a bounce"
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
        known_new=True,
        recipients_checked=True,
    )


def queue_reminder(app: App, session: Session, recommendation: Recommendation) -> Outbox | None:
    """Queue staff's reminder to a unit of what its recommendation still lacks: to the form's
    contact email, else the sender, threaded on the unit's latest message. Once a day at most
    (the key carries the date); caps, bounces and no-reply addresses as for receipts."""
    address = _bare(recommendation.contact_email or "") or _bare(recommendation.sender)
    if not address or is_no_reply_address(address):
        return None
    if address in {_bare(staff) for staff in app.settings.campaign.staff}:
        return None  # never remind ourselves
    now = app.clock()
    key = f"reminder:{recommendation.unit_key}:{now.date().isoformat()}:{address}"
    if _already_queued(session, key):
        return None
    rows = session.exec(
        select(CaseRow)
        .where(col(CaseRow.recommendation_id) == recommendation.id)
        .order_by(col(CaseRow.row))
    ).all()
    context = UnitReminder(
        campaign_name=app.settings.campaign.name,
        deadline=app.settings.campaign.deadline,
        unit=recommendation.unit,
        contact_name=recommendation.contact_name,
        version=recommendation.version,
        missing_word=recommendation.word_attachment_id is None,
        missing_pdf=recommendation.pdf_attachment_id is None,
        pdf_mismatch=pdf_mismatch_text(session, recommendation),
        cases=[
            MissingCase(row=row.row, title=row.title, applicant=row.applicant)
            for row in rows
            if row.match == "none" and row.submission_ref is None
        ],
    )
    latest = (
        session.exec(
            select(Message)
            .where(col(Message.sender) == recommendation.sender)
            .order_by(col(Message.received_at).desc())
        ).first()
        if recommendation.sender
        else None
    )
    references: list[str] = []
    if latest is not None:
        references = [*latest.references]
        if latest.message_id and latest.message_id not in references:
            references.append(latest.message_id)
    status, reason = "pending", None
    sent_today, bounced = _receipts_today(session, address, now)
    if sent_today >= app.settings.smtp.per_recipient_daily_cap:
        status = "suppressed"
        cap = app.settings.smtp.per_recipient_daily_cap
        reason = f"more than {cap} mails to this address today"
    elif bounced:
        status, reason = "suppressed", "address suppressed after a bounce"
    return queue_mail(
        app,
        session,
        key=key,
        context=context,
        to=[address],
        in_reply_to=latest.message_id if latest is not None else None,
        references=references[-10:],
        message_pk=latest.id if latest is not None else None,
        status=status,
        reason=reason,
        known_new=True,
        recipients_checked=True,
    )


def unit_receipt_context(
    app: App,
    session: Session,
    message: Message,
    touched: Sequence[Recommendation],
    *,
    attachments: Sequence[Attachment] | None = None,
) -> UnitReceipt:
    """What the unit receipt tells the sender about their message (`attachments`: its rows
    in position order, read from the database when not given)."""
    if attachments is None:
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
        rows = session.exec(
            select(CaseRow)
            .where(col(CaseRow.recommendation_id) == recommendation.id)
            .order_by(col(CaseRow.row))
        ).all()
        refs = {row.submission_ref for row in rows if row.submission_ref}
        titles = dict(
            session.exec(
                select(Submission.ref, Submission.title).where(col(Submission.ref).in_(refs))
            ).all()
        )
        for row in rows:
            cases.append(
                CaseLine(
                    row=row.row,
                    title=tidy(row.title) or "",
                    applicant=tidy(row.applicant) or "",
                    match=cast(MatchKind, row.match),
                    submission_ref=row.submission_ref,
                    submission_title=tidy(titles.get(row.submission_ref or "")),
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
        received_at=message.received_at.astimezone(app.settings.campaign.zone),
        late=message.late,
        message_subject=message.subject,
        message_kind=cast(ReceiptMessageKind, kind),
        sender_name=message.sender_name or message.sender,
        attachments=files,
        unit=tidy(recommendation.unit) if recommendation else None,
        contact_name=tidy(recommendation.contact_name) if recommendation else None,
        cases=cases,
        missing=missing,
        large_attachment_links=links,
        problems=sender_texts(message.problems, covered=RECEIPT_COVERED if missing else ())[:10],
        recommendation_complete=bool(recommendation and recommendation.complete),
        version=recommendation.version if recommendation else 1,
        supersedes_earlier=bool(recommendation and recommendation.version > 1),
        pdf_mismatch=pdf_mismatch_text(session, recommendation) if recommendation else None,
    )


def pdf_mismatch_text(session: Session, recommendation: Recommendation) -> str | None:
    """What the unit reads when its sealed PDF lists other cases than its Word form (which
    rows the PDF lacks or adds, and to send a matching sealed PDF); None when they agree."""
    if recommendation.pdf_attachment_id is None or recommendation.word_attachment_id is None:
        return None
    pdf = session.get(Attachment, recommendation.pdf_attachment_id)
    if pdf is None or not disagrees(pdf.agreement):
        return None
    assert pdf.agreement is not None
    return mismatch_problem(pdf.agreement).sender_text


RECEIPT_COVERED = ("pdf_waiting_for_word", "awaiting_word")
"""Problems the receipt's list of missing files already tells the sender."""


def sender_texts(stored: Sequence[object], *, covered: Sequence[str] = ()) -> list[str]:
    """The Chinese sender texts of stored problems that concern the sender, each once
    (those whose code is in `covered` are said elsewhere in the mail)."""
    problems = (Problem.from_json(item) for item in stored)
    texts = (problem.sender_text for problem in problems if problem.code not in covered)
    return list(dict.fromkeys(text for text in texts if text))


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
            submission_title=tidy(submission.title) or "",
            applicant=tidy(submission.applicant) or "",
            contact_name=tidy(submission.contact),
            unit=tidy(recommendation.unit) or "",
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
    suppressed: int = 0
    skipped_busy: bool = False  # another process was delivering (SQLite only)
    errors: list[str] = field(default_factory=list)

    @property
    def handled(self) -> int:
        """Rows this run settled one way or another."""
        return self.sent + self.retried + self.failed + self.suppressed


SENDABLE = ("pending", "unconfirmed")
"""Statuses a delivery run may send: new or retried mail, and unconfirmed mail's one resend."""


def _claim_next(session: Session, app: App, now: datetime, skip: set[int]) -> Outbox | None:
    query = (
        select(Outbox)
        .where(col(Outbox.status).in_(SENDABLE), col(Outbox.next_attempt_at) <= now)
        .order_by(col(Outbox.next_attempt_at), col(Outbox.id))
        .limit(1)
    )
    if skip:
        query = query.where(col(Outbox.id).not_in(skip))
    if is_postgres(app.engine):
        query = query.with_for_update(skip_locked=True)
    return session.exec(query).first()


def _to_outgoing(app: App, row: Outbox, cc: list[str]) -> OutgoingMail:
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
        cc=cc,
        rendered=RenderedMail(subject=row.subject, text=row.text_body, html=row.html_body),
        in_reply_to=row.in_reply_to,
        references=row.references,
        auto_submitted=cast(AutoSubmitted, row.auto_submitted),
        attachments=attachments,
    )


def _is_connection_failure(exc: DeliveryError) -> bool:
    """Whether the failure is about the server or the link, not about this one message.

    A 4xx reply to this message (450, 451, 452) is the message's own; no code (refused
    connection, timeout, lost link), 421 (closing) or a refused login is the server's.
    """
    if exc.permanent:
        return False
    return exc.code is None or exc.code == 421 or exc.code >= 500


def deliver(app: App, *, limit: int | None = None) -> DeliveryReport:
    """Send what the outbox holds over one connection, one claimed row at a time.

    A 4xx reply retries that mail later with back-off, a 5xx fails it for good; a mail the
    server did not confirm is resent once, later; a lost server stops the run (the row waits
    with back-off, the rest stay queued untouched).
    """
    report = DeliveryReport()
    with Session(app.engine) as probe:
        waiting = probe.exec(
            select(Outbox.id).where(
                col(Outbox.status).in_(SENDABLE), col(Outbox.next_attempt_at) <= app.clock()
            )
        ).first()
    if waiting is None:
        return report
    if is_postgres(app.engine):
        # Rows are locked one by one (FOR UPDATE SKIP LOCKED): instances share the work.
        return _deliver_all(app, report, limit)
    # SQLite has no row locks: a lease keeps a hand-run `intake deliver` and a running
    # `intake run` from sending the same row twice.
    try:
        with held_lease(app.engine, "deliver", clock=app.clock, ttl=DELIVERY_LEASE):
            return _deliver_all(app, report, limit)
    except LeaseBusyError:
        report.skipped_busy = True
        return report


def _deliver_all(app: App, report: DeliveryReport, limit: int | None) -> DeliveryReport:
    skip: set[int] = set()
    try:
        with app.transport.connect() as sender:
            while limit is None or report.handled < limit:
                if not _deliver_next(app, sender, skip, report):
                    break
    except DeliveryError as exc:  # connect() itself failed (e.g. the mail folder)
        report.errors.append(str(exc))
        logger.warning("delivery stopped: %s", exc)
    return report


def _deliver_next(app: App, sender: Sender, skip: set[int], report: DeliveryReport) -> bool:
    """Claim, send and settle one row; False when nothing is left or the server is gone."""
    postgres = is_postgres(app.engine)
    with Session(app.engine, expire_on_commit=False) as session:
        now = app.clock()
        row = _claim_next(session, app, now, skip)
        if row is None:
            return False
        assert row.id is not None
        skip.add(row.id)
        if any(_is_suppressed(session, address) for address in row.recipients):
            row.status = "suppressed"
            row.last_error = "address suppressed after a bounce"
            report.suppressed += 1
            session.add(row)
            session.commit()
            return True
        cc = [address for address in row.cc if not _is_suppressed(session, address)]
        if not postgres:
            # SQLite: end the read transaction before the slow part; a snapshot held across
            # the send could not be upgraded to write if another writer committed meanwhile.
            session.commit()
        go_on = True
        try:
            message = build_message(
                _to_outgoing(app, row, cc),
                from_address=app.settings.smtp.from_address,
                message_id=row.mail_message_id,
                date=now,
            )
            sender.send(message, [*row.recipients, *cc])
        except DeliveryError as exc:
            if exc.unconfirmed:
                _record_unconfirmed(app, row, exc, now, report)
            else:
                go_on = not _is_connection_failure(exc)
                _record_failure(app, row, exc, now, report, count_attempt=go_on)
        except IntakeError as exc:  # e.g. a missing attachment in the archive
            _record_failure(app, row, DeliveryError(str(exc), permanent=True), now, report)
        else:
            row.status = "sent"
            row.sent_at = now
            row.attempts += 1
            row.last_error = None
            report.sent += 1
        session.add(row)
        session.commit()
    if row.status == "sent":
        app.log(f"mail sent: {row.kind} to {', '.join(row.recipients)} ({row.mail_message_id})")
    return go_on


def _record_failure(
    app: App,
    row: Outbox,
    exc: DeliveryError,
    now: datetime,
    report: DeliveryReport,
    *,
    count_attempt: bool = True,
) -> None:
    """A 5xx or too many tries: failed; otherwise wait with exponential back-off.

    A lost server does not count as an attempt of this mail (an outage must not fail mail
    for good), but still moves the row back so that one stuck mail cannot block the queue.
    """
    if count_attempt:
        row.attempts += 1
    row.last_error = str(exc)[:2000]
    report.errors.append(f"{', '.join(row.recipients)}: {exc}")
    if exc.permanent or row.attempts >= app.settings.smtp.max_attempts:
        row.status = "failed"
        report.failed += 1
        app.log(f"mail failed for good: {row.kind} to {', '.join(row.recipients)}: {exc}")
        return
    backoff = app.settings.smtp.retry_base * (2 ** max(row.attempts - 1, 0))
    row.next_attempt_at = now + min(backoff, MAX_BACKOFF)
    report.retried += 1


def _record_unconfirmed(
    app: App, row: Outbox, exc: DeliveryError, now: datetime, report: DeliveryReport
) -> None:
    """The server may have the mail: count the attempt; resend once, later; then stop.

    The run goes on with the next row (on a new connection): the lost reply says nothing
    about the other mail.
    """
    row.attempts += 1
    row.last_error = str(exc)[:2000]
    recipients = ", ".join(row.recipients)
    report.errors.append(f"{recipients}: {exc}")
    if row.status == "unconfirmed":
        row.status = "failed"
        report.failed += 1
        logger.warning(
            "mail %s to %s not confirmed twice: failed, not sent again (a person checks "
            "whether it arrived)",
            row.mail_message_id,
            recipients,
        )
        return
    row.status = "unconfirmed"
    row.unconfirmed_at = now
    row.next_attempt_at = now + app.settings.smtp.resend_unconfirmed_after
    report.retried += 1
    logger.warning(
        "mail %s to %s not confirmed by the server (%s); sent once more at %s",
        row.mail_message_id,
        recipients,
        exc,
        row.next_attempt_at.isoformat(),
    )
