"""Read a scanned form: page images in, text boxes out, boxes rebuilt into lines, table cells
and the form's fields (unit, case rows, date, where the 盖章 label is).

Pure: bytes and images in, dataclasses out; no files, no database, no settings, no network.
The OCR engine sits behind `OcrEngine` (one method: an image in, text boxes out) so a second
engine can be added; `rapidocr_engine()` loads RapidOCR with the models bundled in its wheel
only. The service runs the engine in a worker process of its own (`service.ocr_worker`).

INTERFACE SKELETON: the shapes below are the contract between the OCR stage and the service;
bodies marked NotImplementedError are being built.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any, Protocol

from PIL import Image

from parsers.model import CaseRow, Problem, Seal


@dataclass(frozen=True)
class TextBox:
    """One piece of text the engine found, with its box in page pixels and its confidence."""

    text: str
    x0: float
    y0: float
    x1: float
    y1: float
    score: float = 1.0


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
        raise NotImplementedError

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ScanReading:
        """The reading `as_json` stored."""
        raise NotImplementedError


def rapidocr_engine() -> OcrEngine:
    """RapidOCR on ONNX Runtime with the models inside its wheel; never downloads anything."""
    raise NotImplementedError


def render_pages(data: bytes, *, max_pages: int, dpi: int = 200) -> list[Image.Image]:
    """The first `max_pages` pages of a PDF as RGB images (pypdfium2)."""
    raise NotImplementedError


def ocr_input(page: Image.Image) -> Image.Image:
    """The page as the engine should see it: its red channel as grayscale, which lets the
    text under a red seal through without erasing dark text."""
    raise NotImplementedError


def read_scan(pages: Sequence[PageBoxes], *, engine: str = "") -> ScanReading:
    """Rebuild the boxes of each page into lines and table cells and read the form from them."""
    raise NotImplementedError


def judge_seal(page: Image.Image, label: LabelSpot) -> Seal | None:
    """`present` when a red round seal lies near the 盖章 label on this (RGB) page image."""
    raise NotImplementedError


def ocr_pdf(data: bytes, engine: OcrEngine, *, max_pages: int = 3) -> ScanReading:
    """Render, OCR and read a scanned PDF in this process (tests, benchmarks; the service
    runs the same steps page by page in its worker process)."""
    raise NotImplementedError
