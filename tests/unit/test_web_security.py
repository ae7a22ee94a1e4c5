"""The workspace's pure safety pieces: signed cookies, download headers, error words."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from urllib.parse import unquote

import pytest

from service.accounts import hash_password, password_matches
from service.web.security import Sessions, Signer, download_headers, sniff_type
from service.web.texts import mail_error

NOW = datetime(2025, 7, 20, 9, 0, tzinfo=UTC)


def test_a_session_cookie_reads_back_until_it_expires():
    sessions = Sessions(b"k" * 32)
    value, csrf = sessions.make(7, now=NOW, expires_at=NOW + timedelta(hours=1))
    data = sessions.read(value, now=NOW + timedelta(minutes=59))
    assert data is not None and data.user_id == 7 and data.csrf == csrf
    assert sessions.read(value, now=NOW + timedelta(hours=1)) is None


@pytest.mark.parametrize("value", [None, "", "x", "a.b", "..", "e30.deadbeef"])
def test_garbage_is_no_session(value):
    assert Sessions(b"k" * 32).read(value, now=NOW) is None


def test_a_cookie_signed_with_another_secret_or_purpose_is_refused():
    value, _ = Sessions(b"a" * 32).make(1, now=NOW, expires_at=NOW + timedelta(hours=1))
    assert Sessions(b"b" * 32).read(value, now=NOW) is None
    login_form = Signer(b"a" * 32, "login-form").sign({"u": 1, "at": 0, "exp": 9e9, "csrf": "x"})
    assert Sessions(b"a" * 32).read(login_form, now=NOW) is None


@pytest.mark.parametrize(
    "name",
    [
        "../../<b>x</b>.docx",
        "..\\..\\windows\\system.ini",
        "推荐表\r\n(盖章).pdf",
        'a"; filename="evil.html',
    ],
)
def test_download_names_have_no_path_markup_or_control_characters(name):
    headers = download_headers(name, "application/octet-stream")
    disposition = headers["content-disposition"]
    plain, extended = (part.split("=", 1)[1] for part in disposition.split("; ")[1:])
    for shown in (plain.strip('"'), unquote(extended.removeprefix("UTF-8''"))):
        assert not any(ch in shown for ch in '/\\<>"\r\n')
        assert not shown.startswith(".")
    assert disposition.startswith("attachment;")
    assert disposition.count(";") == 2  # no header injection


def test_only_pdfs_and_images_open_inline():
    assert sniff_type(b"%PDF-1.7 ...") == "application/pdf"
    assert sniff_type(b"\x89PNG\r\n\x1a\n....") == "image/png"
    assert sniff_type(b"<html><script>") == "application/octet-stream"
    assert download_headers("a.pdf", "application/pdf")["content-disposition"].startswith("inline")
    assert download_headers("a.html", "text/html")["content-type"] == "application/octet-stream"


def test_passwords_hash_with_salt_and_check():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and stored != hash_password("correct horse")
    assert password_matches("correct horse", stored)
    assert not password_matches("wrong horse", stored)
    assert not password_matches("correct horse", "garbage")


@pytest.mark.parametrize(
    ("error", "words"),
    [
        ("550 5.1.1 <a@b.example>: no such user", "拒收"),
        ("Connection refused", "无法连接"),
        ("timed out", "超时"),
        ("535 authentication failed", "拒绝登录"),
        ("something odd", "重试"),
    ],
)
def test_mail_errors_are_said_in_words(error, words):
    assert words in mail_error(error)
