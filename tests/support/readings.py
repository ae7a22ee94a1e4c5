"""Real OCR readings of scanned forms for the tests of what a scan gives to pairing.

The engine (RapidOCR, its bundled models) is loaded once per test process and each scan is
read once, by content; a test then feeds the reading through the service as the OCR job
would: an `ocr_job` row that is done (the cached path, `ocr_done`) or `apply_reading`.
Skipped with a reason where the engine cannot be loaded (a failure under
INTAKE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from functools import cache

from sqlmodel import Session

from parsers.ocr import OcrEngine, ScanReading, ocr_pdf, rapidocr_engine
from service.bootstrap import App
from service.models import OcrJob
from tests.support.services import missing_service


@cache
def engine() -> OcrEngine:
    """RapidOCR, loaded once for the whole test process."""
    try:
        return rapidocr_engine()
    except Exception as exc:  # the engine or its models are missing here
        missing_service("RapidOCR", f"pip install -e '.[test]' ({exc})")
        raise


@cache
def _read(sha256: str, data: bytes) -> ScanReading:
    return ocr_pdf(data, engine())


def real_reading(data: bytes) -> ScanReading:
    """What OCR reads on this scanned PDF (read once per test process)."""
    return _read(hashlib.sha256(data).hexdigest(), data)


def ocr_done(app: App, data: bytes, now: datetime) -> ScanReading:
    """Record the scan as read (as the OCR job does when it finishes); its reading."""
    reading = real_reading(data)
    with Session(app.engine) as session:
        session.add(
            OcrJob(
                sha256=hashlib.sha256(data).hexdigest(),
                status="done",
                attempts=1,
                reading=reading.as_json(),
                pages=reading.pages,
                created_at=now,
                finished_at=now,
            )
        )
        session.commit()
    return reading
