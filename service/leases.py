"""Named leases in the database, so that only one process does a given job at a time.

A lease row holds the holder's name and an expiry; taking it succeeds when it is free,
expired, or already ours. This works across hosts on PostgreSQL (row locks) and within one
host on SQLite. A holder that dies simply lets its lease expire and another takes over.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.models import Lease

HOLDER = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def take_lease(engine: sa.Engine, name: str, *, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `ttl`; False when another live holder has it."""
    with Session(engine) as session:
        lease = session.exec(select(Lease).where(Lease.name == name).with_for_update()).first()
        if lease is None:
            session.add(Lease(name=name, holder=HOLDER, expires_at=now + ttl))
            try:
                session.commit()
            except sa.exc.IntegrityError:
                return False
            return True
        if lease.holder != HOLDER and lease.expires_at > now:
            return False
        lease.holder = HOLDER
        lease.expires_at = now + ttl
        session.add(lease)
        session.commit()
        return True


def release_lease(engine: sa.Engine, name: str) -> None:
    """Give the lease back if we hold it."""
    with Session(engine) as session:
        session.execute(
            sa.delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == HOLDER)
        )
        session.commit()


@contextmanager
def held_lease(
    engine: sa.Engine, name: str, *, clock: Callable[[], datetime], ttl: timedelta
) -> Iterator[Callable[[], bool]]:
    """Hold `name` for the block and yield `renew()`; `LeaseBusyError` when another holds it."""
    if not take_lease(engine, name, now=clock(), ttl=ttl):
        raise LeaseBusyError(name)
    try:
        yield lambda: take_lease(engine, name, now=clock(), ttl=ttl)
    finally:
        release_lease(engine, name)


class LeaseBusyError(RuntimeError):
    """Another process holds the lease; this run skips the job (it is not an error)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is held by another process; skipping this run")
        self.name = name
