"""Imports on SQLite and PostgreSQL: the results sheet's blank cells and 清空, undo back to
the register as it was, one of two racing confirmations, and a withdrawn submission that
never counts as complete (register, digest, workbook, status)."""

from __future__ import annotations

import csv
import io
import threading
from pathlib import Path
from typing import Any

import openpyxl
import pytest
from sqlmodel import Session, select

from service.bootstrap import App
from service.digest import render_digest
from service.import_runs import (
    ImportConflictError,
    confirm_import,
    preview_import,
    undo_import,
)
from service.imports import import_submissions, plan_import
from service.models import Outbox
from service.results import import_results
from service.status import status_json
from service.workbook import register_workbook
from tests.support.apps import SAMPLE_EXPORT, make_app, register_of, run_samples
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import Online, export_csv

pytestmark = pytest.mark.integration


@pytest.fixture
def campaign(db_url: str, tmp_path: Path) -> App:
    app = make_app(db_url, tmp_path)
    run_samples(app)
    return app


def sheet(path: Path, rows: list[list[str]]) -> Path:
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerows([["申报编号", "结果", "给申报单位的说明", "内部备注"], *rows])
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def submissions(app: App) -> dict[str, dict[str, Any]]:
    return {row["ref"]: row for row in register_of(app)["submissions"]}


def without_imports(register: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in register.items() if key != "imports"}


def test_blank_results_are_counted_once_and_a_re_import_blanks_nothing_unless_it_says_so(
    campaign: App, tmp_path: Path
):
    first = import_results(
        campaign,
        sheet(
            tmp_path / "r1.csv",
            [
                ["KJCX2025-0002", "入选", "将收录于案例集", "内部：第一名"],
                ["KJCX2025-0003", "", "", ""],
                ["KJCX2025-0005", "", "", ""],
            ],
        ),
    )
    assert first.blank_rows == [3, 4] and first.rejected == [] and first.queued == 1

    again = import_results(
        campaign,
        sheet(
            tmp_path / "r2.csv",
            [["KJCX2025-0002", "", "", ""], ["KJCX2025-0004", "未入选", "", ""]],
        ),
    )
    kept = submissions(campaign)["KJCX2025-0002"]
    assert again.blank_rows == [2] and again.rejected == []
    assert (kept["result"], kept["result_note"], kept["result_remark"]) == (
        "selected",
        "将收录于案例集",
        "内部：第一名",
    )

    same_result = import_results(
        campaign, sheet(tmp_path / "r3.csv", [["KJCX2025-0002", "入选", "", "清空"]])
    )
    cleared = submissions(campaign)["KJCX2025-0002"]
    assert same_result.queued == 0  # the applicant already has this decision
    assert (cleared["result"], cleared["result_note"], cleared["result_remark"]) == (
        "selected",
        "将收录于案例集",
        None,
    )
    import_results(campaign, sheet(tmp_path / "r4.csv", [["KJCX2025-0002", "清空", "清空", ""]]))
    assert submissions(campaign)["KJCX2025-0002"]["result"] is None
    assert submissions(campaign)["KJCX2025-0002"]["result_note"] is None
    campaign.engine.dispose()


def test_undo_of_a_results_and_a_submissions_import_restores_the_register(
    campaign: App, tmp_path: Path
):
    before = register_of(campaign)
    results = sheet(tmp_path / "r.csv", [["KJCX2025-0002", "入选", "祝贺", "内部"]])
    results_run = preview_import(
        campaign, "results", results.read_bytes(), "r.csv", options={}, by="王老师"
    )
    with Session(campaign.engine) as session:
        plan = plan_import(
            campaign, session, "results", results.read_bytes(), filename="r.csv", options={}
        )
    confirm_import(
        campaign, results_run, fingerprint=plan.fingerprint(), withdrawals_checked=False, by="王"
    )
    export = tmp_path / "e.csv"
    export.write_bytes(
        export_csv(
            [
                Online("KJCX2025-0003", "改过名字的案例", "某公司"),
                Online("KJCX2025-0099", "新的案例", "某公司", route="自愿申报"),
            ]
        )
    )
    import_submissions(campaign, export, by="李老师")
    changed = register_of(campaign)
    assert changed["imports"][-1]["by"] == "李老师"
    assert changed["submissions"][1]["result"] == "selected"

    newest, older = (run["id"] for run in reversed(changed["imports"][-2:]))
    undo_import(campaign, newest, by="王老师")
    said = undo_import(campaign, older, by="王老师")

    assert "1封邮件已取消" in said and "已经发出的邮件不会因撤销而收回" in said
    after = register_of(campaign)
    assert without_imports(after) == without_imports(before)
    assert [run["undone_by"] for run in after["imports"][-2:]] == ["王老师", "王老师"]
    with pytest.raises(ImportConflictError, match="撤销过了"):
        undo_import(campaign, older, by="王老师")
    campaign.engine.dispose()


