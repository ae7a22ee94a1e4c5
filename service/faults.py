"""Transient or permanent: which failures pass by themselves and must never be made permanent.

A failure is transient when it says nothing about the input: the database is unavailable
or the connection to it was lost, a lock could not be had in time, the disk is full or an
I/O error occurred. Such a failure leaves the work pending and is retried with bounded
exponential back-off. Everything else (the input itself cannot be read) is permanent.
"""

from __future__ import annotations

import errno
from datetime import datetime, timedelta
from typing import Literal

import sqlalchemy as sa

Fault = Literal["database", "storage", "lock"]

STORAGE_ERRNOS = frozenset(
    {errno.ENOSPC, errno.EIO, errno.EDQUOT, errno.EROFS, errno.ENOMEM, errno.EAGAIN}
)
"""OS errors that say the disk (or the machine), not the data, is in trouble."""

LOCK_WORDS = ("database is locked", "lock timeout", "locknotavailable", "deadlock detected")
STORAGE_WORDS = ("database or disk is full", "disk i/o error", "no space left")

RETRY_BASE = timedelta(seconds=30)
"""The wait after the first transient failure; it doubles with each further one."""
RETRY_CAP = timedelta(minutes=30)
"""The longest wait between two tries: an outage that ends is noticed within this."""
RETRY_BOUND = 8
"""After this many failed tries a message is reported as a lasting outage (still retried)."""


def _chain(exc: BaseException) -> list[BaseException]:
    """`exc` and its causes and contexts, each once."""
    seen: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not item for item in seen):
        seen.append(current)
        current = current.__cause__ or current.__context__
    return seen


def transient_fault(exc: BaseException) -> Fault | None:
    """The kind of passing fault `exc` is, or None when it is about the input itself."""
    for item in _chain(exc):
        text = str(item).lower()
        if isinstance(item, sa.exc.DBAPIError) and item.connection_invalidated:
            return "database"
        if isinstance(item, sa.exc.OperationalError | sa.exc.InterfaceError):
            if any(word in text for word in LOCK_WORDS):
                return "lock"
            if any(word in text for word in STORAGE_WORDS):
                return "storage"
            return "database"
        if isinstance(item, sa.exc.DisconnectionError | sa.exc.TimeoutError):
            return "database"  # TimeoutError: no connection free in the pool
        if isinstance(item, OSError) and item.errno in STORAGE_ERRNOS:
            return "storage"
        if isinstance(item, ConnectionError | TimeoutError):
            return "database"
    return None


def retry_delay(retries: int) -> timedelta:
    """How long to wait after the `retries`-th failed try (1-based): doubling, capped."""
    doubled: timedelta = RETRY_BASE * (2 ** min(max(retries - 1, 0), 20))  # no overflow
    return min(doubled, RETRY_CAP)


def next_try(now: datetime, retries: int) -> datetime:
    """When a message that has failed `retries` times is tried again."""
    return now + retry_delay(retries)


def one_line(exc: BaseException, *, limit: int = 300) -> str:
    """The error as one short line for the log and the register (no SQL, no traceback)."""
    text = str(getattr(exc, "orig", None) or exc)
    first = " ".join(text.split("[SQL:", maxsplit=1)[0].split())
    return f"{type(exc).__name__}: {first[:limit]}"
