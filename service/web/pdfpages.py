"""A sealed PDF's pages as PNG images, rendered on the server (pypdfium2) and cached next to
the archive, so the browser never runs a PDF viewer to show staff what the unit sent."""

from __future__ import annotations

import io
import os
import tempfile
from pathlib import Path

import pypdfium2

from config.errors import ParseError
from service.archive import Archive

MAX_PAGES = 30
SCALE = 1.4  # about 100 dpi: readable, a few hundred KB a page


def _cache_dir(archive: Archive, sha256: str) -> Path:
    return archive.root / "pages" / sha256[:2] / sha256


def page_count(archive: Archive, sha256: str) -> int:
    """How many pages the PDF has (at most MAX_PAGES are shown); 0 when it cannot be read."""
    marker = _cache_dir(archive, sha256) / "count"
    try:
        return int(marker.read_text(encoding="ascii"))
    except (OSError, ValueError):
        pass
    try:
        document = pypdfium2.PdfDocument(archive.get(sha256))
    except (pypdfium2.PdfiumError, OSError):
        return 0
    count = min(len(document), MAX_PAGES)
    document.close()
    _write(marker, str(count).encode("ascii"))
    return count


def page_texts(archive: Archive, sha256: str) -> list[str]:
    """The text layer of each page (at most MAX_PAGES), as pdfium extracts it; [] when the
    PDF cannot be read."""
    try:
        document = pypdfium2.PdfDocument(archive.get(sha256))
    except (pypdfium2.PdfiumError, OSError):
        return []
    texts = []
    try:
        for index in range(min(len(document), MAX_PAGES)):
            textpage = document[index].get_textpage()
            texts.append(textpage.get_text_range().replace("\r\n", "\n").strip())
            textpage.close()
    except pypdfium2.PdfiumError:
        return []
    finally:
        document.close()
    return texts


def page_png(archive: Archive, sha256: str, number: int) -> bytes:
    """Page `number` (from 1) as PNG, from the cache or rendered now."""
    target = _cache_dir(archive, sha256) / f"{number}.png"
    try:
        return target.read_bytes()
    except OSError:
        pass
    try:
        document = pypdfium2.PdfDocument(archive.get(sha256))
        if not 1 <= number <= min(len(document), MAX_PAGES):
            raise ParseError(f"page {number}: the PDF has {len(document)} pages")
        image = document[number - 1].render(scale=SCALE).to_pil()
        document.close()
    except pypdfium2.PdfiumError as exc:
        raise ParseError(f"{sha256[:12]}: cannot render page {number}: {exc}") from exc
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", optimize=True)
    data = buffer.getvalue()
    _write(target, data)
    return data


def _write(target: Path, data: bytes) -> None:
    """Write atomically (a half-written cache file is never read)."""
    target.parent.mkdir(parents=True, exist_ok=True)
    descriptor, temporary = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
    with os.fdopen(descriptor, "wb") as handle:
        handle.write(data)
    os.replace(temporary, target)
