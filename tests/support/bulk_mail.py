"""Many small, realistic, distinct messages for ingestion tests and the ingest bench.

Each message has its own sender, Message-ID, subject and body (Chinese and English text,
a plain part and an HTML alternative; every fifth one carries a small attachment), so
every one has its own SHA-256 and ends as an `other` message that earns a unit receipt.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from email.policy import default
from email.utils import format_datetime
from typing import Any

FIRST_ARRIVAL = datetime(2025, 7, 1, 8, 0, tzinfo=UTC)
CRLF = default.clone(linesep="\r\n")
"""Line endings as IMAP servers hand messages back, so appended bytes equal fetched bytes."""


def small_message(number: int, *, run: str = "r", attachment_size: int = 0) -> bytes:
    """Message `number` of a batch: a question from a unit's contact, ~2 KB (or larger)."""
    unit = number % 97
    message = EmailMessage()
    message["From"] = f"联系人{number} <contact{number}@unit{unit}.example.cn>"
    message["To"] = "cases@cace.example.org"
    message["Subject"] = f"关于2025年案例征集的咨询（第{number}号）"
    message["Date"] = format_datetime(FIRST_ARRIVAL + timedelta(minutes=number))
    message["Message-ID"] = f"<{run}.{number}@unit{unit}.example.cn>"
    text = (
        f"您好！\n\n我单位（第{unit}推荐单位）准备推荐案例，想请问：推荐表是否需要加盖公章？"
        f"截止日期前能否补交材料？\n\nQuestion {number}: can the sealed PDF follow later?\n\n"
        + "此致\n敬礼\n" * 3
        + f"\n联系人{number}\n电话 010-6{number:07d}\n"
    )
    message.set_content(text)
    message.add_alternative(
        f"<html><body><p>{text.replace(chr(10), '<br>')}</p></body></html>", subtype="html"
    )
    if attachment_size:
        message.add_attachment(
            os.urandom(attachment_size),
            maintype="application",
            subtype="octet-stream",
            filename=f"说明{number}.bin",
        )
    elif number % 5 == 0:
        message.add_attachment(
            f"补充说明 {number}\n".encode() * 20,
            maintype="text",
            subtype="plain",
            filename=f"补充说明{number}.txt",
        )
    return message.as_bytes(policy=CRLF)


def arrival(number: int) -> datetime:
    """The INTERNALDATE given to message `number`."""
    return FIRST_ARRIVAL + timedelta(minutes=number)


def append_all(
    client: Any,
    messages: Sequence[bytes],
    *,
    folder: str = "INBOX",
    dates: Iterable[datetime] | None = None,
    chunk: int = 200,
) -> None:
    """APPEND many messages over one connection, `chunk` per MULTIAPPEND command."""
    stamped = list(zip(messages, dates or (arrival(n) for n in range(len(messages))), strict=False))
    for start in range(0, len(stamped), chunk):
        client.multiappend(
            folder, [{"msg": raw, "date": moment} for raw, moment in stamped[start : start + chunk]]
        )
