"""Staff decisions (入选 / 未入选): recorded, and one result mail queued per submission.

What a contact was last told is read from the outbox, not from the submission: a decision
changed without `--resend-changed` is recorded, and a later import with the flag still
sends the correction. A decision that flips back and forth sends one mail per change.

A blank 结果 is no decision yet (counted once, `blank_rows`); a blank note or remark keeps
the stored one, 清空 clears it. Only the note to the applicant (给申报单位的说明 / 备注) reaches a
mail; the internal remark (内部备注) stays in the register.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

import sqlalchemy as sa
from sqlmodel import Session, col, select

from notifications.contexts import RESULT_LABELS, Result, ResultNotice, tidy
from parsers.model import Problem
from parsers.results import read_results
from service.bootstrap import App
from service.imports import (
    BY_COMMAND_LINE,
    RESULT_FIELDS,
    ImportReport,
    PlannedMail,
    read_file,
    rejection_problem,
    run_import,
    stored_state,
)
from service.models import CaseRow, Outbox, Recommendation, Submission
from service.outbox import queue_mail


def import_results(
    app: App,
    path: Path,
    *,
    resend_changed: bool = False,
    dry_run: bool = False,
    by: str = BY_COMMAND_LINE,
) -> ImportReport:
    """Record staff decisions and queue one result mail per submission (corrections on request).

    `dry_run=True` works it all out, reports it, and records and queues nothing.
    """
    return run_import(
        app,
        "results",
        read_file(path),
        path,
        options={"resend_changed": resend_changed},
        dry_run=dry_run,
        by=by,
    )


def plan_results(
    app: App, session: Session, data: bytes, filename: str, options: Mapping[str, Any]
) -> ImportReport:
    """The plan of a results sheet: each submission's result, note and remark before and
    after, and the result mail each applicant would get (`report.mails`)."""
    decisions = read_results(data, filename)
    report = ImportReport(filename=filename, kind="results")
    report.rejections = [rejection_problem(row) for row in decisions.rejected]
    report.blank_rows = list(decisions.blank_rows)
    for decision in decisions.decisions:
        submission = session.get(Submission, decision.ref)
        if submission is None:
            report.rejections.append(
                Problem("import_row_unknown_ref", {"row": decision.row_number, "ref": decision.ref})
            )
            continue
        old = stored_state(submission, RESULT_FIELDS)
        new = {
            "result": decision.result,
            "result_note": _kept(old["result_note"], decision.note),
            "result_remark": _kept(old["result_remark"], decision.remark),
        }
        if new == old:
            report.unchanged.append(decision.ref)
        else:
            (report.changed if old["result"] is not None else report.added).append(decision.ref)
            report.before[decision.ref] = old
            report.after[decision.ref] = new
        mail = _result_mail(
            app,
            session,
            submission,
            new,
            resend_changed=bool(options.get("resend_changed")),
            problems=report.problems,
        )
        if mail is not None:
            report.mails.append(mail)
    return report


def apply_results(app: App, session: Session, report: ImportReport) -> None:
    """Write a results plan and queue its mail."""
    for ref, new in report.after.items():
        submission = session.get(Submission, ref)
        assert submission is not None  # planned in this transaction
        for name, value in new.items():
            setattr(submission, name, value)
        session.add(submission)
    for mail in report.mails:
        queued = queue_mail(
            app,
            session,
            key=mail.key,
            context=mail.context,
            to=mail.to,
            cc=mail.cc,
            submission_ref=mail.ref,
        )
        if queued is not None:
            report.queued += 1


def _kept(stored: str | None, cell: str | None) -> str | None:
    """A note after the import: a blank cell keeps it, 清空 clears it, text replaces it."""
    if cell is None:
        return stored
    return cell or None  # CLEARED is ""


def _result_mail(
    app: App,
    session: Session,
    submission: Submission,
    state: dict[str, Any],
    *,
    resend_changed: bool,
    problems: list[Problem],
) -> PlannedMail | None:
    """The result mail `submission` should get for `state`, or None (already told, a change
    not to be announced, no address, no result)."""
    result: Result | None = state["result"]
    if result is None:
        return None
    told = _results_told(session, submission.ref)
    if told and told[-1] == result:
        return None  # the contact already has this decision; a note change sends nothing
    correction = bool(told)
    if correction and not resend_changed:
        problems.append(
            Problem(
                "result_change_not_sent",
                {
                    "ref": submission.ref,
                    "old": RESULT_LABELS[told[-1]],
                    "new": RESULT_LABELS[result],
                },
            )
        )
        return None
    if not submission.email:
        problems.append(Problem("result_no_email", {"ref": submission.ref}))
        return None
    key = f"result:{submission.ref}:{len(told) + 1}:{result}"
    if session.exec(select(Outbox.id).where(Outbox.idempotency_key == key)).first() is not None:
        return None
    cc = _unit_contact(session, submission.ref) if app.settings.campaign.results_copy_unit else []
    context = ResultNotice(
        campaign_name=app.settings.campaign.name,
        submission_ref=submission.ref,
        submission_title=tidy(submission.title) or "",
        applicant=tidy(submission.applicant) or "",
        contact_name=tidy(submission.contact),
        result=result,
        note=state["result_note"],  # the note to the applicant; never the internal remark
        correction=correction,
    )
    return PlannedMail(
        ref=submission.ref,
        key=key,
        context=context,
        to=[submission.email],
        cc=[address for address in cc if address.lower() != submission.email.lower()],
    )


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
