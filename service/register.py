"""The register staff work from: every message, recommendation, submission and mail.

`build_register` returns the JSON object `interface.md` publishes (more keys may be added,
none renamed). The states of submissions are derived here, in one place, from the rows
matched on current recommendations.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.settings import Settings
from parsers.model import Problem
from parsers.normalize import units_match
from service.faults import RETRY_BOUND
from service.models import (
    Attachment,
    CaseRow,
    Decision,
    ImportRun,
    Message,
    Outbox,
    PollCursor,
    Recommendation,
    Submission,
    Suppression,
)
from service.pairing_rules import DocumentFacts, organisation_domain, unit_for_pdf
from service.seals import staff_seals

MATCHED = ("ref", "name", "manual")
UNIT_UNREAD = "未读出推荐单位："
"""Prefix of the unit of a form that names none (set by pairing)."""


def iso(moment: datetime | None, settings: Settings) -> str | None:
    """ISO 8601 with the campaign's offset."""
    return None if moment is None else moment.astimezone(settings.campaign.zone).isoformat()


def problem_entries(stored: Sequence[object]) -> list[dict[str, str]]:
    """Stored problems (`{code, params}`) as the register shows them: `{code, text}`.

    `text` is the Chinese staff text: what it is and what to do.
    """
    entries = []
    for item in stored:
        problem = Problem.from_json(item)
        entries.append({"code": problem.code, "text": problem.staff_text})
    return entries


def submission_states(
    session: Session, submissions: Sequence[Submission]
) -> dict[str, tuple[str, int | None]]:
    """For each of `submissions`: its status and the recommendation it is matched on.

    A withdrawn submission is `withdrawn`, never complete nor waiting for anything."""
    recommendations = {
        row.id: row
        for row in session.exec(select(Recommendation).where(Recommendation.current == sa.true()))
    }
    best: dict[str, tuple[int, int | None]] = {}
    order = {"complete": 3, "awaiting_pdf": 2, "awaiting_word": 1}
    for row in session.exec(select(CaseRow).where(col(CaseRow.submission_ref).is_not(None))):
        recommendation = recommendations.get(row.recommendation_id)
        if recommendation is None or row.match not in MATCHED or row.submission_ref is None:
            continue
        if recommendation.complete:
            status = "complete"
        elif recommendation.word_attachment_id is None:
            status = "awaiting_word"
        else:
            status = "awaiting_pdf"
        rank = order[status]
        if row.submission_ref not in best or best[row.submission_ref][0] < rank:
            best[row.submission_ref] = (rank, recommendation.id)
    names = {rank: status for status, rank in order.items()}
    states: dict[str, tuple[str, int | None]] = {}
    waiting_recommenders = {
        submission.recommender
        for submission in submissions
        if submission.ref not in best
        and submission.route != "voluntary"
        and submission.recommender
        and not submission.withdrawn
    }
    pdf_only = _units_with_pdf_only(session, sorted(waiting_recommenders))
    for submission in submissions:
        found = best.get(submission.ref)
        if submission.withdrawn:  # never complete, whatever its form says
            states[submission.ref] = ("withdrawn", found[1] if found else None)
        elif found is not None:
            states[submission.ref] = (names[found[0]], found[1])
        elif submission.route == "voluntary":
            states[submission.ref] = ("complete", None)
        elif submission.recommender in pdf_only:
            states[submission.ref] = ("awaiting_word", None)
        else:
            states[submission.ref] = ("awaiting_recommendation", None)
    return states


