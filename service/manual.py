"""Staff's manual decisions: recorded as facts of their own, applied at once, kept forever."""

from __future__ import annotations

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import IntakeError
from service.bootstrap import App
from service.models import Attachment, CaseRow, ManualDecision, Recommendation, Submission
from service.pairing import _join
from service.reconcile import reconcile


class DecisionError(IntakeError, ValueError):
    """A manual decision names something that does not exist."""


def record_manual_decision(
    app: App,
    recommendation_id: int,
    *,
    kind: str,
    row: int | None = None,
    submission: str | None = None,
    attachment: str | None = None,
    by: str = "命令行",
) -> str:
    """Record and apply one decision (audited as made `by` someone); returns a sentence
    saying what was done."""
    from service.decisions import pair_by_hand

    return pair_by_hand(
        app,
        recommendation_id,
        kind=kind,
        row=row,
        submission=submission,
        attachment=attachment,
        by=by,
    )


def apply_manual_decision(
    app: App,
    session: Session,
    recommendation_id: int,
    *,
    kind: str,
    row: int | None = None,
    submission: str | None = None,
    attachment: str | None = None,
) -> tuple[str, ManualDecision, Recommendation]:
    """Record and apply one decision in `session` (not committed): what was done, the
    decision and its recommendation."""
    recommendation = session.get(Recommendation, recommendation_id)
    if recommendation is None:
        raise DecisionError(f"no recommendation {recommendation_id}: see `intake export`")
    if not recommendation.current:
        newer = session.exec(
            select(Recommendation).where(
                col(Recommendation.unit_key) == recommendation.unit_key,
                col(Recommendation.current) == sa.true(),
            )
        ).first()
        raise DecisionError(
            f"recommendation {recommendation_id} is version {recommendation.version} of "
            f"{recommendation.unit}, superseded"
            + (f" by version {newer.version} (#{newer.id}): decide on that" if newer else "")
        )
    decision = ManualDecision(
        kind=kind,
        unit_key=recommendation.unit_key,
        version=recommendation.version,
        created_at=app.clock(),
    )
    if kind == "row":
        found = session.exec(
            select(CaseRow).where(
                CaseRow.recommendation_id == recommendation.id, CaseRow.row == row
            )
        ).first()
        if found is None:
            raise DecisionError(f"recommendation {recommendation_id} has no row {row}")
        if submission is not None and session.get(Submission, submission) is None:
            raise DecisionError(
                f"no online submission {submission}: import the latest export first"
            )
        decision.row = row
        decision.submission_ref = submission
        said = f"row {row} of {recommendation.unit} v{recommendation.version} " + (
            f"tied to {submission}" if submission else "marked as having no submission"
        )
    else:
        matches = session.exec(
            select(Attachment).where(
                Attachment.kind == "form_pdf",
                Attachment.sha256.startswith(attachment or "-"),
            )
        ).all()
        if len({item.sha256 for item in matches}) != 1:
            raise DecisionError(
                f"{attachment!r} names {len(matches)} form PDFs; give more of the SHA-256"
            )
        decision.attachment_sha256 = matches[0].sha256
        _join(
            session,
            recommendation,
            matches[0],
            method="manual",
            score=1.0,
            evidence=["staff decision"],
        )
        said = f"{matches[0].filename} placed on {recommendation.unit} v{recommendation.version}"
    session.add(decision)
    session.flush()
    reconcile(app, session, [recommendation])
    return said, decision, recommendation
