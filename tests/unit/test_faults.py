"""Which failures are passing faults (retried, never made permanent) and which concern the
input itself; and the retry schedule they follow."""

from __future__ import annotations

import errno
from datetime import timedelta

import pytest
import sqlalchemy as sa

from config.errors import ParseError, StorageError
from service.faults import RETRY_CAP, retry_delay, transient_fault


def wrapped(error: BaseException, outer: BaseException) -> BaseException:
    try:
        try:
            raise error
        except BaseException as inner:
            raise outer from inner
    except BaseException as caught:
        return caught


@pytest.mark.parametrize(
    ("error", "fault"),
    [
        (
            sa.exc.OperationalError("INSERT", {}, Exception("server closed the connection")),
            "database",
        ),
        (sa.exc.InterfaceError("SELECT", {}, Exception("connection already closed")), "database"),
        (sa.exc.OperationalError("UPDATE", {}, Exception("database is locked")), "lock"),
        (sa.exc.OperationalError("INSERT", {}, Exception("database or disk is full")), "storage"),
        (sa.exc.TimeoutError("QueuePool limit reached"), "database"),
        (OSError(errno.ENOSPC, "No space left on device"), "storage"),
        (OSError(errno.EIO, "Input/output error"), "storage"),
        (OSError(errno.EDQUOT, "Disk quota exceeded"), "storage"),
        (wrapped(OSError(errno.ENOSPC, "full"), StorageError("cannot write")), "storage"),
    ],
)
def test_outages_of_the_database_and_the_disk_are_passing_faults(error, fault):
    assert transient_fault(error) == fault


@pytest.mark.parametrize(
    "error",
    [
        ParseError("not a Word document", filename="a.docx"),
        wrapped(OSError(errno.ENOENT, "missing"), StorageError("archive file is missing")),
        sa.exc.IntegrityError("INSERT", {}, Exception("duplicate key")),
        ValueError("a parser bug"),
    ],
)
def test_failures_of_the_input_or_of_our_code_are_not(error):
    assert transient_fault(error) is None


def test_the_wait_doubles_from_thirty_seconds_and_stops_growing_at_the_cap():
    assert [retry_delay(tries) for tries in (1, 2, 3)] == [
        timedelta(seconds=30),
        timedelta(seconds=60),
        timedelta(seconds=120),
    ]
    assert retry_delay(50) == RETRY_CAP
