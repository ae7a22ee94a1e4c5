"""Imports staff give the service: online-system exports and result decisions.

A submission export is upserted by 申报编号. Withdrawal is never inferred from absence (a
filtered export, one province's rows, must withdraw nothing): a submission is withdrawn when
the export's status column says so, or, with `complete=True` (the file is the whole export),
when it is missing from the file. Withdrawing more than `WITHDRAW_CONFIRM_SHARE` of the
active submissions at once needs `confirm=True`. `dry_run=True` reports what would change and
changes nothing. Nothing is ever deleted. After every import, matching runs again.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlmodel import Session, select

from config.errors import ConfirmationNeededError, ParseError
from parsers.model import SubmissionRecord
from parsers.submissions import read_submissions
from service.archive import sha256_hex
from service.bootstrap import App
from service.models import ImportRun, Submission
from service.reconcile import reconcile

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


@dataclass
class ImportReport:
    """What an import did, row by row where it matters."""

    filename: str
    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    withdrawn: list[str] = field(default_factory=list)
    rejected: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    queued: int = 0

    def as_run(self, kind: str, data: bytes, now: datetime) -> ImportRun:
        """The import's row in `import_run` (what the watch folder and the digest read)."""
        return ImportRun(
            kind=kind,
            filename=Path(self.filename).name,
            sha256=sha256_hex(data),
            added=len(self.added),
            changed=len(self.changed),
            unchanged=len(self.unchanged),
            rejected=len(self.rejected),
            withdrawn=len(self.withdrawn),
            created_at=now,
        )


def import_submissions(
    app: App,
    path: Path,
    *,
    complete: bool = False,
    confirm: bool = False,
    dry_run: bool = False,
) -> ImportReport:
    """Upsert one export file; raises ParseError when the file cannot be read at all, and
    ConfirmationNeededError (changing nothing) when it would withdraw too many unconfirmed."""
    data = read_file(path)
    export = read_submissions(
        data,
        path.name,
        column_overrides=app.settings.submissions.columns or None,
        timezone=app.settings.campaign.timezone,
    )
    report = ImportReport(filename=str(path))
    report.rejected = [f"row {row.row_number}: {row.reason}" for row in export.rejected]
    report.warnings = [problem.message for problem in export.problems]
    now = app.clock()
    with Session(app.engine) as session:
        existing = {row.ref: row for row in session.exec(select(Submission)).all()}
        active_before = sum(1 for row in existing.values() if not row.withdrawn)
        seen: set[str] = set()
        for record in export.records:
            seen.add(record.ref)
            values = _values(record)
            withdrawn = bool(record.withdrawn)
            current = existing.get(record.ref)
            if current is None:
                session.add(
                    Submission.model_validate(
                        {"ref": record.ref, "imported_at": now, "withdrawn": withdrawn, **values}
                    )
                )
                report.added.append(record.ref)
                continue
            differs = any(getattr(current, name) != value for name, value in values.items())
            if withdrawn and not current.withdrawn:
                report.withdrawn.append(record.ref)
            elif differs or current.withdrawn != withdrawn:
                report.changed.append(record.ref)
            else:
                report.unchanged.append(record.ref)
                continue
            for name, value in values.items():
                setattr(current, name, value)
            current.withdrawn = withdrawn
            current.imported_at = now
            session.add(current)
        if complete and export.records:
            for ref, row in existing.items():
                if ref not in seen and not row.withdrawn:
                    row.withdrawn = True
                    session.add(row)
                    report.withdrawn.append(ref)
        if (
            not confirm
            and not dry_run
            and len(report.withdrawn) > WITHDRAW_CONFIRM_SHARE * max(active_before, 1)
        ):
            session.rollback()
            raise ConfirmationNeededError(
                f"{path.name}: would withdraw {len(report.withdrawn)} of {active_before} "
                f"active submissions (more than {WITHDRAW_CONFIRM_SHARE:.0%}); nothing "
                "changed. Check the list and import again with --yes to confirm: "
                + ", ".join(report.withdrawn[:50]),
                items=list(report.withdrawn),
            )
        if dry_run:
            session.rollback()
            return report
        session.flush()
        if report.added or report.changed or report.withdrawn:
            reconcile(app, session)
        session.add(report.as_run("submissions", data, now))
        session.commit()
    return report


def _values(record: SubmissionRecord) -> dict[str, object]:
    return {name: getattr(record, name) for name in FIELDS}


def read_file(path: Path) -> bytes:
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ParseError(
            f"{path}: cannot read the file ({exc.strerror})", filename=str(path)
        ) from exc
