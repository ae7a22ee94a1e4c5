"""Imports staff give the service: online-system exports and result decisions.

Every import is worked out first and applied second, by the same two functions wherever it
comes from (the CLI, its `--dry-run`, the watch folder, the workspace's preview and its
确认导入): `plan_import` reads the file against the database and changes nothing;
`apply_plan` writes exactly that plan and records it as an `ImportRun` holding every touched
row's fields before and after, so that `service.import_runs.undo_import` restores them.

A submission export is upserted by 申报编号. Withdrawal is never inferred from absence (a
filtered export, one province's rows, must withdraw nothing): a submission is withdrawn when
the export's status column says so, or, with `complete=True` (the file is the whole export),
when it is missing from the file. Withdrawing more than `WITHDRAW_CONFIRM_SHARE` of the
active submissions at once needs `confirm=True`. Nothing is ever deleted (except by undoing
the import that added it). After every import, matching runs again. Result decisions are in
`service.results`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import ConfirmationNeededError, ParseError
from parsers.filenames import sanitize_filename
from parsers.model import Problem, RejectedRow, SubmissionRecord
from parsers.results import RESULT_HEADERS
from parsers.submissions import SUBMISSION_HEADERS, read_submissions
from service.archive import sha256_hex
from service.bootstrap import App
from service.models import ImportRun, Outbox, Submission
from service.reconcile import reconcile

if TYPE_CHECKING:
    from notifications.contexts import ResultNotice

WITHDRAW_CONFIRM_SHARE = 0.10
"""Withdrawing more than this share of the active submissions at once must be confirmed."""

FIELDS = (
    "title",
    "applicant",
    "uscc",
    "uscc_valid",
    "category",
    "field",
    "route",
    "recommender",
    "contact",
    "mobile",
    "email",
    "submitted_at",
    "smart_enterprise",
)
EXPORT_FIELDS = (*FIELDS, "withdrawn")
"""What a submissions import writes (and its undo restores, with `imported_at`)."""
RESULT_FIELDS = ("result", "result_note", "result_remark")
"""What a results import writes (and its undo restores)."""

FIELD_LABELS: dict[str, str] = {
    **{name: SUBMISSION_HEADERS[name][0] for name in FIELDS if name in SUBMISSION_HEADERS},
    "uscc_valid": "信用代码校验",
    "withdrawn": "撤回",
    "result": RESULT_HEADERS["result"][0],
    "result_note": RESULT_HEADERS["note"][0],
    "result_remark": RESULT_HEADERS["remark"][0],
}
"""The Chinese name of each field a preview shows changing (the sheets' own headers)."""

KIND_LABELS = {"submissions": "在线申报名单", "results": "评审结果"}
BY_COMMAND_LINE = "命令行"


@dataclass(frozen=True)
class FieldChange:
    """One field of one row: its value before and after (stored forms: JSON-ready)."""

    name: str
    old: Any
    new: Any

    @property
    def label(self) -> str:
        """The field's Chinese name."""
        return FIELD_LABELS.get(self.name, self.name)


@dataclass(frozen=True)
class PlannedMail:
    """A result mail an import will queue: its key, its words' context and its recipients."""

    ref: str
    key: str
    context: ResultNotice
    to: list[str]
    cc: list[str]


@dataclass
class ImportReport:
    """What an import does (a plan) or did, row by row.

    `before` holds each touched row's fields as they were (None: the row is new), `after`
    as the import leaves them; `rejections` are the rows not imported and `problems` the
    warnings, both as catalogue problems (Chinese for staff, English for logs).
    """

    filename: str
    kind: str = "submissions"
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    rejections: list[Problem] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    blank_rows: list[int] = field(default_factory=list)
    before: dict[str, dict[str, Any] | None] = field(default_factory=dict)
    after: dict[str, dict[str, Any]] = field(default_factory=dict)
    mails: list[PlannedMail] = field(default_factory=list)
    active_before: int = 0
    queued: int = 0
    outbox: list[int] = field(default_factory=list)

    @property
    def rejected(self) -> list[str]:
        """The rows not imported, in English (`row N: why`), for logs and the command line."""
        return [problem.message for problem in self.rejections]

    @property
    def warnings(self) -> list[str]:
        """The warnings in English, for logs and the command line."""
        return [problem.message for problem in self.problems]

    def changes_of(self, ref: str) -> list[FieldChange]:
        """The fields of `ref` this import changes."""
        old, new = self.before.get(ref) or {}, self.after.get(ref, {})
        return [
            FieldChange(name, old.get(name), value)
            for name, value in new.items()
            if name in FIELD_LABELS and old.get(name) != value
        ]

    @property
    def needs_confirmation(self) -> bool:
        """Whether it withdraws more than `WITHDRAW_CONFIRM_SHARE` of the active submissions."""
        return len(self.withdrawn) > WITHDRAW_CONFIRM_SHARE * max(self.active_before, 1)

    def fingerprint(self) -> str:
        """A digest of everything the plan would do: equal fingerprints, equal imports."""
        facts = {
            "kind": self.kind,
            "added": self.added,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "withdrawn": self.withdrawn,
            "active_before": self.active_before,
            "rejections": [problem.as_json() for problem in self.rejections],
            "before": self.before,
            "after": self.after,
            "mails": [[mail.key, mail.to, mail.cc, mail.context.note] for mail in self.mails],
        }
        encoded = json.dumps(facts, sort_keys=True, ensure_ascii=False, default=str).encode()
        return hashlib.sha256(encoded).hexdigest()

    def as_run(self, data: bytes, now: datetime, *, by: str) -> ImportRun:
        """The import's row in `import_run`, applied (what the watch folder, the digest, the
        workspace and undo read)."""
        return ImportRun(
            kind=self.kind,
            filename=Path(self.filename).name,
            sha256=sha256_hex(data),
            added=len(self.added),
            changed=len(self.changed),
            unchanged=len(self.unchanged),
            rejected=len(self.rejections),
            withdrawn=len(self.withdrawn),
            blank=len(self.blank_rows),
            queued=self.queued,
            created_at=now,
            applied_at=now,
            status="applied",
            by=by,
            fingerprint=self.fingerprint(),
            changes={"before": self.before, "after": self.after, "outbox": self.outbox},
        )


Planner = Callable[[App, Session, bytes, str, Mapping[str, Any]], ImportReport]
Applier = Callable[[App, Session, ImportReport], None]


def import_submissions(
    app: App,
    path: Path,
    *,
    complete: bool = False,
    confirm: bool = False,
    dry_run: bool = False,
    by: str = BY_COMMAND_LINE,
) -> ImportReport:
    """Upsert one export file; raises ParseError when the file cannot be read at all, and
    ConfirmationNeededError (changing nothing) when it would withdraw too many unconfirmed."""
    return run_import(
        app,
        "submissions",
        read_file(path),
        path,
        options={"complete": complete},
        confirm=confirm,
        dry_run=dry_run,
        by=by,
    )


def run_import(
    app: App,
    kind: str,
    data: bytes,
    path: Path,
    *,
    options: Mapping[str, Any],
    by: str,
    confirm: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Plan an import of `data` and, unless `dry_run`, apply it (one transaction)."""
    with Session(app.engine) as session:
        if not dry_run:
            lock_imports(session)
        report = plan_import(app, session, kind, data, filename=path.name, options=options)
        report.filename = str(path)
        if dry_run:
            report.queued = len(report.mails)
            return report
        if report.needs_confirmation and not confirm:
            raise ConfirmationNeededError(
                f"{path.name}: would withdraw {len(report.withdrawn)} of "
                f"{report.active_before} active submissions (more than "
                f"{WITHDRAW_CONFIRM_SHARE:.0%}); nothing changed. Check the list and import "
                "again with --yes to confirm: " + ", ".join(report.withdrawn[:50]),
                items=list(report.withdrawn),
            )
        apply_plan(app, session, report)
        session.add(report.as_run(data, app.clock(), by=by))
        session.commit()
    return report


def plan_import(
    app: App,
    session: Session,
    kind: str,
    data: bytes,
    *,
    filename: str,
    options: Mapping[str, Any],
) -> ImportReport:
    """What importing `data` would do now; changes nothing. Raises ParseError for a file that
    cannot be read at all."""
    from service.results import plan_results

    planners: dict[str, Planner] = {"submissions": plan_submissions, "results": plan_results}
    return planners[kind](app, session, data, filename, options)


def apply_plan(app: App, session: Session, report: ImportReport) -> None:
    """Write `report` (a plan made in this transaction): rows, matching, mail; `report.outbox`
    gets the mail queued."""
    from service.results import apply_results

    appliers: dict[str, Applier] = {"submissions": apply_submissions, "results": apply_results}
    highest = session.exec(select(sa.func.max(Outbox.id))).one() or 0
    appliers[report.kind](app, session, report)
    session.flush()
    report.outbox = [
        int(mail_id)
        for mail_id in session.exec(
            select(Outbox.id).where(col(Outbox.id) > highest).order_by(col(Outbox.id))
        )
        if mail_id is not None
    ]


def plan_submissions(
    app: App, session: Session, data: bytes, filename: str, options: Mapping[str, Any]
) -> ImportReport:
    """The plan of a submissions export: added, changed (field by field), unchanged,
    withdrawn (by its status column, or by absence with `options["complete"]`), rejected."""
    export = read_submissions(
        data,
        filename,
        column_overrides=app.settings.submissions.columns or None,
        timezone=app.settings.campaign.timezone,
    )
    report = ImportReport(filename=filename, kind="submissions")
    report.rejections = [rejection_problem(row) for row in export.rejected]
    report.problems = list(export.problems)
    existing = {row.ref: row for row in session.exec(select(Submission)).all()}
    report.active_before = sum(1 for row in existing.values() if not row.withdrawn)
    seen: set[str] = set()
    for record in export.records:
        seen.add(record.ref)
        new = {**_record_values(record), "withdrawn": bool(record.withdrawn)}
        current = existing.get(record.ref)
        if current is None:
            report.added.append(record.ref)
            report.before[record.ref] = None
            report.after[record.ref] = new
            continue
        old = stored_state(current, EXPORT_FIELDS)
        if old == new:
            report.unchanged.append(record.ref)
            continue
        if new["withdrawn"] and not current.withdrawn:
            report.withdrawn.append(record.ref)
        else:
            report.changed.append(record.ref)
        report.before[record.ref] = {**old, "imported_at": _stored(current.imported_at)}
        report.after[record.ref] = new
    if options.get("complete") and export.records:
        for ref, row in sorted(existing.items()):
            if ref not in seen and not row.withdrawn:
                old = stored_state(row, EXPORT_FIELDS)
                report.withdrawn.append(ref)
                report.before[ref] = {**old, "imported_at": _stored(row.imported_at)}
                report.after[ref] = {**old, "withdrawn": True}
    return report


def apply_submissions(app: App, session: Session, report: ImportReport) -> None:
    """Write a submissions plan and re-run matching."""
    now = app.clock()
    for ref, new in report.after.items():
        current = session.get(Submission, ref)
        if current is None:
            current = Submission.model_validate(
                {"ref": ref, "imported_at": now, **restored_values(new)}
            )
        else:
            for name, value in restored_values(new).items():
                setattr(current, name, value)
            current.imported_at = now
        session.add(current)
    session.flush()
    if report.after:
        reconcile(app, session)


def lock_imports(session: Session) -> None:
    """Serialise imports, their confirmations and undos (and staff decisions) on either
    backend: a plan is made and applied under one lock."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(1616)"))
    else:  # SQLite: a write first takes the one write lock before anything is read
        session.execute(sa.text("UPDATE import_run SET id = id WHERE id IS NULL"))


