"""Staff decisions (入选 / 未入选): recorded, and one result mail queued per submission.

What a contact was last told is read from the outbox, not from the submission: a decision
changed without `--resend-changed` is recorded, and a later import with the flag still
sends the correction. A decision that flips back and forth sends one mail per change.
"""

from __future__ import annotations

from pathlib import Path
from typing import cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from notifications.contexts import RESULT_LABELS, Result, ResultNotice, tidy
from parsers.results import read_results
from service.bootstrap import App
from service.imports import ImportReport, read_file
from service.models import CaseRow, Outbox, Recommendation, Submission
from service.outbox import queue_mail


def import_results(
    app: App, path: Path, *, resend_changed: bool = False, dry_run: bool = False
) -> ImportReport:
    """Record staff decisions and queue one result mail per submission (corrections on request).

    `dry_run=True` works it all out, reports it, and records and queues nothing.
    """
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
            else:
                submission.result = decision.result
                submission.result_note = decision.note
                session.add(submission)
                (report.changed if previous is not None else report.added).append(decision.ref)
            told = _results_told(session, submission.ref)
            if told and told[-1] == decision.result:
                continue  # the contact already has this decision; a note change sends nothing
            correction = bool(told)
            if correction and not resend_changed:
                report.warnings.append(
                    f"{decision.ref}: decision changed from {told[-1]} to {decision.result}; "
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
                submission_title=tidy(submission.title) or "",
                applicant=tidy(submission.applicant) or "",
                contact_name=tidy(submission.contact),
                result=decision.result,
                note=decision.note,
                correction=correction,
            )
            key = f"result:{submission.ref}:{len(told) + 1}:{decision.result}"
            if (
                queue_mail(
                    app,
                    session,
                    key=key,
                    context=context,
                    to=[submission.email],
                    cc=[address for address in cc if address.lower() != submission.email.lower()],
                    submission_ref=submission.ref,
                )
                is not None
            ):
                report.queued += 1
        if dry_run:
            session.rollback()
            return report
        session.add(report.as_run("results", data, now))
        session.commit()
    return report


def _results_told(session: Session, ref: str) -> list[Result]:
    """The decisions result mails have announced for `ref`, oldest first (from their keys)."""
    keys = session.exec(
        select(Outbox.idempotency_key)
        .where(Outbox.kind == "result", Outbox.submission_ref == ref)
        .order_by(col(Outbox.id))
    ).all()
    told: list[Result] = []
    for key in keys:
        # "result:REF:N:DECISION"; rows queued before N existed read "result:REF:DECISION:ADDR".
        decision = next((part for part in key.split(":")[2:] if part in RESULT_LABELS), None)
        if decision is not None:
            told.append(cast(Result, decision))
    return told


def _unit_contact(session: Session, ref: str) -> list[str]:
    """The recommending unit's contact (the form's e-mail, else the form's sender)."""
    row = session.exec(
        select(Recommendation.contact_email, Recommendation.sender)
        .join(CaseRow, col(CaseRow.recommendation_id) == col(Recommendation.id))
        .where(
            CaseRow.submission_ref == ref,
            Recommendation.current == sa.true(),
            col(CaseRow.match).in_(["ref", "name", "manual"]),
        )
    ).first()
    if row is None:
        return []
    contact_email, sender = row
    return [address for address in (contact_email or sender,) if address]
