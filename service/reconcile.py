"""After anything changes: match form rows to submissions, settle completeness, tell applicants.

Runs for the recommendations a message touched, and for all of them after a submissions
import. Staff's manual row decisions always win.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from parsers.model import Problem
from service.agreement import refresh_agreements, rows_read_from_scan
from service.bootstrap import App
from service.matching import Candidate, RowToMatch, SubmissionIndex, Thresholds
from service.models import Attachment, CaseRow, ManualDecision, Message, Recommendation, Submission
from service.outbox import queue_applicant_receipts, replies_to_old_mail_allowed

_INDEX_CACHE: dict[str, tuple[tuple[object, ...], SubmissionIndex]] = {}


def _submissions_version(session: Session) -> tuple[object, ...]:
    """Changes whenever an import adds, changes or withdraws a submission."""
    row = session.exec(
        select(
            sa.func.count(col(Submission.ref)),
            sa.func.max(col(Submission.imported_at)),
            sa.func.sum(sa.case((col(Submission.withdrawn), 1), else_=0)),
        )
    ).one()
    return tuple(row)


def cached_submission_index(session: Session) -> SubmissionIndex:
    """The index over current submissions, rebuilt only after an import changed them."""
    bind = session.get_bind()
    place = str(bind.engine.url) if isinstance(bind, sa.Connection | sa.Engine) else "db"
    version = _submissions_version(session)
    cached = _INDEX_CACHE.get(place)
    if cached is not None and cached[0] == version:
        return cached[1]
    index = submission_index(session)
    _INDEX_CACHE[place] = (version, index)
    return index


def submission_index(
    session: Session, submissions: Sequence[Submission] | None = None
) -> SubmissionIndex:
    """An index over every submission still in the online system."""
    if submissions is None:
        submissions = session.exec(select(Submission)).all()
    return SubmissionIndex(
        Candidate(
            ref=row.ref,
            title=row.title,
            applicant=row.applicant,
            recommender=row.recommender,
            route=row.route,
        )
        for row in submissions
        if not row.withdrawn
    )


def reconcile(
    app: App,
    session: Session,
    recommendations: Sequence[Recommendation] | None = None,
    *,
    index: SubmissionIndex | None = None,
) -> None:
    """Re-match rows and refresh completeness for `recommendations` (all current when None).

    Named recommendations are those whose Word form or PDF just changed: their PDF's
    agreement with the Word form is checked again too (an import changes neither).
    """
    if recommendations is None:
        recommendations = session.exec(
            select(Recommendation).where(Recommendation.current == sa.true())
        ).all()
    else:
        refresh_agreements(app, session, recommendations)
    if not recommendations:
        return
    index = index or cached_submission_index(session)
    thresholds = Thresholds(
        accept=app.settings.matching.accept, margin=app.settings.matching.margin
    )
    for recommendation in recommendations:
        if not recommendation.current:
            continue
        recommendation.complete = (
            recommendation.word_attachment_id is not None
            and recommendation.pdf_attachment_id is not None
        )
        _match_rows(session, recommendation, index, thresholds)
        session.add(recommendation)
        session.flush()
        queue_applicant_receipts(
            app, session, recommendation, allowed=_replies_allowed(app, session, recommendation)
        )


def _replies_allowed(app: App, session: Session, recommendation: Recommendation) -> bool:
    campaign = app.settings.campaign
    if campaign.reply_to_old_mail:
        return True
    form_id = recommendation.word_attachment_id or recommendation.pdf_attachment_id
    word = session.get(Attachment, form_id) if form_id is not None else None
    message = session.get(Message, word.message_pk) if word else None
    return message is None or replies_to_old_mail_allowed(app, message)


def _match_rows(
    session: Session, recommendation: Recommendation, index: SubmissionIndex, thresholds: Thresholds
) -> None:
    rows = session.exec(
        select(CaseRow)
        .where(col(CaseRow.recommendation_id) == recommendation.id)
        .order_by(col(CaseRow.row))
    ).all()
    manual = {
        decision.row: decision
        for decision in session.exec(
            select(ManualDecision)
            .where(
                ManualDecision.kind == "row",
                col(ManualDecision.unit_key) == recommendation.unit_key,
                col(ManualDecision.version) == recommendation.version,
            )
            .order_by(col(ManualDecision.id))
        ).all()
    }
    from_scan = (
        [Problem("read_from_scan").as_json()]
        if rows_read_from_scan(session, recommendation)
        else []
    )
    automatic = [row for row in rows if row.row not in manual]
    taken = {
        decision.submission_ref: decision.row
        for decision in manual.values()
        if decision.submission_ref is not None and decision.row is not None
    }
    results = index.match_rows(
        [
            RowToMatch(row=row.row, title=row.title, applicant=row.applicant, ref=row.ref_on_form)
            for row in automatic
        ],
        unit=recommendation.unit,
        thresholds=thresholds,
        taken=taken,
    )
    for row, result in zip(automatic, results, strict=True):
        _settle(
            session,
            row,
            submission_ref=result.submission_ref,
            match=result.method,
            score=round(result.score, 1),
            candidates=[[ref, round(score, 1)] for ref, score in result.candidates],
            evidence=list(result.evidence),
            warnings=[*from_scan, *(warning.as_json() for warning in result.warnings)],
        )
    for row in rows:
        decision = manual.get(row.row)
        if decision is None:
            continue
        _settle(
            session,
            row,
            submission_ref=decision.submission_ref,
            match="manual" if decision.submission_ref else "none",
            score=100.0,
            candidates=[],
            evidence=["staff decision"],
            warnings=from_scan,
        )


def _settle(session: Session, row: CaseRow, **values: Any) -> None:
    """Write a row's decision only when it changed: re-matching after an import is then cheap."""
    if all(getattr(row, name) == value for name, value in values.items()):
        return
    for name, value in values.items():
        setattr(row, name, value)
    session.add(row)
