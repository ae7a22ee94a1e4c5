"""What the workspace's pages and API show on the sample campaign, over real HTTP."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
from sqlmodel import Session, select

from service.models import CaseRow, Message, Outbox
from service.register import build_register
from service.todo import KINDS, todo_items, todo_json
from tests.support.apps import register_of
from tests.support.workspace import PASSWORD, VIEWER, Workspace

pytestmark = pytest.mark.integration


@contextmanager
def signed_in(workspace: Workspace, username: str | None = None) -> Iterator[httpx.Client]:
    with workspace.client() as client:
        answer = workspace.sign_in(client, *((username, PASSWORD) if username else ()))
        assert answer.status_code == 303
        yield client


def test_api_register_is_exactly_the_export(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        export = json.dumps(
            build_register(session, workspace.app.settings), ensure_ascii=False, indent=1
        )
    with signed_in(workspace) as client:
        plain = client.get("/api/register", headers={"accept-encoding": "identity"})
        compressed = client.get("/api/register")
    assert plain.content.decode("utf-8") == export + "\n"
    assert compressed.headers["content-encoding"] == "gzip"
    assert compressed.json() == json.loads(export)


def test_api_todo_lists_the_queue_with_stable_ids(workspace: Workspace, fresh_limits):
    register = register_of(workspace.app)
    with signed_in(workspace) as client:
        first = client.get("/api/todo").json()["items"]
        again = client.get("/api/todo").json()["items"]
    assert first == [todo_json(item) for item in todo_items(register)]
    assert first, "the sample campaign has things that need a person"
    assert [item["id"] for item in first] == [item["id"] for item in again]
    for item in first:
        assert item["kind"] in KINDS
        assert item["summary"]
        for action in item["actions"]:
            assert {"name", "label", "params"} <= action.keys()
        if item["kind"] == "mailbox_unreadable":
            assert item["actions"] == []
        if item["kind"] in ("missing_word", "missing_pdf", "no_submission"):
            assert [action["name"] for action in item["actions"]] == ["remind"]
        if item["kind"] == "ambiguous_row":
            assert {"recommendation_id", "row", "candidates"} <= item.keys()
            for candidate in item["candidates"]:
                assert {"ref", "score", "title", "applicant"} <= candidate.keys()


def test_the_todo_page_anchors_each_item_and_links_its_page(workspace: Workspace, fresh_limits):
    items = todo_items(register_of(workspace.app))
    with signed_in(workspace) as client:
        html = client.get("/todo").text
        for item in items:
            assert f'id="todo-{item.id}"' in html
            assert f'href="{item.link}"' in html.replace("&amp;", "&")
            assert item.summary in html.replace("&#34;", '"').replace("&#39;", "'")
        for link in {item.link.split("#")[0] for item in items}:
            assert client.get(link).status_code == 200, link


def test_a_unit_page_shows_each_row_with_its_match_and_candidates(
    workspace: Workspace, fresh_limits
):
    with Session(workspace.app.engine) as session:
        rows = session.exec(select(CaseRow)).all()
    assert any(row.candidates for row in rows)
    with signed_in(workspace) as client:
        for row in rows:
            html = client.get(f"/units/{row.recommendation_id}").text
            assert f'id="row-{row.row}"' in html
            for ref, _score in (candidate for candidate in row.candidates if candidate):
                assert f'href="/submissions/{ref}"' in html


def test_submissions_filter_by_status_unit_and_route_and_search(workspace: Workspace, fresh_limits):
    register = register_of(workspace.app)
    submissions = register["submissions"]
    refs_shown = lambda html: set(re.findall(r'href="/submissions/([^"]+)"', html))  # noqa: E731
    with signed_in(workspace) as client:
        for status in {row["status"] for row in submissions}:
            shown = refs_shown(client.get("/submissions", params={"status": status}).text)
            assert shown == {row["ref"] for row in submissions if row["status"] == status}
        voluntary = refs_shown(client.get("/submissions", params={"route": "voluntary"}).text)
        assert voluntary == {row["ref"] for row in submissions if row["route"] == "voluntary"}
        unit = next(row["recommender"] for row in submissions if row["recommender"])
        by_unit = refs_shown(client.get("/submissions", params={"unit": unit}).text)
        assert by_unit == {row["ref"] for row in submissions if row["recommender"] == unit}
        target = submissions[0]
        for needle in (target["ref"], target["title"][2:8], target["applicant"]):
            assert target["ref"] in refs_shown(
                client.get("/submissions", params={"q": needle}).text
            )
        assert refs_shown(client.get("/submissions", params={"q": "没有这样的案例"}).text) == set()


def test_a_message_page_shows_its_body_problems_and_attachments(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        troubled = session.exec(select(Message).where(Message.status == "needs_attention")).first()
        plain = session.exec(select(Message).where(Message.kind == "recommendation")).first()
    assert troubled is not None and plain is not None
    with signed_in(workspace) as client:
        html = client.get(f"/messages/{plain.id}").text
        assert "正文" in html and "附件" in html
        assert f'href="/messages/{plain.id}/attachments/' in html
        troubled_html = client.get(f"/messages/{troubled.id}").text
    assert "待处理" in troubled_html and "超大附件" in troubled_html


def test_the_outbox_says_its_last_error_in_words(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        mail = session.exec(select(Outbox)).first()
        assert mail is not None
        mail.status, mail.attempts, mail.last_error = "pending", 2, "Connection refused"
        session.add(mail)
        session.commit()
        mail_id = mail.id
    try:
        with signed_in(workspace) as client:
            html = client.get(f"/outbox/{mail_id}").text
            listing = client.get("/outbox", params={"status": "pending"}).text
        assert "无法连接发信服务器" in html and "无法连接发信服务器" in listing
    finally:
        with Session(workspace.app.engine) as session:
            mail = session.get(Outbox, mail_id)
            assert mail is not None
            mail.status, mail.attempts, mail.last_error = "sent", 1, None
            session.add(mail)
            session.commit()


def test_a_viewer_sees_every_page(workspace: Workspace, fresh_limits):
    with signed_in(workspace, VIEWER) as client:
        for path in (
            "/",
            "/todo",
            "/units",
            "/submissions",
            "/messages",
            "/outbox",
            "/audit",
            "/status",
        ):
            answer = client.get(path)
            assert answer.status_code == 200
            assert "只读查看" in answer.text


def test_an_unknown_page_says_so_in_chinese(workspace: Workspace, fresh_limits):
    with signed_in(workspace) as client:
        assert "找不到页面" in client.get("/units/99999").text
        assert client.get("/units/99999").status_code == 404
        assert client.get("/api/nothing").json()["error"] == "not_found"


def test_a_unit_page_says_when_each_file_arrived(workspace: Workspace, fresh_limits):
    register = register_of(workspace.app)
    recommendation = next(item for item in register["recommendations"] if item["word"])
    word_mail = next(
        message
        for message in register["messages"]
        if message["message_id"] == recommendation["word"]["message_id"]
    )
    arrived = word_mail["received_at"][:16].replace("T", " ")  # the campaign's zone, to the minute
    with signed_in(workspace) as client:
        html = client.get(f"/units/{recommendation['id']}").text
    assert f"{arrived}收到" in html
