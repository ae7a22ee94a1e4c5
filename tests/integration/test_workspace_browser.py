"""The workspace in a real browser (Debian's Chromium under Playwright): sign in, open every
page of the sample campaign, download an attachment, sign out."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlmodel import Session, col, select

from parsers.mail import parse_message
from service.models import Attachment, Outbox, Recommendation, Submission
from service.models import Message as MailMessage
from tests.support.apps import register_of
from tests.support.workspace import PASSWORD, USERNAME, Workspace

pytestmark = pytest.mark.integration


@pytest.fixture
def page(browser: Any, workspace: Workspace, fresh_limits: None) -> Iterator[Any]:
    """A fresh browser context, signed in through the login form."""
    context = browser.new_context(base_url=workspace.url, accept_downloads=True)
    tab = context.new_page()
    errors: list[str] = []
    tab.on(
        "console", lambda message: errors.append(message.text) if message.type == "error" else None
    )
    tab.goto("/")
    assert "/login" in tab.url
    tab.fill("input[name=username]", USERNAME)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{workspace.url}/")
    yield tab
    context.close()
    assert errors == [], f"the browser reported errors (a CSP violation?): {errors}"


def every_page(workspace: Workspace) -> list[str]:
    """The workspace's pages, with one of each detail page of the sample campaign."""
    with Session(workspace.app.engine) as session:
        recommendation = session.exec(
            select(Recommendation).where(col(Recommendation.pdf_attachment_id).is_not(None))
        ).first()
        submission = session.exec(select(Submission)).first()
        mail = session.exec(select(Outbox)).first()
        attachment = session.exec(select(Attachment)).first()
    assert recommendation and submission and mail and attachment
    return [
        "/",
        "/todo",
        "/units",
        f"/units/{recommendation.id}",
        "/submissions",
        "/submissions?status=complete",
        f"/submissions/{submission.ref}",
        "/messages",
        f"/messages/{attachment.message_pk}",
        "/outbox",
        f"/outbox/{mail.id}",
        "/audit",
        "/status",
    ]


def test_staff_sign_in_open_every_page_download_and_sign_out(page: Any, workspace: Workspace):
    for path in every_page(workspace):
        response = page.goto(path)
        assert response.status == 200, path
        assert page.locator("h1").first.inner_text().strip(), f"{path} has no heading"
        assert page.locator("nav a.active").count() == 1, f"{path}: no navigation entry lit"
    # the unit page shows the sealed PDF's pages as images the server rendered
    with Session(workspace.app.engine) as session:
        unit = session.exec(
            select(Recommendation).where(col(Recommendation.pdf_attachment_id).is_not(None))
        ).first()
    assert unit is not None
    page.goto(f"/units/{unit.id}")
    image = page.locator(".pages img").first
    image.wait_for()
    assert page.evaluate("(img) => img.complete && img.naturalWidth > 100", image.element_handle())
    # download a Word form from its message
    with Session(workspace.app.engine) as session:
        word = session.exec(select(Attachment).where(Attachment.kind == "form_word")).first()
    assert word is not None
    page.goto(f"/messages/{word.message_pk}")
    with page.expect_download() as download_info:
        page.click(f"a[href='/messages/{word.message_pk}/attachments/{word.id}']")
    download = download_info.value
    assert download.suggested_filename.endswith(".docx")
    with open(download.path(), "rb") as handle:
        assert handle.read(2) == b"PK"
    # sign out: the pages are closed again
    page.click("form.who button")
    page.wait_for_url("**/login")
    page.goto("/units")
    assert "/login" in page.url


def data_values(workspace: Workspace) -> list[str]:
    """What senders and applicants wrote (titles, names, subjects, file names, mail text): shown
    as they are, so left out of the language check; longest first."""
    register = register_of(workspace.app)
    values: set[str] = set()
    for row in register["submissions"]:
        values.update(str(row[key]) for key in ("title", "applicant", "recommender") if row[key])
    for recommendation in register["recommendations"]:
        values.add(str(recommendation["unit"]))
        for case in recommendation["cases"]:
            values.update(str(case[key]) for key in ("title", "applicant") if case[key])
    for mailbox in register["mailboxes"]:  # the configured address (here a folder's path)
        values.update((str(mailbox["account"]), str(mailbox["folder"])))
    for message in register["messages"]:
        values.update(str(message[key]) for key in ("subject", "sender") if message[key])
        values.update(str(item["filename"]) for item in message["attachments"])
    with Session(workspace.app.engine) as session:
        for message in session.exec(select(MailMessage)).all():
            values.add(message.sender_name)
            if message.downloaded:
                values.update(
                    parse_message(workspace.app.archive.get(message.sha256)).text.split("\n")
                )
    return sorted((value.strip() for value in values if value.strip()), key=len, reverse=True)


def test_every_page_reads_chinese(page: Any, workspace: Workspace):
    from tests.support.language import assert_reads_chinese

    values = data_values(workspace)
    for path in [*every_page(workspace), "/login"]:
        page.goto(path)
        text = page.locator("body").inner_text()
        for value in values:
            text = text.replace(value, " ")
        assert_reads_chinese(text, where=path)
