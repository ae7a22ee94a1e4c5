"""`intake export --format xlsx` and `intake status`, run as staff run them."""

from __future__ import annotations

from pathlib import Path

import pytest
from openpyxl import load_workbook

from tests.support.apps import make_app
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import JIANGXI, Campaign, MailDrop

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Settings for `intake` on a database holding the small campaign; built once, as every
    test here only reads it."""
    workdir = tmp_path_factory.mktemp("campaign")
    database_url = f"sqlite:///{workdir / 'intake.db'}"
    drop = MailDrop(workdir / "mail")
    application = make_app(database_url, workdir, open_mailbox=drop.mailbox)
    Campaign.build().run(application, drop, workdir / "exports")
    application.engine.dispose()
    return local_config(
        workdir, database_url, mailbox={"kind": "directory", "path": str(drop.path)}
    )


def test_the_xlsx_export_is_one_workbook_staff_can_filter_and_read(config: Path, tmp_path: Path):
    target = tmp_path / "register.xlsx"
    run_intake(config, "export", "--format", "xlsx", "-o", str(target), check=True)

    workbook = load_workbook(target)
    assert workbook.sheetnames == ["推荐单位", "案例", "在线申报", "待处理", "来信", "发出邮件"]
    for sheet in workbook.worksheets:
        assert sheet.freeze_panes == "A2", sheet.title
        assert sheet.print_title_rows == "$1:$1", sheet.title
        assert sheet.page_setup.orientation == "landscape", sheet.title
        assert sheet.page_setup.fitToWidth == 1 and sheet.page_setup.fitToHeight == 0
        assert sheet.sheet_properties.pageSetUpPr.fitToPage is True, sheet.title
        assert "2025信息通信行业科技创新案例征集" in (sheet.oddHeader.center.text or "")
        assert "&P" in (sheet.oddFooter.center.text or ""), sheet.title
        assert sheet.auto_filter.ref and sheet.auto_filter.ref.startswith("A1:"), sheet.title
        widths = [
            sheet.column_dimensions[cell.column_letter].width for cell in sheet[1] if cell.value
        ]
        assert all(6 <= width <= 60 for width in widths), (sheet.title, widths)
    units = workbook["推荐单位"]
    headers = [cell.value for cell in units[1]]
    assert headers[:5] == ["编号", "推荐单位", "版本", "当前版本", "材料齐全"]
    assert units.max_row == 1 + 3
    submissions = workbook["在线申报"]
    headers = [cell.value for cell in submissions[1]]
    assert headers[:3] == ["申报编号", "案例名称", "申报单位"]
    status = {
        row[0]: row[headers.index("状态")]
        for row in submissions.iter_rows(min_row=2, values_only=True)
    }
    assert status["A004"] == "待Word推荐表"
    assert status["V001"] == "材料齐全"
    todo = [row[0] for row in workbook["待处理"].iter_rows(min_row=2, values_only=True)]
    assert "盖章PDF待对应" in todo and "逾期送达" in todo
    mail_rows = list(workbook["来信"].iter_rows(min_row=2, values_only=True))
    assert len(mail_rows) == 4
    title_width = units.column_dimensions["B"].width
    assert title_width >= len("中国联合网络通信有限公司河北省分公司") * 2 - 4


def test_status_piped_is_plain_text_with_the_counts_and_what_needs_a_person(config: Path):
    done = run_intake(config, "status", check=True)  # FORCE_COLOR is never passed on

    assert "\x1b[" not in done.stdout
    text = done.stdout
    assert "待Word推荐表" in text and "待推荐表" in text
    assert "需要人工处理" in text
    assert "盖章PDF待对应" in text and "逾期送达" in text
    assert JIANGXI[:4] in text


def test_status_on_a_terminal_is_rich(config: Path):
    done = run_intake(
        config, "status", env={"FORCE_COLOR": "1", "TERM": "xterm-256color"}, check=True
    )

    assert "\x1b[" in done.stdout
    assert "需要人工处理" in done.stdout


def test_status_json_gives_machines_the_counts_and_the_queue_with_codes(config: Path):
    import json

    done = run_intake(config, "status", "--json", check=True)

    status = json.loads(done.stdout)
    assert status["counts"]["submissions"]["awaiting_word"] >= 1
    kinds = {item["kind"] for item in status["todo"]}
    assert {"unplaced_pdf", "late"} <= kinds
    assert all(item["id"].startswith(item["kind"] + ":") for item in status["todo"])
    assert status["last_poll"]["ok"] is True
