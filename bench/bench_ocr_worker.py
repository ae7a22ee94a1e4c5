"""Time the OCR worker process (`service.ocr_worker`: pipe, JSON events, the time and memory
watch) against `parsers.ocr.ocr_pdf` in this process on the same scans: the plumbing's
overhead. Also the worker's start (engine load) and its memory: resident and reserved.

The scans are the sample mailbox's two image-only forms. The two runs alternate document by
document, so a busy shared machine slows both alike. Target: the worker within 1.1× of
`ocr_pdf`.

Run from the repository root:  .venv/bin/python -m bench.bench_ocr_worker [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from config.settings import SAMPLES, Settings
from parsers.mail import parse_message
from parsers.ocr import ocr_pdf, rapidocr_engine
from service.ocr_worker import OcrWorker

TARGET_RATIO = 1.1


def sample_scans() -> list[tuple[str, bytes]]:
    """The image-only form PDFs of the sample mailbox."""
    found = []
    for path in sorted((SAMPLES / "mailbox").glob("*.eml")):
        for item in parse_message(path.read_bytes()).attachments:
            if item.kind == "form_pdf" and b"/Font" not in item.data:
                found.append((item.filename, item.data))
    return found


def memory_of(pid: int) -> dict[str, float]:
    """VmRSS, VmHWM (peak resident) and VmPeak (peak reserved) of a process, in MB."""
    values = {}
    with open(f"/proc/{pid}/status", encoding="ascii") as status:
        for line in status:
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM", "VmPeak"):
                values[key] = int(value.split()[0]) / 1024
    return values


def main() -> None:
    """Start a worker, then alternate worker and in-process reads of each scan."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    options = parser.parse_args()
    scans = sample_scans()
    settings = Settings().ocr
    worker = OcrWorker(settings)
    began = time.perf_counter()
    worker.start()
    print(f"worker start (engine loaded): {time.perf_counter() - began:.2f} s")
    assert worker.pid is not None
    engine = rapidocr_engine()
    in_worker: list[float] = []
    in_process: list[float] = []
    pages = 0
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(options.repeat):
            for name, data in scans:
                path = Path(folder) / "scan.pdf"
                path.write_bytes(data)
                started = time.perf_counter()
                result = worker.read(path, filename=name)
                in_worker.append((time.perf_counter() - started) / max(result.pages, 1))
                started = time.perf_counter()
                reading = ocr_pdf(data, engine, max_pages=settings.max_pages, filename=name)
                in_process.append((time.perf_counter() - started) / max(reading.pages, 1))
                pages += result.pages
    memory = memory_of(worker.pid)
    worker.close()
    worker_page, process_page = statistics.median(in_worker), statistics.median(in_process)
    ratio = worker_page / process_page
    print(f"{len(scans)} scans x {options.repeat}: {pages} pages through the worker")
    print(f"worker   {worker_page:.2f} s/page (median)")
    print(f"ocr_pdf  {process_page:.2f} s/page (median, in this process)")
    print(f"ratio    {ratio:.2f} (target <= {TARGET_RATIO})")
    print(
        f"worker memory: {memory['VmRSS']:.0f} MB resident, {memory['VmHWM']:.0f} MB peak "
        f"resident, {memory['VmPeak']:.0f} MB peak reserved"
    )
    if ratio > TARGET_RATIO:
        raise SystemExit(f"the worker's overhead is over {TARGET_RATIO}x")


if __name__ == "__main__":
    main()
