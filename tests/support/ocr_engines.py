"""Small honest OCR engines for the tests of the OCR plumbing, chosen the way an operator
chooses one: `ocr.engine = "tests.support.ocr_engines:form_engine"` (the worker process
imports it). They return fixed text boxes, so a test of queues, receipts and killed workers
does not wait seconds per page for the real engine.

`gated_engine` stops in the middle of each page until the file named by $OCR_TEST_GATE
exists: a test waits for the worker's `page_started` event, does what it wants while the
worker is busy (kill it, poll other mail), and opens the gate to let the page finish.
`hungry_engine` takes ever more memory on each page and never finishes one.
`network_probe_engine` tries to reach the network from inside the worker and writes what
happened as the page's text.
"""

from __future__ import annotations

import os
import socket
import time
from pathlib import Path

from PIL import Image

from parsers.ocr import TextBox

GATE_VARIABLE = "OCR_TEST_GATE"

FORM_LINES = (
    "2025信息通信行业科技创新案例推荐表",
    "推荐单位（盖章）：测试扫描通信有限公司",
    "序号 案例名称 申报单位",
    "1 扫描识别的第一个案例 测试申报单位甲",
    "2 扫描识别的第二个案例 测试申报单位乙",
    "2025年7月18日",
)
"""What the fixed engines "see" on every page, one box per line."""


def fixed_boxes(image: Image.Image, lines: tuple[str, ...] = FORM_LINES) -> list[TextBox]:
    """One box per line, stacked down the page image."""
    width, height = image.size
    step = height / (len(lines) + 2)
    return [
        TextBox(text=line, x0=width * 0.1, y0=step * (n + 1), x1=width * 0.9, y1=step * (n + 1.6))
        for n, line in enumerate(lines)
    ]


class FixedEngine:
    """Returns the same lines for every page."""

    name = "fixed-test-engine"

    def read(self, image: Image.Image) -> list[TextBox]:
        return fixed_boxes(image)


class GatedEngine(FixedEngine):
    """Like `FixedEngine`, but each page waits until the gate file exists."""

    name = "gated-test-engine"

    def __init__(self, gate: Path) -> None:
        self.gate = gate

    def read(self, image: Image.Image) -> list[TextBox]:
        while not self.gate.exists():
            time.sleep(0.05)
        return fixed_boxes(image)


class NetworkProbeEngine:
    """Tries a name lookup and a TCP connect to a loopback port, and reports each outcome as
    one line of text: `refused: ...` or `reached`."""

    name = "network-probe-engine"

    def read(self, image: Image.Image) -> list[TextBox]:
        outcomes = []
        for attempt in (
            lambda: socket.getaddrinfo("localhost", 80),
            lambda: socket.create_connection(("127.0.0.1", 9), timeout=2).close(),
        ):
            try:
                attempt()
                outcomes.append("reached")
            except OSError as exc:  # PermissionError from the worker's audit hook, or refused
                outcomes.append(f"refused: {type(exc).__name__}: {exc}")
        return fixed_boxes(image, tuple(outcomes))


class HungryEngine:
    """Holds on to more and more memory (touched, so it is resident), up to 640 MB, and
    never returns: a worker the memory limit must stop."""

    name = "hungry-test-engine"

    def read(self, image: Image.Image) -> list[TextBox]:
        held = []
        while True:
            if len(held) < 40:
                held.append(bytearray(os.urandom(1024)) * (16 * 1024))  # 16 MB, all touched
            time.sleep(0.01)


def form_engine() -> FixedEngine:
    """`ocr.engine = "tests.support.ocr_engines:form_engine"`."""
    return FixedEngine()


def gated_engine() -> GatedEngine:
    """`ocr.engine = "tests.support.ocr_engines:gated_engine"`; the gate is $OCR_TEST_GATE."""
    return GatedEngine(Path(os.environ[GATE_VARIABLE]))


def network_probe_engine() -> NetworkProbeEngine:
    """`ocr.engine = "tests.support.ocr_engines:network_probe_engine"`."""
    return NetworkProbeEngine()


def hungry_engine() -> HungryEngine:
    """`ocr.engine = "tests.support.ocr_engines:hungry_engine"`."""
    return HungryEngine()
