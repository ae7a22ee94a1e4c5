"""What a scanned form gives once OCR has read it: the unit and the rows for pairing, and
whether the sealed PDF lists the same cases as its Word form.

Two paths lead here and end in the same state. A message whose scan was already read (a
later poll, `intake reprocess`) is processed with the reading merged into the PDF's form
(`merge_reading`), so pairing treats the scan like a PDF with a text layer. A message
processed before its scan was read gets the reading afterwards from the OCR job
(`apply_reading`), which places the scan as processing would have. Pairing checks the unit
read from a scan against the known units before trusting it (`service.pairing`), and
`service.agreement` compares the PDF's rows with the Word form's.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import ParseError
from parsers.model import PdfForm, Seal
from parsers.ocr import ScanReading
from parsers.pdf_form import read_pdf_form
from service.agreement import check_agreement, remember_scan_rows
from service.bootstrap import App
from service.models import Attachment, Message, Recommendation
from service.pairing import PdfInput, place_forms
from service.reconcile import reconcile
from service.seals import apply_staff_seal

__all__ = [
    "PDF_TEXT_KEPT",
    "apply_reading",
    "check_agreement",
    "merge_reading",
    "record_pdf_form",
    "text_source_of",
]

PDF_TEXT_KEPT = 20_000
"""Characters of a PDF's text (its text layer, or what OCR read) kept for pairing evidence."""
PLACEMENT_PROBLEMS = ("pdf_waiting_for_word", "scan_unit_untrusted")
"""Problems pairing gives a PDF of a message; placed again, they are said again."""


def merge_reading(form: PdfForm, reading: ScanReading) -> PdfForm:
    """The scanned PDF's form with what OCR read filled in (unit, cases, titles, text, and
    the seal when OCR found one by the 盖章 label), so that pairing treats it like a PDF with
    a text layer. Used while processing a message whose scan was already read (a later poll,
    `intake reprocess`), and by `apply_reading`."""
    seal, evidence = form.seal, form.seal_evidence
    if reading.seal == "present" and form.seal != "present":
        page = reading.seal_label.page if reading.seal_label else 1
        seal = "present"
        evidence = f"OCR: a red round seal by the seal label on page {page}"
    known = {(problem.code, tuple(sorted(problem.params.items()))) for problem in form.problems}
    return replace(
        form,
        text=reading.text,
        unit=reading.unit or form.unit,
        cases=list(reading.cases),
        titles=[case.title for case in reading.cases],
        seal=seal,
        seal_evidence=evidence,
        problems=[
            *form.problems,
            *(
                problem
                for problem in reading.problems
                if (problem.code, tuple(sorted(problem.params.items()))) not in known
            ),
        ],
    )


def text_source_of(form: PdfForm) -> str:
    """Where a form PDF's text came from: `text` (its text layer), `ocr` (a scan, read), or
    `none` (a scan not read, or no text at all)."""
    if not form.text.strip():
        return "none"
    return "ocr" if form.scanned else "text"


def record_pdf_form(row: Attachment, form: PdfForm) -> None:
    """Write what a form PDF says (its form, a scan's reading merged in) on its row."""
    row.seal = form.seal
    row.scanned = form.scanned
    row.pdf_unit = form.unit
    row.pdf_text = form.text[:PDF_TEXT_KEPT]
    row.text_source = text_source_of(form)


def apply_reading(
    app: App, session: Session, attachment: Attachment, reading: ScanReading
) -> set[int]:
    """Record what OCR read on this attachment after its message was processed: place a
    lone scan by the unit read from it (or record the unit's recommendation from the scan,
    awaiting its Word form), check agreement with the Word form; returns the ids of the
    recommendations touched, whose receipts and matches the caller brings up to date.

    The end state is the one processing the message with the reading at hand gives; the
    caller commits.
    """
    message = session.get(Message, attachment.message_pk)
    if message is None:
        return set()
    merged = merge_reading(_pdf_form_of(app, attachment), reading)
    of_file = [
        problem.with_params(file=attachment.filename).as_json() for problem in merged.problems
    ]
    new_problems = [item for item in of_file if item not in attachment.problems]
    record_pdf_form(attachment, merged)
    apply_staff_seal(session, attachment)  # staff's word wins over what OCR judged
    remember_scan_rows(attachment.sha256, merged.cases if attachment.text_source == "ocr" else [])
    attachment.problems = [*attachment.problems, *new_problems]
    session.add(attachment)
    problems = [*message.problems, *new_problems]
    touched: list[Recommendation] = []
    if attachment.placed:
        holder = session.exec(
            select(Recommendation).where(
                col(Recommendation.pdf_attachment_id) == attachment.id,
                col(Recommendation.current) == sa.true(),
            )
        ).first()
        touched = [holder] if holder is not None else []
    else:
        problems = [item for item in problems if not _placement_problem_of(item, attachment)]
        placement = place_forms(app, session, message, [], [PdfInput(attachment, merged)])
        touched = placement.touched
        problems.extend(problem.as_json() for problem in placement.problems)
    message.problems = problems
    session.add(message)
    reconcile(app, session, touched)
    session.flush()
    return {recommendation.id for recommendation in touched if recommendation.id is not None}


def _placement_problem_of(item: dict[str, Any], attachment: Attachment) -> bool:
    params = item.get("params") or {}
    return item.get("code") in PLACEMENT_PROBLEMS and params.get("file") == attachment.filename


def _pdf_form_of(app: App, attachment: Attachment) -> PdfForm:
    """The PDF's form read again from the archive, as processing read it; when it cannot
    be read, what its row says."""
    try:
        return read_pdf_form(app.archive.get(attachment.sha256), attachment.filename)
    except (ParseError, OSError):
        return PdfForm(
            pages=0,
            text=attachment.pdf_text,
            scanned=bool(attachment.scanned),
            seal=_seal(attachment.seal),
            seal_evidence="",
        )


def _seal(value: str | None) -> Seal:
    return cast(Seal, value) if value in ("present", "absent", "unknown") else "unknown"
