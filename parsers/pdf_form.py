"""Read a recommendation form's PDF: text layer, scan detection, unit, case titles, seal check.

Pure: bytes in, `PdfForm` out. Hostile input (too many pages or objects, slow content,
decompression bombs) ends in a `Problem` on the result or a `ParseError`, never a hang.
"""

from __future__ import annotations

import io
import logging
import re
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from pypdf import PasswordType, PdfReader
from pypdf.generic import DictionaryObject

from config.errors import ParseError
from parsers.labels import SEAL_WORDS, UNIT_FIELD_LABELS, case_column_for
from parsers.model import CaseRow, PdfForm, Problem
from parsers.seal import Deadline, SealCheck, check_seal

#: A file with more indirect objects than this is refused before anything is parsed.
MAX_OBJECTS = 1_000_000
#: Pages whose stripped text is shorter than this count as having no text layer.
MIN_TEXT_CHARS = 10
#: Content streams bigger than this (decoded bytes) are not text-extracted.
MAX_CONTENT_BYTES = 20_000_000

_SEAL_MARKERS = re.compile(
    r"[（(]\s*(?:" + "|".join(r"\s*".join(word) for word in SEAL_WORDS) + r")\s*[）)]"
)
_CJK_GAP = re.compile(r"(?<=[\u3000-\u9fff\uff00-\uffef])\s+(?=[\u3000-\u9fff\uff00-\uffef])")
_MAX_PROBLEMS_FROM_LOG = 5
#: Rough width of a CJK header character in points, to find where a header cell ends.
_HEADER_CHAR_WIDTH = 10.5
#: How far right of the leftmost row number other row numbers may start, in points.
_ROW_NUMBER_SLACK = 16.0
_ROW_NUMBER = re.compile(r"\d{1,3}")


@dataclass(frozen=True)
class _Fragment:
    """A piece of text as the content stream shows it, with its position in page space."""

    x: float
    y: float
    text: str


def read_pdf_form(
    data: bytes, filename: str = "", *, max_pages: int = 200, time_budget_s: float = 20.0
) -> PdfForm:
    """Read a form PDF into a `PdfForm`; raise `ParseError` when the bytes are not a usable PDF.

    `encrypted=True` means the PDF is encrypted and the empty password does not open it.
    Only the first `max_pages` pages are read; the time budget bounds the whole call.
    """
    name = filename or "PDF"
    deadline = Deadline(time_budget_s)
    if b"%PDF" not in data[:1024]:
        raise ParseError(
            f"{name}: not a PDF (no %PDF header); ask the sender for the PDF file itself.",
            filename=filename,
        )
    with _captured_pypdf_complaints() as complaints:
        try:
            form = _read(data, name, max_pages=max_pages, deadline=deadline)
        except ParseError:
            raise
        except RecursionError as exc:
            raise ParseError(
                f"{name}: the PDF nests objects too deeply to read; ask for a re-saved copy.",
                filename=filename,
            ) from exc
        except Exception as exc:  # pypdf raises a wide range of types on damaged files
            raise ParseError(
                f"{name}: damaged or unreadable PDF ({type(exc).__name__}: {exc}); "
                "ask the sender to export it again.",
                filename=filename,
            ) from exc
    if complaints:
        shown = "; ".join(complaints[:_MAX_PROBLEMS_FROM_LOG])
        form.problems.append(Problem("pdf_irregular", {"file": name, "detail": shown}))
        if form.seal == "absent":
            # In a repaired file an image or drawing may have been lost or garbled.
            form.seal = "unknown"
            form.seal_evidence = (
                "No seal was found, but the PDF is damaged and needed repair, "
                "so part of it may not have been read."
            )
    return form


def _read(data: bytes, name: str, *, max_pages: int, deadline: Deadline) -> PdfForm:
    """Open, decrypt if possible, then read text and seal within the limits."""
    reader = PdfReader(io.BytesIO(data), strict=False)
    declared_objects = int(reader.trailer.get("/Size", 0))
    if declared_objects > MAX_OBJECTS:
        raise ParseError(
            f"{name}: declares {declared_objects:,} objects (limit {MAX_OBJECTS:,}); "
            "this is not a form, check it by hand.",
            filename=name,
        )
    problems: list[Problem] = []
    if reader.is_encrypted:
        opened = _open_with_empty_password(reader, name, problems)
        if not opened:
            return PdfForm(
                pages=_page_count_or_zero(reader),
                text="",
                scanned=False,
                seal="unknown",
                seal_evidence="The PDF is encrypted with a password, so its seal was not checked.",
                encrypted=True,
                problems=problems,
            )
    page_count = len(reader.pages)
    pages = [reader.pages[index] for index in range(min(page_count, max_pages))]
    if page_count > max_pages:
        problems.append(
            Problem("pdf_too_many_pages", {"file": name, "pages": page_count, "limit": max_pages})
        )
    page_texts: list[str] = []
    image_only_pages = 0
    titles: list[str] = []
    cases: list[CaseRow] = []
    for page_number, page in enumerate(pages, start=1):
        if deadline.passed():
            problems.append(
                Problem(
                    "pdf_time_budget",
                    {"file": name, "seconds": f"{deadline.seconds:g}", "page": page_number},
                )
            )
            break
        text, page_fragments = _page_text(page, page_number, problems)
        page_texts.append(text)
        cells = find_case_cells(page_fragments)
        titles.extend(row["title"] for row in cells if row.get("title"))
        cases.extend(case_rows(cells, first=len(cases) + 1))
        if len(text.strip()) < MIN_TEXT_CHARS and _has_images(page):
            image_only_pages += 1
    text = "\n".join(page_texts)
    has_text_layer = len(text.strip()) >= MIN_TEXT_CHARS
    scanned = not has_text_layer and image_only_pages > 0
    if has_text_layer and image_only_pages:
        problems.append(
            Problem(
                "pdf_partly_scanned",
                {"file": name, "scanned": image_only_pages, "pages": len(pages)},
            )
        )
    seal = _seal_or_unknown(reader, pages, deadline)
    problems.extend(seal.problems)
    return PdfForm(
        pages=page_count,
        text=text,
        scanned=scanned,
        seal=seal.seal,
        seal_evidence=seal.evidence,
        unit=find_unit(text),
        titles=titles,
        cases=cases,
        problems=problems,
    )


