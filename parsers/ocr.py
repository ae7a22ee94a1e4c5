"""Read a scanned form: page images in, text boxes out, boxes rebuilt into lines, table cells
and the form's fields (unit, case rows, date, where the 盖章 label is).

Pure: bytes and images in, dataclasses out; no files, no database, no settings, no network.
The OCR engine sits behind `OcrEngine` (one method: an image in, text boxes out) so a second
engine can be added; `rapidocr_engine()` loads RapidOCR with the models bundled in its wheel
only. The service runs the engine in a worker process of its own (`service.ocr_worker`).

How the layout is read (`read_scan`): a scan is slightly rotated, so the page's skew is
taken from the slope of the engine's text boxes and every box is turned level first. The
case table is found by its header words (序号 / 案例名称 / 申报单位 / …); its column and
row borders are where no text crosses (the ruling lines of the table), so a title that
wraps over three lines inside its cell comes back as one title.
"""

from __future__ import annotations

import functools
import importlib.metadata
import io
import itertools
import math
import re
import statistics
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import date
from pathlib import Path
from typing import Any, Final, Protocol

from PIL import Image
from pypdf import PdfReader

from config.errors import ParseError
from parsers.labels import (
    CASE_COLUMN_LABELS,
    SEAL_WORDS,
    UNIT_FIELD_LABELS,
    CaseColumn,
    case_column_for,
    unit_field_for,
)
from parsers.model import CaseRow, Problem, Seal
from parsers.pdf_form import case_rows
from parsers.seal import find_red_round_mark
from parsers.word_form import parse_date

#: Resolution pages are rendered at for OCR; 200 dpi reads 10.5 pt table text reliably.
DEFAULT_DPI: Final = 200
#: A rendered page never holds more pixels than this (a poster-sized page is scaled down).
MAX_PAGE_PIXELS: Final = 24_000_000
#: Long side, in pixels, the engine works at (RapidOCR's own default is 2000).
ENGINE_MAX_SIDE: Final = 2400
#: Skews beyond this (degrees) are not a slightly rotated scan: the boxes are kept as found.
MAX_SKEW_DEGREES: Final = 6.0


@dataclass(frozen=True)
class TextBox:
    """One piece of text the engine found, with its box in page pixels and its confidence.

    `angle` is the slope of the text's baseline in degrees (positive: falling to the right,
    in image coordinates); the engine's quadrilateral gives it, hand-built boxes leave it 0.
    """

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0
    angle: float = 0.0


@dataclass(frozen=True)
class PageBoxes:
    """What the engine found on one page, with the page's size in the same pixels."""

    width: int
    height: int
    boxes: tuple[TextBox, ...]


@dataclass(frozen=True)
class LabelSpot:
    """Where a label sits: its page (1-based) and its box as fractions of the page (0..1)."""

    page: int
    x0: float
    y0: float
    x1: float
    y1: float


class OcrEngine(Protocol):
    """An OCR engine: loaded once, then one page image (grayscale) in, text boxes out."""

    name: str

    def read(self, image: Image.Image) -> list[TextBox]:
        """The text boxes found on one page image, in that image's pixels."""
        ...


