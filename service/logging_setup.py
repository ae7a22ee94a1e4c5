"""Structured log lines for the running service: one `key=value` line per event, on stderr.

Events written with `event_line` already read as logfmt; anything else a library logs is
wrapped as `msg="..."`. Neither passwords nor mail bodies are ever given to these lines:
callers pass addresses, ids, counts and error texts only.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

_BARE_VALUE_FORBIDDEN = set(' "=\\\n\r\t')


def quote_value(value: object) -> str:
    """A logfmt value: bare when it has no space, quote, `=` or newline, else quoted."""
    text = "" if value is None else str(value)
    if text and not (_BARE_VALUE_FORBIDDEN & set(text)):
        return text
    escaped = (
        text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\r", "\\r")
    )
    return f'"{escaped}"'


def event_line(event: str, **fields: object) -> str:
    """`event=<event> key=value ...` for `App.log`; None values are left out."""
    parts = [f"event={quote_value(event)}"]
    parts.extend(
        f"{key}={quote_value(value)}" for key, value in fields.items() if value is not None
    )
    return " ".join(parts)


class LogfmtFormatter(logging.Formatter):
    """`ts=... level=... logger=...` followed by the event's own fields or `msg="..."`."""

    def format(self, record: logging.LogRecord) -> str:
        moment = datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds")
        head = (
            f"ts={moment.replace('+00:00', 'Z')} level={record.levelname.lower()} "
            f"logger={quote_value(record.name)}"
        )
        message = record.getMessage()
        body = message if message.startswith("event=") else f"msg={quote_value(message)}"
        line = f"{head} {body}"
        if record.exc_info:
            line += f" exception={quote_value(self.formatException(record.exc_info))}"
        return line


def _writes_to_stderr(handler: logging.Handler) -> bool:
    # Only the console handler `logging.basicConfig` installs: test-capture handlers and
    # files keep their own format.
    return type(handler) is logging.StreamHandler and handler.stream in (
        sys.stderr,
        sys.__stderr__,
    )


@contextmanager
def structured_log_lines(level_overrides: dict[str, int] | None = None) -> Iterator[None]:
    """Format the root logger's stderr handler as logfmt for the block, then restore it.

    `level_overrides` quiets chatty libraries (APScheduler logs every job run at INFO).
    """
    root = logging.getLogger()
    changed = [
        (handler, handler.formatter) for handler in root.handlers if _writes_to_stderr(handler)
    ]
    levels = {name: logging.getLogger(name).level for name in (level_overrides or {})}
    for handler, _ in changed:
        handler.setFormatter(LogfmtFormatter())
    for name, level in (level_overrides or {}).items():
        logging.getLogger(name).setLevel(level)
    try:
        yield
    finally:
        for handler, formatter in changed:
            handler.setFormatter(formatter)
        for name, level in levels.items():
            logging.getLogger(name).setLevel(level)
