"""The OCR worker process and its parent side: one engine per process, loaded once.

`python -m service.ocr_worker ENGINE` loads the engine, then serves requests over its
standard input and output, one JSON object per line: a request names an archived PDF and a
page cap; the worker answers `page_started` before each page, `page_read` (with the page's
text boxes) after it, and `reading` (the `ScanReading` as JSON) at the end. Anything a
library prints goes to standard error, never into the protocol.

`OcrWorker` is the parent's handle. It enforces the per-page time limit and the memory limit
by killing the process (and starting a fresh one for the next request), and turns a crash,
a time-out or the memory limit into `OcrAttemptError`, never into anything else: the caller
(`service.ocr_jobs`) decides whether to try again or to leave the PDF to staff.

The memory limit is watched from the parent (the child's resident set, read from /proc)
rather than set as RLIMIT_AS in the child: ONNX Runtime reserves far more address space
than it ever touches (thread arenas, memory-mapped models), so an address-space limit either
kills a healthy worker or has to be set so high that it limits nothing.

The worker never uses the network: an audit hook refuses every socket connect, bind and name
lookup from Python code, so an engine that tried to download a model would fail loudly.
"""

from __future__ import annotations

import contextlib
import importlib
import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, cast

from config.errors import IntakeError, ParseError
from config.settings import OcrSettings
from parsers.model import Problem
from parsers.ocr import (
    OcrEngine,
    PageBoxes,
    ScanReading,
    TextBox,
    judge_seal,
    ocr_page,
    rapidocr_engine,
    read_scan,
    render_pages,
)

logger = logging.getLogger(__name__)

FailureKind = Literal["timeout", "memory", "crashed", "error", "unreadable"]

WHY: dict[FailureKind, str] = {
    "timeout": "每页识别时间超过上限",
    "memory": "识别占用内存超过上限",
    "crashed": "识别程序意外退出",
    "error": "识别程序出错",
    "unreadable": "文件无法按页显示",
}
"""Why a try failed, in the words staff read (the `why` of problem `ocr_failed`)."""

NETWORK_EVENTS = frozenset(
    {
        "socket.connect",
        "socket.bind",
        "socket.sendto",
        "socket.sendmsg",
        "socket.getaddrinfo",
        "socket.gethostbyname",
        "socket.gethostbyaddr",
        "urllib.Request",
        "http.client.connect",
    }
)
"""Audit events the worker refuses: it reads files it is given and nothing else."""

ENGINE_LOAD_LIMIT = 300.0
"""Seconds a new worker may take to load its engine (about 5 s; far more on a busy machine)
before it counts as unable to start (at least twice `ocr.page_timeout`)."""

WATCH_EVERY = 0.2
"""Seconds between two looks at the worker (alive? memory? time?) while it works."""

Event = dict[str, Any]
EventHandler = Callable[[Event], None]