def _units_with_pdf_only(session: Session, units: list[str]) -> set[str]:
    """Those of `units` whose sealed PDF is in, unplaced, while no Word form names them.

    The PDF must name the unit itself (file name, subject or text): its submissions then
    wait for the unit's Word form, not for a recommendation.
    """
    if not units:
        return set()
    found: set[str] = set()
    waiting = session.exec(
        select(Attachment, Message)
        .join(Message, col(Message.id) == col(Attachment.message_pk))
        .where(col(Attachment.kind) == "form_pdf", col(Attachment.placed) == sa.false())
    ).all()
    for attachment, message in waiting:
        facts = DocumentFacts(
            message_key=message.sha256,
            sender=message.sender,
            sender_domain=organisation_domain(message.sender),
            received_at=message.received_at,
            filename=attachment.filename,
            subject=message.subject,
            unit=attachment.pdf_unit,
            pdf_text=attachment.pdf_text,
            titles=(),
        )
        unit = unit_for_pdf(facts, units)
        if unit is not None:
            found.update(other for other in units if units_match(other, unit))
    return found


def recommendation_problems(recommendation: Recommendation) -> list[dict[str, str]]:
    """What staff should know about one recommendation version, as {code, text}: a version
    recorded from the sealed PDF alone awaits its Word form."""
    if recommendation.word_attachment_id is None and recommendation.pdf_attachment_id:
        return problem_entries([Problem("awaiting_word", {"unit": recommendation.unit}).as_json()])
    return []


