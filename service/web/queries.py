"""What each page reads: direct, paginated queries for lists, and the register for what is
derived from all of it (submission states, the queue of what needs a person).

The register is rebuilt only when the database changed: a one-query fingerprint of every
table it reads decides (so a page stays fast however large the campaign).
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, tzinfo
from typing import Any, TypeVar, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from service.bootstrap import App
from service.models import (
    Attachment,
    CaseRow,
    Decision,
    ImportRun,
    ManualDecision,
    Message,
    Outbox,
    PollCursor,
    Recommendation,
    Submission,
    Suppression,
)
from service.register import build_register

PAGE_SIZE = 50
T = TypeVar("T")


@dataclass(frozen=True)
class Page:
    """One page of a list: its rows, which page, how many in all."""

    rows: list[Any]
    number: int
    total: int
    size: int = PAGE_SIZE

    @property
    def pages(self) -> int:
        """How many pages the list has (at least one)."""
        return max(1, -(-self.total // self.size))


def page_number(value: str | None) -> int:
    """The requested page (1 for anything that is not a positive number)."""
    try:
        return max(1, int(value or "1"))
    except ValueError:
        return 1


def _fingerprint_query() -> sa.Select[Any]:
    """One row that changes whenever anything the register shows changes; every part is an
    index lookup or a count (no scan of the wide outbox rows)."""

    def scalar(expression: Any, table: Any) -> Any:
        return sa.select(expression).select_from(table).scalar_subquery()

    def outbox_with(status: str) -> Any:
        return (
            sa.select(sa.func.count())
            .select_from(Outbox)
            .where(col(Outbox.status) == status)
            .scalar_subquery()
        )

    count = sa.func.count
    return sa.select(
        scalar(count(), Message),
        scalar(sa.func.max(Message.id), Message),
        scalar(sa.func.max(Message.processed_at), Message),
        sa.select(count())
        .select_from(Message)
        .where(col(Message.status) == "needs_attention")
        .scalar_subquery(),
        scalar(count().filter(col(Message.fault).is_not(None)), Message),
        scalar(sa.func.max(Message.retry_at), Message),
        scalar(sa.func.coalesce(sa.func.sum(Message.retries), 0), Message),
        scalar(count(), Attachment),
        scalar(count(), Recommendation),
        scalar(sa.func.max(Recommendation.id), Recommendation),
        scalar(count(), CaseRow),
        scalar(sa.func.max(CaseRow.id), CaseRow),
        scalar(count(), Submission),
        scalar(count(), Outbox),
        scalar(sa.func.max(Outbox.id), Outbox),
        scalar(sa.func.max(Outbox.next_attempt_at), Outbox),
        outbox_with("pending"),
        outbox_with("sent"),
        outbox_with("failed"),
        outbox_with("suppressed"),
        scalar(count(), ManualDecision),
        scalar(count(), Decision),
        scalar(count(col(Decision.undone_at)), Decision),
        scalar(sa.func.max(ImportRun.id), ImportRun),
        scalar(count(col(ImportRun.applied_at)), ImportRun),
        scalar(count(col(ImportRun.undone_at)), ImportRun),
        scalar(count(), Suppression),
        scalar(sa.func.max(PollCursor.last_poll_at), PollCursor),
        scalar(sa.func.max(PollCursor.failing_since), PollCursor),
    )


class RegisterCache:
    """The register, rebuilt when the fingerprint of the database changes, and what is
    derived from it (the JSON text, the queue), computed once per version."""

    def __init__(self, app: App) -> None:
        self._app = app
        self._lock = threading.RLock()
        self._key: tuple[Any, ...] | None = None
        self._register: dict[str, Any] = {}
        self._derived: dict[str, Any] = {}
        compiled = _fingerprint_query().compile(app.engine, compile_kwargs={"literal_binds": True})
        self._fingerprint = sa.text(str(compiled))

    def get(self) -> dict[str, Any]:
        """The current register (shared: callers must not change it)."""
        return self._current()[0]

    def derived(self, name: str, compute: Callable[[dict[str, Any]], T]) -> T:
        """`compute(register)`, remembered under `name` until the register changes."""
        register, derived = self._current()
        with self._lock:
            if name not in derived:
                derived[name] = compute(register)
            return cast(T, derived[name])

    def _current(self) -> tuple[dict[str, Any], dict[str, Any]]:
        with self._app.engine.connect() as connection:
            key = tuple(connection.execute(self._fingerprint).one())
        with self._lock:
            if key != self._key:
                with Session(self._app.engine) as session:
                    self._register = build_register(session, self._app.settings)
                self._derived = {}
                self._key = key
            return self._register, self._derived


# -- 来信 ------------------------------------------------------------------------------------


def messages_page(
    session: Session, *, number: int, kind: str = "", status: str = "", search: str = ""
) -> Page:
    """Messages newest first, filtered by kind / status, searched in sender and subject."""
    conditions: list[Any] = []
    if kind:
        conditions.append(col(Message.kind) == kind)
    if status:
        conditions.append(col(Message.status) == status)
    if search:
        pattern = f"%{search}%"
        conditions.append(
            sa.or_(col(Message.sender).ilike(pattern), col(Message.subject).ilike(pattern))
        )
    total = session.exec(select(sa.func.count()).select_from(Message).where(*conditions)).one()
    rows = session.exec(
        select(Message)
        .where(*conditions)
        .order_by(col(Message.received_at).desc(), col(Message.id).desc())
        .offset((number - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    counts = attachment_counts(session, [row.id for row in rows if row.id is not None])
    return Page(
        rows=[(row, counts.get(row.id or 0, 0)) for row in rows], number=number, total=total
    )


def attachment_counts(session: Session, message_ids: list[int]) -> dict[int, int]:
    """How many attachments each of these messages has."""
    if not message_ids:
        return {}
    return {
        int(message_pk): int(count)
        for message_pk, count in session.exec(
            select(Attachment.message_pk, sa.func.count())
            .where(col(Attachment.message_pk).in_(message_ids))
            .group_by(col(Attachment.message_pk))
        ).all()
    }


def message_attachments(session: Session, message_pk: int) -> list[Attachment]:
    """A message's attachments in their order."""
    return list(
        session.exec(
            select(Attachment)
            .where(Attachment.message_pk == message_pk)
            .order_by(col(Attachment.position))
        ).all()
    )


