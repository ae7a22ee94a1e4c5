"""Does a sealed PDF list the same cases as its Word form? The agreement check, kept on the
PDF's attachment row and brought up to date whenever a recommendation's Word or PDF changes.

A unit that corrects its Word form and resends the old sealed PDF is the case this catches.
The PDF's rows come from its text layer (read again from the archive, cached by content) or
from its scan's OCR reading (the `ocr_job` row of its content); the Word's rows are the
recommendation's rows. `check_agreement` is pure; `refresh_agreements` is called by
`service.reconcile` for the recommendations a change touched.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

from rapidfuzz import fuzz
from sqlmodel import Session, col, select

from parsers.model import CaseRow as FormRow
from parsers.normalize import normalize_title
from parsers.ocr import ScanReading
from parsers.pdf_form import read_pdf_form
from service.bootstrap import App
from service.models import Attachment, CaseRow, OcrJob, Recommendation

logger = logging.getLogger(__name__)

AGREE = 85.0
"""A Word row is on the PDF when a PDF row's title scores at least this (rapidfuzz, 0–100,
on normalised titles): OCR's misread character, a wrapped or shortened cell still agree."""
SHORTENED = 0.75
"""A title counts as the shortened form of another (scored by its best-matching part) only
when it keeps at least this share of the other's length: 智慧校园 is no 智慧校园应急通信系统."""

_ROWS_CACHE: OrderedDict[str, list[FormRow] | None] = OrderedDict()
"""The rows of form PDFs by content: text layers read again, scans' readings just applied."""
_ROWS_CACHE_SIZE = 256


def title_score(first: str, second: str) -> float:
    """How alike two case titles are (0–100): punctuation, 《》, spaces and line breaks do not
    count; a title the other merely shortens scores by its best-matching part."""
    left, right = normalize_title(first), normalize_title(second)
    if not left or not right:
        return 0.0
    score = fuzz.ratio(left, right)
    shorter, longer = sorted((len(left), len(right)))
    if shorter / longer >= SHORTENED:
        score = max(score, fuzz.partial_ratio(left, right))
    return float(score)


def check_agreement(
    word_rows: Sequence[FormRow], pdf_rows: Sequence[FormRow]
) -> dict[str, Any] | None:
    """`{rows_on_word, rows_on_pdf, rows_found, missing, extra}`: each Word row found on the
    PDF (title score ≥ `AGREE`, each PDF row used once, best pairs first); `missing` the Word
    rows not on the PDF as `{row, title, applicant}`, `extra` the titles of PDF rows not on the
    Word form. None when either side has no rows (nothing to compare)."""
    if not word_rows or not pdf_rows:
        return None
    pairs = sorted(
        (
            (title_score(word.title, pdf.title), word_index, pdf_index)
            for word_index, word in enumerate(word_rows)
            for pdf_index, pdf in enumerate(pdf_rows)
        ),
        key=lambda pair: (-pair[0], pair[1], pair[2]),
    )
    found_word: set[int] = set()
    found_pdf: set[int] = set()
    for score, word_index, pdf_index in pairs:
        if score < AGREE:
            break
        if word_index in found_word or pdf_index in found_pdf:
            continue
        found_word.add(word_index)
        found_pdf.add(pdf_index)
    return {
        "rows_on_word": len(word_rows),
        "rows_on_pdf": len(pdf_rows),
        "rows_found": len(found_word),
        "missing": [
            {"row": row.row, "title": row.title, "applicant": row.applicant}
            for index, row in enumerate(word_rows)
            if index not in found_word
        ],
        "extra": [row.title for index, row in enumerate(pdf_rows) if index not in found_pdf],
    }


def disagrees(agreement: dict[str, Any] | None) -> bool:
    """Whether a stored agreement says the PDF and the Word form list different cases."""
    return bool(agreement and (agreement.get("missing") or agreement.get("extra")))


def stored_reading(session: Session, sha256: str) -> ScanReading | None:
    """The OCR reading of a scan with this content, when its OCR is done."""
    job = session.get(OcrJob, sha256)
    if job is None or job.status != "done" or not job.reading:
        return None
    return ScanReading.from_json(job.reading)


def _cache(key: str, rows: list[FormRow] | None) -> list[FormRow] | None:
    _ROWS_CACHE[key] = rows
    _ROWS_CACHE.move_to_end(key)
    while len(_ROWS_CACHE) > _ROWS_CACHE_SIZE:
        _ROWS_CACHE.popitem(last=False)
    return rows


def remember_scan_rows(sha256: str, rows: Sequence[FormRow]) -> None:
    """The rows OCR just read on a scan, for the check that follows in the same process
    (the OCR job may record its reading after applying it)."""
    _cache(f"ocr:{sha256}", list(rows))


def pdf_rows(app: App, session: Session, attachment: Attachment) -> list[FormRow] | None:
    """The case rows a form PDF lists: read from its scan by OCR, or from its text layer;
    None when it has no text or cannot be read again."""
    if attachment.text_source == "none":
        return None
    if attachment.text_source == "ocr":
        reading = stored_reading(session, attachment.sha256)
        if reading is not None:
            return list(reading.cases)
        return _ROWS_CACHE.get(f"ocr:{attachment.sha256}")
    key = f"text:{attachment.sha256}"
    if key in _ROWS_CACHE:
        _ROWS_CACHE.move_to_end(key)
        return _ROWS_CACHE[key]
    try:
        rows: list[FormRow] | None = list(
            read_pdf_form(app.archive.get(attachment.sha256), attachment.filename).cases
        )
    except Exception as exc:  # an unreadable PDF is simply not checked
        logger.info("%s: rows not read again for the agreement check: %s", attachment.id, exc)
        rows = None
    return _cache(key, rows)


def word_rows(session: Session, recommendation: Recommendation) -> list[FormRow]:
    """The recommendation's rows as its Word form lists them."""
    return [
        FormRow(row=row.row, title=row.title, applicant=row.applicant)
        for row in session.exec(
            select(CaseRow)
            .where(col(CaseRow.recommendation_id) == recommendation.id)
            .order_by(col(CaseRow.row))
        ).all()
    ]


def refresh_agreements(
    app: App, session: Session, recommendations: Sequence[Recommendation]
) -> None:
    """Check again, for each current recommendation, whether its PDF agrees with its Word
    form, and store the result on the PDF (None while either is missing or has no rows)."""
    for recommendation in recommendations:
        if not recommendation.current or recommendation.pdf_attachment_id is None:
            continue
        pdf = session.get(Attachment, recommendation.pdf_attachment_id)
        if pdf is None:
            continue
        agreement = None
        if recommendation.word_attachment_id is not None:
            rows = pdf_rows(app, session, pdf)
            if rows:
                agreement = check_agreement(word_rows(session, recommendation), rows)
        if pdf.agreement != agreement:
            pdf.agreement = agreement
            session.add(pdf)


def rows_read_from_scan(session: Session, recommendation: Recommendation) -> bool:
    """Whether the recommendation's rows were read by OCR from a scanned form (it was
    recorded from its sealed PDF alone, and that PDF is a scan)."""
    if recommendation.word_attachment_id is not None or recommendation.pdf_attachment_id is None:
        return False
    pdf = session.get(Attachment, recommendation.pdf_attachment_id)
    return pdf is not None and pdf.text_source == "ocr"
