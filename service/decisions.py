"""Staff's decisions on the queue of what needs a person, and their undo.

One function per (kind, action), used alike by the workspace's pages, its JSON API and the
CLI (`intake pair …`). A decision is checked against the queue inside its own transaction
(PostgreSQL: an advisory transaction lock; SQLite: the write lock taken first), applied, and
recorded as a `Decision` row: who, when, the item, the action, its parameters, the state
before and after. A unique `open_item` column makes a second decision of the same item
fail even if two transactions raced past the check. Row and PDF decisions build on
`ManualDecision`, so they survive `intake reprocess` as manual decisions always have; the
other decisions take their item off the queue through the register's `decisions[]`, whose
targets are the queue's stable ids.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from config.errors import IntakeError
from service.bootstrap import App
from service.manual import DecisionError, apply_manual_decision
from service.models import (
    Attachment,
    CaseRow,
    Decision,
    ManualDecision,
    Outbox,
    Recommendation,
    Submission,
)
from service.outbox import queue_reminder
from service.reconcile import reconcile
from service.register import build_register
from service.seals import SEAL_OF_ACTION, set_seal, staff_seals
from service.todo import ACTION_LABELS, TodoItem, todo_items, todo_json, unit_of_target

GONE = "这一项已经有人处理过了，或已不在待处理中。请刷新页面查看最新情况。"
NO_SUCH_ACTION = "这一项没有这个操作。请从页面上列出的操作中选择。"
CHANGED = "这项决定无法执行：相关的推荐表或文件已有变化，请刷新页面。"
NOTE_MISSING = "请填写说明：做了什么、为什么。"
NOTE_LONG = "说明太长了，请控制在两千字以内。"
SENT_STAYS_SENT = "已经发出的邮件不会因撤销而收回。"
NOT_UNDOABLE = {"reprocess": "重新处理无法撤销：来信已按最新规则重新读取。"}
UNSENT = ("pending", "suppressed")
"""Outbox states of a mail that has not gone: undo withdraws such mail queued by a decision."""
REPEATABLE = {"reprocess", "retry", "remind"}
"""Actions whose item may come back later (a message re-read, a mail failing again): they
do not hold the item, so a later decision of it is possible."""


class DecisionRefusedError(IntakeError, ValueError):
    """A decision that cannot be made; `text` says why in Chinese, `status` is its HTTP code."""

    status = 422

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.text = text


class ItemGoneError(DecisionRefusedError):
    """The item is no longer open: someone else decided it first (HTTP 409)."""

    status = 409


class TooSoonError(DecisionRefusedError):
    """A reminder sooner than `reminders.min_days` after the unit's last one (HTTP 409)."""

    status = 409


class BadDecisionError(DecisionRefusedError):
    """An action or a parameter that does not fit the item (HTTP 422)."""

    status = 422


@dataclass
class Outcome:
    """What one decision changed: the state before and after, its manual decision."""

    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)
    manual_decision_id: int | None = None


Handler = Callable[[App, Session, TodoItem, dict[str, Any]], Outcome]


def decide(
    app: App, item_id: str, action: str, params: dict[str, Any], *, by: str
) -> dict[str, Any]:
    """Make one decision on the open queue item `item_id`; returns the item's new state.

    Raises ItemGoneError when the item is not open (any more), BadDecisionError for an action or a
    parameter that does not fit it.
    """
    by = by.strip()[:200] or "未署名"
    with Session(app.engine, expire_on_commit=False) as session:
        _lock(session)
        register = build_register(session, app.settings)
        item = next((entry for entry in todo_items(register) if entry.id == item_id), None)
        if item is None:
            raise ItemGoneError(GONE)
        offered = {entry["name"]: entry for entry in item.actions}
        if action not in offered:
            raise BadDecisionError(NO_SUCH_ACTION)
        clean = _checked_params(session, offered[action], params)
        first_new_mail = _next_outbox_id(session)
        outcome = HANDLERS[(item.kind, action)](app, session, item, clean)
        queued = _outbox_since(session, first_new_mail)
        row = Decision(
            at=app.clock(),
            by=by,
            item_id=item.id,
            kind=item.kind,
            action=action,
            concerns=item.where,
            params=clean,
            before=outcome.before,
            after={**outcome.after, "outbox": queued},
            open_item=None if action in REPEATABLE else item.id,
            manual_decision_id=outcome.manual_decision_id,
        )
        session.add(row)
        try:
            session.commit()
        except IntegrityError as exc:  # another transaction decided it between check and write
            session.rollback()
            raise ItemGoneError(GONE) from exc
        app.log(f"decision {row.id}: {item.id} {action} by {by!r}")
    if action == "reprocess":
        from service.processing import rebuild_all

        rebuild_all(app)
    return item_state(app, item_id)