def case_rows(cells: Sequence[Mapping[Any, str]], *, first: int) -> list[CaseRow]:
    """Case rows from the cells of a case table (a text layer's or a scan's), numbered by
    their 序号 where it is a number, else by position; rows without a title are left out."""
    rows: list[CaseRow] = []
    for position, cell in enumerate(cells, start=first):
        title = cell.get("title", "").strip()
        if not title:
            continue
        number = cell.get("row", "")
        rows.append(
            CaseRow(
                row=int(number) if number.isdigit() else position,
                title=title,
                applicant=cell.get("applicant", "").strip(),
                category=cell.get("category") or None,
                ref=cell.get("ref") or None,
                rank=cell.get("rank") or None,
                note=cell.get("note") or None,
            )
        )
    return rows


def _open_with_empty_password(reader: PdfReader, name: str, problems: list[Problem]) -> bool:
    """Try the empty password (owner-only protection); record why when it does not open."""
    try:
        opened = reader.decrypt("") != PasswordType.NOT_DECRYPTED
    except Exception as exc:  # e.g. AES without a crypto library, or a malformed /Encrypt
        problems.append(
            Problem("pdf_encrypted", {"file": name, "detail": f"cannot be decrypted here: {exc}"})
        )
        return False
    if not opened:
        problems.append(
            Problem("pdf_encrypted", {"file": name, "detail": "protected by a password"})
        )
    return opened


def _page_count_or_zero(reader: PdfReader) -> int:
    """The page count of a PDF we cannot decrypt, when its page tree is still readable."""
    try:
        return len(reader.pages)
    except Exception:  # the page tree of an encrypted file may be unreadable
        return 0


def _seal_or_unknown(reader: PdfReader, pages: Sequence[Any], deadline: Deadline) -> SealCheck:
    """Run the seal check; a failure inside it makes the answer `unknown`, not an error."""
    try:
        return check_seal(reader, pages, deadline)
    except RecursionError:
        return SealCheck("unknown", "The PDF nests objects too deeply for the seal check.")
    except Exception as exc:  # damaged objects met only by the seal check
        return SealCheck(
            "unknown",
            f"The seal check could not read part of the PDF ({type(exc).__name__}).",
            [Problem("pdf_seal_check_failed", {"detail": str(exc)})],
        )


def _page_text(page: Any, page_number: int, problems: list[Problem]) -> tuple[str, list[_Fragment]]:
    """Extract a page's text and its positioned fragments; damaged content gives no text."""
    fragments: list[_Fragment] = []

    def collect(text: str, cm: Any, tm: Any, font: Any, size: Any) -> None:
        if text.strip():
            x = float(tm[4]) * float(cm[0]) + float(cm[4])
            y = float(tm[5]) * float(cm[3]) + float(cm[5])
            fragments.append(_Fragment(x, y, text.strip()))

    try:
        contents = page.get_contents()
        if contents is not None and len(contents.get_data()) > MAX_CONTENT_BYTES:
            problems.append(Problem("pdf_content_too_big", {"page": page_number}))
            return "", []
        return page.extract_text(visitor_text=collect) or "", fragments
    except RecursionError:
        raise
    except Exception as exc:  # a page's damaged content should not lose the others
        problems.append(Problem("pdf_text_unreadable", {"page": page_number, "detail": str(exc)}))
        return "", []


def _has_images(page: Any) -> bool:
    """Whether a page's resources hold at least one image XObject (directly or in a form)."""
    resources = page.get("/Resources")
    resources = resources.get_object() if resources is not None else None
    if not isinstance(resources, DictionaryObject):
        return False
    xobjects = resources.get("/XObject")
    xobjects = xobjects.get_object() if xobjects is not None else None
    if not isinstance(xobjects, DictionaryObject):
        return False
    return any(
        reference.get_object().get("/Subtype") == "/Image" for reference in xobjects.values()
    )