def build_register(session: Session, settings: Settings) -> dict[str, Any]:
    """The whole register as plain JSON-ready data."""
    messages = session.exec(
        select(Message).order_by(col(Message.received_at), col(Message.id))
    ).all()
    attachments = session.exec(
        select(Attachment).order_by(col(Attachment.message_pk), col(Attachment.position))
    ).all()
    by_message: dict[int, list[Attachment]] = {}
    for attachment in attachments:
        by_message.setdefault(attachment.message_pk, []).append(attachment)
    attachment_by_id = {attachment.id: attachment for attachment in attachments}
    message_by_pk = {message.id: message for message in messages}

    decisions = session.exec(select(Decision).order_by(col(Decision.id))).all()
    seals_by_staff = staff_seals(session)
    late_by_staff = {
        row.after.get("message_id"): row
        for row in decisions
        if row.kind == "late" and row.undone_at is None
    }

    def file_ref(attachment_id: int | None, *, seal: bool) -> dict[str, Any] | None:
        attachment = attachment_by_id.get(attachment_id) if attachment_id else None
        if attachment is None:
            return None
        origin = message_by_pk.get(attachment.message_pk)
        result: dict[str, Any] = {
            "message_id": origin.message_id if origin else None,
            "filename": attachment.filename,
            "sha256": attachment.sha256,
        }
        if seal:
            result["seal"] = attachment.seal or "unknown"
            result["scanned"] = attachment.scanned
            confirmed = seals_by_staff.get(attachment.sha256)
            result["seal_confirmed"] = (
                {"by": confirmed.by, "at": iso(confirmed.at, settings)} if confirmed else None
            )
            result["text_source"] = attachment.text_source or (
                "text" if attachment.pdf_text.strip() else "none"
            )
            result["unit_on_pdf"] = attachment.pdf_unit
            result["agreement"] = attachment.agreement
        return result

    # Sorted here, not by the database: PostgreSQL collations order Chinese text otherwise.
    recommendations = sorted(
        session.exec(select(Recommendation)).all(),
        key=lambda row: (row.unit_key, row.version, row.id or 0),
    )
    rows_by_recommendation: dict[int, list[CaseRow]] = {}
    for row in session.exec(
        select(CaseRow).order_by(col(CaseRow.recommendation_id), col(CaseRow.row))
    ):
        rows_by_recommendation.setdefault(row.recommendation_id, []).append(row)
    submissions = sorted(session.exec(select(Submission)).all(), key=lambda row: row.ref)
    states = submission_states(session, submissions)
    outbox = session.exec(select(Outbox).order_by(col(Outbox.id))).all()
    placed_pdfs = {row.pdf_attachment_id for row in recommendations if row.pdf_attachment_id}

    return {
        "campaign": {
            "name": settings.campaign.name,
            "deadline": iso(settings.campaign.deadline, settings),
        },
        "messages": [
            {
                "id": message.id,
                "message_id": message.message_id,
                "sender": message.sender,
                "subject": message.subject,
                "received_at": iso(message.received_at, settings),
                "late": message.late,
                "kind": message.kind,
                "automated": bool(message.details.get("automated", False)),
                "needs_reply": bool(message.details.get("needs_reply", False)),
                "reply_reasons": list(message.details.get("reply_reasons", [])),
                "status": message.status,
                "late_decision": late_decision(late_by_staff.get(message.id), settings),
                "problems": problem_entries(message.problems),
                "attachments": [
                    {
                        "filename": attachment.filename,
                        "sha256": attachment.sha256,
                        "size": attachment.size,
                        "kind": attachment.kind,
                        "container": attachment.container,
                        "seal": attachment.seal,
                    }
                    for attachment in by_message.get(message.id or 0, [])
                ],
                "sha256": message.sha256,
                "size": message.size,
                "uid": message.uid,
            }
            for message in messages
        ],
        "recommendations": [
            {
                "id": recommendation.id,
                "unit": recommendation.unit,
                "unit_key": recommendation.unit_key,
                "sender": recommendation.sender,
                "version": recommendation.version,
                "current": recommendation.current,
                "complete": recommendation.complete,
                "late": recommendation.late,
                "contact": {
                    "name": recommendation.contact_name,
                    "title": recommendation.contact_title,
                    "phone": recommendation.contact_phone,
                    "mobile": recommendation.contact_mobile,
                    "email": recommendation.contact_email,
                },
                "word": file_ref(recommendation.word_attachment_id, seal=False),
                "problems": recommendation_problems(recommendation),
                "pdf": file_ref(recommendation.pdf_attachment_id, seal=True),
                "pdf_pairing": {
                    "method": recommendation.pdf_method,
                    "score": recommendation.pdf_score,
                    "evidence": recommendation.pdf_evidence,
                }
                if recommendation.pdf_attachment_id
                else None,
                "opinion": recommendation.opinion,
                "signed_on": recommendation.signed_on.isoformat()
                if recommendation.signed_on
                else None,
                "cases": [
                    {
                        "row": row.row,
                        "title": row.title,
                        "applicant": row.applicant,
                        "category": row.category,
                        "ref_on_form": row.ref_on_form,
                        "submission_ref": row.submission_ref,
                        "match": row.match,
                        "score": row.score,
                        "candidates": row.candidates,
                        "evidence": row.evidence,
                        "warnings": problem_entries(row.warnings),
                    }
                    for row in rows_by_recommendation.get(recommendation.id or 0, [])
                ],
            }
            for recommendation in recommendations
        ],
        "submissions": [
            {
                "ref": submission.ref,
                "title": submission.title,
                "applicant": submission.applicant,
                "uscc": submission.uscc,
                "uscc_valid": submission.uscc_valid,
                "category": submission.category,
                "field": submission.field,
                "route": submission.route,
                "recommender": submission.recommender,
                "contact": submission.contact,
                "mobile": submission.mobile,
                "email": submission.email,
                "submitted_at": iso(submission.submitted_at, settings),
                "status": states[submission.ref][0],
                "recommendation_id": states[submission.ref][1],
                "result": submission.result,
                "result_note": submission.result_note,
                "result_remark": submission.result_remark,
                "withdrawn": submission.withdrawn,
            }
            for submission in submissions
        ],
        "outbox": [
            {
                "id": row.id,
                "kind": row.kind,
                "to": row.recipients,
                "cc": row.cc,
                "subject": row.subject,
                "status": row.status,
                "attempts": row.attempts,
                "message_id": message_by_pk[row.message_pk].message_id
                if row.message_pk in message_by_pk
                else None,
                "submission_ref": row.submission_ref,
                "last_error": row.last_error,
                "unconfirmed": row.unconfirmed_at is not None,
                "created_at": iso(row.created_at, settings),
                "sent_at": iso(row.sent_at, settings),
            }
            for row in outbox
        ],
        "unplaced_pdfs": [
            {
                "filename": attachment.filename,
                "sha256": attachment.sha256,
                "message_id": message_by_pk[attachment.message_pk].message_id
                if attachment.message_pk in message_by_pk
                else None,
                "seal": attachment.seal,
                "message": attachment.message_pk,
                "text_source": attachment.text_source,
                "unit_on_pdf": attachment.pdf_unit,
            }
            for attachment in attachments
            if attachment.kind == "form_pdf" and attachment.id not in placed_pdfs
        ],
        "suppressed": [
            {"address": row.address, "reason": row.reason}
            for row in sorted(session.exec(select(Suppression)).all(), key=lambda row: row.address)
        ],
        "outages": outages(messages, settings),
        "decisions": [
            {
                "id": row.id,
                "at": iso(row.at, settings),
                "by": row.by,
                "kind": row.kind,
                "action": row.action,
                "target": row.item_id,
                "params": row.params,
                "concerns": row.concerns,
                "undone_at": iso(row.undone_at, settings),
                "undone_by": row.undone_by,
            }
            for row in decisions
        ],
        "imports": [
            {
                "id": run.id,
                "at": iso(run.applied_at or run.created_at, settings),
                "by": run.by,
                "kind": run.kind,
                "filename": run.filename,
                "sha256": run.sha256,
                "added": run.added,
                "changed": run.changed,
                "unchanged": run.unchanged,
                "withdrawn": run.withdrawn,
                "rejected": run.rejected,
                "blank": run.blank,
                "queued": run.queued,
                "undone_at": iso(run.undone_at, settings),
                "undone_by": run.undone_by,
            }
            for run in session.exec(
                select(ImportRun)
                .where(col(ImportRun.status).in_(["applied", "undone"]))
                .order_by(col(ImportRun.id))
            ).all()
        ],
        "mailboxes": [
            {
                "account": cursor.account,
                "folder": cursor.folder,
                "last_poll_at": iso(cursor.last_poll_at, settings),
                "last_success_at": iso(cursor.last_success_at, settings),
                "failing_since": iso(cursor.failing_since, settings),
                "last_error": cursor.last_error,
            }
            for cursor in sorted(
                session.exec(select(PollCursor)).all(),
                key=lambda cursor: (cursor.account, cursor.folder),
            )
        ],
    }


