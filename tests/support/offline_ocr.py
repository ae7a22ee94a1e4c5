"""Read one scanned PDF with the real OCR engine in a process where the network is forbidden.

Run as `python -m tests.support.offline_ocr FILE.pdf`: an audit hook ends the process
(exit code 3, the event on stderr) the moment anything resolves a name or opens a
connection; otherwise the reading is printed as JSON. Tests also run it under `unshare -n`.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "socket.sendto",
        "urllib.Request",
        "http.client.connect",
    }
)
REFUSED_EXIT = 3


def _refuse_network(event: str, arguments: tuple[Any, ...]) -> None:
    if event in NETWORK_EVENTS:
        sys.stderr.write(f"network use refused: {event} {arguments!r}\n")
        sys.stderr.flush()
        os._exit(REFUSED_EXIT)  # an exception could be caught and retried by the library


def main() -> None:
    """Guard the process, then OCR the PDF named on the command line."""
    sys.addaudithook(_refuse_network)
    from parsers.ocr import ocr_pdf, rapidocr_engine

    reading = ocr_pdf(Path(sys.argv[1]).read_bytes(), rapidocr_engine(), max_pages=3)
    print(json.dumps(reading.as_json(), ensure_ascii=False))


if __name__ == "__main__":
    main()
