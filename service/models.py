"""The register's tables (SQLModel), identical on SQLite and PostgreSQL.

The ledger (`Message`) is written before anything else; everything below it can be rebuilt
from the archive by `intake reprocess`, except staff's manual decisions, results and the
outbox, which are facts of their own.
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.types import TypeDecorator
from sqlmodel import Field, SQLModel


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetimes stored as UTC on both backends."""

    impl = sa.DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} reached the database")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utc_column(*, nullable: bool = True, index: bool = False) -> Any:
    """A column for a timezone-aware instant."""
    return sa.Column(UTCDateTime(), nullable=nullable, index=index)


def json_column() -> Any:
    """A JSON column (lists of problems, evidence, addresses)."""
    return sa.Column(sa.JSON(), nullable=False)


def text_column() -> Any:
    """An unbounded text column."""
    return sa.Column(sa.Text(), nullable=False, server_default="")


class PollCursor(SQLModel, table=True):
    """Where the last poll of one (account, folder) stopped, and how it went."""

    __tablename__ = "poll_cursor"
    account: str = Field(primary_key=True, max_length=300)
    folder: str = Field(primary_key=True, max_length=300)
    uidvalidity: int = Field(default=0, sa_type=sa.BigInteger)
    last_uid: int = Field(default=0, sa_type=sa.BigInteger)
    last_poll_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_success_at: datetime | None = Field(default=None, sa_column=utc_column())
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    failing_since: datetime | None = Field(default=None, sa_column=utc_column())
    first_poll_at: datetime | None = Field(default=None, sa_column=utc_column())
    first_listing_uid: int = Field(default=0, sa_type=sa.BigInteger)  # highest UID then listed


class Lease(SQLModel, table=True):
    """A named lease so that only one process polls or digests at a time."""

    __tablename__ = "lease"
    name: str = Field(primary_key=True, max_length=200)
    holder: str = Field(max_length=200)
    expires_at: datetime = Field(sa_column=utc_column(nullable=False))


class Message(SQLModel, table=True):
    """One inbound message: the ledger row, then what parsing made of it."""

    __tablename__ = "message"
    __table_args__ = (
        sa.UniqueConstraint("account", "folder", "uidvalidity", "uid", name="uq_message_uid"),
        sa.UniqueConstraint("account", "sha256", name="uq_message_content"),
    )
    id: int | None = Field(default=None, primary_key=True)
    account: str = Field(max_length=300)
    folder: str = Field(max_length=300)
    uidvalidity: int = Field(sa_type=sa.BigInteger)
    uid: int = Field(sa_type=sa.BigInteger)
    message_id: str | None = Field(default=None, max_length=998, index=True)
    sha256: str = Field(max_length=64, index=True)
    size: int = Field(sa_type=sa.BigInteger)
    received_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    archived_at: datetime = Field(sa_column=utc_column(nullable=False))
    downloaded: bool = True  # False: over the size limit, only headers kept
    status: str = Field(default="pending", max_length=20, index=True)
    kind: str | None = Field(default=None, max_length=30)
    sender: str = Field(default="", max_length=320)
    sender_name: str = Field(default="", max_length=300)
    reply_to: list[str] = Field(default_factory=list, sa_column=json_column())
    subject: str = Field(default="", sa_column=text_column())
    in_reply_to: str | None = Field(default=None, max_length=998)
    references: list[str] = Field(default_factory=list, sa_column=json_column())
    no_reply: bool = False
    late: bool = False
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=json_column())
    details: dict[str, Any] = Field(default_factory=dict, sa_column=json_column())
    processed_at: datetime | None = Field(default=None, sa_column=utc_column())
    after_done: bool = False
    before_first_poll: bool = False  # already in the mailbox when it was first read
    # a transient failure (database, disk, lock) while processing: retried, never permanent
    fault: str | None = Field(default=None, max_length=20)  # database | storage | lock
    fault_error: str | None = Field(default=None, sa_type=sa.Text)
    fault_since: datetime | None = Field(default=None, sa_column=utc_column())
    retries: int = 0
    retry_at: datetime | None = Field(default=None, sa_column=utc_column())


