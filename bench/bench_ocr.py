"""Time OCR of scanned forms: `ocr_pdf` (render + red channel + OCR + layout + seal) per page,
against the floor, the bare RapidOCR call on the same pre-rendered pages; and peak RSS.

The scans are the ones the tests make (LibreOffice, aged, sealed; see tests/support/scans.py)
plus the sample scans when present. Target: `ocr_pdf` within 1.2× of the floor.

Run from the repository root:  .venv/bin/python -m bench.bench_ocr [--repeat N] [--threads T]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import time

import numpy
import rapidocr
from PIL import Image

from parsers.ocr import (
    OcrEngine,
    TextBox,
    ocr_input,
    ocr_pdf,
    rapidocr_engine,
    rapidocr_settings,
    render_pages,
)
from tests.support.scans import sample_scans, scans

TARGET_RATIO = 1.2


def peak_rss_mb() -> float:
    """This process's peak resident set size so far, in MB (Linux reports KB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


class TimedEngine:
    """The engine, with the seconds spent inside it counted: what `ocr_pdf` adds around it
    (rendering, red channel, layout, seal) is then measured in the very same run."""

    def __init__(self, engine: OcrEngine) -> None:
        self.engine = engine
        self.name = engine.name
        self.seconds = 0.0

    def read(self, image: Image.Image) -> list[TextBox]:
        started = time.perf_counter()
        try:
            return self.engine.read(image)
        finally:
            self.seconds += time.perf_counter() - started


def _time_bare(bare: rapidocr.RapidOCR, pages: list[numpy.ndarray]) -> float:
    """Seconds the bare engine takes over a document's pre-rendered pages."""
    started = time.perf_counter()
    for pixels in pages:
        bare(pixels, use_cls=False)
    return time.perf_counter() - started


def main() -> None:
    """Make (or load) the scans, then time the whole stage and the bare engine on them."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--threads", type=int, default=-1)
    arguments = parser.parse_args()
    print(
        "command: .venv/bin/python -m bench.bench_ocr --repeat",
        arguments.repeat,
        "--threads",
        arguments.threads,
    )
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.2f} at start")
    documents = [(scan.name, scan.pdf) for scan in scans()]
    documents += [(f"sample {name}", pdf) for name, pdf, _ in sample_scans()]

    started = time.perf_counter()
    engine = TimedEngine(rapidocr_engine(arguments.threads))
    print(f"engine load: {time.perf_counter() - started:.1f} s ({engine.name})")
    # the floor: RapidOCR itself, same settings, on the same pages rendered beforehand
    bare = rapidocr.RapidOCR(params=rapidocr_settings(arguments.threads))
    prepared = {
        name: [
            numpy.asarray(ocr_input(page).convert("RGB")) for page in render_pages(pdf, max_pages=3)
        ]
        for name, pdf in documents
    }
    bare(next(iter(prepared.values()))[0], use_cls=False)  # load its models outside the timing

    # The machine is shared: each document's stage and floor runs alternate, so that a
    # burst of load elsewhere hits both, and the ratio is taken document by document.
    stage_per_page: list[float] = []
    floor_per_page: list[float] = []
    ratios: list[float] = []
    around: list[float] = []
    pages = 0
    for name, pdf in documents:
        for attempt in range(arguments.repeat):
            stage_first = attempt % 2 == 0
            if not stage_first:
                floor = _time_bare(bare, prepared[name])
            engine.seconds = 0.0
            started = time.perf_counter()
            reading = ocr_pdf(pdf, engine)
            stage = time.perf_counter() - started
            around.append((stage - engine.seconds) / max(reading.pages, 1))
            if stage_first:
                floor = _time_bare(bare, prepared[name])
            count = max(reading.pages, 1)
            stage_per_page.append(stage / count)
            floor_per_page.append(floor / count)
            ratios.append(stage / floor)
        pages += reading.pages
        print(
            f"  {name:<36} {reading.pages} p  ocr_pdf {stage:6.2f} s  bare {floor:6.2f} s  "
            f"unit={reading.unit} cases={len(reading.cases)} seal={reading.seal}"
        )
    stage_rss = peak_rss_mb()

    print(f"pages: {pages} × {arguments.repeat}")
    print(
        f"ocr_pdf:     median {statistics.median(stage_per_page):5.2f} s/page  "
        f"max {max(stage_per_page):5.2f} s/page"
    )
    print(
        f"bare engine: median {statistics.median(floor_per_page):5.2f} s/page  "
        f"max {max(floor_per_page):5.2f} s/page (the floor)"
    )
    print(
        f"ratio: median {statistics.median(ratios):.2f}× the floor, "
        f"range {min(ratios):.2f}–{max(ratios):.2f} (target ≤ {TARGET_RATIO}×)"
    )
    print(
        f"outside the engine (render, red channel, layout, seal): median "
        f"{statistics.median(around):.2f} s/page, max {max(around):.2f} s/page"
    )
    print(f"peak RSS: {stage_rss:.0f} MB (both engines loaded, all pages read)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