def test_an_import_changed_again_later_is_undone_only_after_the_later_one(
    campaign: App, tmp_path: Path
):
    import_results(campaign, sheet(tmp_path / "a.csv", [["KJCX2025-0002", "入选", "", ""]]))
    import_results(
        campaign,
        sheet(tmp_path / "b.csv", [["KJCX2025-0002", "未入选", "", ""]]),
        resend_changed=True,
    )
    first, second = (run["id"] for run in register_of(campaign)["imports"][-2:])

    with pytest.raises(ImportConflictError, match="请先在导入记录中撤销较新的那次导入"):
        undo_import(campaign, first, by="王老师")
    undo_import(campaign, second, by="王老师")
    undo_import(campaign, first, by="王老师")
    assert submissions(campaign)["KJCX2025-0002"]["result"] is None
    campaign.engine.dispose()


def test_two_racing_confirmations_apply_the_import_once(campaign: App, tmp_path: Path):
    data = sheet(tmp_path / "r.csv", [["KJCX2025-0004", "未入选", "谢谢", ""]]).read_bytes()
    run_id = preview_import(campaign, "results", data, "r.csv", options={}, by="王老师")
    with Session(campaign.engine) as session:
        fingerprint = plan_import(
            campaign, session, "results", data, filename="r.csv", options={}
        ).fingerprint()
    start = threading.Barrier(2)
    outcomes: list[str] = []

    def go(who: str) -> None:
        start.wait(timeout=30)
        try:
            confirm_import(
                campaign, run_id, fingerprint=fingerprint, withdrawals_checked=False, by=who
            )
            outcomes.append("applied")
        except ImportConflictError as refused:
            outcomes.append(refused.text)

    threads = [threading.Thread(target=go, args=(who,)) for who in ("王老师", "赵老师")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)

    assert sorted(outcomes)[0] == "applied" and "不会重复导入" in sorted(outcomes)[1]
    with Session(campaign.engine) as session:
        mails = session.exec(select(Outbox).where(Outbox.kind == "result")).all()
    assert len(mails) == 1
    campaign.engine.dispose()


def test_a_withdrawn_submission_never_counts_as_complete(campaign: App, tmp_path: Path):
    assert submissions(campaign)["KJCX2025-0002"]["status"] == "complete"  # on Jiangsu's form
    assert submissions(campaign)["KJCX2025-0004"]["status"] == "complete"  # voluntary
    complete_before = status_json(campaign)["counts"]["submissions"]["complete"]
    export = tmp_path / "withdrawn.csv"
    export.write_bytes(
        export_csv(
            [
                Online(
                    "KJCX2025-0002",
                    "AI大模型赋能智慧校园质量检测系统",
                    "某公司",
                    recommender="江苏移动",
                    status="已撤回",
                ),
                Online(
                    "KJCX2025-0004",
                    "5G LAN赋能智慧校园设备预测性维护解决方案",
                    "某公司",
                    route="自愿申报",
                    status="撤回",
                ),
            ]
        )
    )
    import_submissions(campaign, export, confirm=True)

    rows = submissions(campaign)
    assert rows["KJCX2025-0002"]["status"] == "withdrawn"
    assert rows["KJCX2025-0004"]["status"] == "withdrawn"
    counts = status_json(campaign)["counts"]["submissions"]
    assert counts["complete"] == complete_before - 2 and counts["withdrawn"] == 2
    digest = render_digest(campaign)
    assert "已撤回：2项" in digest and f"材料齐全：{complete_before - 2}项" in digest
    workbook = openpyxl.load_workbook(io.BytesIO(register_workbook(register_of(campaign))))
    sheet_rows = list(workbook["在线申报"].iter_rows(values_only=True))
    header = sheet_rows[0]
    status_column = header.index("状态")
    by_ref = {row[0]: row for row in sheet_rows[1:]}
    assert by_ref["KJCX2025-0002"][status_column] == "已撤回"
    assert by_ref["KJCX2025-0004"][status_column] == "已撤回"
    campaign.engine.dispose()


def test_the_command_line_lists_imports_and_undoes_one(sqlite_url: str, tmp_path: Path):
    app = make_app(sqlite_url, tmp_path)
    import_submissions(app, SAMPLE_EXPORT)
    before = register_of(app)
    app.engine.dispose()
    config = local_config(tmp_path, sqlite_url)
    path = sheet(
        tmp_path / "r.csv", [["KJCX2025-0002", "入选", "祝贺", ""], ["KJCX2025-0003", "", "", ""]]
    )

    imported = run_intake(config, "results", "import", str(path), check=True).stdout
    listed = run_intake(config, "imports", "list", check=True).stdout
    newest = listed.splitlines()[0].split()
    undone = run_intake(config, "imports", "undo", newest[0], "--by", "运维", check=True).stdout
    again = run_intake(config, "imports", "undo", newest[0])

    assert "1 result mail(s) queued; 1 row(s) with no 结果 yet" in imported
    assert newest[1:4] == ["applied", "results", "命令行"]
    assert "undone" in undone
    assert again.returncode == 1 and "撤销过了" in again.stderr
    after = register_of(make_app(sqlite_url, tmp_path))
    assert without_imports(after) == without_imports(before)
    assert after["imports"][-1]["undone_by"] == "运维"
