"""What a scanned form gives once OCR has read it: the unit and the rows for pairing, and
whether the sealed PDF lists the same cases as its Word form.

INTERFACE SKELETON: `service.ocr_jobs` (the OCR job) and `service.processing` call these;
the bodies are being built.
"""

from __future__ import annotations

from typing import Any

from sqlmodel import Session

from parsers.model import CaseRow, PdfForm
from parsers.ocr import ScanReading
from service.bootstrap import App
from service.models import Attachment


def merge_reading(form: PdfForm, reading: ScanReading) -> PdfForm:
    """The scanned PDF's form with what OCR read filled in (unit, cases, titles, text), so
    that pairing treats it like a PDF with a text layer. Used while processing a message
    whose scan was already read (a later poll, `intake reprocess`)."""
    raise NotImplementedError


def apply_reading(
    app: App, session: Session, attachment: Attachment, reading: ScanReading
) -> set[int]:
    """Record what OCR read on this attachment after its message was processed: place a
    lone scan by the unit read from it (or record the unit's recommendation from the scan,
    awaiting its Word form), check agreement with the Word form; returns the ids of the
    recommendations touched, whose receipts and matches the caller brings up to date."""
    raise NotImplementedError


def check_agreement(word_rows: list[CaseRow], pdf_rows: list[CaseRow]) -> dict[str, Any] | None:
    """`{rows_on_word, rows_found, missing[], extra[]}`: each Word row found on the PDF
    (fuzzy title score ≥ 85), and PDF rows missing from the Word form; None when the PDF has
    no rows to compare."""
    raise NotImplementedError
