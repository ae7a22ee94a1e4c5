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

from parsers.ocr import (
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
    engine = rapidocr_engine(arguments.threads)
    print(f"engine load: {time.perf_counter() - started:.1f} s ({engine.name})")

    stage_seconds: list[float] = []
    pages = 0
    for name, pdf in documents:
        for _ in range(arguments.repeat):
            started = time.perf_counter()
            reading = ocr_pdf(pdf, engine)
            elapsed = time.perf_counter() - started
            stage_seconds.append(elapsed / max(reading.pages, 1))
        pages += reading.pages
        print(
            f"  {name:<40} {reading.pages} p  {elapsed:6.2f} s  unit={reading.unit} "
            f"cases={len(reading.cases)} seal={reading.seal}"
        )

    stage_rss = peak_rss_mb()

    # the floor: RapidOCR itself, same settings, on the same pages rendered beforehand
    bare = rapidocr.RapidOCR(params=rapidocr_settings(arguments.threads))
    prepared = [
        numpy.asarray(ocr_input(page).convert("RGB"))
        for _, pdf in documents
        for page in render_pages(pdf, max_pages=3)
    ]
    bare(prepared[0], use_cls=False)  # load its models outside the timing
    floor_seconds: list[float] = []
    for _ in range(arguments.repeat):
        for pixels in prepared:
            started = time.perf_counter()
            bare(pixels, use_cls=False)
            floor_seconds.append(time.perf_counter() - started)

    stage = statistics.median(stage_seconds)
    floor = statistics.median(floor_seconds)
    ratio = stage / floor
    print(f"pages: {pages} × {arguments.repeat}")
    print(f"ocr_pdf:       median {stage:5.2f} s/page  max {max(stage_seconds):5.2f} s/page")
    print(
        f"bare engine:   median {floor:5.2f} s/page  max {max(floor_seconds):5.2f} s/page (floor)"
    )
    print(f"ratio: {ratio:.2f}× the floor (target ≤ {TARGET_RATIO}×)")
    print(f"peak RSS through ocr_pdf: {stage_rss:.0f} MB (engine loaded, all pages read)")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
