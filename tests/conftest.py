"""Shared fixtures: real servers on loopback, started once per test session."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.apps import dispose_engines
from tests.support.services import services_required

pytest_plugins = [
    "tests.support.smtp_sink",
    "tests.support.dovecot",
    "tests.support.database",
    "tests.support.intake_process",
    "tests.support.pipeline",
    "tests.support.workspace",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]) -> Iterator[None]:
    """Under INTAKE_REQUIRE_SERVICES=1 an integration test may not be skipped, for any reason."""
    outcome: Any = yield
    report = outcome.get_result()
    if report.skipped and services_required() and item.get_closest_marker("integration"):
        report.outcome = "failed"
        report.longrepr = (
            f"integration test skipped under INTAKE_REQUIRE_SERVICES=1: {report.longrepr}"
        )


@pytest.fixture(autouse=True)
def _engines_are_disposed() -> Iterator[None]:
    """Dispose every engine a test built with `make_app`, whether or not it passed."""
    yield
    dispose_engines()
