"""The staff's daily digest: the day's intake, totals, everything that needs a person, days
left, the register as .xlsx; once per day per staff address, in the campaign's time zone."""

from __future__ import annotations

import io
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import openpyxl
import pytest

from service.bootstrap import App
from service.digest import queue_digest, render_digest
from service.imports import import_submissions
from service.ingest import poll
from service.outbox import deliver
from tests.support.apps import make_app, register_of
from tests.support.intake_process import local_config, run_intake
from tests.support.mailmaker import (
    Case,
    File,
    Form,
    MailDrop,
    Online,
    at,
    export_csv,
    mail,
    pdf,
    qq_large_attachment_mail,
    word,
)
from tests.support.smtp_sink import SmtpSink

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
STAFF = ["staff@cace.example", "lead@cace.example"]


def campaign_day(db_url: str, tmp_path: Path, sink: SmtpSink) -> App:
    """A day of intake with one of each thing staff must handle; mail delivered, one 550."""
    drop = MailDrop(tmp_path / "drop")
    transport = sink.transport()
    app = make_app(
        db_url,
        tmp_path,
        open_mailbox=drop.mailbox,
        transport=transport,
        clock=lambda: at(21, 8),
        campaign={"staff": STAFF},
    )
    app.settings.mailbox.max_message_size = 150_000  # the scanned PDFs are far smaller
    export = tmp_path / "export.csv"
    export.write_bytes(
        export_csv(
            [
                Online("S001", "智能电网巡检", "国网某某科技有限公司", recommender="甲协会"),
                Online("S002", "5G智慧矿山", "某某矿业有限公司", recommender="乙协会"),
                Online("S003", "智慧港口平台", "某某港务有限公司"),
                Online("S004", "智慧港口平台", "某某港务有限公司"),
            ]
        )
    )
    import_submissions(app, export)
    jia = Form("甲协会", [Case("智能电网巡检", "国网某某科技有限公司", ref="S001")])
    yi = Form(
        "乙协会",
        [Case("5G智慧矿山", "某某矿业有限公司", ref="S002"), Case("未申报的案例", "无名公司")],
    )
    bing = Form("丙协会", [Case("智慧港口平台", "某某港务有限公司")])
    late = Form("戊协会", [Case("智能电网巡检", "国网某某科技有限公司", ref="S001")])
    unsealed = pdf("乙.pdf", seal=False, marker=1)
    too_big = File("材料.bin", bytes(range(256)) * 800)
    for raw in [
        mail("a@jia.example", "甲", [word("甲.docx", jia), pdf("甲.pdf")], received=at(20, 10)),
        mail("b@yi.example", "乙", [word("乙.docx", yi), unsealed], received=at(20, 11)),
        mail("c@bing.example", "丙", [word("丙.docx", bing)], received=at(20, 12)),
        mail("x@unknown.example", "盖章件", [pdf("扫描件.pdf", marker=5)], received=at(20, 13)),
        qq_large_attachment_mail(),
        mail("g@geng.example", "大文件", [too_big], received=at(20, 15)),
        mail(
            "e@wu.example",
            "戊协会推荐表",
            [word("戊.docx", late), pdf("戊.pdf", marker=7)],
            received=at(1, 10, month=8),
        ),
    ]:
        drop.drop(raw)
    assert poll(app).ok
    sink.script(["550 5.1.1 <a@jia.example>: no such user"])  # the first receipt bounces
    deliver(app)
    sink.clear()
    return app


def the_digest(sink: SmtpSink, address: str) -> EmailMessage:
    [item] = [item for item in sink.received if item.rcpt_tos == [address]]
    return item.message