def item_state(app: App, item_id: str) -> dict[str, Any]:
    """An item as it stands now: still open or not, and the decisions made on it."""
    with Session(app.engine) as session:
        register = build_register(session, app.settings)
    item = next((entry for entry in todo_items(register) if entry.id == item_id), None)
    return {
        "id": item_id,
        "open": item is not None,
        "item": todo_json(item) if item is not None else None,
        "decisions": [entry for entry in register["decisions"] if entry["target"] == item_id],
    }


def withdraw_unsent(session: Session, outbox_ids: list[int]) -> int:
    """Take back the mail of these outbox rows that has not gone yet (an undo); mail already
    sent stays sent. Returns how many were taken back."""
    withdrawn = 0
    for outbox_id in outbox_ids:
        mail = session.get(Outbox, outbox_id)
        if mail is not None and mail.status in UNSENT and mail.sent_at is None:
            session.delete(mail)
            withdrawn += 1
    session.flush()
    return withdrawn


def undo(app: App, decision_id: int, *, by: str) -> str:
    """Undo decision `decision_id`, restoring the state before it; returns a Chinese
    sentence saying what was done (mail already sent stays sent)."""
    by = by.strip()[:200] or "未署名"
    with Session(app.engine) as session:
        _lock(session)
        row = session.get(Decision, decision_id)
        if row is None:
            raise BadDecisionError("没有这条操作记录。")
        if row.undone_at is not None:
            raise ItemGoneError("这项决定已经撤销过了。")
        if row.action in NOT_UNDOABLE:
            raise BadDecisionError(NOT_UNDOABLE[row.action])
        later = session.exec(
            select(Decision).where(
                col(Decision.item_id) == row.item_id,
                col(Decision.id) > decision_id,
                col(Decision.undone_at).is_(None),
            )
        ).first()
        if later is not None:
            raise BadDecisionError("这一项之后又有新的决定，请先撤销较新的那一项。")
        withdrawn = withdraw_unsent(session, row.after.get("outbox", []))
        restore = UNDO.get(row.action)
        if restore is not None:
            restore(app, session, row)
        row.undone_at = app.clock()
        row.undone_by = by
        row.open_item = None
        session.add(row)
        session.commit()
        label = ACTION_LABELS.get((row.kind, row.action), row.action)
        app.log(f"decision {decision_id} undone by {by!r}")
    said = f"已撤销“{label}”，恢复到这项决定之前的状态。"
    if withdrawn:
        said += f"因这项决定排队待发的{withdrawn}封邮件已取消。"
    return said + SENT_STAYS_SENT


