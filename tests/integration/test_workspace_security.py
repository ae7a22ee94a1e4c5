"""The workspace's locks, tried over real HTTP against uvicorn: sign-in, cookies, CSRF, the
login limit, headers, downloads and escaping."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import unquote

import httpx
import pytest
from sqlmodel import Session, select

from service.accounts import new_token, revoke_tokens
from service.models import Attachment, Message
from service.web.security import SESSION_COOKIE
from tests.support.workspace import (
    HOSTILE_FILENAME,
    HOSTILE_SUBJECT,
    PASSWORD,
    USERNAME,
    Workspace,
    csrf_of,
)

pytestmark = pytest.mark.integration

PAGES = ["/", "/todo", "/units", "/submissions", "/messages", "/outbox", "/audit", "/status"]


@contextmanager
def signed_in(workspace: Workspace) -> Iterator[httpx.Client]:
    with workspace.client() as client:
        response = workspace.sign_in(client)
        assert response.status_code == 303, response.text
        yield client


@pytest.mark.parametrize("path", [*PAGES, "/units/1", "/messages/1"])
def test_an_anonymous_visitor_is_sent_to_the_login_page(workspace: Workspace, path: str):
    with workspace.client() as client:
        response = client.get(path)
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login?next=")


@pytest.mark.parametrize("path", ["/api/register", "/api/todo"])
def test_an_anonymous_script_gets_401_json(workspace: Workspace, path: str):
    with workspace.client() as client:
        response = client.get(path)
    assert response.status_code == 401
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["error"] == "unauthorized"


def test_login_healthz_and_static_files_are_open(workspace: Workspace):
    with workspace.client() as client:
        assert client.get("/login").status_code == 200
        assert client.get("/healthz").json() == {"status": "ok"}
        assert client.get("/static/style.css").headers["content-type"].startswith("text/css")


def test_signing_in_sets_an_httponly_samesite_expiring_cookie(workspace: Workspace, fresh_limits):
    with workspace.client() as client:
        response = workspace.sign_in(client)
    assert response.status_code == 303
    cookie = next(
        value
        for name, value in response.headers.multi_items()
        if name == "set-cookie" and value.startswith(SESSION_COOKIE)
    )
    assert "HttpOnly" in cookie
    assert "SameSite=lax" in cookie or "SameSite=Lax" in cookie
    assert f"Max-Age={8 * 3600}" in cookie


def test_a_forged_cookie_is_refused(workspace: Workspace, fresh_limits):
    with signed_in(workspace) as client:
        real = client.cookies[SESSION_COOKIE]
        body, _, mac = real.rpartition(".")
        payload = json.loads(base64.urlsafe_b64decode(body))
        payload["u"] = payload["u"] + 1  # someone else's account, same signature
        forged = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode() + "." + mac
    for value in (forged, "garbage", real[:-2] + "00"):
        with workspace.client(cookies={SESSION_COOKIE: value}) as client:
            assert client.get("/").status_code == 303
            assert client.get("/api/todo").status_code == 401


def test_an_expired_cookie_is_refused(workspace: Workspace, fresh_limits):
    with signed_in(workspace) as client:
        assert client.get("/").status_code == 200
        workspace.clock.now += timedelta(hours=8, minutes=1)
        response = client.get("/")
    assert response.status_code == 303
    assert response.headers["location"].startswith("/login")


def test_a_form_without_its_csrf_token_is_refused(workspace: Workspace, fresh_limits):
    with workspace.client() as client:
        client.get("/login")
        response = client.post("/login", data={"username": USERNAME, "password": PASSWORD})
        assert response.status_code == 403
        assert SESSION_COOKIE not in client.cookies
    with signed_in(workspace) as client:
        assert client.post("/logout", data={}).status_code == 403
        assert client.post("/logout", data={"csrf_token": "wrong"}).status_code == 403
        assert client.get("/").status_code == 200  # still signed in


def test_logging_out_ends_the_session(workspace: Workspace, fresh_limits):
    with signed_in(workspace) as client:
        response = client.post("/logout", data={"csrf_token": csrf_of(client.get("/").text)})
        assert response.status_code == 303
        assert client.get("/").status_code == 303


def test_the_sixth_wrong_password_in_a_minute_is_refused_even_with_the_right_one(
    workspace: Workspace, fresh_limits
):
    with workspace.client() as client:
        for _ in range(5):
            refused = workspace.sign_in(client, password="not the password")
            assert refused.status_code == 401
            assert "用户名或密码不正确" in refused.text
        blocked = workspace.sign_in(client)
    assert blocked.status_code == 429
    assert "一分钟后再试" in blocked.text
    assert SESSION_COOKIE not in blocked.cookies
    # from another address the same user name is refused too: the limit is per user
    with workspace.client() as client:
        assert workspace.sign_in(client, address="192.0.2.7").status_code == 429
    workspace.clock.now += timedelta(minutes=2)
    with workspace.client() as client:
        assert workspace.sign_in(client).status_code == 303


def test_many_user_names_from_one_address_are_limited_too(workspace: Workspace, fresh_limits):
    with workspace.client() as client:
        for number in range(5):
            workspace.sign_in(client, f"guess{number}", "x", address="198.51.100.9")
        blocked = workspace.sign_in(client, address="198.51.100.9")
    assert blocked.status_code == 429


def test_an_unknown_user_gets_the_same_answer_as_a_wrong_password(
    workspace: Workspace, fresh_limits
):
    with workspace.client() as client:
        unknown = workspace.sign_in(client, "nobody-here", "whatever", address="203.0.113.1")
        wrong = workspace.sign_in(client, USERNAME, "whatever", address="203.0.113.2")
    assert unknown.status_code == wrong.status_code == 401
    assert unknown.text.replace("nobody-here", "").count("用户名或密码不正确") == 1
    assert csrf_of(unknown.text) == csrf_of(wrong.text)  # same form, same token


def test_every_page_sends_the_security_headers(workspace: Workspace, fresh_limits):
    with signed_in(workspace) as client:
        for path in [*PAGES, "/login"]:
            headers = client.get(path).headers
            policy = headers["content-security-policy"]
            assert "frame-ancestors 'none'" in policy
            assert "script-src 'self'" in policy and "unsafe-inline" not in policy
            assert headers["x-content-type-options"] == "nosniff"
            assert headers["referrer-policy"] == "same-origin"


def test_a_hostile_attachment_name_downloads_under_a_safe_name(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        attachment = session.exec(
            select(Attachment).where(Attachment.filename.endswith("x</b>.docx"))  # type: ignore[attr-defined]
        ).one()
    with signed_in(workspace) as client:
        response = client.get(f"/messages/{attachment.message_pk}/attachments/{attachment.id}")
    assert response.status_code == 200
    assert response.content.startswith(b"PK")
    disposition = response.headers["content-disposition"]
    assert disposition.startswith("attachment;")
    assert response.headers["content-type"] == "application/octet-stream"
    names = [part.split("=", 1)[1] for part in disposition.split("; ")[1:]]
    for name in (names[0].strip('"'), unquote(names[1].removeprefix("UTF-8''"))):
        assert "/" not in name and "\\" not in name and ".." not in name
        assert "<" not in name and ">" not in name
        assert name.endswith(".docx")
    assert HOSTILE_FILENAME not in disposition


def test_a_pdf_is_shown_inline_and_a_page_image_is_a_png(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        pdf = session.exec(select(Attachment).where(Attachment.kind == "form_pdf")).first()
    assert pdf is not None
    with signed_in(workspace) as client:
        response = client.get(f"/messages/{pdf.message_pk}/attachments/{pdf.id}")
    assert response.headers["content-type"] == "application/pdf"
    assert response.headers["content-disposition"].startswith("inline;")


def test_a_script_in_a_subject_shows_as_text(workspace: Workspace, fresh_limits):
    with Session(workspace.app.engine) as session:
        message = session.exec(select(Message).where(Message.subject == HOSTILE_SUBJECT)).one()
    with signed_in(workspace) as client:
        for path in (f"/messages/{message.id}", "/messages", "/"):
            html = client.get(path).text
            assert "<script>alert(1)</script>" not in html
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in client.get(f"/messages/{message.id}").text


def test_a_bearer_token_opens_the_api_until_it_is_revoked(workspace: Workspace):
    with Session(workspace.app.engine) as session:
        token = new_token(session, USERNAME, now=workspace.clock())
        session.commit()
    bearer = {"authorization": f"Bearer {token}"}
    with workspace.client() as client:
        assert client.get("/api/todo", headers=bearer).status_code == 200
        assert (
            client.get("/api/todo", headers={"authorization": "Bearer intake_nope"}).status_code
            == 401
        )
    with Session(workspace.app.engine) as session:
        assert revoke_tokens(session, USERNAME, now=workspace.clock()) == 1
        session.commit()
    with workspace.client() as client:
        assert client.get("/api/todo", headers=bearer).status_code == 401


def test_the_login_page_never_redirects_to_another_site(workspace: Workspace, fresh_limits):
    with workspace.client() as client:
        form = client.get("/login?next=//evil.example/")
        response = client.post(
            "/login?next=//evil.example/",
            data={"csrf_token": csrf_of(form.text), "username": USERNAME, "password": PASSWORD},
        )
    assert response.status_code == 303
    assert response.headers["location"] == "/"
