"""A mailbox that cannot be read is something staff hear about: status, export and digest."""

from __future__ import annotations

import pytest

from service.digest import digest_context
from service.ingest import poll
from service.mailbox import ImapMailbox
from service.todo import todo_items
from tests.support.apps import make_app, register_of
from tests.support.services import free_port

pytestmark = pytest.mark.integration


def test_an_unreachable_mailbox_is_in_the_register_and_the_digest(sqlite_url, tmp_path):
    port = free_port()  # nothing listens there
    app = make_app(
        sqlite_url,
        tmp_path,
        open_mailbox=lambda: ImapMailbox(
            "127.0.0.1", port, username="cases", password="pw", security="plain", timeout=2.0
        ),
    )
    report = poll(app)
    assert report.error is not None

    register = register_of(app)
    (mailbox,) = register["mailboxes"]
    assert mailbox["last_error"] == report.error
    assert mailbox["failing_since"] is not None
    items = [item for item in todo_items(register) if item.kind == "mailbox_unreadable"]
    assert len(items) == 1 and f"127.0.0.1:{port}" in items[0].where
    digest = digest_context(app, register, app.clock())
    assert any(item.category == "邮箱无法读取" for item in digest.attention)
    rendered = app.renderer.render(digest)
    assert "邮箱无法读取" in rendered.text and "邮箱无法读取" in rendered.html
    app.engine.dispose()