def pair_by_hand(
    app: App,
    recommendation_id: int,
    *,
    kind: str,
    row: int | None = None,
    submission: str | None = None,
    attachment: str | None = None,
    by: str,
) -> str:
    """`intake pair set/clear/pdf`: a row or PDF decision by recommendation id, audited."""
    by = by.strip()[:200] or "命令行"
    with Session(app.engine) as session:
        _lock(session)
        before: dict[str, Any] = {}
        if kind == "row":
            case = session.exec(
                select(CaseRow).where(
                    col(CaseRow.recommendation_id) == recommendation_id, col(CaseRow.row) == row
                )
            ).first()
            if case is not None:
                before = {"match": case.match, "submission_ref": case.submission_ref}
        else:
            shas = {
                found.sha256
                for found in session.exec(
                    select(Attachment).where(
                        col(Attachment.kind) == "form_pdf",
                        col(Attachment.sha256).startswith(attachment or "-"),
                    )
                )
            }
            recommendation = session.get(Recommendation, recommendation_id)
            if len(shas) == 1 and recommendation is not None:
                before = _pdf_snapshot(session, recommendation, next(iter(shas)))
        first_new_mail = _next_outbox_id(session)
        said, manual, recommendation = apply_manual_decision(
            app,
            session,
            recommendation_id,
            kind=kind,
            row=row,
            submission=submission,
            attachment=attachment,
        )
        key = f"{recommendation.unit_key}:v{recommendation.version}"
        if kind == "row":
            item_id, item_kind = f"ambiguous_row:{key}:{row}", "ambiguous_row"
            action = "choose" if submission else "none"
            params: dict[str, Any] = {"submission_ref": submission} if submission else {}
            after = _row_state(session, recommendation_id, row)
        else:
            sha = manual.attachment_sha256 or ""
            item_id, item_kind, action = f"unplaced_pdf:{sha[:16]}", "unplaced_pdf", "place"
            params = {"recommendation_id": recommendation_id}
            after = {"pdf_sha256": sha}
        session.add(
            Decision(
                at=app.clock(),
                by=by,
                item_id=item_id,
                kind=item_kind,
                action=action,
                concerns=f"{recommendation.unit}（第{recommendation.version}版推荐表）",
                params=params,
                before=before,
                after={**after, "outbox": _outbox_since(session, first_new_mail)},
                manual_decision_id=manual.id,
            )
        )
        session.commit()
    return said


# -- the decisions, one per (kind, action) -----------------------------------------------------