class Attachment(SQLModel, table=True):
    """A file carried by a message (or found inside a zip, TNEF or forwarded mail)."""

    __tablename__ = "attachment"
    id: int | None = Field(default=None, primary_key=True)
    message_pk: int = Field(foreign_key="message.id", index=True, ondelete="CASCADE")
    position: int
    filename: str = Field(sa_column=text_column())
    safe_name: str = Field(sa_column=text_column())
    content_type: str = Field(default="", max_length=200)
    sha256: str = Field(max_length=64, index=True)
    size: int = Field(sa_type=sa.BigInteger)
    kind: str = Field(max_length=20)
    container: str | None = Field(default=None, sa_type=sa.Text)
    seal: str | None = Field(default=None, max_length=10)
    scanned: bool | None = None
    pdf_unit: str | None = Field(default=None, sa_type=sa.Text)
    pdf_text: str = Field(default="", sa_column=text_column())
    problems: list[dict[str, Any]] = Field(default_factory=list, sa_column=json_column())
    placed: bool = False  # a form PDF that is part of a recommendation
    # where a form PDF's text came from: "text" (its text layer), "ocr" (read from the scan),
    # "none" (no text yet or at all); None for other files
    text_source: str | None = Field(default=None, max_length=10)
    # does the PDF list the same cases as its Word form: {rows_on_word, rows_found,
    # missing[{row, title, applicant}], extra[title]}; None when it cannot be checked
    agreement: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)


class Recommendation(SQLModel, table=True):
    """One version of a recommending unit's form: its Word, its sealed PDF, its rows."""

    __tablename__ = "recommendation"
    __table_args__ = (sa.UniqueConstraint("unit_key", "version", name="uq_recommendation_version"),)
    id: int | None = Field(default=None, primary_key=True)
    unit: str = Field(sa_column=text_column())
    unit_key: str = Field(max_length=300, index=True)
    version: int = 1
    current: bool = True
    sender: str = Field(default="", max_length=320)
    word_attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    pdf_attachment_id: int | None = Field(default=None, foreign_key="attachment.id")
    pdf_method: str | None = Field(default=None, max_length=20)
    pdf_score: float | None = None
    pdf_evidence: list[str] = Field(default_factory=list, sa_column=json_column())
    contact_name: str | None = Field(default=None, sa_type=sa.Text)
    contact_title: str | None = Field(default=None, sa_type=sa.Text)
    contact_phone: str | None = Field(default=None, sa_type=sa.Text)
    contact_mobile: str | None = Field(default=None, sa_type=sa.Text)
    contact_email: str | None = Field(default=None, sa_type=sa.Text)
    opinion: str | None = Field(default=None, sa_type=sa.Text)
    signed_on: date | None = None
    complete: bool = False
    late: bool = False
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class CaseRow(SQLModel, table=True):
    """One row of a form's case table and its match to an online submission."""

    __tablename__ = "case_row"
    id: int | None = Field(default=None, primary_key=True)
    recommendation_id: int = Field(foreign_key="recommendation.id", index=True, ondelete="CASCADE")
    row: int
    title: str = Field(sa_column=text_column())
    applicant: str = Field(sa_column=text_column())
    category: str | None = Field(default=None, sa_type=sa.Text)
    ref_on_form: str | None = Field(default=None, max_length=100)
    note: str | None = Field(default=None, sa_type=sa.Text)
    submission_ref: str | None = Field(default=None, max_length=100, index=True)
    match: str = Field(default="none", max_length=20)
    score: float = 0.0
    candidates: list[Any] = Field(default_factory=list, sa_column=json_column())
    evidence: list[str] = Field(default_factory=list, sa_column=json_column())
    warnings: list[dict[str, Any]] = Field(default_factory=list, sa_column=json_column())


