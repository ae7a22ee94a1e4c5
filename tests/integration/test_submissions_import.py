"""Importing the online system's export again and again: upsert, withdraw, re-match."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from config.errors import ConfirmationNeededError
from service.bootstrap import App
from service.scheduler import import_watch_folder
from tests.support.apps import register_of
from tests.support.mailmaker import (
    CAMPAIGN_SUBMISSIONS,
    HEBEI,
    Case,
    Form,
    MailDrop,
    Online,
    at,
    export_csv,
    import_export,
    mail,
    pdf,
    word,
)

pytestmark = pytest.mark.integration

SMART_SERVICE = Online(
    "A001", "基于大模型的智能客服系统", "联通数字科技有限公司", recommender=HEBEI
)
SMART_FACTORY = Online("A002", "5G+智慧工厂(一期)", "河北钢铁集团有限公司", recommender=HEBEI)
SCHOOL = Online("V001", "校园安全AI巡检", "杭州智巡科技有限公司", route="自愿申报")


def submissions(app: App) -> dict[str, dict[str, Any]]:
    return {row["ref"]: row for row in register_of(app)["submissions"]}


def test_an_export_is_upserted_by_ref_and_the_report_says_what_changed(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    first = import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day1.csv")
    assert (first.added, first.changed, first.unchanged) == (["A001", "A002"], [], [])

    renamed = Online("A002", "5G+智慧工厂(一期)建设", SMART_FACTORY.applicant, recommender=HEBEI)
    broken = Online("", "没有编号的申报", "某公司")
    second = import_export(app, exports, [SMART_SERVICE, renamed, SCHOOL, broken], "day2.csv")

    assert second.added == ["V001"]
    assert second.changed == ["A002"]
    assert second.unchanged == ["A001"]
    assert len(second.rejected) == 1 and "row" in second.rejected[0]
    rows = submissions(app)
    assert sorted(rows) == ["A001", "A002", "V001"]
    assert rows["A002"]["title"] == "5G+智慧工厂(一期)建设"
    assert rows["V001"]["route"] == "voluntary"


def test_a_row_dropped_by_a_complete_export_is_withdrawn_not_deleted(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day1.csv")

    report = import_export(app, exports, [SMART_SERVICE], "day2.csv", complete=True, confirm=True)

    assert report.withdrawn == ["A002"]
    rows = submissions(app)
    assert rows["A002"]["withdrawn"] is True
    assert rows["A001"]["withdrawn"] is False

    back = import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day3.csv")
    assert back.changed == ["A002"]
    assert submissions(app)["A002"]["withdrawn"] is False


def test_a_form_row_without_submission_is_matched_once_the_submission_is_imported(
    app: App, drop: MailDrop, tmp_path: Path
):
    exports = tmp_path / "exports"
    import_export(app, exports, [SMART_SERVICE], "day1.csv")
    form = Form(
        HEBEI,
        [
            Case("基于大模型的智能客服系统", "联通数字科技有限公司"),
            Case("5G+智慧工厂（一期）", "河北钢铁集团"),
        ],
    )
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )
    before = register_of(app)
    (recommendation,) = before["recommendations"]
    assert [case["match"] for case in recommendation["cases"]] == ["name", "none"]
    assert [row["submission_ref"] for row in before["outbox"] if row["submission_ref"]] == ["A001"]

    import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day2.csv")

    after = register_of(app)
    (recommendation,) = after["recommendations"]
    assert [(case["match"], case["submission_ref"]) for case in recommendation["cases"]] == [
        ("name", "A001"),
        ("name", "A002"),
    ]
    assert submissions(app)["A002"]["status"] == "complete"
    receipts = Counter(
        row["submission_ref"] for row in after["outbox"] if row["kind"] == "applicant_receipt"
    )
    assert receipts == Counter({"A001": 1, "A002": 1})

    import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day3.csv")
    assert register_of(app)["outbox"] == after["outbox"]


def test_a_withdrawn_submission_no_longer_counts_as_matched(
    app: App, drop: MailDrop, tmp_path: Path
):
    exports = tmp_path / "exports"
    import_export(app, exports, [SMART_SERVICE, SMART_FACTORY], "day1.csv")
    form = Form(HEBEI, [Case("5G+智慧工厂（一期）", "河北钢铁集团")])
    drop.arrive(
        app,
        mail(
            "wang@he.chinaunicom.example",
            "推荐表",
            [word("推荐表.docx", form), pdf("推荐表（盖章）.pdf")],
            received=at(12),
        ),
    )

    import_export(
        app, exports, [SMART_SERVICE, replace(SMART_FACTORY, status="已撤回")], "day2.csv",
        confirm=True,
    )  # fmt: skip

    (recommendation,) = register_of(app)["recommendations"]
    assert recommendation["cases"][0]["match"] == "none"


ONE_PROVINCE = [
    Online(f"P{number:03d}", f"案例{number}", f"单位{number}", recommender=HEBEI)
    for number in range(1, 16)
]


def test_a_filtered_export_of_one_province_withdraws_nothing(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    everything = [*ONE_PROVINCE, *CAMPAIGN_SUBMISSIONS]
    import_export(app, exports, everything, "all.csv")

    report = import_export(app, exports, ONE_PROVINCE[:3], "hebei.csv")

    assert report.withdrawn == [] and report.unchanged == ["P001", "P002", "P003"]
    assert not any(row["withdrawn"] for row in submissions(app).values())


def test_the_status_column_withdraws_what_it_says_and_nothing_else(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    import_export(app, exports, ONE_PROVINCE, "all.csv")

    report = import_export(
        app, exports, [replace(ONE_PROVINCE[0], status="已撤回"), ONE_PROVINCE[1]], "two.csv"
    )

    assert report.withdrawn == ["P001"]
    rows = submissions(app)
    assert [ref for ref, row in rows.items() if row["withdrawn"]] == ["P001"]


def test_complete_with_forty_percent_missing_refuses_without_yes_and_changes_nothing(
    app: App, tmp_path: Path
):
    exports = tmp_path / "exports"
    import_export(app, exports, ONE_PROVINCE, "all.csv")
    kept = ONE_PROVINCE[:9]  # 6 of 15 missing: 40 %

    with pytest.raises(ConfirmationNeededError) as refused:
        import_export(app, exports, kept, "complete.csv", complete=True)

    assert sorted(refused.value.items) == [f"P{number:03d}" for number in range(10, 16)]
    assert "--yes" in str(refused.value)
    assert not any(row["withdrawn"] for row in submissions(app).values())

    confirmed = import_export(app, exports, kept, "complete.csv", complete=True, confirm=True)

    assert len(confirmed.withdrawn) == 6
    assert sum(row["withdrawn"] for row in submissions(app).values()) == 6


def test_complete_may_withdraw_up_to_ten_percent_unasked(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    import_export(app, exports, ONE_PROVINCE, "all.csv")

    report = import_export(app, exports, ONE_PROVINCE[1:], "complete.csv", complete=True)

    assert report.withdrawn == ["P001"]


def test_a_dry_run_reports_what_would_change_and_changes_nothing(app: App, tmp_path: Path):
    exports = tmp_path / "exports"
    import_export(app, exports, ONE_PROVINCE[:5], "first.csv")
    before = register_of(app)
    renamed = replace(ONE_PROVINCE[0], title="新名称")

    report = import_export(
        app, exports, [renamed, *ONE_PROVINCE[1:3], ONE_PROVINCE[6]], "next.csv",
        complete=True, dry_run=True,
    )  # fmt: skip

    assert report.added == ["P007"] and report.changed == ["P001"]
    assert report.withdrawn == ["P004", "P005"]
    assert register_of(app)["submissions"] == before["submissions"]


def test_the_watch_folder_never_withdraws_by_absence_either(app: App, tmp_path: Path):
    watch = tmp_path / "watch"
    watch.mkdir()
    (watch / "all.csv").write_bytes(export_csv(ONE_PROVINCE))
    later = datetime.now(UTC) + timedelta(days=1)
    import_watch_folder(app, watch, settled_before=later)
    (watch / "hebei.csv").write_bytes(export_csv(ONE_PROVINCE[:2]))

    [watched] = import_watch_folder(app, watch, settled_before=later)

    assert watched.report is not None and watched.report.withdrawn == []
    assert not any(row["withdrawn"] for row in submissions(app).values())
