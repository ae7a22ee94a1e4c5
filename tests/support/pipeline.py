"""Fixtures for tests of the whole pipeline: a mail drop folder and an `App` that polls it."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from service.bootstrap import App
from tests.support.apps import make_app
from tests.support.mailmaker import MailDrop


@pytest.fixture
def drop(tmp_path: Path) -> MailDrop:
    """An empty mail drop folder in this test's temp dir."""
    return MailDrop(tmp_path / "mail")


@pytest.fixture
def app(db_url: str, tmp_path: Path, drop: MailDrop) -> Iterator[App]:
    """An App on an empty database (once per backend) that polls `drop`."""
    application = make_app(db_url, tmp_path, open_mailbox=drop.mailbox)
    yield application
    application.engine.dispose()
