"""Everything after the ledger: parse an archived message, record it, pair, match, queue mail.

Each message is processed in its own transaction. A failure marks that message
`needs_attention` with the reason and the next one goes on. Because every step reads only
the archive and the database, `intake reprocess` can run it all again.
"""

from __future__ import annotations

import logging
import traceback
from dataclasses import dataclass

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import IntakeError, ParseError
from parsers.mail import parse_message
from parsers.model import ParsedMessage, PdfForm, Problem, WordForm
from parsers.pdf_form import read_pdf_form
from parsers.word_form import read_word_form
from service.bootstrap import App
from service.models import Attachment, CaseRow, Message, Recommendation
from service.outbox import queue_unit_receipt, suppress_bounced
from service.pairing import FormInput, PdfInput, place_forms
from service.reconcile import reconcile

logger = logging.getLogger(__name__)

PDF_TEXT_KEPT = 20_000
"""Characters of a PDF's text layer kept for pairing evidence."""


@dataclass
class ProcessCounts:
    """How many pending messages ended processed and how many need a person."""

    processed: int = 0
    needs_attention: int = 0


def process_pending(app: App, *, limit: int | None = None) -> ProcessCounts:
    """Process every archived message not yet processed, oldest arrival first."""
    counts = ProcessCounts()
    with Session(app.engine) as session:
        pending = session.exec(
            select(col(Message.id), col(Message.sha256))
            .where(col(Message.status) == "pending")
            .order_by(col(Message.received_at), col(Message.id))
        ).all()
    for position, (message_pk, sha256) in enumerate(pending):
        if limit is not None and position >= limit:
            break
        assert message_pk is not None
        status = process_message(app, message_pk, sha256=sha256)
        if status == "needs_attention":
            counts.needs_attention += 1
        elif status == "processed":
            counts.processed += 1
    return counts


def process_message(app: App, message_pk: int, *, sha256: str | None = None) -> str:
    """Process one archived message; returns its final status.

    `sha256` saves a query when the caller already read it from the ledger.
    """
    try:
        raw = app.archive.get(sha256 or _sha_of(app, message_pk))
        parsed = parse_message(raw)
        del raw  # the parsed message holds what is kept: a 50 MB message is not held twice
    except (ParseError, IntakeError) as exc:
        code = getattr(exc, "code", None) or "message_unreadable"
        return _mark_unreadable(app, message_pk, Problem(code, {"detail": str(exc)}))
    except Exception as exc:  # a parser bug must not stop the batch: record it for staff
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
        logger.error("error recording message %s:\n%s", message_pk, traceback.format_exc())
        return _mark_unreadable(app, message_pk, Problem("record_failed", {"detail": str(exc)}))


def _sha_of(app: App, message_pk: int) -> str:
    with Session(app.engine) as session:
        message = session.get(Message, message_pk)
        assert message is not None
        return message.sha256


def _mark_unreadable(app: App, message_pk: int, reason: Problem) -> str:
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
    details: dict[str, object] = {}
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
    reconcile(app, session, placement.touched)
    if message.kind == "large_attachment_link":
        needs_person = True
    message.problems = problems
    message.details = details
    message.status = "needs_attention" if needs_person else "processed"
    message.processed_at = app.clock()
    session.add(message)
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
        return None
    row.seal = form.seal
    row.scanned = form.scanned
    row.pdf_unit = form.unit
    row.pdf_text = form.text[:PDF_TEXT_KEPT]
    row.problems = [*row.problems, *_of_file(form.problems, filename)]
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
            .values(status="pending", problems=[], details={})
        )
        session.commit()
    return process_pending(app)
