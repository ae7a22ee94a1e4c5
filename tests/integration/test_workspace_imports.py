"""Imports in the workspace, over real HTTP and in Chromium: upload, preview (nothing
changes), 确认导入 (exactly what was previewed, once), undo (the register as before), and the
upload's guards (role, CSRF, size, hostile names, unreadable files).

The campaign here is this module's own (imports change it). Register comparisons use
`/api/register`, the same JSON as `intake export --format json`.
"""

from __future__ import annotations

import csv
import html
import io
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlmodel import Session, col, select

from service.models import Outbox
from tests.support.apps import MovableClock
from tests.support.language import assert_reads_chinese
from tests.support.mailmaker import Online, export_csv
from tests.support.services import free_port
from tests.support.workspace import (
    PASSWORD,
    USERNAME,
    VIEWER,
    Workspace,
    build_campaign,
    csrf_of,
)

pytestmark = pytest.mark.integration

RESULTS_HEADER = ["申报编号", "结果", "给申报单位的说明", "内部备注"]


@pytest.fixture(scope="module")
def desk(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """A workspace of its own on the sample campaign (imports change it)."""
    from service.web.server import WorkspaceServer

    workdir = tmp_path_factory.mktemp("imports")
    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    app = build_campaign(workdir, clock, free_port())
    with WorkspaceServer(app) as server:
        yield Workspace(url=server.url.rstrip("/"), app=app, clock=clock)
    app.engine.dispose()


@contextmanager
def signed_in(desk: Workspace, username: str = USERNAME) -> Iterator[httpx.Client]:
    desk.clock.now += timedelta(minutes=1)
    with desk.client() as client:
        assert desk.sign_in(client, username, PASSWORD).status_code == 303
        yield client


def results_csv(rows: list[list[str]]) -> bytes:
    buffer = io.StringIO()
    csv.writer(buffer).writerows([RESULTS_HEADER, *rows])
    return buffer.getvalue().encode("utf-8")


def upload(
    client: httpx.Client, kind: str, name: str, data: bytes, **flags: bool
) -> httpx.Response:
    page = client.get("/imports")
    form = {"csrf_token": csrf_of(page.text), "kind": kind}
    form.update({flag: "1" for flag, wanted in flags.items() if wanted})
    return client.post("/imports", data=form, files={"file": (name, data, "text/csv")})


def preview_of(client: httpx.Client, kind: str, name: str, data: bytes, **flags: bool) -> str:
    """Upload and follow to the preview page; returns its path."""
    answer = upload(client, kind, name, data, **flags)
    assert answer.status_code == 303, answer.text
    return answer.headers["location"]


def fingerprint_of(page: str) -> str:
    found = re.search(r'name="fingerprint" value="([0-9a-f]+)"', page)
    assert found, "the preview offers no 确认导入"
    return found.group(1)


def confirm(client: httpx.Client, path: str, page: str | None = None) -> httpx.Response:
    page = page if page is not None else client.get(path).text
    return client.post(
        f"{path}/confirm", data={"csrf_token": csrf_of(page), "fingerprint": fingerprint_of(page)}
    )


def said(page: str) -> str:
    found = re.search(r'<p class="(?:notice|error)"[^>]*>(.*?)</p>', page, re.S)
    assert found, "the page shows no confirmation or error"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def text_of(page: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", page))


def register(client: httpx.Client) -> dict[str, Any]:
    return client.get("/api/register").json()


def without_imports(data: dict[str, Any]) -> dict[str, Any]:
    """The register minus `imports[]`: an undone import stays listed there (with who undid it)."""
    return {key: value for key, value in data.items() if key != "imports"}


def mails_since(desk: Workspace, highest: int) -> list[Outbox]:
    with Session(desk.app.engine) as session:
        return list(
            session.exec(
                select(Outbox).where(col(Outbox.id) > highest).order_by(col(Outbox.id))
            ).all()
        )


def highest_mail(desk: Workspace) -> int:
    with Session(desk.app.engine) as session:
        return max((row.id or 0 for row in session.exec(select(Outbox))), default=0)


def test_a_results_preview_changes_nothing_and_its_confirmation_mails_only_the_applicants_note(
    desk: Workspace,
):
    sheet = results_csv(
        [
            ["KJCX2025-0002", "入选", "将收录于案例集", "评委甲有保留意见"],
            ["KJCX2025-0004", "未入选", "欢迎明年再报", "材料偏弱"],
            ["KJCX2025-0005", "", "", ""],
            ["KJCX2025-0006", " ", "", "还在讨论"],
        ]
    )
    with signed_in(desk) as client:
        before = register(client)
        first_new = highest_mail(desk)
        path = preview_of(client, "results", "结果.csv", sheet)
        page = client.get(path)

        assert page.status_code == 200
        words = text_of(page.text)
        assert "2 行尚未填写结果" in words and words.count("尚未填写结果") == 1
        assert "KJCX2025-0005" not in words and "KJCX2025-0006" not in words  # no line per row
        previews = re.findall(r'<section class="mail-preview".*?</section>', page.text, re.S)
        assert len(previews) == 2
        assert "将收录于案例集" in previews[0] and "欢迎明年再报" in previews[1]
        assert all("评委甲" not in mail and "材料偏弱" not in mail for mail in previews)
        assert_reads_chinese(text_of(previews[0]), "the previewed result mail")
        assert register(client) == before  # previewed, nothing recorded, nothing queued
        assert mails_since(desk, first_new) == []

        confirmed = confirm(client, path, page.text)
        assert confirmed.status_code == 303
        assert "已导入" in said(client.get(confirmed.headers["location"]).text)

    mails = mails_since(desk, first_new)
    assert [(mail.kind, mail.submission_ref) for mail in mails] == [
        ("result", "KJCX2025-0002"),
        ("result", "KJCX2025-0004"),
    ]
    selected, not_selected = mails
    assert "将收录于案例集" in selected.text_body and "将收录于案例集" in selected.html_body
    assert "欢迎明年再报" in not_selected.text_body and "欢迎明年再报" not in selected.text_body
    for mail in mails:
        for remark in ("评委甲有保留意见", "材料偏弱"):
            assert remark not in mail.text_body + mail.html_body + mail.subject
    with desk.client() as client:
        desk.sign_in(client)
        rows = {row["ref"]: row for row in register(client)["submissions"]}
    assert rows["KJCX2025-0002"]["result_remark"] == "评委甲有保留意见"
    assert rows["KJCX2025-0005"]["result"] is None


def test_undo_of_a_results_import_leaves_the_register_as_before(desk: Workspace):
    sheet = results_csv([["KJCX2025-0007", "入选", "祝贺", "内部：第一名"]])
    with signed_in(desk) as client:
        before = register(client)
        path = preview_of(client, "results", "r2.csv", sheet)
        assert confirm(client, path).status_code == 303
        during = register(client)
        assert any(row["submission_ref"] == "KJCX2025-0007" for row in during["outbox"])

        page = client.get(path).text
        undone = client.post(f"{path}/undo", data={"csrf_token": csrf_of(page)})

        assert undone.status_code == 200
        sentence = said(undone.text)
        assert "1封邮件已取消" in sentence and "已经发出的邮件不会因撤销而收回" in sentence
        after = register(client)
        audit = text_of(client.get("/audit").text)
    assert without_imports(after) == without_imports(before)
    run = after["imports"][-1]
    assert run["kind"] == "results" and run["by"] == "王老师" and run["undone_by"] == "王老师"
    assert len(after["imports"]) == len(before["imports"]) + 1
    assert "《r2.csv》" in audit and "由王老师撤销" in audit


def test_undo_of_a_submissions_import_leaves_the_register_as_before(desk: Workspace):
    export = export_csv(
        [
            Online("S003", "智慧港口平台（二期）", "某某港务有限公司"),
            Online("S004", "智慧港口平台", "某某港务有限公司", status="已撤回"),
            Online("S009", "新增的智慧工厂", "某某制造有限公司", route="自愿申报"),
            Online("", "没有编号的申报", "某某公司"),
        ]
    )
    with signed_in(desk) as client:
        before = register(client)
        path = preview_of(client, "submissions", "名单.csv", export)
        page = client.get(path).text
        words = text_of(page)
        assert "案例名称" in words and "智慧港口平台（二期）" in words  # the changed field
        assert "将撤回（1）" in words and "S004" in words
        assert "新增（1）" in words and "S009" in words
        assert "第5行没有填写申报编号，未导入" in words
        assert_reads_chinese(words, "the preview of an export")
        assert_reads_chinese(text_of(client.get("/imports").text), "the 导入 page")
        assert register(client) == before
        assert confirm(client, path, page).status_code == 303
        during = {row["ref"]: row for row in register(client)["submissions"]}
        assert during["S004"]["withdrawn"] and during["S004"]["status"] == "withdrawn"
        assert during["S003"]["title"] == "智慧港口平台（二期）" and "S009" in during

        undone = client.post(f"{path}/undo", data={"csrf_token": csrf_of(page)})
        assert undone.status_code == 200, undone.text
        after = register(client)
    assert without_imports(after) == without_imports(before)


def test_two_confirmations_of_one_preview_apply_it_once(desk: Workspace):
    sheet = results_csv([["KJCX2025-0009", "未入选", "感谢参与", ""]])
    with signed_in(desk) as first, signed_in(desk) as second:
        path = preview_of(first, "results", "r3.csv", sheet)
        pages = [first.get(path).text, second.get(path).text]
        highest = highest_mail(desk)
        start = threading.Barrier(2)
        answers: list[httpx.Response] = []

        def go(client: httpx.Client, page: str) -> None:
            start.wait(timeout=30)
            answers.append(confirm(client, path, page))

        threads = [
            threading.Thread(target=go, args=(client, page))
            for client, page in zip([first, second], pages, strict=True)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)

    assert sorted(answer.status_code for answer in answers) == [303, 409]
    refused = next(answer for answer in answers if answer.status_code == 409)
    assert "确认过了" in said(refused.text) and "不会重复导入" in said(refused.text)
    assert len(mails_since(desk, highest)) == 1


def test_a_preview_made_stale_by_another_import_is_refused_in_chinese(desk: Workspace):
    with signed_in(desk) as client:
        stale = preview_of(
            client, "results", "r4.csv", results_csv([["KJCX2025-0010", "入选", "", ""]])
        )
        stale_page = client.get(stale).text
        other = preview_of(
            client, "results", "r5.csv", results_csv([["KJCX2025-0010", "未入选", "", ""]])
        )
        assert confirm(client, other).status_code == 303

        refused = confirm(client, stale, stale_page)

        assert refused.status_code == 409
        assert "预览之后数据已有变化" in said(refused.text)
        assert "本次没有导入" in said(refused.text)
        rows = {row["ref"]: row for row in register(client)["submissions"]}
        assert rows["KJCX2025-0010"]["result"] == "not_selected"


def test_a_whole_export_withdrawing_many_needs_the_list_checked_and_can_be_discarded(
    desk: Workspace,
):
    export = export_csv(
        [Online("S001", "智能电网巡检", "国网某某科技有限公司", recommender="甲协会")]
    )
    with signed_in(desk) as client:
        before = register(client)
        path = preview_of(client, "submissions", "完整名单.csv", export, complete=True)
        page = client.get(path).text
        assert "这次导入会撤回超过一成的在线申报" in text_of(page)
        assert 'name="withdrawals_checked"' in page

        unchecked = confirm(client, path, page)

        assert unchecked.status_code == 422
        assert "我已核对撤回名单" in said(unchecked.text)
        assert register(client) == before
        discarded = client.post(f"{path}/discard", data={"csrf_token": csrf_of(page)})
        assert discarded.status_code == 303
        assert "已放弃" in text_of(client.get(path).text)
        assert confirm(client, path, page).status_code == 409
        assert register(client) == before


def test_the_upload_is_for_staff_with_a_csrf_token_and_a_readable_small_file(desk: Workspace):
    export = export_csv([Online("S003", "智慧港口平台", "某某港务有限公司")])
    with signed_in(desk, VIEWER) as viewer:
        assert upload(viewer, "submissions", "a.csv", export).status_code == 403
    with signed_in(desk) as client:
        before = register(client)
        no_token = client.post(
            "/imports", data={"kind": "submissions"}, files={"file": ("a.csv", export)}
        )
        assert no_token.status_code == 403
        garbage = upload(client, "submissions", "名单.xlsx", b"PK\x03\x04 not a workbook")
        assert garbage.status_code == 422 and "无法读取这个文件" in said(garbage.text)
        program = upload(client, "submissions", "名单.exe", export)
        assert program.status_code == 422 and "只能导入" in said(program.text)
        huge = upload(client, "submissions", "大.csv", export + b"," * (21 * 1024 * 1024))
        assert huge.status_code == 413 and "文件太大了" in said(huge.text)
        hostile = preview_of(client, "submissions", '../../<script>alert(1)</script>".csv', export)
        page = client.get(hostile).text
        assert "<script>alert(1)</script>" not in page
        assert client.post(f"{hostile}/discard", data={"csrf_token": csrf_of(page)}).is_redirect
        assert "../" not in re.search(r"<h1>(.*?)</h1>", page, re.S).group(1)  # type: ignore[union-attr]
        for answer in (garbage, program, huge):
            assert_reads_chinese(said(answer.text), "an upload refused")
        assert register(client) == before


@pytest.mark.parametrize("encoding", ["gbk", "utf-8-sig"])
def test_a_gbk_or_bom_csv_previews_with_its_chinese_intact(desk: Workspace, encoding: str):
    text = export_csv([Online("S003", "智慧港口平台（镕喆版）", "某某港务有限公司")]).decode()
    with signed_in(desk) as client:
        path = preview_of(client, "submissions", "名单.csv", text.encode(encoding))
        page = client.get(path).text
        assert "智慧港口平台（镕喆版）" in text_of(page)
        assert client.post(f"{path}/discard", data={"csrf_token": csrf_of(page)}).is_redirect


def test_chromium_uploads_an_export_sees_the_changed_field_and_confirms(
    desk: Workspace, browser: Any, tmp_path
):
    export = tmp_path / "在线申报名单.csv"
    export.write_bytes(
        export_csv(
            [
                Online(
                    "S001", "智能电网巡检（升级版）", "国网某某科技有限公司", recommender="甲协会"
                ),
                Online("S003", "智慧港口平台", "某某港务有限公司"),
            ]
        )
    )
    desk.clock.now += timedelta(minutes=1)
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{desk.url}/login?next=/imports")
    page.fill("input[name=username]", USERNAME)
    page.fill("input[name=password]", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{desk.url}/imports", timeout=30_000)
    page.check("input[name=kind][value=submissions]")
    page.set_input_files("input[name=file]", str(export))
    page.click("text=上传并预览")
    page.wait_for_selector("text=确认导入", timeout=30_000)
    changes = page.inner_text("table.import-changes")
    assert "案例名称" in changes and "智能电网巡检（升级版）" in changes

    page.click("button:has-text('确认导入')")
    page.wait_for_selector("p.notice", timeout=30_000)

    assert "已导入" in page.inner_text("p.notice")
    context.close()
    with desk.client() as client:
        desk.sign_in(client)
        rows = {row["ref"]: row for row in register(client)["submissions"]}
    assert rows["S001"]["title"] == "智能电网巡检（升级版）"


def test_a_withdrawn_submission_shows_as_withdrawn_never_complete_in_the_workspace(
    desk: Workspace,
):
    export = export_csv(
        [
            Online(
                "KJCX2025-0012",
                "城市应急行业大模型数据共享平台",
                "某公司",
                route="自愿申报",
                status="已撤回",
            )
        ]
    )
    with signed_in(desk) as client:
        path = preview_of(client, "submissions", "撤回.csv", export)
        assert confirm(client, path).status_code == 303
        rows = {row["ref"]: row for row in register(client)["submissions"]}
        page = text_of(client.get("/submissions/KJCX2025-0012").text)
        listed = text_of(client.get("/submissions?status=complete").text)

    assert rows["KJCX2025-0012"]["status"] == "withdrawn"
    assert "已撤回" in page and "材料齐全" not in page
    assert "KJCX2025-0012" not in listed
