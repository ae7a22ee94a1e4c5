"""The unit page of a scanned form: what OCR read on each page beside the page's image
(由扫描件识别), and which rows the sealed PDF lacks or adds against the Word form; over HTTP
and in Chromium."""

from __future__ import annotations

import html
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlmodel import Session, col, select

from parsers.mail import parse_message
from parsers.ocr import ScanReading
from service.accounts import add_user
from service.imports import import_submissions
from service.ingest import poll
from service.models import Recommendation
from tests.support.apps import SAMPLES, MovableClock, make_app
from tests.support.mailmaker import Case, File, Form, MailDrop, at, mail, word
from tests.support.readings import ocr_done
from tests.support.services import free_port
from tests.support.workspace import PASSWORD, USERNAME, Workspace

pytestmark = pytest.mark.integration

ZHEJIANG = "中国电信股份有限公司浙江分公司"
ADDED = Case("5G专网赋能钢铁智能制造", "某钢铁集团有限公司")


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Workspace, ScanReading]]:
    """A workspace where 浙江电信 sent a Word form that drops its third row and adds one,
    with its (unchanged) sealed scan, already read by OCR."""
    from service.web.server import WorkspaceServer

    workdir = tmp_path_factory.mktemp("scan-workspace")
    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    drop = MailDrop(workdir / "mail")
    app = make_app(
        f"sqlite:///{workdir / 'intake.db'}",
        workdir,
        clock=clock,
        open_mailbox=drop.mailbox,
        web={"port": free_port(), "session_hours": 8},
        ocr={"enabled": True},
    )
    import_submissions(app, SAMPLES / "submissions.xlsx")
    parsed = parse_message((SAMPLES / "mailbox" / "002.eml").read_bytes())
    [scan] = [item for item in parsed.attachments if item.kind == "form_pdf"]
    reading = ocr_done(app, scan.data, clock())
    on_scan = [Case(row.title, row.applicant) for row in reading.cases]
    form = Form(ZHEJIANG, [on_scan[0], on_scan[1], ADDED])
    drop.drop(
        mail(
            "malianghao@zj.chinatelecom.example",
            "浙江电信推荐表",
            [word("浙江电信-推荐表.docx", form), File(scan.filename, scan.data, "application/pdf")],
            received=at(14),
        )
    )
    assert poll(app).ok
    with Session(app.engine) as session:
        add_user(session, USERNAME, PASSWORD, display_name="王老师", now=clock())
        session.commit()
    with WorkspaceServer(app) as server:
        yield Workspace(url=server.url.rstrip("/"), app=app, clock=clock), reading
    app.engine.dispose()


def unit_page(workspace: Workspace) -> str:
    with Session(workspace.app.engine) as session:
        recommendation = session.exec(
            select(Recommendation).where(col(Recommendation.current))
        ).one()
    return f"/units/{recommendation.id}"


def test_the_unit_page_shows_the_ocr_text_beside_each_page_and_the_rows_that_differ(
    scanned: tuple[Workspace, ScanReading],
):
    workspace, reading = scanned
    with workspace.client() as client:
        assert workspace.sign_in(client).status_code == 303
        page = html.unescape(client.get(unit_page(workspace)).text)

    assert "由扫描件识别" in page
    first_line = next(line for line in reading.page_texts[0].splitlines() if line.strip())
    assert first_line in page
    assert "PDF上的推荐单位：" + ZHEJIANG in page
    assert "不一致" in page
    missing = page.split("Word版有、盖章PDF中没有的案例")[1].split("</ul>")[0]
    assert ADDED.title in missing
    extra = page.split("盖章PDF中有、Word版没有的案例")[1].split("</ul>")[0]
    assert reading.cases[2].title in extra


def test_chromium_shows_the_read_text_next_to_the_page_image(
    browser: Any, scanned: tuple[Workspace, ScanReading]
):
    workspace, _ = scanned
    context = browser.new_context(base_url=workspace.url)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill("input[name=username]", USERNAME)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{workspace.url}/")
    tab.goto(unit_page(workspace))

    text = tab.locator("#page-text-1")
    text.wait_for(state="visible", timeout=30_000)
    assert "由扫描件识别" in text.inner_text()
    image = tab.locator("img[alt='盖章PDF第 1 页']")
    image_box, text_box = image.bounding_box(), text.bounding_box()
    assert image_box is not None and text_box is not None
    assert text_box["x"] > image_box["x"] + image_box["width"] / 2, "the text is beside the image"
    assert ADDED.title in tab.locator("section.agreement").inner_text()
    context.close()
