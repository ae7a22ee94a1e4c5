"""Charts drawn on the server as SVG (no script, no inline style: CSP allows neither).

Every text from mail or forms goes through `escape`; the shapes carry classes that the
stylesheet colours.
"""

from __future__ import annotations

from dataclasses import dataclass

from markupsafe import Markup, escape

STAGES = ("来信", "Word推荐表", "盖章PDF", "行已对应")


@dataclass(frozen=True)
class UnitProgress:
    """One unit's progress: its stages done and its rows matched."""

    unit: str
    link: str
    word: bool
    pdf: bool
    rows: int
    matched: int


def progress_chart(units: list[UnitProgress]) -> Markup:
    """Per unit: four cells (mail in, Word, sealed PDF, rows matched) and the matched bar."""
    row_height, label_width, cell = 22, 260, 70
    width = label_width + cell * len(STAGES) + 10
    height = row_height * (len(units) + 1) + 6
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>各推荐单位进度</title>'
    ]
    for index, stage in enumerate(STAGES):
        x = label_width + index * cell + cell / 2
        parts.append(f'<text class="axis" x="{x}" y="15" text-anchor="middle">{stage}</text>')
    for number, unit in enumerate(units, start=1):
        y = number * row_height
        name = unit.unit if len(unit.unit) <= 18 else unit.unit[:17] + "…"
        parts.append(
            f'<a href="{escape(unit.link)}"><text class="label" x="0" y="{y + 15}">'
            f"{escape(name)}<title>{escape(unit.unit)}</title></text></a>"
        )
        ratio = unit.matched / unit.rows if unit.rows else 0.0
        done = (True, unit.word, unit.pdf, unit.rows > 0 and unit.matched == unit.rows)
        for index, finished in enumerate(done):
            x = label_width + index * cell + 4
            state = "done" if finished else "open"
            if index == 3 and not finished and unit.rows:
                parts.append(
                    f'<rect class="open" x="{x}" y="{y + 3}" width="{cell - 8}" height="16"/>'
                    f'<rect class="part" x="{x}" y="{y + 3}" width="{(cell - 8) * ratio:.1f}" '
                    'height="16"/>'
                )
            else:
                parts.append(
                    f'<rect class="{state}" x="{x}" y="{y + 3}" width="{cell - 8}" height="16"/>'
                )
        parts.append(
            f'<text class="value" x="{label_width + 3 * cell + cell / 2}" y="{y + 15}" '
            f'text-anchor="middle">{unit.matched}/{unit.rows}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))


def arrivals_chart(days: list[tuple[str, int]]) -> Markup:
    """A bar per local day: how many messages arrived."""
    bar, gap, plot = 18, 4, 120
    width = max(1, len(days)) * (bar + gap) + 40
    height = plot + 60
    most = max((count for _, count in days), default=1) or 1
    parts = [
        f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="{width}" '
        f'height="{height}" xmlns="http://www.w3.org/2000/svg"><title>每日来信数量</title>'
    ]
    for index, (day, count) in enumerate(days):
        x = 30 + index * (bar + gap)
        tall = plot * count / most
        parts.append(
            f'<rect class="done" x="{x}" y="{10 + plot - tall:.1f}" width="{bar}" '
            f'height="{tall:.1f}"><title>{escape(day)}：{count}封</title></rect>'
            f'<text class="value" x="{x + bar / 2}" y="{8 + plot - tall:.1f}" '
            f'text-anchor="middle">{count}</text>'
            f'<text class="axis" x="{x + bar / 2}" y="{plot + 24}" text-anchor="end" '
            f'transform="rotate(-60 {x + bar / 2} {plot + 24})">{escape(day[5:])}</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))
