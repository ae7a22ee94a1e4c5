"""The workspace served for real: the sample campaign (plus one hostile message) in SQLite,
a staff account, uvicorn on a free loopback port in a thread, and a movable clock.

Also the browser: Debian's Chromium driven by Playwright (skipped with a reason when either
is missing; a failure under INTAKE_REQUIRE_SERVICES=1).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlmodel import Session, select

from service.accounts import add_user
from service.bootstrap import App
from service.digest import queue_digest
from service.imports import import_submissions
from service.ingest import poll
from service.models import Outbox
from service.outbox import deliver
from tests.support.apps import MovableClock, make_app, run_samples
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
from tests.support.services import free_port, missing_service

USERNAME = "wang"
PASSWORD = "correct horse battery"
VIEWER = "zhao"
HOSTILE_SUBJECT = "<script>alert(1)</script>"
HOSTILE_FILENAME = "../../<b>x</b>.docx"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


@dataclass
class Workspace:
    """A running workspace: its URL, the application behind it and its clock."""

    url: str
    app: App
    clock: MovableClock

    def client(self, **options: Any) -> httpx.Client:
        """An HTTP client for the workspace (cookies kept, redirects not followed)."""
        return httpx.Client(base_url=self.url, follow_redirects=False, timeout=30, **options)

    def sign_in(
        self,
        client: httpx.Client,
        username: str = USERNAME,
        password: str = PASSWORD,
        *,
        address: str | None = None,
    ) -> httpx.Response:
        """Fill the login form as a browser would (its CSRF token included)."""
        headers = {"x-forwarded-for": address} if address else {}
        form = client.get("/login", headers=headers)
        return client.post(
            "/login",
            data={"csrf_token": csrf_of(form.text), "username": username, "password": password},
            headers=headers,
        )


def csrf_of(html: str) -> str:
    """The CSRF token of the (first) form on a page."""
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "the page has no form with a CSRF token"
    return found.group(1)


def build_campaign(
    workdir: Path, clock: MovableClock, port: int, *, db_url: str | None = None
) -> App:
    """The sample campaign, delivered, plus a message with a hostile subject and file name
    (in SQLite under `workdir` unless `db_url` names another database)."""
    app = make_app(
        db_url or f"sqlite:///{workdir / 'intake.db'}",
        workdir,
        clock=clock,
        web={"port": port, "session_hours": 8},
    )
    run_samples(app)
    export = workdir / "more.csv"
    export.write_bytes(
        export_csv(
            [
                Online("S001", "智能电网巡检", "国网某某科技有限公司", recommender="甲协会"),
                Online("S003", "智慧港口平台", "某某港务有限公司"),
                Online("S004", "智慧港口平台", "某某港务有限公司"),
            ]
        )
    )
    import_submissions(app, export)
    jia = Form("甲协会", [Case("智能电网巡检", "国网某某科技有限公司", ref="S001")])
    bing = Form(
        "丙协会", [Case("智慧港口平台", "某某港务有限公司"), Case("未申报的案例", "无名公司")]
    )
    late = Form("戊协会", [Case("智能电网巡检", "国网某某科技有限公司", ref="S001")])
    drop = MailDrop(workdir / "more")
    for raw in [
        mail(
            "someone@evil.example",
            HOSTILE_SUBJECT,
            [File(HOSTILE_FILENAME, b"PK\x03\x04 not really a document")],
            received=at(21),
        ),
        mail(
            "a@jia.example",
            "甲",
            [word("甲.docx", jia), pdf("甲.pdf", seal=False)],
            received=at(20, 10),
        ),
        mail("c@bing.example", "丙", [word("丙.docx", bing)], received=at(20, 12)),
        mail("x@unknown.example", "盖章件", [pdf("扫描件.pdf", marker=5)], received=at(20, 13)),
        mail(
            "e@wu.example",
            "戊协会推荐表",
            [word("戊.docx", late), pdf("戊.pdf", marker=7)],
            received=at(1, 10, month=8),
        ),
        qq_large_attachment_mail(),
    ]:
        drop.drop(raw)
    app.open_mailbox = drop.mailbox
    assert poll(app).ok
    queue_digest(app)
    deliver(app)
    with Session(app.engine) as session:  # one receipt the SMTP server refused for good
        refused = session.exec(select(Outbox).where(Outbox.kind == "unit_receipt")).first()
        assert refused is not None
        refused.status, refused.attempts = "failed", 3
        refused.last_error = "550 5.1.1 <a@jia.example>: no such user"
        session.add(refused)
        session.commit()
    with Session(app.engine) as session:
        add_user(session, USERNAME, PASSWORD, display_name="王老师", now=clock())
        add_user(session, VIEWER, PASSWORD, display_name="赵老师", role="viewer", now=clock())
        session.commit()
    return app


@pytest.fixture(scope="session")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workspace]:
    """The workspace on the sample campaign, served by uvicorn in a thread for the session."""
    from service.web.server import WorkspaceServer

    workdir = tmp_path_factory.mktemp("workspace")
    clock = MovableClock(datetime(2025, 7, 22, 9, 0, tzinfo=UTC))
    port = free_port()
    app = build_campaign(workdir, clock, port)
    with WorkspaceServer(app) as server:
        yield Workspace(url=server.url.rstrip("/"), app=app, clock=clock)
    app.engine.dispose()


@pytest.fixture
def fresh_limits(workspace: Workspace) -> Iterator[None]:
    """Moves the clock past the login limit's minute before and after a test."""
    workspace.clock.now += timedelta(minutes=2)
    yield
    workspace.clock.now += timedelta(minutes=2)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, from apt) under Playwright.

    Module-scoped: Playwright's sync API keeps an event loop running in this thread while it
    is open, and the tests after the browser's module run asyncio (the SMTP facade) here."""
    executable = shutil.which("chromium")
    if executable is None:
        missing_service("Chromium", "apt-get install chromium")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        missing_service("Playwright for Python", "pip install -e '.[test]'")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=executable, headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()