def test_the_digest_lists_the_day_the_totals_and_every_item_that_needs_a_person(
    db_url, tmp_path, smtp_sink
):
    app = campaign_day(db_url, tmp_path, smtp_sink)

    assert queue_digest(app, now=at(21, 8).replace(minute=30)) == 2
    deliver(app)

    digest = the_digest(smtp_sink, "staff@cace.example")
    assert digest["Auto-Submitted"] == "auto-generated"
    assert "每日汇总 2025年7月21日" in str(digest["Subject"])
    text = digest.get_body(("plain",)).get_content()
    assert "截至2025年7月21日 08:30" in text and "还有10天" in text
    assert "来信合计：6封" in text  # the late one arrives in August
    for category in [
        "来信待处理",  # the over-size message that could not be read, the link-only one
        "盖章PDF待对应",
        "缺盖章PDF",
        "公章待确认",
        "匹配待核对",
        "未在线申报",
        "邮件发送失败",
        "逾期送达",
    ]:
        assert f"【{category}】" in text, category
    assert "拒收（代码550）" in text.split("四、发送失败的邮件（1封）")[1].split("五、")[0]
    assert "e@wu.example" in text.split("六、逾期送达（1项）")[1]
    html = digest.get_body(("html",)).get_content()
    assert "匹配待核对" in html and "发送失败" in html
    app.engine.dispose()


def test_the_digest_carries_the_register_as_a_workbook(db_url, tmp_path, smtp_sink):
    app = campaign_day(db_url, tmp_path, smtp_sink)
    queue_digest(app)
    deliver(app)

    digest = the_digest(smtp_sink, "lead@cace.example")
    [attachment] = list(digest.iter_attachments())
    assert attachment.get_filename() == "案例征集登记表-2025-07-21.xlsx"
    workbook = openpyxl.load_workbook(io.BytesIO(attachment.get_content()), read_only=True)
    cells = {
        str(value)
        for sheet in workbook.worksheets
        for row in sheet.iter_rows(values_only=True)
        for value in row
        if value is not None
    }
    workbook.close()
    assert {"S001", "S002", "S003", "S004", "甲协会", "乙协会"} <= cells
    app.engine.dispose()


def test_the_digest_is_queued_once_per_day_per_staff_address_in_the_campaign_time_zone(
    db_url, tmp_path, smtp_sink
):
    app = campaign_day(db_url, tmp_path, smtp_sink)
    morning = datetime(2025, 7, 21, 0, 30, tzinfo=UTC)  # 08:30 in Shanghai

    assert queue_digest(app, now=morning) == 2
    assert queue_digest(app, now=morning.replace(hour=15, minute=59)) == 0  # 23:59 Shanghai
    assert queue_digest(app, now=morning.replace(hour=16, minute=0)) == 2  # 00:00 on the 22nd
    deliver(app)

    digests = [mail for mail in register_of(app)["outbox"] if mail["kind"] == "digest"]
    assert sorted(mail["to"][0] for mail in digests) == sorted(STAFF * 2)
    assert len(smtp_sink.received) == 4
    app.engine.dispose()


def test_days_left_is_counted_in_calendar_days_of_the_campaign(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)  # calendar arithmetic on an empty register
    on_the_day = render_digest(app, now=datetime(2025, 7, 31, 1, 0, tzinfo=UTC))
    after = render_digest(app, now=datetime(2025, 8, 2, 1, 0, tzinfo=UTC))

    assert "今日截止" in on_the_day
    assert "已截止2天" in after
    app.engine.dispose()


def test_intake_digest_print_shows_the_digest_without_queuing_it(sqlite_url, tmp_path):
    app = make_app(sqlite_url, tmp_path)  # the sample mailbox, polled in this process
    assert poll(app).ok
    app.engine.dispose()
    config = local_config(tmp_path, sqlite_url)

    printed = run_intake(config, "digest", "--print", check=True)
    exported = run_intake(config, "export", "--format", "json", check=True)

    assert printed.stdout.startswith("Subject: 【2025信息通信行业科技创新案例征集】每日汇总")
    assert "三、需要处理的事项" in printed.stdout and "完整登记表见附件" in printed.stdout
    assert '"kind": "digest"' not in exported.stdout