def late_decision(row: Decision | None, settings: Settings) -> dict[str, Any] | None:
    """Staff's word on a late message (`accept` / `reject`), by whom and when; None before."""
    if row is None:
        return None
    return {"action": row.action, "by": row.by, "at": iso(row.at, settings)}


def outages(messages: Sequence[Message], settings: Settings) -> list[dict[str, Any]]:
    """Transient failures still pending, one entry per kind of fault (database, storage,
    lock): since when, the last error, the most tries one message has had, how many wait."""
    by_fault: dict[str, list[Message]] = {}
    for message in messages:
        if message.status == "pending" and message.fault is not None:
            by_fault.setdefault(message.fault, []).append(message)
    entries: list[dict[str, Any]] = []
    for fault, waiting in sorted(by_fault.items()):
        latest = max(waiting, key=lambda message: message.retry_at or message.received_at)
        entries.append(
            {
                "what": fault,
                "since": iso(min(m.fault_since or m.received_at for m in waiting), settings),
                "last_error": latest.fault_error,
                "retries": max(message.retries for message in waiting),
                "messages": len(waiting),
                "lasting": any(message.retries >= RETRY_BOUND for message in waiting),
            }
        )
    return entries


def summary_counts(register: dict[str, Any]) -> dict[str, Counter[str]]:
    """Counts by state for status and the digest."""
    return {
        "messages": Counter(str(message["kind"]) for message in register["messages"]),
        "message_status": Counter(str(message["status"]) for message in register["messages"]),
        "submissions": Counter(str(row["status"]) for row in register["submissions"]),
        "outbox": Counter(str(row["status"]) for row in register["outbox"]),
        "recommendations": Counter(
            "complete" if row["complete"] else "incomplete"
            for row in register["recommendations"]
            if row["current"]
        ),
    }
