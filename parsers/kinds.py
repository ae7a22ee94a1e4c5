"""Which kind of attachment a file is, by content first and file name second.

A Word file is a form when its text reads like one; a PDF is the sealed form when its text
layer mentions the form, when it is a scan (the usual sealed copy), or, failing both, when
its name says so. An extension alone never makes a form, and nothing here ever raises.
"""

from __future__ import annotations

import io
import re
import unicodedata
import warnings
from typing import Final

from pypdf import PdfReader

from config.errors import ParseError
from parsers.labels import (
    APPLICATION_TITLE_WORD,
    CASE_COLUMN_LABELS,
    FORM_TITLE_WORD,
    SEAL_WORDS,
    UNIT_FIELD_LABELS,
)
from parsers.model import AttachmentKind
from parsers.safe_zip import ZIP_MAGIC
from parsers.word_form import OLE2_MAGIC, RTF_MAGIC, document_text

PDF_MAGIC: Final = b"%PDF"
PDF_MAGIC_WINDOW: Final = 1024
PDF_PAGES_READ: Final = 3
SCAN_TEXT_CHARACTERS: Final = 20
TITLE_REGION_CHARACTERS: Final = 300
FORM_SCORE_NEEDED: Final = 3

FORM_NAME_WORDS: Final = (FORM_TITLE_WORD, "推荐", *SEAL_WORDS)
OTHER_NAME_WORDS: Final = (
    APPLICATION_TITLE_WORD,
    "营业执照",
    "执照",
    "证书",
    "报告",
    "专利",
    "合同",
)
_FORM_BODY_WORDS: Final = (
    UNIT_FIELD_LABELS["unit"][0],
    UNIT_FIELD_LABELS["opinion"][0],
    "推荐案例",
    CASE_COLUMN_LABELS["ref"][0],
    *CASE_COLUMN_LABELS["title"][:2],
)
_PDF_FORM_WORDS: Final = (FORM_TITLE_WORD, UNIT_FIELD_LABELS["unit"][0])
_WORD_STREAM: Final = "WordDocument".encode("utf-16-le")
_RTF_HEX_ESCAPES: Final = re.compile(rb"(?:\\'[0-9a-fA-F]{2})+")
_RTF_UNICODE_ESCAPE: Final = re.compile(rb"\\u(-?\d{1,5})")


def _squeezed(text: str) -> str:
    folded = unicodedata.normalize("NFKC", text)
    return "".join(ch for ch in folded if not ch.isspace())


def _is_application(squeezed: str) -> bool:
    """Whether the text's title region names an application (申报书) rather than a form."""
    head = squeezed[:TITLE_REGION_CHARACTERS]
    return APPLICATION_TITLE_WORD in head and FORM_TITLE_WORD not in head


def looks_like_form_text(text: str) -> bool:
    """Whether document text reads like a recommendation form (title and typical labels)."""
    squeezed = _squeezed(text)
    if _is_application(squeezed):
        return False
    score = 2 if FORM_TITLE_WORD in squeezed[:TITLE_REGION_CHARACTERS] else 0
    score += 1 if score == 0 and FORM_TITLE_WORD in squeezed else 0
    score += sum(1 for word in dict.fromkeys(_FORM_BODY_WORDS) if word in squeezed)
    return score >= FORM_SCORE_NEEDED


def _name_says(filename: str) -> AttachmentKind | None:
    """What the file name alone suggests: a form, something else, or nothing."""
    name = _squeezed(filename)
    if any(word in name for word in OTHER_NAME_WORDS):
        return "other"
    if any(word in name for word in FORM_NAME_WORDS):
        return "form_pdf"
    return None


def _unreadable_kind(data: bytes, filename: str) -> AttachmentKind:
    """A document that cannot be read keeps the kind its name and magic bytes claim.

    So a damaged `推荐表.docx` or a truncated `推荐表（盖章）.pdf` reaches the form reader,
    which records why it cannot be read, instead of passing silently as "other".
    """
    if _name_says(filename) != "form_pdf":
        return "other"
    if data.find(PDF_MAGIC, 0, PDF_MAGIC_WINDOW) >= 0:
        return "form_pdf"
    word_named = filename.lower().endswith((".docx", ".doc", ".wps"))
    return "form_word" if word_named and data.startswith((ZIP_MAGIC, OLE2_MAGIC)) else "other"


def _legacy_word_text(data: bytes) -> str:
    """Text recoverable without a converter from an OLE2 .doc / WPS: its UTF-16 runs."""
    return data.decode("utf-16-le", "ignore") + data[1:].decode("utf-16-le", "ignore")


def _rtf_text(data: bytes) -> str:
    """Chinese text of an RTF: GBK hex escapes and \\uN escapes, roughly joined."""
    pieces = [
        bytes.fromhex(run.replace(b"\\'", b"").decode("ascii")).decode("gbk", "ignore")
        for run in _RTF_HEX_ESCAPES.findall(data)
    ]
    pieces += [chr(int(code) % 65536) for code in _RTF_UNICODE_ESCAPE.findall(data)]
    return "".join(pieces)


def _pdf_kind(data: bytes, filename: str) -> AttachmentKind:
    name_says = _name_says(filename)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted and not reader.decrypt(""):
            return "form_pdf" if name_says == "form_pdf" else "other"
        text = "".join(page.extract_text() or "" for page in list(reader.pages)[:PDF_PAGES_READ])
    squeezed = _squeezed(text)
    if not _is_application(squeezed) and any(word in squeezed for word in _PDF_FORM_WORDS):
        return "form_pdf"
    readable = sum(1 for ch in squeezed if ch.isalnum())
    if readable < SCAN_TEXT_CHARACTERS:
        return "other" if name_says == "other" else "form_pdf"
    return "form_pdf" if name_says == "form_pdf" and not _is_application(squeezed) else "other"


def _detect(data: bytes, filename: str) -> AttachmentKind:
    if data.startswith(ZIP_MAGIC):
        try:
            text = document_text(data, filename)
        except ParseError:
            return _unreadable_kind(data, filename)
        return "form_word" if looks_like_form_text(text) else "other"
    if data.startswith(OLE2_MAGIC):
        is_word = _WORD_STREAM in data
        return "form_word" if is_word and looks_like_form_text(_legacy_word_text(data)) else "other"
    if data.startswith(RTF_MAGIC):
        return "form_word" if looks_like_form_text(_rtf_text(data)) else "other"
    pdf_start = data.find(PDF_MAGIC, 0, PDF_MAGIC_WINDOW)
    if pdf_start >= 0:
        return _pdf_kind(data[pdf_start:], filename)
    return "other"


def detect_kind(data: bytes, filename: str) -> AttachmentKind:
    """Return `form_word`, `form_pdf` or `other` for one attachment; never raises."""
    try:
        return _detect(data, filename)
    except Exception:  # whatever a hostile file makes a library do, only its name can speak
        return _unreadable_kind(data, filename)
