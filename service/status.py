"""`intake status`: counts by state, what needs a person, last poll, outbox — in Chinese.

`--json` prints the same facts for machines: codes instead of Chinese names, the queue as
`/api/todo` publishes it.
"""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from notifications.contexts import (
    MESSAGE_KIND_LABELS,
    MESSAGE_STATUS_LABELS,
    OUTBOX_STATUS_LABELS,
    RECOMMENDATION_STATE_LABELS,
    SUBMISSION_STATUS_LABELS,
)
from service.bootstrap import App
from service.ingest import last_poll
from service.ocr_jobs import ocr_counts
from service.register import build_register, iso, summary_counts
from service.todo import TodoItem, minute, todo_items, todo_json

COUNT_NAMES: dict[str, tuple[str, str, dict[str, str]]] = {
    "messages": ("来信类型", "封", MESSAGE_KIND_LABELS),
    "message_status": ("来信处理", "封", MESSAGE_STATUS_LABELS),
    "recommendations": ("推荐表（当前版本）", "份", RECOMMENDATION_STATE_LABELS),
    "submissions": ("在线申报", "项", SUBMISSION_STATUS_LABELS),
    "outbox": ("发出邮件", "封", OUTBOX_STATUS_LABELS),
}
"""Each count group: its Chinese name, its measure word, the Chinese names of its states."""


def status_json(app: App) -> dict[str, Any]:
    """The facts `intake status --json` prints."""
    with Session(app.engine) as session:
        register = build_register(session, app.settings)
    cursor = last_poll(app.engine)
    with Session(app.engine) as session:
        ocr = ocr_counts(session)
    return {
        "campaign": register["campaign"],
        "last_poll": None
        if cursor is None
        else {
            "at": iso(cursor.last_poll_at, app.settings),
            "ok": not cursor.last_error,
            "error": cursor.last_error,
        },
        "counts": {name: dict(counter) for name, counter in summary_counts(register).items()},
        "ocr": {"enabled": app.settings.ocr.enabled, **ocr},
        "todo": [todo_json(item) for item in todo_items(register)],
    }


def print_status(app: App, console: Console, *, as_json: bool = False) -> None:
    """A Chinese summary (a table on a terminal, one fact per line when piped), or JSON."""
    if as_json:
        console.out(json.dumps(status_json(app), ensure_ascii=False, indent=1), highlight=False)
        return
    with Session(app.engine) as session:
        register = build_register(session, app.settings)
    counts = summary_counts(register)
    cursor = last_poll(app.engine)
    plain = not console.is_terminal
    say = _plain_printer(console) if plain else console.print
    say(f"{app.settings.campaign.name}　截止时间：{minute(register['campaign']['deadline'])}")
    if cursor is None:
        say("上次收信：尚未收过信")
    else:
        when = minute(iso(cursor.last_poll_at, app.settings))
        state = "邮箱无法读取，详见待处理事项" if cursor.last_error else "正常"
        say(f"上次收信：{when}（{state}）")
    scans = ocr_line(app)
    if scans:
        say(scans)
    items = todo_items(register)
    if plain:
        _print_counts_plain(say, counts)
    else:
        table = Table(title="统计", show_header=True, header_style="bold")
        for header in ("项目", "状态", "数量"):
            table.add_column(header, justify="right" if header == "数量" else "left")
        for group, state, count, measure in _count_rows(counts):
            table.add_row(group, state, f"{count}{measure}")
        console.print(table)
    if not items:
        say("目前没有需要人工处理的事项。")
        return
    if plain:
        say(f"需要人工处理：{len(items)}项")
        for item in items:
            say(f"- 【{item.label}】{item.summary}（涉及：{item.where}）")
        return
    console.print(_todo_table(items))


def ocr_line(app: App) -> str | None:
    """扫描件识别: how many scans wait, are being read, were read, could not be read; None
    when OCR is off and no scan was ever queued."""
    with Session(app.engine) as session:
        counts = ocr_counts(session)
    if not app.settings.ocr.enabled and not any(counts.values()):
        return None
    line = (
        f"扫描件识别：等待识别{counts['queued']}份，正在识别{counts['running']}份，"
        f"已识别{counts['done']}份，未能识别{counts['failed']}份"
    )
    if counts["failed"]:
        line += "（未能识别的请在待处理事项中人工核对）"
    if not app.settings.ocr.enabled:
        line += "（文字识别已关闭）"
    return line


def _count_rows(counts: dict[str, Counter[str]]) -> list[tuple[str, str, int, str]]:
    rows = []
    for name, counter in counts.items():
        group, measure, labels = COUNT_NAMES.get(name, (name, "", {}))
        for state, count in sorted(counter.items()):
            rows.append((group, labels.get(state, state), count, measure))
    return rows


def _print_counts_plain(say: Any, counts: dict[str, Counter[str]]) -> None:
    for group, state, count, measure in _count_rows(counts):
        say(f"{group}\t{state}\t{count}{measure}")


def _todo_table(items: list[TodoItem]) -> Table:
    table = Table(title=f"需要人工处理（{len(items)}项）", show_header=True, header_style="bold")
    for header in ("类别", "事项与处理办法", "涉及"):
        table.add_column(header, overflow="fold")
    for item in items:
        table.add_row(item.label, item.summary, item.where)
    return table


def _plain_printer(console: Console) -> Any:
    """Print one line as written: no markup, no highlighting, never wrapped."""

    def say(line: str) -> None:
        console.print(line, highlight=False, markup=False, soft_wrap=True)

    return say