def _spaced(label: str) -> str:
    """A regex for a label whose characters may be separated by spaces (联 系 人), any brackets."""
    brackets = {"(": "[(（]", ")": "[)）]"}
    return r"\s*".join(brackets.get(ch, re.escape(ch)) for ch in label)


_UNIT_LINE = re.compile(
    r"^\s*(?:"
    + "|".join(_spaced(label) for label in sorted(UNIT_FIELD_LABELS["unit"], key=len, reverse=True))
    + r")\s*[:：]?\s*(?P<value>.*)$"
)


def find_unit(text: str) -> str | None:
    """The recommending unit written after a 推荐单位 label, or None when the text has none."""
    for line in text.splitlines():
        match = _UNIT_LINE.match(line)
        if match is None:
            continue
        value = match.group("value")
        if _SEAL_MARKERS.match(value):
            continue  # "推荐单位（盖章）" is where the seal goes, not a name
        value = _SEAL_MARKERS.sub("", value)
        value = _CJK_GAP.sub("", value).strip(" \u3000:：")
        if value:
            return value
    return None


def find_case_titles(fragments: Sequence[_Fragment]) -> list[str]:
    """Case titles read from the case table by position: the title column, row by row."""
    return [row["title"] for row in find_case_cells(fragments) if row.get("title")]


def find_case_cells(fragments: Sequence[_Fragment]) -> list[dict[str, str]]:
    """The case table read by position: per row (top first) the text of each column it
    has a header for (`title`, `applicant`, `category`, `ref`, ...)."""
    title_header = next((f for f in fragments if case_column_for(f.text) == "title"), None)
    if title_header is None:
        return []
    # every piece of text on the header line bounds a column, even one whose header is
    # split over two lines ("案例类" / "别") and so is not recognised
    headers = sorted(
        (f for f in fragments if abs(f.y - title_header.y) < 12 and f.x >= title_header.x),
        key=lambda f: f.x,
    )
    below = [f for f in fragments if f.y < title_header.y - 5]
    numbers = [f for f in below if f.x < title_header.x and _ROW_NUMBER.fullmatch(f.text)]
    if not numbers:
        return []
    number_column_right = min(f.x for f in numbers) + _ROW_NUMBER_SLACK
    # The table ends where text that is not a row number appears in the row-number column.
    table_end = max(
        (f.y for f in below if f.x < number_column_right and not _ROW_NUMBER.fullmatch(f.text)),
        default=float("-inf"),
    )
    row_anchors = [f for f in numbers if f.x < number_column_right and f.y > table_end]
    if not row_anchors:
        return []
    cells: list[dict[str, str]] = [{} for _ in row_anchors]
    left = max(anchor.x for anchor in row_anchors) + _ROW_NUMBER_SLACK / 2
    for position, header in enumerate(headers):
        column = case_column_for(header.text)
        header_end = header.x + _HEADER_CHAR_WIDTH * len(header.text.replace(" ", ""))
        following = headers[position + 1] if position + 1 < len(headers) else None
        right = (header_end + following.x) / 2 if following else float("inf")
        if column is not None:
            for index, text in _column_text(below, row_anchors, table_end, left, right).items():
                cells[index].setdefault(column, text)
        left = right
    order = sorted(range(len(row_anchors)), key=lambda index: -row_anchors[index].y)
    return [
        {**cells[index], "row": row_anchors[index].text}
        for index in order
        if any(cells[index].values())
    ]


def _column_text(
    below: Sequence[_Fragment],
    row_anchors: Sequence[_Fragment],
    table_end: float,
    left: float,
    right: float,
) -> dict[int, str]:
    """The text between `left` and `right` of each table row, by the row's anchor index."""
    pieces: dict[int, list[_Fragment]] = {index: [] for index in range(len(row_anchors))}
    for fragment in below:
        if fragment.y <= table_end or not left <= fragment.x < right:
            continue
        nearest = min(
            range(len(row_anchors)), key=lambda index: abs(row_anchors[index].y - fragment.y)
        )
        pieces[nearest].append(fragment)
    texts: dict[int, str] = {}
    for index, found in pieces.items():
        ordered = sorted(found, key=lambda f: (-round(f.y), f.x))
        text = "".join(fragment.text for fragment in ordered).strip()
        if text:
            texts[index] = text
    return texts


@contextmanager
def _captured_pypdf_complaints() -> Iterator[list[str]]:
    """Collect what pypdf logs or warns while reading, so it lands in `problems`, not stderr."""
    complaints: list[str] = []

    class _Collector(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            complaints.append(record.getMessage())

    pypdf_logger = logging.getLogger("pypdf")
    collector = _Collector(level=logging.WARNING)
    pypdf_logger.addHandler(collector)
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield complaints
        complaints.extend(str(warning.message) for warning in caught)
    finally:
        pypdf_logger.removeHandler(collector)
