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
from sqlmodel import Session

from service.accounts import add_user
from service.bootstrap import App
from service.digest import queue_digest
from service.ingest import poll
from service.outbox import deliver
from tests.support.apps import MovableClock, make_app, run_samples
from tests.support.mailmaker import File, MailDrop, at, mail
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


def build_campaign(workdir: Path, clock: MovableClock, port: int) -> App:
    """The sample campaign, delivered, plus a message with a hostile subject and file name."""
    app = make_app(
        f"sqlite:///{workdir / 'intake.db'}",
        workdir,
        clock=clock,
        web={"port": port, "session_hours": 8},
    )
    run_samples(app)
    drop = MailDrop(workdir / "hostile")
    drop.drop(
        mail(
            "someone@evil.example",
            HOSTILE_SUBJECT,
            [File(HOSTILE_FILENAME, b"PK\x03\x04 not really a document")],
            received=at(21),
        )
    )
    app.open_mailbox = drop.mailbox
    assert poll(app).ok
    queue_digest(app)
    deliver(app)
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


@pytest.fixture(scope="session")
def browser() -> Iterator[Any]:
    """Headless Chromium (Debian's, from apt) under Playwright."""
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