class OcrAttemptError(IntakeError):
    """One try at reading a PDF failed: the worker crashed, ran out of time or memory, or
    the engine raised. `kind` says which; `detail` is an English line for the log."""

    def __init__(self, kind: FailureKind, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind
        self.detail = detail

    @property
    def permanent(self) -> bool:
        """True when trying again cannot help (the file itself cannot be rendered)."""
        return self.kind == "unreadable"


class OcrEngineUnavailableError(IntakeError):
    """The worker could not start its engine (not installed, damaged): an operator's matter,
    not the PDF's, so no PDF is charged a try for it."""


# --- the child ----------------------------------------------------------------------------


def refuse_network() -> None:
    """Make every network attempt from Python code in this process raise."""

    def hook(event: str, args: tuple[object, ...]) -> None:
        if event in NETWORK_EVENTS:
            raise PermissionError(f"the OCR worker never uses the network (refused {event})")

    sys.addaudithook(hook)


def load_engine(spec: str) -> OcrEngine:
    """The engine named by `ocr.engine`: "rapidocr", or "module:function" returning one."""
    if spec == "rapidocr":
        return rapidocr_engine()
    module_name, _, function_name = spec.partition(":")
    factory = getattr(importlib.import_module(module_name), function_name)
    return cast(OcrEngine, factory())


def _box_json(box: TextBox) -> list[object]:
    return [box.text, box.x0, box.y0, box.x1, box.y1, box.score]


def read_request(
    engine: OcrEngine,
    path: Path,
    *,
    max_pages: int,
    filename: str,
    send: Callable[[Event], None],
) -> None:
    """Render, OCR and read one PDF as `parsers.ocr.ocr_pdf` does, announcing each page;
    the last event is the reading (a PDF that does not open reads as no pages, with the
    problem that says why)."""
    problems: list[Problem] = []
    try:
        pages = render_pages(
            path.read_bytes(), max_pages=max_pages, problems=problems, filename=filename
        )
    except ParseError as exc:
        problem = Problem(exc.code or "pdf_unreadable", {"file": filename, "detail": str(exc)})
        empty = ScanReading(engine=engine.name, pages=0, page_texts=[], problems=[problem])
        send({"event": "reading", "pages": 0, "reading": empty.as_json()})
        return
    except Exception as exc:
        send({"event": "unreadable", "detail": f"{type(exc).__name__}: {exc}"})
        return
    found: list[PageBoxes] = []
    for number, page in enumerate(pages, start=1):
        send({"event": "page_started", "page": number, "pages": len(pages), "pid": os.getpid()})
        read = ocr_page(page, engine)
        found.append(read)
        send(
            {
                "event": "page_read",
                "page": number,
                "pages": len(pages),
                "width": read.width,
                "height": read.height,
                "boxes": [_box_json(box) for box in read.boxes],
            }
        )
    reading = read_scan(found, engine=engine.name)
    reading.problems[:0] = problems
    label = reading.seal_label
    if label is not None and 1 <= label.page <= len(pages):
        reading.seal = judge_seal(pages[label.page - 1], label)
    send({"event": "reading", "pages": len(pages), "reading": reading.as_json()})


def serve(engine_spec: str, requests: IO[str], replies: IO[str]) -> int:
    """The worker's loop: load the engine once, then answer requests until input ends."""

    def send(event: Event) -> None:
        replies.write(json.dumps(event, ensure_ascii=False) + "\n")
        replies.flush()

    refuse_network()
    try:
        engine = load_engine(engine_spec)
    except Exception as exc:
        send({"event": "engine_failed", "detail": f"{type(exc).__name__}: {exc}"})
        return 1
    send({"event": "ready", "engine": engine.name, "pid": os.getpid()})
    for line in requests:
        if not line.strip():
            continue
        request = json.loads(line)
        try:
            read_request(
                engine,
                Path(request["path"]),
                max_pages=int(request["max_pages"]),
                filename=str(request.get("filename", "")),
                send=send,
            )
        except Exception as exc:  # the engine raised: this try failed, the worker goes on
            send({"event": "failed", "detail": f"{type(exc).__name__}: {exc}"})
    return 0


def main() -> int:
    """Entry point of the worker process: the protocol gets the real standard output, and
    standard output itself is pointed at standard error, so nothing a library prints can
    corrupt a reply."""
    if len(sys.argv) != 2:
        sys.stderr.write("usage: python -m service.ocr_worker ENGINE\n")
        return 2
    protocol = os.fdopen(os.dup(1), "w", encoding="utf-8")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent decides when this one stops
    with protocol:
        return serve(sys.argv[1], sys.stdin, protocol)


# --- the parent ---------------------------------------------------------------------------


@dataclass(frozen=True)
class WorkerReading:
    """What one request gave: the reading, how many pages, how long it took."""

    reading: ScanReading
    pages: int
    seconds: float


def resident_mb(pid: int) -> float | None:
    """The resident memory of process `pid` in MB (Linux /proc), None when it is gone."""
    try:
        with open(f"/proc/{pid}/statm", encoding="ascii") as handle:
            resident_pages = int(handle.read().split()[1])
    except (OSError, ValueError, IndexError):
        return None
    return resident_pages * os.sysconf("SC_PAGE_SIZE") / (1024 * 1024)


class OcrWorker:
    """One worker process, started on first use and again after it was killed.

    `command_prefix` runs the worker under another program (the tests use `unshare -n`, a
    network namespace without any network).
    """

    def __init__(
        self,
        settings: OcrSettings,
        *,
        command_prefix: Sequence[str] = (),
        name: str = "ocr-worker",
    ) -> None:
        self.settings = settings
        self.command_prefix = list(command_prefix)
        self.name = name
        self._process: subprocess.Popen[str] | None = None
        self._events: queue.Queue[Event | None] = queue.Queue()
        self.engine_name = ""

    @property
    def pid(self) -> int | None:
        """The worker process's id while it runs."""
        process = self._process
        return process.pid if process is not None and process.poll() is None else None

    def start(self) -> None:
        """Start the process and wait until its engine is loaded (no-op when running)."""
        if self.pid is not None:
            return
        self.close()
        command = [
            *self.command_prefix,
            sys.executable,
            "-m",
            "service.ocr_worker",
            self.settings.engine,
        ]
        self._events = queue.Queue()
        # its own session: a Ctrl-C at the terminal reaches intake, which stops the worker
        self._process = subprocess.Popen(
            command,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            start_new_session=True,
        )
        threading.Thread(
            target=self._read_events,
            args=(self._process.stdout, self._events),
            name=f"{self.name}-events",
            daemon=True,
        ).start()
        try:
            event = self._next_event(
                max(self.settings.page_timeout.total_seconds() * 2, ENGINE_LOAD_LIMIT)
            )
        except OcrAttemptError as exc:
            raise OcrEngineUnavailableError(f"the OCR worker did not start: {exc.detail}") from exc
        if event.get("event") != "ready":
            self.close()
            raise OcrEngineUnavailableError(
                f"the OCR engine {self.settings.engine!r} could not be loaded: "
                f"{event.get('detail', event)}"
            )
        self.engine_name = str(event.get("engine", ""))
        logger.info(
            "OCR worker %s started (pid %s, engine %s)", self.name, self.pid, self.engine_name
        )

    @staticmethod
    def _read_events(stream: IO[str] | None, events: queue.Queue[Event | None]) -> None:
        assert stream is not None
        for line in stream:
            with contextlib.suppress(ValueError):
                events.put(json.loads(line))
        events.put(None)  # the process closed its output: it ended

    def _next_event(self, limit: float) -> Event:
        """The worker's next event; kills it and raises when it ends, takes longer than
        `limit` seconds or passes the memory limit."""
        deadline = time.monotonic() + limit
        while True:
            try:
                event = self._events.get(timeout=WATCH_EVERY)
            except queue.Empty:
                event = {}
            if event is None:
                code = self._process.wait() if self._process is not None else None
                self.close()
                how = f"killed by signal {-code}" if code is not None and code < 0 else code
                raise OcrAttemptError("crashed", f"the OCR worker ended ({how})")
            if event:
                return event
            memory = resident_mb(self.pid or 0)
            if memory is not None and memory > self.settings.memory_limit_mb:
                self.close()
                raise OcrAttemptError(
                    "memory",
                    f"the OCR worker used {memory:.0f} MB, over ocr.memory_limit_mb "
                    f"({self.settings.memory_limit_mb}): killed",
                )
            if time.monotonic() > deadline:
                self.close()
                raise OcrAttemptError(
                    "timeout", f"no answer within {limit:g} s (ocr.page_timeout): killed"
                )

    def read(
        self, path: Path, *, filename: str = "", on_event: EventHandler | None = None
    ) -> WorkerReading:
        """OCR the PDF at `path` (sent as `filename`) page by page; `on_event` sees every
        event as it comes."""
        self.start()
        began = time.monotonic()
        process = self._process
        assert process is not None and process.stdin is not None
        request = {
            "path": str(path.resolve()),
            "filename": filename,
            "max_pages": self.settings.max_pages,
        }
        try:
            process.stdin.write(json.dumps(request) + "\n")
            process.stdin.flush()
        except OSError as exc:
            self.close()
            raise OcrAttemptError("crashed", f"the OCR worker is gone: {exc}") from exc
        limit = self.settings.page_timeout.total_seconds()
        while True:
            event = self._next_event(limit)
            if on_event is not None:
                on_event(event)
            kind = event.get("event")
            if kind == "reading":
                return WorkerReading(
                    reading=ScanReading.from_json(event["reading"]),
                    pages=int(event.get("pages", 0)),
                    seconds=time.monotonic() - began,
                )
            if kind == "unreadable":
                raise OcrAttemptError("unreadable", str(event.get("detail", "")))
            if kind == "failed":
                raise OcrAttemptError("error", str(event.get("detail", "")))

    def close(self) -> None:
        """Stop the process (kill it when it does not end on its own at once)."""
        process, self._process = self._process, None
        if process is None:
            return
        if process.stdin is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.kill()
        process.wait()
        if process.stdout is not None:
            process.stdout.close()


if __name__ == "__main__":
    sys.exit(main())
