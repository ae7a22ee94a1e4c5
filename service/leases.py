"""Named leases in the database, so that only one process does a given job at a time.

A lease row holds the holder's name (host, pid and a token unique to each taking) and an
expiry; taking it succeeds when it is free, expired, already ours, or held by a process on
this host that no longer exists (a poller killed with SIGKILL must not block the next one
for a whole TTL). On PostgreSQL the row is read `FOR UPDATE` and a concurrent first INSERT
loses on the primary key, so exactly one of several processes or hosts wins; on SQLite the
database's single writer gives the same within one host.
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

HOST = socket.gethostname()


def new_holder() -> str:
    """A holder name unique to one taking: two polls in one process do not share a lease."""
    return f"{HOST}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def holder_is_gone(holder: str) -> bool:
    """Whether `holder` names a process on this host that has exited (its lease is stale).

    A holder on another host cannot be checked from here: its lease runs out by expiry.
    """
    host, _, pid_text = holder.rpartition(":")[0].rpartition(":")
    if host != HOST or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, owned by another user
        return False
    return False


def take_lease(engine: sa.Engine, name: str, *, holder: str, now: datetime, ttl: timedelta) -> bool:
    """Take or renew the lease `name` for `holder` until `now + ttl`; False when another has it."""
    with Session(engine) as session:
        lease = session.exec(select(Lease).where(col(Lease.name) == name).with_for_update()).first()
        if lease is None:
            session.add(Lease(name=name, holder=holder, expires_at=now + ttl))
            try:
                session.commit()
            except sa.exc.IntegrityError:  # another process inserted it first
                return False
            return True
        if lease.holder != holder and lease.expires_at > now and not holder_is_gone(lease.holder):
            return False
        lease.holder = holder
        lease.expires_at = now + ttl
        session.add(lease)
        session.commit()
        return True


def release_lease(engine: sa.Engine, name: str, *, holder: str) -> None:
    """Give the lease back if `holder` still holds it."""
    with Session(engine) as session:
        session.execute(
            sa.delete(Lease).where(col(Lease.name) == name, col(Lease.holder) == holder)
        )
        session.commit()


@contextmanager
def held_lease(
    engine: sa.Engine, name: str, *, clock: Callable[[], datetime], ttl: timedelta
) -> Iterator[Callable[[], bool]]:
    """Hold `name` for the block and yield `renew()`; `LeaseBusyError` when another holds it.

    `renew()` returns False when the lease was lost (it expired and another took it): the
    caller must stop what it is doing.
    """
    holder = new_holder()
    if not take_lease(engine, name, holder=holder, now=clock(), ttl=ttl):
        raise LeaseBusyError(name)
    try:
        yield lambda: take_lease(engine, name, holder=holder, now=clock(), ttl=ttl)
    finally:
        release_lease(engine, name, holder=holder)


class LeaseBusyError(RuntimeError):
    """Another process holds the lease; this run skips the job (it is not an error)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"{name} is held by another process; skipping this run")
        self.name = name
