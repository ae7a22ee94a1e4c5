"""Imports from the workspace: upload and preview, confirm, discard, and undo any import.

A preview changes nothing but an `ImportRun` row (status `previewed`) and the file in the
archive. Confirming re-plans the archived file with `service.imports.plan_import`, the
function the CLI's `--dry-run` uses, and applies it only when the plan's fingerprint is the
one the page showed: if the data changed in between, nothing is applied and staff see the
new preview. Two confirmations of one preview: the first applies, the second is refused
(409). Undo restores every touched row as it was before the import (`changes.before`),
withdraws the import's mail that has not gone, and says that mail already sent stays sent.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import IntakeError
from service.bootstrap import App
from service.decisions import SENT_STAYS_SENT, DecisionRefusedError, withdraw_unsent
from service.imports import (
    KIND_LABELS,
    ImportReport,
    apply_plan,
    lock_imports,
    plan_import,
    restored_values,
    stored_state,
    upload_name,
)
from service.models import ImportRun, Submission
from service.reconcile import reconcile

UNREADABLE = (
    "无法读取这个文件。请上传在线系统导出的Excel表格（.xlsx）或CSV文件（.csv），不要改动表头。"
)
TOO_LARGE = "文件太大了（超过{limit}兆），请确认选对了文件；在线申报名单通常只有几百K。"
NO_FILE = "请选择要导入的文件。"
WRONG_TYPE = "只能导入Excel表格（.xlsx）或CSV文件（.csv）。请另存为其中一种格式后再上传。"
STALE = (
    "预览之后数据已有变化（例如另一次导入或有人处理了相关事项），为避免与预览不一致，本次没有导入。"
    "请核对下面按最新数据重新生成的预览，再确认导入。"
)
WITHDRAW_UNCONFIRMED = (
    "这次导入会撤回超过一成的在线申报。请核对撤回名单，勾选“我已核对撤回名单”后再确认导入。"
)
SUFFIXES = (".xlsx", ".csv")


class ImportRefusedError(DecisionRefusedError):
    """An import step that cannot be done; `text` says why in Chinese (HTTP 422)."""


class ImportConflictError(ImportRefusedError):
    """Someone else confirmed, discarded or undid it first, or the data changed (HTTP 409)."""

    status = 409


def preview_import(
    app: App, kind: str, data: bytes, filename: str, *, options: Mapping[str, Any], by: str
) -> int:
    """Keep an uploaded file and record its preview; returns the `ImportRun` id. Nothing else
    changes. Raises ImportRefusedError (Chinese) for a file that cannot be read."""
    name = upload_name(filename)
    if kind not in KIND_LABELS:
        raise ImportRefusedError("请选择要导入的是在线申报名单还是评审结果。")
    if not name.lower().endswith(SUFFIXES):
        raise ImportRefusedError(WRONG_TYPE)
    with Session(app.engine) as session:
        try:
            report = plan_import(app, session, kind, data, filename=name, options=options)
        except IntakeError as exc:
            app.log(f"import preview refused: {name!r}: {exc}")
            raise ImportRefusedError(UNREADABLE) from exc
        sha256 = app.archive.put(data)
        run = ImportRun(
            kind=kind,
            filename=name,
            sha256=sha256,
            added=len(report.added),
            changed=len(report.changed),
            unchanged=len(report.unchanged),
            rejected=len(report.rejections),
            withdrawn=len(report.withdrawn),
            blank=len(report.blank_rows),
            queued=len(report.mails),
            created_at=app.clock(),
            status="previewed",
            by=by,
            options=dict(options),
            fingerprint=report.fingerprint(),
        )
        session.add(run)
        session.commit()
        assert run.id is not None
        app.log(f"import {run.id} previewed: {kind} {name!r} by {by!r}")
        return run.id


def current_plan(app: App, run_id: int) -> tuple[ImportRun, ImportReport | None]:
    """An import and, while it is a preview, its plan against the data as it is now."""
    with Session(app.engine, expire_on_commit=False) as session:
        run = session.get(ImportRun, run_id)
        if run is None:
            raise ImportRefusedError("没有这次导入的记录。")
        if run.status != "previewed":
            return run, None
        return run, _plan_of(app, session, run)


def _open_preview(session: Session, run_id: int) -> ImportRun:
    """The preview `run_id`, under the imports lock, still waiting to be confirmed or
    discarded; ImportRefusedError when there is none, ImportConflictError when it is done."""
    lock_imports(session)
    run = session.get(ImportRun, run_id)
    if run is None:
        raise ImportRefusedError("没有这次导入的记录。")
    if run.status != "previewed":
        raise ImportConflictError(_not_open(run))
    return run


def confirm_import(
    app: App, run_id: int, *, fingerprint: str, withdrawals_checked: bool, by: str
) -> ImportRun:
    """确认导入: apply the previewed import exactly as previewed (`fingerprint` is what the
    page showed); ImportConflictError when it was confirmed or discarded already, or when the
    data changed since; ImportRefusedError when a large withdrawal is not checked."""
    with Session(app.engine, expire_on_commit=False) as session:
        run = _open_preview(session, run_id)
        # taken once: a second confirmation racing past the check above updates nothing
        taken = session.execute(
            sa.update(ImportRun)
            .where(col(ImportRun.id) == run_id, col(ImportRun.status) == "previewed")
            .values(status="applying")
        )
        if getattr(taken, "rowcount", 1) != 1:
            raise ImportConflictError(_not_open(run))
        report = _plan_of(app, session, run)
        if report.fingerprint() != fingerprint:
            raise ImportConflictError(STALE)
        if report.needs_confirmation and not withdrawals_checked:
            raise ImportRefusedError(WITHDRAW_UNCONFIRMED)
        apply_plan(app, session, report)
        run.status, run.by, run.applied_at, run.queued = "applied", by, app.clock(), report.queued
        run.changes = {"before": report.before, "after": report.after, "outbox": report.outbox}
        session.add(run)
        session.commit()
        app.log(f"import {run_id} confirmed by {by!r}")
        return run


def discard_import(app: App, run_id: int, *, by: str) -> None:
    """放弃: a preview is not imported (its file stays in the archive)."""
    with Session(app.engine) as session:
        run = _open_preview(session, run_id)
        run.status, run.undone_by, run.undone_at = "discarded", by, app.clock()
        session.add(run)
        session.commit()


def undo_import(app: App, run_id: int, *, by: str) -> str:
    """Undo an applied import: every row it touched back as it was, its unsent mail
    withdrawn; returns a Chinese sentence saying so (mail already sent stays sent)."""
    with Session(app.engine) as session:
        lock_imports(session)
        run = session.get(ImportRun, run_id)
        if run is None:
            raise ImportRefusedError("没有这次导入的记录。")
        if run.status == "undone":
            raise ImportConflictError(
                f"这次导入已由{run.undone_by}撤销过了，无需再撤销。请刷新页面查看。"
            )
        if run.status != "applied":
            raise ImportRefusedError("这次导入还没有确认，没有改动任何数据，无需撤销。")
        if "before" not in run.changes:
            raise ImportRefusedError(
                "这次导入发生在系统记录导入前状态之前，无法自动撤销。请导入一份正确的文件来更正。"
            )
        before: dict[str, dict[str, Any] | None] = run.changes["before"]
        after: dict[str, dict[str, Any]] = run.changes["after"]
        _check_untouched_since(session, before, after)
        withdrawn = withdraw_unsent(session, run.changes.get("outbox", []))
        for ref, old in before.items():
            current = session.get(Submission, ref)
            if current is None:
                continue
            if old is None:
                session.delete(current)
                continue
            for name, value in restored_values(old).items():
                setattr(current, name, value)
            session.add(current)
        session.flush()
        if run.kind == "submissions" and before:
            reconcile(app, session)
        run.status, run.undone_at, run.undone_by = "undone", app.clock(), by
        session.add(run)
        session.commit()
        app.log(f"import {run_id} undone by {by!r}")
        said = f"已撤销{KIND_LABELS.get(run.kind, '')}《{run.filename}》的导入，"
    said += f"{len(before)}项申报已恢复到导入之前的状态。"
    if withdrawn:
        said += f"因这次导入排队待发的{withdrawn}封邮件已取消。"
    return said + SENT_STAYS_SENT


def import_history(app: App, limit: int = 50) -> list[ImportRun]:
    """The latest imports, newest first, previews included (for the 导入 page)."""
    with Session(app.engine) as session:
        return list(
            session.exec(select(ImportRun).order_by(col(ImportRun.id).desc()).limit(limit)).all()
        )


def is_import_file(filename: str) -> bool:
    """Whether an uploaded name looks like a file an import reads (.xlsx or .csv)."""
    return Path(upload_name(filename)).suffix.lower() in SUFFIXES


def _plan_of(app: App, session: Session, run: ImportRun) -> ImportReport:
    try:
        data = app.archive.get(run.sha256)
        return plan_import(app, session, run.kind, data, filename=run.filename, options=run.options)
    except IntakeError as exc:
        raise ImportRefusedError(UNREADABLE) from exc


def _not_open(run: ImportRun) -> str:
    if run.status in ("applied", "applying", "undone"):
        return f"这次导入已由{run.by}确认过了，不会重复导入。请刷新页面查看导入结果。"
    if run.status == "discarded":
        return "这次导入的预览已被放弃，没有导入。如仍需导入，请重新上传文件。"
    return STALE


def _check_untouched_since(
    session: Session,
    before: Mapping[str, dict[str, Any] | None],
    after: Mapping[str, dict[str, Any]],
) -> None:
    """Refuse (409) when a row was changed again after the import (a later import): undo
    that one first, so that no later change is silently lost."""
    for ref, expected in after.items():
        current = session.get(Submission, ref)
        same = current is not None and stored_state(current, tuple(expected)) == expected
        if same and current is not None and before.get(ref) is None:
            same = current.result is None  # a new row must carry no result to be removed
        if not same:
            raise ImportConflictError(
                f"这次导入之后，{ref}等申报又有了变化（例如更新的一次导入）。"
                "请先在导入记录中撤销较新的那次导入，再撤销这一次。"
            )
