"""Everything after the ledger: parse an archived message, record it, pair, match, queue mail.

Each message is processed in its own transaction. A failure of the input itself (it cannot
be parsed) marks that message `needs_attention` with the reason and the next one goes on. A
transient failure (database lost, disk full, lock timeout: see `service.faults`) leaves the
message `pending` with its retry count and next try time; later polls try it again with
bounded back-off, and it is reported as an outage meanwhile, never made permanent. Because
every step reads only the archive and the database, `intake reprocess` can run it all again.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import IntakeError, ParseError
from parsers.classify import ATTACHMENT_MENTIONED_MISSING, QUESTION_NEEDS_REPLY
from parsers.mail import parse_message
from parsers.model import ParsedMessage, PdfForm, Problem, WordForm
from parsers.pdf_form import read_pdf_form
from parsers.word_form import read_word_form
from service.agreement import stored_reading
from service.bootstrap import App
from service.faults import RETRY_BOUND, next_try, one_line, transient_fault
from service.models import Attachment, CaseRow, Message, OcrJob, Recommendation
from service.ocr_jobs import held_receipt_details, queue_ocr
from service.outbox import queue_unit_receipt, suppress_bounced
from service.pairing import FormInput, PdfInput, place_forms
from service.reconcile import reconcile
from service.scans import merge_reading, record_pdf_form
from service.seals import apply_staff_seal

logger = logging.getLogger(__name__)

REPLY_REASON_CODES = frozenset({ATTACHMENT_MENTIONED_MISSING, QUESTION_NEEDS_REPLY})


@dataclass
class ProcessCounts:
    """How many pending messages ended processed, how many need a person, and whether the
    run stopped at a message that waits for a transient fault to pass (`deferred`)."""

    processed: int = 0
    needs_attention: int = 0
    deferred: int = 0

    @property
    def settled(self) -> int:
        """Messages this run brought to their outcome."""
        return self.processed + self.needs_attention


def process_pending(app: App, *, limit: int | None = None) -> ProcessCounts:
    """Process the archived messages not yet processed, oldest arrival first, in order.

    Order matters (a unit's later form supersedes its earlier one), so the run stops at the
    first message that fails transiently, and waits while the oldest pending message waits
    out its back-off (`retry_at`): the next run goes on from there, as an uninterrupted
    run would have.
    """
    counts = ProcessCounts()
    now = app.clock()
    with Session(app.engine) as session:
        pending = session.exec(
            select(col(Message.id), col(Message.sha256), col(Message.retry_at))
            .where(col(Message.status) == "pending")
            .order_by(col(Message.received_at), col(Message.id))
            .limit(limit)
        ).all()
    for message_pk, sha256, retry_at in pending:
        assert message_pk is not None
        if retry_at is not None and retry_at > now:
            counts.deferred += 1
            logger.info("message %s waits for its next try at %s", message_pk, retry_at)
            break
        status = process_message(app, message_pk, sha256=sha256)
        if status == "needs_attention":
            counts.needs_attention += 1
        elif status == "processed":
            counts.processed += 1
        elif status == "pending":
            counts.deferred += 1
            break
    return counts


def process_message(app: App, message_pk: int, *, sha256: str | None = None) -> str:
    """Process one archived message; returns its status (`pending` after a transient fault).

    `sha256` saves a query when the caller already read it from the ledger.
    """
    try:
        raw = app.archive.get(sha256 or _sha_of(app, message_pk))
        parsed = parse_message(raw)
        del raw  # the parsed message holds what is kept: a 50 MB message is not held twice
    except Exception as exc:
        fault = transient_fault(exc)
        if fault is not None:
            return _defer(app, message_pk, fault, exc)
        if isinstance(exc, ParseError | IntakeError):
            code = getattr(exc, "code", None) or "message_unreadable"
            return _mark_unreadable(app, message_pk, Problem(code, {"detail": str(exc)}))
        # a parser bug must not stop the batch: record it for staff
        logger.error("unexpected error parsing message %s:\n%s", message_pk, traceback.format_exc())
        return _mark_unreadable(
            app, message_pk, Problem("internal_error", {"detail": f"while parsing: {exc!r}"})
        )
    try:
        with Session(app.engine, expire_on_commit=False) as session:
            message = session.get(Message, message_pk)
            assert message is not None
            if message.status != "pending":
                return message.status
            _record_message(app, session, message, parsed)
            session.commit()
            status = message.status
        app.log(
            f"message {message.message_id or message_pk} from {message.sender}: "
            f"{message.kind}, {status}"
        )
        return status
    except Exception as exc:
        fault = transient_fault(exc)
        if fault is not None:
            return _defer(app, message_pk, fault, exc)
        logger.error("error recording message %s:\n%s", message_pk, traceback.format_exc())
        return _mark_unreadable(app, message_pk, Problem("record_failed", {"detail": str(exc)}))


def _defer(app: App, message_pk: int, fault: str, exc: BaseException) -> str:
    """Leave the message pending after a transient fault: count the try, set the next one.

    If even that cannot be written (the database is still away), the message simply stays
    pending as it was and the next poll tries it again.
    """
    reason = one_line(exc)
    now = app.clock()
    try:
        with Session(app.engine) as session:
            message = session.get(Message, message_pk)
            if message is None or message.status != "pending":
                return message.status if message is not None else "pending"
            message.retries += 1
            message.fault = fault
            message.fault_error = reason
            message.fault_since = message.fault_since or now
            message.retry_at = next_try(now, message.retries)
            session.add(message)
            session.commit()
            retries, retry_at = message.retries, message.retry_at
    except Exception as again:  # any failure here leaves it pending, as wanted
        logger.warning(
            "message %s: %s fault (%s); could not record the retry either (%s); "
            "it stays pending for the next poll",
            message_pk,
            fault,
            reason,
            one_line(again),
        )
        return "pending"
    lasting = " (a lasting outage)" if retries >= RETRY_BOUND else ""
    logger.warning(
        "message %s: %s fault (%s); left pending, try %d failed, next try at %s%s",
        message_pk,
        fault,
        reason,
        retries,
        retry_at.isoformat() if retry_at else "the next poll",
        lasting,
    )
    return "pending"


def _sha_of(app: App, message_pk: int) -> str:
    with Session(app.engine) as session:
        message = session.get(Message, message_pk)
        assert message is not None
        return message.sha256


def _mark_unreadable(app: App, message_pk: int, reason: Problem) -> str:
    try:
        return _write_unreadable(app, message_pk, reason)
    except Exception as exc:
        fault = transient_fault(exc)
        if fault is None:
            raise
        return _defer(app, message_pk, fault, exc)


def _write_unreadable(app: App, message_pk: int, reason: Problem) -> str:
    with Session(app.engine) as session:
        message = session.get(Message, message_pk)
        assert message is not None
        message.status = "needs_attention"
        message.problems = [*message.problems, reason.as_json()]
        message.processed_at = app.clock()
        message.late = message.received_at > app.settings.campaign.deadline
        session.add(message)
        session.commit()
    app.log(f"message {message_pk} needs attention: {reason.message}")
    return "needs_attention"


def _record_message(app: App, session: Session, message: Message, parsed: ParsedMessage) -> None:
    """Write what parsing found, place the forms, match rows and queue the mail it causes."""
    deadline = app.settings.campaign.deadline
    message.kind = parsed.kind
    message.sender = parsed.sender[:320]
    message.sender_name = parsed.sender_name[:300]
    message.reply_to = parsed.reply_to
    message.subject = parsed.subject
    message.in_reply_to = parsed.in_reply_to
    message.references = parsed.references
    message.no_reply = parsed.no_reply
    message.late = message.received_at > deadline
    message.message_id = parsed.message_id or message.message_id
    problems = [problem.as_json() for problem in parsed.problems]
    needs_person = False
    details: dict[str, object] = {
        "automated": parsed.automated,
        "needs_reply": parsed.needs_reply,
        "reply_reasons": [
            problem.code for problem in parsed.problems if problem.code in REPLY_REASON_CODES
        ],
    }
    if parsed.bounce is not None:
        details["bounce"] = {
            "failed_recipients": list(parsed.bounce.failed_recipients),
            "status": parsed.bounce.status,
        }
    if parsed.links:
        details["links"] = [
            {
                "provider": link.provider,
                "filename": link.filename,
                "url": link.url,
                "expires": link.expires,
            }
            for link in parsed.links
        ]
    forms: list[FormInput] = []
    pdfs: list[PdfInput] = []
    rows: list[Attachment] = []
    awaiting_ocr: list[str] = []  # scans whose reading the receipt waits for
    for position, attachment in enumerate(parsed.attachments):
        app.archive.put(attachment.data, durable=False)
        row = Attachment(
            message_pk=message.id or 0,
            position=position,
            filename=attachment.filename,
            safe_name=attachment.safe_name,
            content_type=attachment.content_type[:200],
            sha256=attachment.sha256,
            size=attachment.size,
            kind=attachment.kind,
            container=attachment.container,
        )
        rows.append(row)
        if attachment.kind == "form_word":
            word = _read_word(attachment.data, attachment.filename, row)
            if word is None:
                needs_person = True
            session.add(row)
            session.flush()
            if word is not None:
                forms.append(FormInput(attachment=row, form=word))
        elif attachment.kind == "form_pdf":
            pdf = _read_pdf(attachment.data, attachment.filename, row)
            if pdf is not None and pdf.scanned and app.settings.ocr.enabled:
                pdf = _read_scan(app, session, pdf, row, awaiting_ocr)
            apply_staff_seal(session, row)  # staff's word wins over the check and OCR
            session.add(row)
            session.flush()
            if pdf is None:
                needs_person = True
            pdfs.append(PdfInput(attachment=row, form=pdf))
        else:
            session.add(row)
        problems.extend(row.problems)
    # no flush of its own here or below: the next query flushes (autoflush), so the message
    # row is written once, not once per step
    placement = place_forms(app, session, message, forms, pdfs)
    # pairing says more about a form without a unit (whose unit it was taken for): say it once
    resolved = {
        problem.params.get("file")
        for problem in placement.problems
        if problem.code in ("unit_from_history", "unit_unread")
    }
    problems = [
        item
        for item in problems
        if not (item["code"] == "no_unit" and item["params"].get("file") in resolved)
    ]
    problems.extend(problem.as_json() for problem in placement.problems)
    needs_person = needs_person or placement.needs_person
    # a scan OCR gave up on is read by a person
    needs_person = needs_person or any(item["code"] == "ocr_failed" for item in problems)
    reconcile(app, session, placement.touched)
    if message.kind == "large_attachment_link":
        needs_person = True
    if awaiting_ocr:  # the receipt waits for OCR (service.ocr_jobs queues it)
        session.flush()  # the touched recommendations' ids
        details.update(held_receipt_details(awaiting_ocr, placement.touched))
    message.problems = problems
    message.details = details
    message.status = "needs_attention" if needs_person else "processed"
    message.processed_at = app.clock()
    message.fault = message.fault_error = message.fault_since = message.retry_at = None
    session.add(message)
    if not awaiting_ocr:
        queue_unit_receipt(app, session, message, placement.touched, attachments=rows)
    if parsed.bounce is not None:
        suppress_bounced(app, session, message, list(parsed.bounce.failed_recipients))


def _read_word(data: bytes, filename: str, row: Attachment) -> WordForm | None:
    try:
        form = read_word_form(data, filename)
    except ParseError as exc:
        row.problems = [*row.problems, _read_failure(exc, "word_unreadable", filename)]
        return None
    row.problems = [*row.problems, *_of_file(form.problems, filename)]
    return form


def _read_pdf(data: bytes, filename: str, row: Attachment) -> PdfForm | None:
    try:
        form = read_pdf_form(data, filename)
    except ParseError as exc:
        row.problems = [*row.problems, _read_failure(exc, "pdf_unreadable", filename)]
        row.seal = "unknown"
        row.text_source = "none"
        return None
    record_pdf_form(row, form)
    row.problems = [*row.problems, *_of_file(form.problems, filename)]
    return form


def _read_scan(
    app: App, session: Session, form: PdfForm, row: Attachment, awaiting: list[str]
) -> PdfForm:
    """A scanned form PDF: with what OCR read when its content was read before (a later
    poll, `intake reprocess`); else its OCR is queued and its sha256 added to `awaiting`
    (the message's receipt waits for it). A scan OCR gave up on carries that problem."""
    reading = stored_reading(session, row.sha256)
    if reading is not None:
        form = merge_reading(form, reading)
        record_pdf_form(row, form)
        # as `apply_reading` records them when the reading comes after the message
        row.problems = [*row.problems, *_of_file(reading.problems, row.filename)]
        return form
    job = session.get(OcrJob, row.sha256)
    if job is not None and job.status == "failed":
        if job.problem is not None:
            failed = Problem.from_json(job.problem).with_params(file=row.filename)
            row.problems = [*row.problems, failed.as_json()]
        return form
    if job is None:
        queue_ocr(session, row.sha256, app.clock())
    awaiting.append(row.sha256)
    return form


def _read_failure(exc: ParseError, code: str, filename: str) -> dict[str, object]:
    """A reader's refusal as a stored problem of the file (the error's own code if it has one)."""
    return Problem(exc.code or code, {"file": filename, "detail": str(exc)}).as_json()


def _of_file(problems: list[Problem], filename: str) -> list[dict[str, object]]:
    """A form's problems, stored with the attachment's file name as their `file`."""
    return [problem.with_params(file=filename).as_json() for problem in problems]


def rebuild_all(app: App) -> ProcessCounts:
    """Forget everything derived from the archive and process every message again.

    Manual decisions, imported submissions and results, suppressions and the outbox stay;
    idempotency keys make sure nothing already queued is queued again.
    """
    with Session(app.engine) as session:
        session.execute(sa.delete(CaseRow))
        session.execute(sa.delete(Recommendation))
        session.execute(sa.delete(Attachment))
        session.execute(
            sa.update(Message)
            .where(col(Message.downloaded) == sa.true())
            .values(status="pending", problems=[], details={}, retry_at=None)
        )
        session.commit()
    return process_pending(app)