def choose(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`ambiguous_row` → `choose`: tie the row to `submission_ref` (a manual decision)."""
    return _decide_row(app, session, item, params["submission_ref"])


def no_submission(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`ambiguous_row` → `none`: the row has no online submission yet."""
    return _decide_row(app, session, item, None)


def place(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`unplaced_pdf` → `place`: the sealed PDF belongs to `recommendation_id`."""
    recommendation_id = params["recommendation_id"]
    recommendation = session.get(Recommendation, recommendation_id)
    assert recommendation is not None  # checked with the parameters
    sha = str(item.details["sha256"])
    before = _pdf_snapshot(session, recommendation, sha)
    _, manual, _ = _manual(
        app, session, recommendation_id, kind="pdf", attachment=sha, row=None, submission=None
    )
    return Outcome(before=before, after={"pdf_sha256": sha}, manual_decision_id=manual.id)


def closing(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """The decisions that only record staff's word and take the item off the queue:
    not a form, handled, replied, a failed mail dropped."""
    return Outcome(before={"open": True}, after={"open": False})


def seal_present(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`seal_unconfirmed` → `seal_present`: staff saw the seal on the PDF."""
    return _confirm_seal(session, item, "present")


def seal_absent(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`seal_unconfirmed` → `seal_absent`: staff saw the PDF carries no seal."""
    return _confirm_seal(session, item, "absent")


def _confirm_seal(session: Session, item: TodoItem, seal: str) -> Outcome:
    """Staff's word becomes the PDF's seal: every copy of the file, and again after
    `intake reprocess` (service.seals)."""
    recommendation = session.get(Recommendation, item.details["recommendation_id"])
    pdf = (
        session.get(Attachment, recommendation.pdf_attachment_id)
        if recommendation is not None and recommendation.pdf_attachment_id
        else None
    )
    if pdf is None:
        raise ItemGoneError(GONE)
    before = {"open": True, "pdf_sha256": pdf.sha256, "seal": pdf.seal}
    set_seal(session, pdf.sha256, seal)
    return Outcome(before=before, after={"open": False, "pdf_sha256": pdf.sha256, "seal": seal})


def judge_late(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`late` → `accept` / `reject`: staff's word on mail that came after the deadline,
    shown with the message in the register and the workspace; no mail goes."""
    message_id = item.details["message_id"]
    return Outcome(
        before={"open": True, "message_id": message_id},
        after={"open": False, "message_id": message_id},
    )


def reprocess(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`needs_attention` → `reprocess`: re-read the archive (done after the commit)."""
    return Outcome()


def retry(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`failed_mail` → `retry`: the mail goes back into the outbox, to be sent again."""
    mail = session.get(Outbox, item.details["outbox_id"])
    if mail is None:
        raise ItemGoneError(GONE)
    before = _mail_state(mail)
    mail.status = "pending"
    mail.attempts = 0
    mail.next_attempt_at = app.clock()
    mail.unconfirmed_at = None
    session.add(mail)
    session.flush()
    return Outcome(before=before, after=_mail_state(mail))


def remind(app: App, session: Session, item: TodoItem, params: dict[str, Any]) -> Outcome:
    """`missing_word` / `missing_pdf` / `no_submission` / `pdf_mismatch` → `remind`: queue a
    reminder to the unit of what its recommendation lacks (a sealed PDF matching its Word
    form among it); once every `reminders.min_days` days per unit."""
    unit = unit_of_target(item.id)
    recommendation = session.get(Recommendation, item.details["recommendation_id"])
    if unit is None or recommendation is None:
        raise ItemGoneError(GONE)
    now = app.clock()
    window = timedelta(days=app.settings.reminders.min_days)
    earlier = session.exec(
        select(Decision)
        .where(col(Decision.action) == "remind", col(Decision.undone_at).is_(None))
        .order_by(col(Decision.at).desc())
    ).all()
    last = next((row for row in earlier if unit_of_target(row.item_id) == unit), None)
    if last is not None and _aware(now) - _aware(last.at) < window:
        day = _aware(last.at).astimezone(app.settings.campaign.zone).strftime("%Y年%m月%d日")
        raise TooSoonError(
            f"已于{day}向该单位发送过催办提醒。"
            f"每{app.settings.reminders.min_days:g}天最多提醒一次，请稍后再发。"
        )
    mail = queue_reminder(app, session, recommendation)
    if mail is None:
        raise BadDecisionError("无法向该单位发送提醒：没有可用的联系邮箱。")
    return Outcome(before={}, after={"reminder_to": mail.recipient})


HANDLERS: dict[tuple[str, str], Handler] = {
    ("ambiguous_row", "choose"): choose,
    ("ambiguous_row", "none"): no_submission,
    ("unplaced_pdf", "place"): place,
    ("unplaced_pdf", "not_a_form"): closing,
    ("late", "accept"): judge_late,
    ("late", "reject"): judge_late,
    ("needs_attention", "reprocess"): reprocess,
    ("needs_attention", "handled"): closing,
    ("needs_reply", "replied"): closing,
    ("seal_unconfirmed", "seal_present"): seal_present,
    ("seal_unconfirmed", "seal_absent"): seal_absent,
    ("failed_mail", "retry"): retry,
    ("failed_mail", "drop"): closing,
    ("missing_word", "remind"): remind,
    ("missing_pdf", "remind"): remind,
    ("no_submission", "remind"): remind,
    ("pdf_mismatch", "remind"): remind,
    ("pdf_mismatch", "handled"): closing,
}


# -- undo --------------------------------------------------------------------------------------


def _undo_row(app: App, session: Session, row: Decision) -> None:
    manual = session.get(ManualDecision, row.manual_decision_id) if row.manual_decision_id else None
    if manual is None:
        return
    recommendation = _current_of(session, manual)
    session.delete(manual)
    session.flush()
    if recommendation is not None:
        reconcile(app, session, [recommendation])


def _undo_place(app: App, session: Session, row: Decision) -> None:
    manual = session.get(ManualDecision, row.manual_decision_id) if row.manual_decision_id else None
    if manual is None:
        return
    recommendation = _current_of(session, manual)
    session.delete(manual)
    session.flush()
    if recommendation is None:
        return
    before = row.before
    for attachment in _pdfs_with(session, str(row.after.get("pdf_sha256") or "")):
        attachment.placed = bool(before.get("was_placed", False))
        session.add(attachment)
    previous = next(iter(_pdfs_with(session, before.get("pdf_sha256") or "")), None)
    recommendation.pdf_attachment_id = previous.id if previous else None
    recommendation.pdf_method = before.get("pdf_method")
    recommendation.pdf_score = before.get("pdf_score")
    recommendation.pdf_evidence = list(before.get("pdf_evidence") or [])
    recommendation.late = bool(before.get("late", recommendation.late))
    if previous is not None:
        previous.placed = True
        session.add(previous)
    session.add(recommendation)
    session.flush()
    reconcile(app, session, [recommendation])


def _undo_retry(app: App, session: Session, row: Decision) -> None:
    mail = session.get(Outbox, row.after.get("outbox_id") or row.before.get("outbox_id"))
    if mail is None or mail.status != "pending":
        return  # sent meanwhile: mail already sent stays sent
    mail.status = row.before["status"]
    mail.attempts = int(row.before["attempts"])
    mail.next_attempt_at = datetime.fromisoformat(row.before["next_attempt_at"])
    unconfirmed = row.before.get("unconfirmed_at")
    mail.unconfirmed_at = datetime.fromisoformat(unconfirmed) if unconfirmed else None
    session.add(mail)


def _undo_seal(app: App, session: Session, row: Decision) -> None:
    sha = str(row.after.get("pdf_sha256") or "")
    if not sha:
        return
    other = staff_seals(session, besides=row.id).get(sha)
    seal = SEAL_OF_ACTION[other.action] if other is not None else row.before.get("seal")
    set_seal(session, sha, str(seal or "unknown"))


UNDO: dict[str, Callable[[App, Session, Decision], None]] = {
    "choose": _undo_row,
    "none": _undo_row,
    "place": _undo_place,
    "retry": _undo_retry,
    "seal_present": _undo_seal,
    "seal_absent": _undo_seal,
}


# -- helpers -----------------------------------------------------------------------------------


def _aware(moment: datetime) -> datetime:
    """A stored time as an aware UTC time (SQLite hands them back naive)."""
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _lock(session: Session) -> None:
    """Serialise decisions: checked and written under one lock, on either backend."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(sa.text("SELECT pg_advisory_xact_lock(1616)"))
    else:  # SQLite: a write first takes the one write lock before anything is read
        session.execute(sa.text("UPDATE decision SET id = id WHERE id IS NULL"))


def _checked_params(
    session: Session, action: dict[str, Any], given: dict[str, Any]
) -> dict[str, Any]:
    """The parameters of `action` out of `given`, checked; Chinese refusals."""
    clean: dict[str, Any] = {}
    for param in action["params"]:
        name = param["name"]
        value = given.get(name)
        if isinstance(value, str):
            value = value.strip()
        if value in (None, ""):
            if name == "note":
                raise BadDecisionError(NOTE_MISSING)
            raise BadDecisionError(f"请选择{param['label']}。")
        if name == "note":
            if not isinstance(value, str):
                raise BadDecisionError(NOTE_MISSING)
            if len(value) > 2000:
                raise BadDecisionError(NOTE_LONG)
        elif name == "submission_ref":
            if not isinstance(value, str) or session.get(Submission, value) is None:
                raise BadDecisionError(
                    "在线申报名单中没有这个申报编号。请核对编号，或先导入最新的在线申报名单。"
                )
        elif name == "recommendation_id":
            try:
                value = int(value)
            except (TypeError, ValueError):
                raise BadDecisionError("请从列表中选择一份推荐表。") from None
            recommendation = session.get(Recommendation, value)
            if recommendation is None or not recommendation.current:
                raise BadDecisionError("所选的推荐表不存在或已有新版本，请刷新页面后重新选择。")
        clean[name] = value
    return clean


def _manual(
    app: App,
    session: Session,
    recommendation_id: int,
    *,
    kind: str,
    row: int | None,
    submission: str | None,
    attachment: str | None = None,
) -> tuple[str, ManualDecision, Recommendation]:
    try:
        return apply_manual_decision(
            app,
            session,
            recommendation_id,
            kind=kind,
            row=row,
            submission=submission,
            attachment=attachment,
        )
    except DecisionError as exc:
        raise BadDecisionError(
            "这项决定无法执行：相关的推荐表或文件已有变化，请刷新页面。"
        ) from exc


def _decide_row(app: App, session: Session, item: TodoItem, submission: str | None) -> Outcome:
    recommendation_id = int(item.details["recommendation_id"])
    number = int(item.details["row"])
    before = _row_state(session, recommendation_id, number)
    _, manual, _ = _manual(
        app, session, recommendation_id, kind="row", row=number, submission=submission
    )
    return Outcome(
        before=before,
        after=_row_state(session, recommendation_id, number),
        manual_decision_id=manual.id,
    )


def _row_state(session: Session, recommendation_id: int, number: int | None) -> dict[str, Any]:
    case = session.exec(
        select(CaseRow).where(
            col(CaseRow.recommendation_id) == recommendation_id, col(CaseRow.row) == number
        )
    ).first()
    if case is None:
        return {}
    return {"row": number, "match": case.match, "submission_ref": case.submission_ref}


def _pdfs_with(session: Session, sha256: str) -> list[Attachment]:
    if not sha256:
        return []
    return list(
        session.exec(
            select(Attachment)
            .where(col(Attachment.kind) == "form_pdf", col(Attachment.sha256) == sha256)
            .order_by(col(Attachment.id))
        ).all()
    )


def _pdf_snapshot(session: Session, recommendation: Recommendation, sha256: str) -> dict[str, Any]:
    previous = (
        session.get(Attachment, recommendation.pdf_attachment_id)
        if recommendation.pdf_attachment_id
        else None
    )
    return {
        "recommendation_id": recommendation.id,
        "pdf_sha256": previous.sha256 if previous else None,
        "pdf_method": recommendation.pdf_method,
        "pdf_score": recommendation.pdf_score,
        "pdf_evidence": list(recommendation.pdf_evidence),
        "late": recommendation.late,
        "was_placed": any(attachment.placed for attachment in _pdfs_with(session, sha256)),
    }


def _current_of(session: Session, manual: ManualDecision) -> Recommendation | None:
    return session.exec(
        select(Recommendation).where(
            col(Recommendation.unit_key) == manual.unit_key,
            col(Recommendation.version) == manual.version,
        )
    ).first()


def _mail_state(mail: Outbox) -> dict[str, Any]:
    return {
        "outbox_id": mail.id,
        "status": mail.status,
        "attempts": mail.attempts,
        "next_attempt_at": mail.next_attempt_at.isoformat(),
        "unconfirmed_at": mail.unconfirmed_at.isoformat() if mail.unconfirmed_at else None,
    }


def _next_outbox_id(session: Session) -> int:
    highest = session.exec(select(sa.func.max(Outbox.id))).one()
    return int(highest or 0) + 1


def _outbox_since(session: Session, first: int) -> list[int]:
    session.flush()
    return [
        int(mail_id)
        for mail_id in session.exec(
            select(Outbox.id).where(col(Outbox.id) >= first).order_by(col(Outbox.id))
        )
        if mail_id is not None
    ]
