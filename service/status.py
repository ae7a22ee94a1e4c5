"""`intake status`: counts by state, what needs a person, last poll, outbox."""

from __future__ import annotations

from collections import Counter

from rich.console import Console
from rich.table import Table
from sqlmodel import Session

from service.bootstrap import App
from service.ingest import last_poll
from service.register import attention_items, build_register, iso, summary_counts


def print_status(app: App, console: Console) -> None:
    """A rich summary on a terminal, plain text when piped."""
    with Session(app.engine) as session:
        register = build_register(session, app.settings)
    counts = summary_counts(register)
    cursor = last_poll(app.engine)
    console.print(
        f"[bold]{app.settings.campaign.name}[/bold]  deadline {register['campaign']['deadline']}"
    )
    if cursor is None:
        console.print("last poll: never")
    else:
        console.print(
            f"last poll: {iso(cursor.last_poll_at, app.settings)}"
            + (f"  [red]error: {cursor.last_error}[/red]" if cursor.last_error else "  ok"),
            highlight=False,
        )
    items = attention_items(register)
    if not console.is_terminal:
        _print_plain(console, counts, items)
        return
    table = Table(title="counts", show_header=True, header_style="bold")
    table.add_column("what")
    table.add_column("state")
    table.add_column("count", justify="right")
    for what, counter in counts.items():
        for state, count in sorted(counter.items()):
            table.add_row(what, state, str(count))
    console.print(table)
    if items:
        attention = Table(
            title=f"needs a person ({len(items)})", show_header=True, header_style="bold"
        )
        for header in ("category", "what", "where", "what to do"):
            attention.add_column(header, overflow="fold")
        for item in items:
            attention.add_row(item["category"], item["what"], item["where"], item["action"])
        console.print(attention)
    else:
        console.print("nothing needs a person")


def _print_plain(
    console: Console, counts: dict[str, Counter[str]], items: list[dict[str, str]]
) -> None:
    """One fact per line, never wrapped: for pipes, grep and mail."""
    for what, counter in counts.items():
        for state, count in sorted(counter.items()):
            console.print(
                f"{what}\t{state}\t{count}", highlight=False, markup=False, soft_wrap=True
            )
    if not items:
        console.print("nothing needs a person")
        return
    console.print(f"needs a person: {len(items)}")
    for item in items:
        line = f"- [{item['category']}] {item['what']} | {item['where']} | {item['action']}"
        console.print(line, highlight=False, markup=False, soft_wrap=True)