class Submission(SQLModel, table=True):
    """One case submitted in the online system, from the latest export that had it."""

    __tablename__ = "submission"
    ref: str = Field(primary_key=True, max_length=100)
    title: str = Field(sa_column=text_column())
    applicant: str = Field(sa_column=text_column())
    uscc: str | None = Field(default=None, max_length=40)
    uscc_valid: bool = False
    category: str | None = Field(default=None, sa_type=sa.Text)
    field: str | None = Field(default=None, sa_type=sa.Text)
    route: str = Field(max_length=20)
    recommender: str | None = Field(default=None, sa_type=sa.Text)
    contact: str | None = Field(default=None, sa_type=sa.Text)
    mobile: str | None = Field(default=None, max_length=60)
    email: str | None = Field(default=None, max_length=320)
    submitted_at: datetime | None = Field(default=None, sa_column=utc_column())
    smart_enterprise: bool | None = None
    withdrawn: bool = False
    result: str | None = Field(default=None, max_length=20)
    result_note: str | None = Field(default=None, sa_type=sa.Text)  # to the applicant, mailed
    result_remark: str | None = Field(default=None, sa_type=sa.Text)  # staff's own, never mailed
    imported_at: datetime = Field(sa_column=utc_column(nullable=False))


class ManualDecision(SQLModel, table=True):
    """A decision staff made by hand; it wins over automatic ones and survives reprocess."""

    __tablename__ = "manual_decision"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=10)  # "row" | "pdf"
    unit_key: str = Field(max_length=300, index=True)
    version: int
    row: int | None = None
    submission_ref: str | None = Field(default=None, max_length=100)  # None: "no match"
    attachment_sha256: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class Outbox(SQLModel, table=True):
    """One mail to send, queued in the same transaction as what caused it."""

    __tablename__ = "outbox"
    __table_args__ = (
        sa.Index("ix_outbox_recipient_kind_created", "recipient", "kind", "created_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    idempotency_key: str = Field(max_length=500, unique=True)
    kind: str = Field(max_length=30, index=True)
    recipients: list[str] = Field(default_factory=list, sa_column=json_column())
    recipient: str = Field(default="", max_length=320)  # the first of `recipients`, indexed
    cc: list[str] = Field(default_factory=list, sa_column=json_column())
    subject: str = Field(sa_column=text_column())
    text_body: str = Field(sa_column=text_column())
    html_body: str = Field(sa_column=text_column())
    in_reply_to: str | None = Field(default=None, max_length=998)
    references: list[str] = Field(default_factory=list, sa_column=json_column())
    auto_submitted: str = Field(default="auto-replied", max_length=30)
    attachments: list[Any] = Field(default_factory=list, sa_column=json_column())
    mail_message_id: str = Field(max_length=998)
    status: str = Field(default="pending", max_length=20, index=True)
    attempts: int = 0
    next_attempt_at: datetime = Field(sa_column=utc_column(nullable=False, index=True))
    last_error: str | None = Field(default=None, sa_type=sa.Text)
    message_pk: int | None = Field(default=None, foreign_key="message.id")
    submission_ref: str | None = Field(default=None, max_length=100)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    sent_at: datetime | None = Field(default=None, sa_column=utc_column())
    unconfirmed_at: datetime | None = Field(default=None, sa_column=utc_column())  # reply lost


class Suppression(SQLModel, table=True):
    """An address we never write to again (it bounced our mail)."""

    __tablename__ = "suppression"
    address: str = Field(primary_key=True, max_length=320)
    reason: str = Field(sa_column=text_column())
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class ImportRun(SQLModel, table=True):
    """One import of an online-system export or a results file: previewed in the workspace
    (nothing changed yet), applied (with every touched row's state before and after, so it
    can be undone exactly), or undone. The file itself is in the archive under `sha256`."""

    __tablename__ = "import_run"
    id: int | None = Field(default=None, primary_key=True)
    kind: str = Field(max_length=20)  # "submissions" | "results"
    filename: str = Field(sa_column=text_column())
    sha256: str = Field(max_length=64)
    added: int = 0
    changed: int = 0
    unchanged: int = 0
    rejected: int = 0
    withdrawn: int = 0
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    # previewed | applied | undone | discarded | stale (the data changed after the preview)
    status: str = Field(
        default="applied", max_length=20, sa_column_kwargs={"server_default": "applied"}
    )
    by: str = Field(default="", max_length=200, sa_column_kwargs={"server_default": ""})
    options: dict[str, Any] = Field(  # complete, resend_changed: as asked at the preview
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )
    fingerprint: str = Field(default="", max_length=64, sa_column_kwargs={"server_default": ""})
    # {"before": {ref: fields | None}, "after": {ref: fields}, "outbox": [ids queued]}
    changes: dict[str, Any] = Field(
        default_factory=dict, sa_type=sa.JSON, sa_column_kwargs={"server_default": "{}"}
    )
    blank: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # no 结果 yet
    queued: int = Field(default=0, sa_column_kwargs={"server_default": "0"})  # mail queued
    applied_at: datetime | None = Field(default=None, sa_column=utc_column())
    undone_at: datetime | None = Field(default=None, sa_column=utc_column())
    undone_by: str | None = Field(default=None, max_length=200)


class OcrJob(SQLModel, table=True):
    """The OCR of one scanned PDF, by content: queued, running, done (with its reading) or
    failed (with its problem). Kept across `intake reprocess`, so a scan is read once."""

    __tablename__ = "ocr_job"
    sha256: str = Field(primary_key=True, max_length=64)
    status: str = Field(default="queued", max_length=10, index=True)  # queued|running|done|failed
    attempts: int = 0
    lease_until: datetime | None = Field(default=None, sa_column=utc_column())
    reading: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    problem: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    pages: int = 0
    seconds: float = 0.0
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    finished_at: datetime | None = Field(default=None, sa_column=utc_column())


class StaffUser(SQLModel, table=True):
    """A person who may sign in to the workspace; staff decide, viewers only look."""

    __tablename__ = "staff_user"
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100, unique=True)
    display_name: str = Field(default="", sa_column=text_column())
    role: str = Field(default="staff", max_length=20)  # "staff" | "viewer"
    password_hash: str = Field(sa_column=text_column())
    password_changed_at: datetime = Field(sa_column=utc_column(nullable=False))
    disabled: bool = False
    created_at: datetime = Field(sa_column=utc_column(nullable=False))


class ApiToken(SQLModel, table=True):
    """A bearer token for scripts; only its SHA-256 is stored."""

    __tablename__ = "api_token"
    id: int | None = Field(default=None, primary_key=True)
    user_id: int = Field(foreign_key="staff_user.id", index=True, ondelete="CASCADE")
    token_hash: str = Field(max_length=64, unique=True)
    created_at: datetime = Field(sa_column=utc_column(nullable=False))
    revoked_at: datetime | None = Field(default=None, sa_column=utc_column())


class LoginAttempt(SQLModel, table=True):
    """One attempt to sign in, kept to limit guessing per user name and per address."""

    __tablename__ = "login_attempt"
    __table_args__ = (
        sa.Index("ix_login_attempt_username_at", "username", "at"),
        sa.Index("ix_login_attempt_address_at", "address", "at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=100)
    address: str = Field(max_length=100)
    succeeded: bool = False
    at: datetime = Field(sa_column=utc_column(nullable=False))


class Decision(SQLModel, table=True):
    """One decision staff made on a queue item (workspace, API or CLI): who, when, what,
    and the state before and after, so that it can be shown and undone."""

    __tablename__ = "decision"
    id: int | None = Field(default=None, primary_key=True)
    at: datetime = Field(sa_column=utc_column(nullable=False))
    by: str = Field(max_length=200)
    item_id: str = Field(max_length=500, index=True)
    kind: str = Field(max_length=30)
    action: str = Field(max_length=30)
    concerns: str = Field(default="", sa_column=text_column())  # the item's "where", Chinese
    params: dict[str, Any] = Field(default_factory=dict, sa_column=json_column())
    before: dict[str, Any] = Field(default_factory=dict, sa_column=json_column())
    after: dict[str, Any] = Field(default_factory=dict, sa_column=json_column())
    # the item while this decision stands: unique, so one item is decided once at a time
    open_item: str | None = Field(default=None, max_length=500, unique=True)
    manual_decision_id: int | None = None
    undone_at: datetime | None = Field(default=None, sa_column=utc_column())
    undone_by: str | None = Field(default=None, max_length=200)
