"""Time `read_pdf_form` on a 20-page A4 scan (150 dpi, red seal on the last page) and the samples.

Run from the repository root:  .venv/bin/python -m bench.bench_pdf [--repeat N]
"""

from __future__ import annotations

import argparse
import io
import statistics
import time
from pathlib import Path

from PIL import Image, ImageDraw

from parsers.pdf_form import read_pdf_form

SAMPLE_FORMS = Path("/work/shared/samples/forms")
A4_AT_150_DPI = (1240, 1754)
SEAL_RED = (206, 30, 38)


def scanned_pdf(pages: int = 20) -> bytes:
    """An image-only PDF of A4 pages at 150 dpi with text-like lines, sealed on the last page."""
    images = []
    for number in range(1, pages + 1):
        page = Image.new("RGB", A4_AT_150_DPI, (248, 247, 244))
        draw = ImageDraw.Draw(page)
        for line in range(40):
            draw.text((120, 120 + 38 * line), f"page {number} line {line} " * 4, fill=(20, 20, 20))
        if number == pages:
            x, y, radius = 930, 1450, 170
            draw.ellipse(
                (x - radius, y - radius, x + radius, y + radius), outline=SEAL_RED, width=10
            )
            draw.regular_polygon((x, y, 50), 5, fill=SEAL_RED)
        images.append(page)
    buffer = io.BytesIO()
    images[0].save(
        buffer, format="PDF", resolution=150, save_all=True, append_images=images[1:], quality=80
    )
    return buffer.getvalue()


def timed(data: bytes, name: str, repeat: int) -> None:
    """Print the median and worst time of `repeat` reads, and the verdict."""
    durations = []
    form = None
    for _ in range(repeat):
        started = time.perf_counter()
        form = read_pdf_form(data, name)
        durations.append(time.perf_counter() - started)
    assert form is not None
    print(
        f"{name:<42} {len(data) / 1e6:6.2f} MB {form.pages:3d} p  "
        f"median {statistics.median(durations) * 1000:7.1f} ms  "
        f"max {max(durations) * 1000:7.1f} ms  seal={form.seal} scanned={form.scanned}"
    )


def main() -> None:
    """Build the synthetic scan, then time it and every sample form PDF."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=5)
    arguments = parser.parse_args()
    print("command: .venv/bin/python -m bench.bench_pdf --repeat", arguments.repeat)
    timed(scanned_pdf(), "synthetic 20-page scan (150 dpi)", arguments.repeat)
    for path in sorted(SAMPLE_FORMS.glob("*.pdf")):
        timed(path.read_bytes(), path.name, arguments.repeat)


if __name__ == "__main__":
    main()