# -- 推荐单位 ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class UnitRow:
    """One current recommendation as the list shows it."""

    id: int
    unit: str
    version: int
    versions: int
    word: bool
    pdf: bool
    seal: str | None
    rows: int
    matched: int
    ambiguous: int
    complete: bool
    late: bool


def unit_rows(register: dict[str, Any]) -> list[UnitRow]:
    """Every current recommendation with its row counts, incomplete ones first."""
    versions = Counter(str(row["unit"]) for row in register["recommendations"])
    result = []
    for row in register["recommendations"]:
        if not row["current"]:
            continue
        matches = Counter(str(case["match"]) for case in row["cases"])
        result.append(
            UnitRow(
                id=int(row["id"]),
                unit=str(row["unit"]),
                version=int(row["version"]),
                versions=versions[str(row["unit"])],
                word=row["word"] is not None,
                pdf=row["pdf"] is not None,
                seal=row["pdf"]["seal"] if row["pdf"] else None,
                rows=len(row["cases"]),
                matched=matches["ref"] + matches["name"] + matches["manual"],
                ambiguous=matches["ambiguous"],
                complete=bool(row["complete"]),
                late=bool(row.get("late")),
            )
        )
    result.sort(key=lambda item: (item.complete, item.unit))
    return result


def unit_versions(session: Session, unit_key: str) -> list[Recommendation]:
    """Every version of one unit's form, newest first."""
    return list(
        session.exec(
            select(Recommendation)
            .where(Recommendation.unit_key == unit_key)
            .order_by(col(Recommendation.version).desc())
        ).all()
    )