def rejection_problem(row: RejectedRow) -> Problem:
    """The problem staff read for a rejected row (its catalogue code, else the English
    reason as an unclassified problem)."""
    return row.problem or Problem("unclassified", {"detail": f"row {row.row_number}: {row.reason}"})


def stored_state(row: Submission, names: tuple[str, ...]) -> dict[str, Any]:
    """Fields of a submission in stored form (times as UTC ISO text): what plans compare."""
    return {name: _stored(getattr(row, name)) for name in names}


def restored_values(state: Mapping[str, Any]) -> dict[str, Any]:
    """Stored-form fields back as the model's values (times parsed)."""
    return {
        name: datetime.fromisoformat(value)
        if name in ("submitted_at", "imported_at") and isinstance(value, str)
        else value
        for name, value in state.items()
    }


def _stored(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    return value


def _record_values(record: SubmissionRecord) -> dict[str, Any]:
    return {name: _stored(getattr(record, name)) for name in FIELDS}


def read_file(path: Path) -> bytes:
    """The bytes of an import file; ParseError when it cannot be read."""
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(
            f"{path}: cannot read the file ({exc.strerror})", filename=str(path)
        ) from exc


def upload_name(filename: str) -> str:
    """A safe name for an uploaded file: no path parts, no control characters, short."""
    return sanitize_filename(filename)[:200] or "上传文件"