@dataclass
class ScanReading:
    """What a scanned form says, as read by OCR."""

    engine: str
    pages: int  # pages read (at most the page cap)
    page_texts: list[str]  # the rebuilt lines of each page, joined by newlines
    unit: str | None = None
    cases: list[CaseRow] = field(default_factory=list)
    signed_on: date | None = None
    seal_label: LabelSpot | None = None  # where 推荐单位（盖章）/ 盖章 is
    seal: Seal | None = None  # a red round seal near the label: present; else None (not judged)
    problems: list[Problem] = field(default_factory=list)

    @property
    def text(self) -> str:
        """All pages' text, pages separated by a blank line."""
        return "\n\n".join(self.page_texts)

    @property
    def reads_as_form(self) -> bool:
        """Whether the scan holds a whole form: the unit and a case table."""
        return bool(self.unit) and bool(self.cases)

    def as_json(self) -> dict[str, Any]:
        """A JSON-ready dict (stored by the service, read back by `from_json`)."""
        return {
            "engine": self.engine,
            "pages": self.pages,
            "page_texts": list(self.page_texts),
            "unit": self.unit,
            "cases": [asdict(row) for row in self.cases],
            "signed_on": self.signed_on.isoformat() if self.signed_on else None,
            "seal_label": asdict(self.seal_label) if self.seal_label else None,
            "seal": self.seal,
            "problems": [problem.as_json() for problem in self.problems],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanReading:
        """The reading `as_json` stored."""
        signed_on = data.get("signed_on")
        spot = data.get("seal_label")
        return cls(
            engine=str(data.get("engine", "")),
            pages=int(data.get("pages", 0)),
            page_texts=[str(text) for text in data.get("page_texts", [])],
            unit=data.get("unit"),
            cases=[CaseRow(**row) for row in data.get("cases", [])],
            signed_on=date.fromisoformat(signed_on) if signed_on else None,
            seal_label=LabelSpot(**spot) if spot else None,
            seal=data.get("seal"),
            problems=[Problem.from_json(item) for item in data.get("problems", [])],
        )


# --- the engine ---------------------------------------------------------------------------

_RAPIDOCR_MODELS: Final = {
    "Det.model_path": "PP-OCRv6_det_small.onnx",
    "Rec.model_path": "PP-OCRv6_rec_small.onnx",
    "Cls.model_path": "ch_ppocr_mobile_v2.0_cls_mobile.onnx",
}


def rapidocr_settings(threads: int = -1) -> dict[str, Any]:
    """RapidOCR's parameters: every model by explicit path inside the wheel (nothing is
    looked up or downloaded), no angle classifier (scans are upright), only its errors logged."""
    import rapidocr

    models = Path(rapidocr.__file__).resolve().parent / "models"
    params: dict[str, Any] = {key: str(models / name) for key, name in _RAPIDOCR_MODELS.items()}
    missing = [path for path in params.values() if not Path(path).is_file()]
    if missing:
        raise RuntimeError(f"RapidOCR's bundled models are missing: {', '.join(missing)}")
    params.update(
        {
            "Global.model_root_dir": str(models),
            "Global.log_level": "error",  # a blank page is no warning of ours
            "Global.use_cls": False,
            "Global.max_side_len": ENGINE_MAX_SIDE,
            "EngineConfig.onnxruntime.intra_op_num_threads": threads,
            "EngineConfig.onnxruntime.inter_op_num_threads": 1,
        }
    )
    return params


class _RapidOcr:
    """RapidOCR behind the `OcrEngine` seam: grayscale page in, text boxes with slopes out."""

    def __init__(self, threads: int) -> None:
        import numpy
        import rapidocr
        from PIL import ImageDraw, ImageFont

        self._numpy = numpy
        self._ocr = rapidocr.RapidOCR(params=rapidocr_settings(threads))
        self.name = f"rapidocr-{importlib.metadata.version('rapidocr')}"
        # load the detection and recognition models now, not on the first real page
        warm = Image.new("L", (360, 80), 255)
        ImageDraw.Draw(warm).text((10, 10), "OCR 2025", fill=0, font=ImageFont.load_default(48))
        self.read(warm)

    def read(self, image: Image.Image) -> list[TextBox]:
        """The text boxes found on one page image, in that image's pixels."""
        pixels = self._numpy.asarray(image.convert("RGB"))
        output: Any = self._ocr(pixels, use_cls=False)
        boxes = getattr(output, "boxes", None)
        if boxes is None:
            return []
        found = []
        for quad, text, score in zip(boxes, output.txts, output.scores, strict=False):
            points = [(float(x), float(y)) for x, y in quad]
            xs, ys = [x for x, _ in points], [y for _, y in points]
            (top_left, top_right, bottom_right, bottom_left) = points[:4]
            slopes = [
                math.atan2(top_right[1] - top_left[1], top_right[0] - top_left[0]),
                math.atan2(bottom_right[1] - bottom_left[1], bottom_right[0] - bottom_left[0]),
            ]
            found.append(
                TextBox(
                    text=str(text),
                    x0=min(xs),
                    y0=min(ys),
                    x1=max(xs),
                    y1=max(ys),
                    score=float(score),
                    angle=math.degrees(sum(slopes) / 2),
                )
            )
        return found


@functools.cache
def rapidocr_engine(threads: int = -1) -> OcrEngine:
    """RapidOCR on ONNX Runtime with the models inside its wheel; never downloads anything.

    Loaded once per process (and per thread count): later calls return the same engine.
    `threads` is ONNX Runtime's thread count for one page (-1: one per core).
    """
    return _RapidOcr(threads)


# --- pages --------------------------------------------------------------------------------


def render_pages(
    data: bytes,
    *,
    max_pages: int,
    dpi: int = DEFAULT_DPI,
    problems: list[Problem] | None = None,
    filename: str = "",
) -> list[Image.Image]:
    """The first `max_pages` pages of a PDF as RGB images (pypdfium2).

    Raises `ParseError` (code `pdf_unreadable` or `pdf_encrypted`) when the bytes do not
    open as a PDF with pages. A page bigger than `MAX_PAGE_PIXELS` at `dpi` is rendered
    smaller, and more pages than `max_pages` are left unread; both are noted in `problems`.
    """
    import pypdfium2

    name = filename or "PDF"
    if b"%PDF" not in data[:1024]:
        raise ParseError(
            f"{name}: not a PDF (no %PDF header)", filename=filename, code="pdf_unreadable"
        )
    try:
        document = pypdfium2.PdfDocument(data)
    except pypdfium2.PdfiumError as exc:
        raise _unopenable(data, name, filename, exc) from exc
    notes = problems if problems is not None else []
    try:
        page_count = len(document)
        if page_count == 0:
            raise ParseError(
                f"{name}: the PDF has no pages", filename=filename, code="pdf_unreadable"
            )
        if page_count > max_pages:
            notes.append(
                Problem(
                    "pdf_too_many_pages", {"file": name, "pages": page_count, "limit": max_pages}
                )
            )
        images = []
        for index in range(min(page_count, max_pages)):
            page = document[index]
            try:
                width_pt, height_pt = page.get_size()
                scale = dpi / 72
                if width_pt <= 0 or height_pt <= 0:
                    raise ParseError(
                        f"{name}: page {index + 1} has no size",
                        filename=filename,
                        code="pdf_unreadable",
                    )
                pixels = width_pt * height_pt * scale * scale
                if pixels > MAX_PAGE_PIXELS:
                    scale *= math.sqrt(MAX_PAGE_PIXELS / pixels) * 0.995  # PDFium rounds up
                    notes.append(
                        Problem(
                            "ocr_page_too_large",
                            {
                                "file": name,
                                "page": index + 1,
                                "width_cm": round(width_pt / 72 * 2.54),
                                "height_cm": round(height_pt / 72 * 2.54),
                            },
                        )
                    )
                bitmap = page.render(scale=scale)
                images.append(bitmap.to_pil().convert("RGB"))
            finally:
                page.close()
        return images
    except pypdfium2.PdfiumError as exc:
        raise ParseError(f"{name}: {exc}", filename=filename, code="pdf_unreadable") from exc
    finally:
        document.close()


def _unopenable(data: bytes, name: str, filename: str, error: Exception) -> ParseError:
    """Why PDFium could not open a PDF, in words: encrypted, without pages, or damaged
    (PDFium says "password" for some page-less files too, so pypdf is asked)."""
    try:
        reader = PdfReader(io.BytesIO(data), strict=False)
        if reader.is_encrypted:
            return ParseError(
                f"{name}: encrypted with a password", filename=filename, code="pdf_encrypted"
            )
        if len(reader.pages) == 0:
            return ParseError(
                f"{name}: the PDF has no pages", filename=filename, code="pdf_unreadable"
            )
    except Exception:  # pypdf raises many types on damaged files; PDFium's word stands
        pass
    return ParseError(f"{name}: {error}", filename=filename, code="pdf_unreadable")


def ocr_input(page: Image.Image) -> Image.Image:
    """The page as the engine should see it: its red channel as grayscale, which lets the
    text under a red seal through without erasing dark text."""
    if page.mode == "L":
        return page
    return page.convert("RGB").getchannel("R")


def ocr_page(page: Image.Image, engine: OcrEngine) -> PageBoxes:
    """One rendered (RGB) page through the engine: its red channel in, its text boxes out."""
    return PageBoxes(page.width, page.height, tuple(engine.read(ocr_input(page))))


def judge_seal(page: Image.Image, label: LabelSpot) -> Seal | None:
    """`present` when a red round seal lies near the 盖章 label on this (RGB) page image."""
    width, height = page.size
    centre_x = (label.x0 + label.x1) / 2 * width
    centre_y = (label.y0 + label.y1) / 2 * height
    # a seal is about a fifth of the page wide and stamped over or beside its label
    reach = 0.26 * min(width, height)
    box = (
        max(0, round(centre_x - reach)),
        max(0, round(centre_y - reach)),
        min(width, round(centre_x + reach)),
        min(height, round(centre_y + reach)),
    )
    if box[2] - box[0] < 8 or box[3] - box[1] < 8:
        return None
    return "present" if find_red_round_mark(page.crop(box)) is not None else None


def ocr_pdf(
    data: bytes,
    engine: OcrEngine,
    *,
    max_pages: int = 3,
    filename: str = "",
    dpi: int = DEFAULT_DPI,
) -> ScanReading:
    """Render, OCR and read a scanned PDF in this process (tests, benchmarks; the service
    runs the same steps page by page in its worker process).

    A PDF that cannot be opened gives a reading of no pages with the problem that says why.
    """
    problems: list[Problem] = []
    try:
        images = render_pages(
            data, max_pages=max_pages, dpi=dpi, problems=problems, filename=filename
        )
    except ParseError as exc:
        code = exc.code or "pdf_unreadable"
        return ScanReading(
            engine=engine.name,
            pages=0,
            page_texts=[],
            problems=[Problem(code, {"file": filename or "PDF", "detail": str(exc)})],
        )
    reading = read_scan([ocr_page(image, engine) for image in images], engine=engine.name)
    reading.problems[:0] = problems
    if reading.seal_label is not None:
        reading.seal = judge_seal(images[reading.seal_label.page - 1], reading.seal_label)
    return reading


# --- layout: boxes to lines -----------------------------------------------------------------


@dataclass
class _Box:
    """A text box turned level (page skew removed), with the engine's box kept for output."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    source: TextBox

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2

    @property
    def cy(self) -> float:
        return (self.y0 + self.y1) / 2

    @property
    def width(self) -> float:
        return self.x1 - self.x0

    @property
    def height(self) -> float:
        return self.y1 - self.y0


def page_skew(boxes: Sequence[TextBox]) -> float:
    """The page's rotation in degrees: the median slope of its long text boxes."""
    long_ones = [
        box.angle
        for box in boxes
        if (box.x1 - box.x0) >= 4 * max(box.y1 - box.y0, 1.0) and len(box.text.strip()) >= 4
    ]
    slopes = long_ones if len(long_ones) >= 3 else [box.angle for box in boxes if box.angle]
    if not slopes:
        return 0.0
    skew = statistics.median(slopes)
    return skew if abs(skew) <= MAX_SKEW_DEGREES else 0.0


def _level_boxes(page: PageBoxes) -> list[_Box]:
    """The page's boxes turned about the page centre so that its text lines run level."""
    skew = math.radians(page_skew(page.boxes))
    cos_a, sin_a = math.cos(skew), math.sin(skew)
    centre_x, centre_y = page.width / 2, page.height / 2
    level = []
    for box in page.boxes:
        if not box.text.strip():
            continue
        dx, dy = (box.x0 + box.x1) / 2 - centre_x, (box.y0 + box.y1) / 2 - centre_y
        new_x = centre_x + dx * cos_a + dy * sin_a
        new_y = centre_y - dx * sin_a + dy * cos_a
        width, height = _unrotated_size(box)
        level.append(
            _Box(
                text=box.text.strip(),
                x0=new_x - width / 2,
                y0=new_y - height / 2,
                x1=new_x + width / 2,
                y1=new_y + height / 2,
                source=box,
            )
        )
    return level


def _unrotated_size(box: TextBox) -> tuple[float, float]:
    """The width and height of the text itself, from its upright bounding box and its slope."""
    outer_w, outer_h = box.x1 - box.x0, box.y1 - box.y0
    angle = math.radians(abs(box.angle))
    cos_a, sin_a = math.cos(angle), math.sin(angle)
    denominator = cos_a * cos_a - sin_a * sin_a
    if angle < 1e-4 or denominator <= 0.5:
        return outer_w, outer_h
    width = (outer_w * cos_a - outer_h * sin_a) / denominator
    height = (outer_h * cos_a - outer_w * sin_a) / denominator
    return max(width, 0.5 * outer_w), max(height, 0.3 * outer_h)


def _lines(boxes: Iterable[_Box]) -> list[list[_Box]]:
    """Boxes grouped into lines (each line left to right, lines top to bottom): a box joins
    the line whose centre lies within half a text height of its own centre."""
    lines: list[list[_Box]] = []
    centres: list[float] = []
    for box in sorted(boxes, key=lambda item: item.cy):
        for index in range(len(lines) - 1, max(-1, len(lines) - 4), -1):
            height = max(box.height, statistics.median(item.height for item in lines[index]))
            if abs(box.cy - centres[index]) <= 0.5 * height:
                lines[index].append(box)
                centres[index] = statistics.fmean(item.cy for item in lines[index])
                break
        else:
            lines.append([box])
            centres.append(box.cy)
    order = sorted(range(len(lines)), key=lambda index: centres[index])
    return [sorted(lines[index], key=lambda item: item.x0) for index in order]


_CJK: Final = r"\u2e80-\u9fff\u3000-\u303f\uff00-\uffef"
_GAP_NEXT_TO_CJK: Final = re.compile(rf"(?<=[{_CJK}])\s+|\s+(?=[{_CJK}])")


def squeeze(text: str) -> str:
    """Text with the spaces OCR puts next to Chinese characters removed (数 字科技 → 数字科技);
    a space between two Latin words or numbers stays."""
    return re.sub(r"\s{2,}", " ", _GAP_NEXT_TO_CJK.sub("", text)).strip()


def _join_wrapped(pieces: Sequence[str]) -> str:
    """Lines of one cell as one text: no space at a wrap, except between two Latin words."""
    text = ""
    for raw in pieces:
        piece = raw.strip()
        if not piece:
            continue
        if (
            text
            and text[-1].isascii()
            and text[-1].isalpha()
            and piece[0].isascii()
            and piece[0].isalpha()
        ):
            text += " "
        text += piece
    return squeeze(text)


def _line_text(line: Sequence[_Box]) -> str:
    return squeeze(" ".join(box.text for box in line))


# --- layout: the case table -------------------------------------------------------------------


_ALL_HEADER_LABELS: Final = sorted(
    {label for labels in CASE_COLUMN_LABELS.values() for label in labels if len(label) > 1}
    - {"no", "no."},
    key=len,
    reverse=True,
)
_HEADER_WORDS: Final = re.compile("|".join(re.escape(label) for label in _ALL_HEADER_LABELS))
_ROW_NUMBER: Final = re.compile(r"\d{1,3}")
_NUMBER_LOOKALIKES: Final = str.maketrans(
    {"l": "1", "I": "1", "|": "1", "i": "1", "O": "0", "o": "0"}
)
_LEADING_ROW_NUMBER: Final = re.compile(r"^(\d{1,3})[.、\s]+(\S.*)$")
_TABLE_ENDERS: Final = ("推荐意见", "推荐单位", "盖章", "公章", "注:", "注：", "说明")


def _column_of(text: str) -> CaseColumn | None:
    """The case column a header cell names; one misread character in a header of four or
    more (案例类別) is forgiven."""
    folded = unicodedata.normalize("NFKC", text).replace(" ", "")
    column = case_column_for(folded)
    if column is not None or len(folded) < 4:
        return column
    for name, labels in CASE_COLUMN_LABELS.items():
        for label in labels:
            if (
                len(label) == len(folded)
                and sum(a != b for a, b in zip(label, folded, strict=True)) == 1
            ):
                return name
    return None


def _row_number(text: str) -> int | None:
    folded = unicodedata.normalize("NFKC", text).strip().rstrip(".、").translate(_NUMBER_LOOKALIKES)
    return int(folded) if _ROW_NUMBER.fullmatch(folded) else None


@dataclass
class _Header:
    """One header cell of the case table: its column (None: a header we do not read) and box."""

    column: CaseColumn | None
    x0: float
    y0: float
    x1: float
    y1: float

    @property
    def cx(self) -> float:
        return (self.x0 + self.x1) / 2


@dataclass
class _Table:
    """The case table's columns on one page: the header cells and the borders between them."""

    headers: list[_Header]
    borders: list[float]  # len(headers) - 1 x positions between neighbouring columns
    top: float  # where the rows start (the header's bottom)
    number_edge: float | None = None  # right edge of the row numbers, when no 序号 header

    def column_index(self, x: float) -> int:
        return sum(1 for border in self.borders if x >= border)

    def row_label_right(self) -> float:
        """Text starting left of this is outside the table's cells (the 序号 header's right
        edge): row numbers are centred in their column, titles start past its ruling line."""
        for header in self.headers:
            if header.column == "row":
                return header.x1
        if self.number_edge is not None:
            return self.number_edge
        title = next(header for header in self.headers if header.column == "title")
        return title.x0 - 2 * (title.y1 - title.y0)

    def row_column_right(self) -> float:
        """The right border of the 序号 column (or of whatever lies left of the titles)."""
        for index, header in enumerate(self.headers):
            if header.column == "title":
                if index > 0:
                    return self.borders[index - 1]
                return self.number_edge if self.number_edge is not None else header.x0
        return self.borders[0] if self.borders else float("-inf")


def _header_height(header: _Header) -> float:
    return header.y1 - header.y0


def _split_by_words(box: _Box) -> list[_Box]:
    """A box holding several header words (序号案例名称申报单位) cut into one box per word,
    by each word's share of the characters."""
    matches = list(_HEADER_WORDS.finditer(box.text))
    if len(matches) < 2 or _column_of(box.text) is not None:
        return [box]
    per_char = box.width / max(len(box.text), 1)
    pieces = []
    for position, match in enumerate(matches):
        end = matches[position + 1].start() if position + 1 < len(matches) else len(box.text)
        start = match.start() if position else 0
        pieces.append(
            _Box(
                box.text[start:end].strip(),
                box.x0 + start * per_char,
                box.y0,
                box.x0 + end * per_char,
                box.y1,
                box.source,
            )
        )
    return pieces


def _find_headers(boxes: list[_Box]) -> tuple[list[_Header], set[int]] | None:
    """The case table's header cells, read from the boxes around the 案例名称 header; a
    header written over two lines (案例类 / 别, 序 / 号) is joined first."""
    anchor = next((box for box in boxes if _column_of(box.text) == "title"), None)
    if anchor is None:
        pairs = _stacked_pairs(boxes, boxes)
        anchor_pair = next((pair for pair in pairs if _column_of(pair[2]) == "title"), None)
        if anchor_pair is None:
            return None
        anchor = _merged(anchor_pair[0], anchor_pair[1])
    reach = 1.6 * anchor.height
    band = [
        index for index, box in enumerate(boxes) if anchor.cy - reach <= box.cy <= anchor.cy + reach
    ]
    headers: list[_Header] = []
    used: set[int] = set()
    band_boxes = [boxes[index] for index in band]
    for upper, lower, text in _stacked_pairs(band_boxes, band_boxes):
        column = _column_of(text)
        if column is None or column == _column_of(upper.text):
            continue
        upper_index = band[band_boxes.index(upper)]
        lower_index = band[band_boxes.index(lower)]
        if upper_index in used or lower_index in used:
            continue
        merged = _merged(upper, lower)
        headers.append(_Header(column, merged.x0, merged.y0, merged.x1, merged.y1))
        used.update((upper_index, lower_index))
    for index in band:
        box = boxes[index]
        if index in used:
            continue
        column = _column_of(box.text)
        if column is not None:
            headers.append(_Header(column, box.x0, box.y0, box.x1, box.y1))
            used.add(index)
        elif abs(box.cy - anchor.cy) <= 0.5 * anchor.height and _row_number(box.text) is None:
            # an unknown header on the header line still bounds its neighbours
            headers.append(_Header(None, box.x0, box.y0, box.x1, box.y1))
            used.add(index)
    headers.sort(key=lambda header: header.cx)
    return headers, used


def _stacked_pairs(uppers: Sequence[_Box], lowers: Sequence[_Box]) -> list[tuple[_Box, _Box, str]]:
    """Pairs of boxes one right under the other (overlapping columns, a small gap), with
    their joined text: a header cell written over two lines."""
    pairs = []
    for upper in uppers:
        for lower in lowers:
            if lower is upper or lower.cy <= upper.cy:
                continue
            gap = lower.y0 - upper.y1
            overlap = min(upper.x1, lower.x1) - max(upper.x0, lower.x0)
            if -0.5 * upper.height <= gap <= 0.8 * upper.height and overlap > 0.3 * min(
                upper.width, lower.width
            ):
                pairs.append((upper, lower, upper.text + lower.text))
    return pairs


def _merged(first: _Box, second: _Box) -> _Box:
    return _Box(
        first.text + second.text,
        min(first.x0, second.x0),
        min(first.y0, second.y0),
        max(first.x1, second.x1),
        max(first.y1, second.y1),
        first.source,
    )


def _emptiest(low: float, high: float, spans: Sequence[tuple[float, float]]) -> float:
    """The middle of the longest stretch between `low` and `high` crossed by the fewest spans:
    where a table's ruling line runs between the text of two cells."""
    if high - low < 2:
        return (low + high) / 2
    steps = max(1, int(high - low))
    counts = []
    for step in range(steps + 1):
        position = low + (high - low) * step / steps
        counts.append(sum(1 for start, end in spans if start < position < end))
    fewest = min(counts)
    best_start = best_length = run_start = 0
    run = 0
    for step, count in enumerate(counts):
        if count == fewest:
            if run == 0:
                run_start = step
            run += 1
            if run > best_length:
                best_start, best_length = run_start, run
        else:
            run = 0
    middle = best_start + (best_length - 1) / 2
    return low + (high - low) * middle / steps


def _shrunk_x(box: _Box) -> tuple[float, float]:
    margin = min(0.15 * box.height, 0.25 * box.width)
    return box.x0 + margin, box.x1 - margin


def _shrunk_y(box: _Box) -> tuple[float, float]:
    margin = 0.12 * box.height
    return box.y0 + margin, box.y1 - margin


def _column_borders(headers: Sequence[_Header], content: Sequence[_Box]) -> list[float]:
    """Between each two header cells, the x where no row's text crosses (the ruling line)."""
    borders = []
    spans = [_shrunk_x(box) for box in content]
    for left, right in itertools.pairwise(headers):
        near = [span for span in spans if span[1] > left.cx and span[0] < right.cx]
        if near:
            borders.append(_emptiest(left.cx, right.cx, near))
        else:
            borders.append((left.x1 + right.x0) / 2)
    return borders


def _table_end(boxes: Sequence[_Box], top: float, row_column_right: float, widest: float) -> float:
    """Where the case table ends: the first text below its header that starts in the row
    number column and is no row number (推荐意见：, 注：…), or that spans most of the table."""
    end = float("inf")
    for box in boxes:
        if box.cy <= top:
            continue
        text = unicodedata.normalize("NFKC", box.text)
        ends_table = (
            (
                box.x0 < row_column_right
                and _row_number(box.text) is None
                and not _LEADING_ROW_NUMBER.match(text)
            )
            or box.width >= 0.6 * widest
            or any(text.startswith(word) for word in _TABLE_ENDERS)
        )
        if ends_table:
            end = min(end, box.y0)
    return end


def _split_leading_numbers(boxes: list[_Box], row_column_right: float) -> list[_Box]:
    """Boxes where the engine ran a row number into its title ("1 基于…") cut in two."""
    result = []
    for box in boxes:
        match = _LEADING_ROW_NUMBER.match(unicodedata.normalize("NFKC", box.text))
        if match and box.x0 < row_column_right < box.x1:
            per_char = box.width / max(len(box.text), 1)
            cut = box.x0 + per_char * len(match.group(1))
            result.append(_Box(match.group(1), box.x0, box.y0, cut, box.y1, box.source))
            result.append(_Box(match.group(2), cut + per_char, box.y0, box.x1, box.y1, box.source))
        else:
            result.append(box)
    return result


def _char_weight(char: str) -> float:
    return 0.55 if char.isascii() else 1.0


def _split_across_borders(box: _Box, table: _Table) -> list[tuple[int, _Box]]:
    """A box that runs over a column border (the engine joined two cells) cut at the border,
    each character going to the column its centre lies in."""
    first, last = table.column_index(box.x0), table.column_index(box.x1)
    if first == last or len(box.text) < 2:
        return [(table.column_index(box.cx), box)]
    weights = [_char_weight(char) for char in box.text]
    unit = box.width / sum(weights)
    pieces: dict[int, list[tuple[str, float, float]]] = {}
    position = box.x0
    for char, weight in zip(box.text, weights, strict=True):
        start, position = position, position + weight * unit
        pieces.setdefault(table.column_index((start + position) / 2), []).append(
            (char, start, position)
        )
    return [
        (
            column,
            _Box(
                "".join(char for char, _, _ in chars).strip(),
                chars[0][1],
                box.y0,
                chars[-1][2],
                box.y1,
                box.source,
            ),
        )
        for column, chars in sorted(pieces.items())
        if "".join(char for char, _, _ in chars).strip()
    ]


@dataclass
class _TableReading:
    """The case rows read off one page, the region they came from, and the columns used."""

    rows: list[dict[CaseColumn, str]]
    top: float
    bottom: float
    table: _Table
    used: set[int]


def _read_table(boxes: list[_Box], carried: _Table | None) -> _TableReading | None:
    """The case table of one page: header columns, rows anchored on their row numbers,
    each cell's lines joined into one text. `carried`: the columns of the previous page,
    for a table that goes on over a page break without repeating its header."""
    found = _find_headers(boxes)
    used: set[int] = set()
    fresh = found is not None and any(header.column == "title" for header in found[0])
    if found is not None and fresh:
        headers, used = found
        top = max(header.y1 for header in headers)
        borders = [(left.x1 + right.x0) / 2 for left, right in itertools.pairwise(headers)]
        table = _Table(headers, borders, top)
    elif carried is not None:
        top = float("-inf")
        table = _Table(carried.headers, carried.borders, top)
    else:
        return None
    below = [box for index, box in enumerate(boxes) if index not in used and box.cy > top]
    if fresh and not any(header.column == "row" for header in table.headers):
        title = next(header for header in table.headers if header.column == "title")
        numbers = [box for box in below if box.cx < title.x0 and _row_number(box.text) is not None]
        if numbers:  # no 序号 header: the row numbers themselves show where titles begin
            table.number_edge = max(box.x1 for box in numbers) + 0.2 * _header_height(title)
    widest = max(header.x1 for header in table.headers) - min(header.x0 for header in table.headers)
    end = _table_end(below, top, table.row_label_right(), widest)
    below = _split_leading_numbers([box for box in below if box.cy < end], table.row_column_right())
    if fresh:
        table.borders = _column_borders(table.headers, below)
    row_right = table.row_column_right()
    anchors = sorted(
        (box for box in below if box.cx < row_right and _row_number(box.text) is not None),
        key=lambda box: box.cy,
    )
    if not anchors:
        return _TableReading([], top, end, table, used)
    content = [box for box in below if box.cx >= row_right]
    title_index = next(
        index for index, header in enumerate(table.headers) if header.column == "title"
    )
    titles = [box for box in content if table.column_index(box.cx) == title_index]
    bands = _row_bands(anchors, content, titles, top, end)
    rows: list[dict[CaseColumn, str]] = []
    for anchor, (band_top, band_bottom) in zip(anchors, bands, strict=True):
        cells: dict[int, list[_Box]] = {}
        for box in content:
            if band_top <= box.cy < band_bottom:
                for column, piece in _split_across_borders(box, table):
                    cells.setdefault(column, []).append(piece)
        row: dict[CaseColumn, str] = {"row": str(_row_number(anchor.text))}
        for column_index, pieces in cells.items():
            name = table.headers[column_index].column
            if name is None or name == "row":
                continue
            text = _join_wrapped([_line_text(line) for line in _lines(pieces)])
            if text:
                row[name] = row.get(name, "") + text
        rows.append(row)
    bottom = bands[-1][1] if bands else end
    return _TableReading(rows, top, bottom, table, used)


def _row_bands(
    anchors: Sequence[_Box],
    content: Sequence[_Box],
    titles: Sequence[_Box],
    top: float,
    end: float,
) -> list[tuple[float, float]]:
    """Each row's top and bottom. Where row numbers sit at the top of their rows (Word's
    default), a row starts right above its number; where they sit in the middle, rows part
    where the fewest lines of text cross between two numbers. The last row ends where its
    text stops."""
    spans = [_shrunk_y(box) for box in content]
    line_height = statistics.median(box.height for box in [*anchors, *content])
    at_top = _numbers_at_row_tops(anchors, content, titles, line_height)
    borders = [top]
    for upper, lower in itertools.pairwise(anchors):
        low = max(upper.cy, lower.y0 - 0.9 * line_height) if at_top else upper.cy
        near = [span for span in spans if span[1] > low and span[0] < lower.cy]
        borders.append(_emptiest(low, lower.cy, near) if near else (low + lower.cy) / 2)
    last = anchors[-1]
    bottom = max(last.y1, borders[-1])
    for box in sorted(content, key=lambda item: item.y0):
        if box.cy < borders[-1] or box.y0 > end:
            continue
        if box.y0 > bottom + 0.9 * line_height:
            break
        bottom = max(bottom, box.y1)
    borders.append(min(end, bottom + 0.2 * line_height))
    return list(itertools.pairwise(borders))


def _numbers_at_row_tops(
    anchors: Sequence[_Box], content: Sequence[_Box], titles: Sequence[_Box], line_height: float
) -> bool:
    """Whether the row numbers are written at the top of their rows: nothing of the first
    row stands a line above its number, and every number with text around it has a title
    line level with it."""
    first = anchors[0]
    if any(box.cy < first.cy - 0.6 * line_height for box in content):
        return False
    # numbered blank rows after the last case have no title to be level with
    last_text = max((box.y1 for box in content), default=first.y1)
    written = [anchor for anchor in anchors if anchor.cy <= last_text + 0.5 * line_height]
    return all(
        any(abs(box.cy - anchor.cy) <= 0.35 * line_height for box in titles) for anchor in written
    )


def _spaced(label: str) -> str:
    brackets = {"(": "[(（]", ")": "[)）]"}
    return r"\s*".join(brackets.get(char, re.escape(char)) for char in label)


_UNIT_LABEL: Final = re.compile(
    r"^\s*(?P<label>"
    + "|".join(_spaced(label) for label in sorted(UNIT_FIELD_LABELS["unit"], key=len, reverse=True))
    + r")\s*(?P<marker>[(（]\s*(?:"
    + "|".join(SEAL_WORDS)
    + r")\s*[)）])?\s*[:：]?\s*(?P<rest>.*)$"
)
_SEAL_MARKER: Final = re.compile(r"[(（]\s*(?:" + "|".join(SEAL_WORDS) + r")\s*[)）]")
_SEAL_LABEL_ALONE: Final = re.compile(r"^[^，。,.]{0,8}(?:" + "|".join(SEAL_WORDS) + r")\s*[:：]?$")
_ANY_LABEL_START: Final = re.compile(
    "|".join(
        _spaced(label)
        for labels in UNIT_FIELD_LABELS.values()
        for label in sorted(labels, key=len, reverse=True)
        if len(label) > 1
    )
)


def _is_label(text: str) -> bool:
    folded = unicodedata.normalize("NFKC", text).strip()
    return unit_field_for(folded) is not None or bool(_ANY_LABEL_START.match(folded))


def _clean_unit(text: str) -> str | None:
    """A unit name as written after its label, or None when what is there is no name."""
    value = squeeze(_SEAL_MARKER.sub("", text)).strip(" :：_＿")
    if len(value) < 2 or parse_date(value) is not None or _is_label(value):
        return None
    if not any("\u4e00" <= char <= "\u9fff" or char.isalpha() for char in value):
        return None
    return value


def _find_unit(lines: Sequence[list[_Box]], excluded: set[int]) -> str | None:
    """The recommending unit, by its label: written in the label's own box, to its right on
    the same line (wrapping onto the lines below in a narrow cell), or right below it; the
    推荐单位（盖章）line is the last resort."""
    seal_line_values: list[str] = []
    flat = [box for line in lines for box in line]
    for line_number, line in enumerate(lines):
        for position, box in enumerate(line):
            if id(box) in excluded:
                continue
            match = _UNIT_LABEL.match(box.text)
            if match is None:
                continue
            is_seal_line = match.group("marker") is not None or any(
                word in match.group("label") for word in SEAL_WORDS
            )
            value = _clean_unit(match.group("rest"))
            value_boxes = [box]
            if value is None:
                value_boxes = []
                for neighbour in line[position + 1 :]:
                    if _is_label(neighbour.text):
                        break
                    value_boxes.append(neighbour)
                value = _clean_unit(" ".join(item.text for item in value_boxes))
            if value is not None and not is_seal_line:
                wrapped = _wrapped_lines(value_boxes[0], lines[line_number + 1 :], excluded)
                value = _clean_unit(_join_wrapped([value, *wrapped])) or value
            if value is None and not is_seal_line:
                value = _value_below(box, flat, excluded)
            if value is None:
                continue
            if is_seal_line:
                seal_line_values.append(value)
            else:
                return value
    return seal_line_values[0] if seal_line_values else None


def _wrapped_lines(first: _Box, following: Sequence[list[_Box]], excluded: set[int]) -> list[str]:
    """The lines a value wraps onto: right below it, starting where it starts, with no
    label of their own to their left."""
    texts: list[str] = []
    previous = first
    for line in following:
        below = next(
            (
                box
                for box in line
                if id(box) not in excluded
                and abs(box.x0 - first.x0) <= first.height
                and -0.2 * first.height <= box.y0 - previous.y1 <= 0.6 * first.height
            ),
            None,
        )
        if below is None or _is_label(below.text):
            break
        if any(box.x1 <= below.x0 + 1 and _is_label(box.text) for box in line):
            break
        texts.append(below.text)
        previous = below
    return texts


def _value_below(label: _Box, boxes: Sequence[_Box], excluded: set[int]) -> str | None:
    """The text right under a label (a form whose values sit beneath their labels)."""
    candidates = [
        box
        for box in boxes
        if id(box) not in excluded
        and box is not label
        and 0 <= box.y0 - label.y1 + 0.3 * label.height <= 1.5 * label.height
        and box.x1 > label.x0 - label.width
        and box.x0 < label.x1 + 3 * label.width
    ]
    for box in sorted(candidates, key=lambda item: (item.y0, abs(item.x0 - label.x0))):
        if _is_label(box.text):
            return None
        return _clean_unit(box.text)
    return None


def _seal_label_box(lines: Sequence[list[_Box]]) -> _Box | None:
    """The 推荐单位（盖章）label (or 盖章： alone), joined with a 推荐单位 box just left of it;
    the last one on the page, where the signature block is."""
    found = None
    for line in lines:
        for position, box in enumerate(line):
            text = unicodedata.normalize("NFKC", box.text).replace(" ", "")
            if not (_SEAL_MARKER.search(text) or _SEAL_LABEL_ALONE.match(text)):
                continue
            spot = box
            if position > 0 and _UNIT_LABEL.match(line[position - 1].text):
                spot = _merged(line[position - 1], box)
            found = spot
    return found


def _date_near(lines: Sequence[list[_Box]], label: _Box | None, excluded: set[int]) -> date | None:
    """The signing date: the one nearest below the seal label, else the last one written."""
    dated = []
    for line in lines:
        for box in line:
            if id(box) in excluded:
                continue
            found = parse_date(box.text)
            if found is not None:
                dated.append((box, found))
        if not any(parse_date(box.text) for box in line):
            found = parse_date(_line_text(line))  # a date the engine cut into pieces
            if found is not None:
                dated.append((line[0], found))
    if not dated:
        return None
    if label is not None:
        near = [
            (abs(box.cy - label.cy) + 0.3 * abs(box.cx - label.cx), found)
            for box, found in dated
            if box.cy >= label.y0 - 2 * label.height
        ]
        if near:
            return min(near, key=lambda item: item[0])[1]
    return dated[-1][1]


def _original_spot(
    page_number: int, page: PageBoxes, box: _Box, partner: Sequence[_Box]
) -> LabelSpot:
    """A label's place in the page as scanned (not levelled), as fractions of the page."""
    sources = [item.source for item in partner] or [box.source]
    return LabelSpot(
        page=page_number,
        x0=max(0.0, min(item.x0 for item in sources) / page.width),
        y0=max(0.0, min(item.y0 for item in sources) / page.height),
        x1=min(1.0, max(item.x1 for item in sources) / page.width),
        y1=min(1.0, max(item.y1 for item in sources) / page.height),
    )


def read_scan(pages: Sequence[PageBoxes], *, engine: str = "") -> ScanReading:
    """Rebuild the boxes of each page into lines and table cells and read the form from them."""
    page_texts: list[str] = []
    cases: list[CaseRow] = []
    unit: str | None = None
    signed_on: date | None = None
    seal_spot: LabelSpot | None = None
    carried: _Table | None = None
    for page_number, page in enumerate(pages, start=1):
        boxes = [piece for box in _level_boxes(page) for piece in _split_by_words(box)]
        lines = _lines(boxes)
        page_texts.append("\n".join(" ".join(squeeze(box.text) for box in line) for line in lines))
        table = _read_table(boxes, carried)
        in_table: set[int] = set()
        if table is not None:
            carried = table.table
            cases.extend(case_rows(table.rows, first=len(cases) + 1))
            in_table = {
                id(box)
                for index, box in enumerate(boxes)
                if index in table.used or table.top - 1 <= box.cy <= table.bottom
            }
        unit = unit or _find_unit(lines, in_table)
        label = _seal_label_box(lines)
        if label is not None:
            partner = [box for box in boxes if box is label] or [
                box
                for box in boxes
                if box.y0 >= label.y0 - 1
                and box.y1 <= label.y1 + 1
                and box.x0 >= label.x0 - 1
                and box.x1 <= label.x1 + 1
            ]
            seal_spot = _original_spot(page_number, page, label, partner)
        page_date = _date_near(lines, label, in_table)
        if page_date is not None and (label is not None or signed_on is None):
            signed_on = page_date
    return ScanReading(
        engine=engine,
        pages=len(pages),
        page_texts=page_texts,
        unit=unit,
        cases=cases,
        signed_on=signed_on,
        seal_label=seal_spot,
    )