def case_rows(session: Session, recommendation_id: int) -> list[CaseRow]:
    """A form's rows in order."""
    return list(
        session.exec(
            select(CaseRow)
            .where(CaseRow.recommendation_id == recommendation_id)
            .order_by(col(CaseRow.row))
        ).all()
    )


def submissions_by_ref(session: Session, refs: set[str]) -> dict[str, Submission]:
    """The submissions with these 申报编号."""
    if not refs:
        return {}
    return {
        row.ref: row
        for row in session.exec(select(Submission).where(col(Submission.ref).in_(sorted(refs))))
    }


# -- 在线申报 ---------------------------------------------------------------------------------


def submissions_page(
    register: dict[str, Any],
    *,
    number: int,
    status: str = "",
    unit: str = "",
    route: str = "",
    search: str = "",
) -> Page:
    """Submissions filtered by status, recommending unit and route, searched by 申报编号,
    title or applicant (their states come from the register: they are derived)."""
    needle = search.strip().lower()
    rows = [
        row
        for row in register["submissions"]
        if (not status or row["status"] == status)
        and (not unit or (row["recommender"] or "") == unit)
        and (not route or row["route"] == route)
        and (
            not needle
            or needle in row["ref"].lower()
            or needle in (row["title"] or "").lower()
            or needle in (row["applicant"] or "").lower()
        )
    ]
    start = (number - 1) * PAGE_SIZE
    return Page(rows=rows[start : start + PAGE_SIZE], number=number, total=len(rows))


def recommenders(register: dict[str, Any]) -> list[str]:
    """The recommending units named by submissions, for the filter."""
    return sorted({row["recommender"] for row in register["submissions"] if row["recommender"]})


# -- 发出邮件 ---------------------------------------------------------------------------------


def outbox_page(session: Session, *, number: int, status: str = "", kind: str = "") -> Page:
    """Outgoing mail newest first, filtered by status and kind (bodies are not read)."""
    conditions: list[Any] = []
    if status:
        conditions.append(col(Outbox.status) == status)
    if kind:
        conditions.append(col(Outbox.kind) == kind)
    total = session.exec(select(sa.func.count()).select_from(Outbox).where(*conditions)).one()
    columns = (
        Outbox.id,
        Outbox.kind,
        Outbox.recipients,
        Outbox.subject,
        Outbox.status,
        Outbox.attempts,
        Outbox.last_error,
        Outbox.created_at,
        Outbox.sent_at,
    )
    rows = session.exec(
        select(*columns)  # type: ignore[call-overload]
        .where(*conditions)
        .order_by(col(Outbox.id).desc())
        .offset((number - 1) * PAGE_SIZE)
        .limit(PAGE_SIZE)
    ).all()
    return Page(rows=list(rows), number=number, total=total)


def outbox_counts(session: Session) -> dict[str, int]:
    """Outgoing mail by status."""
    return {
        str(status): int(count)
        for status, count in session.exec(
            select(Outbox.status, sa.func.count()).group_by(col(Outbox.status))
        ).all()
    }


# -- 总览 ------------------------------------------------------------------------------------


def cursors(session: Session) -> list[PollCursor]:
    """Every mailbox folder's poll record."""
    return list(session.exec(select(PollCursor).order_by(col(PollCursor.account))).all())


def recent_imports(session: Session, limit: int = 10) -> list[ImportRun]:
    """The latest imports of online-system exports and results."""
    return list(
        session.exec(
            select(ImportRun)
            .where(col(ImportRun.status).in_(["applied", "undone"]))
            .order_by(col(ImportRun.id).desc())
            .limit(limit)
        ).all()
    )


def days_left(deadline: datetime, now: datetime, zone: tzinfo) -> int:
    """Whole local days from today to the deadline's day (negative once past)."""
    return (deadline.astimezone(zone).date() - now.astimezone(zone).date()).days
