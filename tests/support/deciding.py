"""Helpers for the tests that decide queue items in a running workspace: signed-in HTTP
clients and browser tabs, the queue, one decision over the API, and the page's notice."""

from __future__ import annotations

import html
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import httpx

from tests.support.workspace import PASSWORD, USERNAME, Workspace


@contextmanager
def signed_in(desk: Workspace, username: str = USERNAME) -> Iterator[httpx.Client]:
    """An HTTP client signed in as `username` (the clock moves a minute: a fresh login limit)."""
    desk.clock.now += timedelta(minutes=1)
    with desk.client() as client:
        assert desk.sign_in(client, username, PASSWORD).status_code == 303
        yield client


def signed_in_tab(browser: Any, desk: Workspace) -> tuple[Any, Any]:
    """A new browser context signed in through the login form, and its tab."""
    desk.clock.now += timedelta(minutes=1)
    context = browser.new_context(base_url=desk.url)
    tab = context.new_page()
    tab.goto("/login")
    tab.fill("input[name=username]", USERNAME)
    tab.fill("input[name=password]", PASSWORD)
    tab.click("button[type=submit]")
    tab.wait_for_url(f"{desk.url}/")
    return context, tab


def open_items(client: httpx.Client, kind: str | None = None) -> list[dict[str, Any]]:
    """The queue as `/api/todo` lists it, only items of `kind` when given."""
    items = client.get("/api/todo").json()["items"]
    return [item for item in items if kind is None or item["kind"] == kind]


def without_decisions(register: dict[str, Any]) -> dict[str, Any]:
    """The register but its `decisions[]`: what a decision and its undo must leave as it was."""
    return {key: value for key, value in register.items() if key != "decisions"}


def notice_of(page: str) -> str:
    """The confirmation or error a page shows after a form, as text."""
    found = re.search(r'<p class="(?:notice|error)"[^>]*>(.*?)</p>', page, re.S)
    assert found, "the page shows no confirmation or error"
    return html.unescape(re.sub(r"<[^>]+>", "", found.group(1)))


def post(client: httpx.Client, item_id: str, **body: Any) -> httpx.Response:
    """`POST /api/todo/{item_id}` with `{"action": ..., **params}`."""
    return client.post(f"/api/todo/{item_id}", json=body)
