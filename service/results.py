"""Staff decisions (入选 / 未入选): recorded, and one result mail queued per submission."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from sqlmodel import Session, col, select

from notifications.contexts import ResultNotice
from parsers.results import read_results
from service.archive import sha256_hex
from service.bootstrap import App
from service.imports import ImportReport, read_file
from service.models import CaseRow, ImportRun, Recommendation, Submission
from service.outbox import queue_mail


def import_results(app: App, path: Path, *, resend_changed: bool = False) -> ImportReport:
    """Record staff decisions and queue one result mail per submission (corrections on request)."""
    data = read_file(path)
    decisions = read_results(data, path.name)
    report = ImportReport(filename=str(path))
    report.rejected = [f"row {row.row_number}: {row.reason}" for row in decisions.rejected]
    now = app.clock()
    with Session(app.engine) as session:
        for decision in decisions.decisions:
            submission = session.get(Submission, decision.ref)
            if submission is None:
                report.rejected.append(f"row {decision.row_number}: no submission {decision.ref}")
                continue
            previous = submission.result
            if previous == decision.result and (submission.result_note or None) == (
                decision.note or None
            ):
                report.unchanged.append(decision.ref)
                continue
            correction = previous is not None
            submission.result = decision.result
            submission.result_note = decision.note
            session.add(submission)
            (report.changed if correction else report.added).append(decision.ref)
            if correction and not resend_changed:
                report.warnings.append(
                    f"{decision.ref}: decision changed from {previous} to {decision.result}; "
                    "no correction sent (use --resend-changed)"
                )
                continue
            if not submission.email:
                report.warnings.append(f"{decision.ref}: no e-mail address; no result mail")
                continue
            cc = (
                _unit_contact(session, submission.ref)
                if app.settings.campaign.results_copy_unit
                else []
            )
            context = ResultNotice(
                campaign_name=app.settings.campaign.name,
                submission_ref=submission.ref,
                submission_title=submission.title,
                applicant=submission.applicant,
                contact_name=submission.contact,
                result=decision.result,
                note=decision.note,
                correction=correction,
            )
            key = f"result:{submission.ref}:{decision.result}:{submission.email.lower()}"
            if (
                queue_mail(
                    app,
                    session,
                    key=key,
                    context=context,
                    to=[submission.email],
                    cc=cc,
                    submission_ref=submission.ref,
                )
                is not None
            ):
                report.queued += 1
        session.add(
            ImportRun(
                kind="results",
                filename=path.name,
                sha256=sha256_hex(data),
                added=len(report.added),
                changed=len(report.changed),
                unchanged=len(report.unchanged),
                rejected=len(report.rejected),
                created_at=now,
            )
        )
        session.commit()
    return report


def _unit_contact(session: Session, ref: str) -> list[str]:
    row = session.exec(
        select(Recommendation.contact_email)
        .join(CaseRow, col(CaseRow.recommendation_id) == col(Recommendation.id))
        .where(CaseRow.submission_ref == ref, Recommendation.current == sa.true())
    ).first()
    return [row] if row else []
