"""Time to read recommendation forms: a Word form with many case rows, built with python-docx.

Run: .venv/bin/python bench/bench_forms.py [--rows 50] [--repeat 30]
Prints the median and worst time of `read_word_form` and of `detect_kind` on the same bytes.
"""

from __future__ import annotations

import argparse
import io
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import docx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from parsers.kinds import detect_kind
from parsers.word_form import read_word_form

COMMAND = ".venv/bin/python bench/bench_forms.py"


def build_word_form(rows: int) -> bytes:
    """A canonical form (unit table, case table of `rows` filled rows, opinion, date)."""
    document = docx.Document()
    document.add_paragraph("2026信息通信行业科技创新案例推荐表")
    unit = document.add_table(rows=3, cols=6)
    for cell, text in zip(
        [cell for row in unit.rows for cell in row.cells],
        [
            "推荐单位",
            "某省通信行业协会",
            "",
            "",
            "",
            "",
            "联系人",
            "张三",
            "职务",
            "处长",
            "办公电话",
            "010-12345678",
            "手机",
            "13800000000",
            "电子邮箱",
            "zhang@example.example",
            "",
            "",
        ],
        strict=True,
    ):
        cell.text = text
    cases = document.add_table(rows=rows + 1, cols=6)
    header = ["序号", "案例名称", "申报单位", "案例类别", "申报编号", "备注"]
    for cell, text in zip(cases.rows[0].cells, header, strict=True):
        cell.text = text
    for number in range(1, rows + 1):
        values = [
            str(number),
            f"基于5G的第{number}号智慧应用平台",
            f"第{number}科技有限公司",
            "新技术",
            f"KJCX2026-{number:04d}",
            "",
        ]
        for cell, text in zip(cases.rows[number].cells, values, strict=True):
            cell.text = text
    document.add_paragraph("推荐意见：同意推荐。")
    document.add_paragraph("推荐单位（盖章）")
    document.add_paragraph("2026年7月20日")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def time_calls(call: Callable[[], object], repeat: int) -> list[float]:
    """Wall-clock seconds of `repeat` calls, after one warm-up call."""
    call()
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        call()
        timings.append(time.perf_counter() - started)
    return timings


def main() -> None:
    """Build the form once, then time reading and kind detection on it."""
    arguments = argparse.ArgumentParser(description=__doc__)
    arguments.add_argument("--rows", type=int, default=50)
    arguments.add_argument("--repeat", type=int, default=30)
    options = arguments.parse_args()

    data = build_word_form(options.rows)
    form = read_word_form(data, "bench.docx")
    assert len(form.cases) == options.rows, "the bench form did not read back whole"
    print(f"Word form: {options.rows} case rows, {len(data)} bytes, {options.repeat} runs")
    for label, call in (
        ("read_word_form", lambda: read_word_form(data, "bench.docx")),
        ("detect_kind", lambda: detect_kind(data, "bench.docx")),
    ):
        timings = time_calls(call, options.repeat)
        print(
            f"  {label:<15} median {statistics.median(timings) * 1000:7.2f} ms"
            f"   worst {max(timings) * 1000:7.2f} ms"
        )
    print(f"Reproduce: {COMMAND} --rows {options.rows} --repeat {options.repeat}")


if __name__ == "__main__":
    main()
