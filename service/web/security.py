"""What keeps the workspace safe: the signed session cookie, CSRF tokens, response headers
and file names for downloads.

The session cookie is `base64(json).hmac-sha256`, signed with a secret kept in a 0600 file;
it carries the user, the sign-in time, the expiry and the CSRF token. Expiry is checked
against the application's clock, so tests can move time.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import os
import secrets
import unicodedata
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote

from config.settings import Settings
from parsers.filenames import sanitize_filename

SESSION_COOKIE = "intake_session"
LOGIN_COOKIE = "intake_login"
"""Before signing in: a signed cookie that holds the login form's CSRF token."""
CSRF_FIELD = "csrf_token"
INLINE_TYPES = ("application/pdf", "image/png", "image/jpeg", "image/gif", "image/webp")
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "font-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; "
    "base-uri 'none'"
)
SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cross-origin-opener-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=()",
}


def session_secret(settings: Settings) -> bytes:
    """The signing secret: read from `web.session_secret_file`, created 0600 when absent."""
    path = settings.web.session_secret_file or Path(settings.storage.path) / "session-secret"
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_bytes(32)
    try:
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:  # another process made it first: use theirs
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    with os.fdopen(descriptor, "w", encoding="ascii") as handle:
        handle.write(secret.hex() + "\n")
    return secret


@dataclass(frozen=True)
class SessionData:
    """What a valid session cookie says."""

    user_id: int
    signed_in_at: datetime
    expires_at: datetime
    csrf: str


class Signer:
    """Signs and checks small JSON payloads with HMAC-SHA256 (one purpose per signer)."""

    def __init__(self, secret: bytes, purpose: str) -> None:
        self._key = hmac.new(secret, purpose.encode("ascii"), hashlib.sha256).digest()

    def sign(self, payload: dict[str, Any]) -> str:
        """`payload` as a cookie value."""
        body = base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode())
        mac = hmac.new(self._key, body, hashlib.sha256).hexdigest()
        return f"{body.decode('ascii')}.{mac}"

    def unsign(self, value: str | None) -> dict[str, Any] | None:
        """The payload of a value this signer made, or None for anything else."""
        if not value or "." not in value:
            return None
        body, _, mac = value.rpartition(".")
        expected = hmac.new(self._key, body.encode("ascii", "replace"), hashlib.sha256).hexdigest()
        if not hmac.compare_digest(expected, mac):
            return None
        try:
            payload = json.loads(base64.urlsafe_b64decode(body.encode("ascii")))
        except (binascii.Error, ValueError):
            return None
        return payload if isinstance(payload, dict) else None


class Sessions:
    """Session cookies: made at sign-in, read on every request, refused once expired."""

    def __init__(self, secret: bytes) -> None:
        self._session = Signer(secret, "session")
        self._login = Signer(secret, "login-form")

    def make(self, user_id: int, *, now: datetime, expires_at: datetime) -> tuple[str, str]:
        """A new session cookie value and its CSRF token."""
        csrf = secrets.token_urlsafe(24)
        value = self._session.sign(
            {"u": user_id, "at": now.timestamp(), "exp": expires_at.timestamp(), "csrf": csrf}
        )
        return value, csrf

    def read(self, value: str | None, *, now: datetime) -> SessionData | None:
        """The session in a cookie value, or None when forged, malformed or expired."""
        payload = self._session.unsign(value)
        if payload is None:
            return None
        try:
            data = SessionData(
                user_id=int(payload["u"]),
                signed_in_at=datetime.fromtimestamp(float(payload["at"]), tz=now.tzinfo),
                expires_at=datetime.fromtimestamp(float(payload["exp"]), tz=now.tzinfo),
                csrf=str(payload["csrf"]),
            )
        except (KeyError, TypeError, ValueError):
            return None
        return data if data.expires_at > now else None

    def login_form_token(self, value: str | None) -> tuple[str, str | None]:
        """The login form's CSRF token from its cookie; a new cookie value when there is none."""
        payload = self._login.unsign(value)
        if payload and isinstance(payload.get("csrf"), str):
            return str(payload["csrf"]), None
        csrf = secrets.token_urlsafe(24)
        return csrf, self._login.sign({"csrf": csrf})


def tokens_equal(given: object, expected: str) -> bool:
    """Constant-time comparison of a submitted CSRF token with the expected one."""
    return isinstance(given, str) and bool(given) and hmac.compare_digest(given, expected)


def sniff_type(data: bytes) -> str:
    """The media type by content (never the sender's word): PDF, a few images, else bytes."""
    for magic, media in (
        (b"%PDF-", "application/pdf"),
        (b"\x89PNG\r\n\x1a\n", "image/png"),
        (b"\xff\xd8\xff", "image/jpeg"),
        (b"GIF87a", "image/gif"),
        (b"GIF89a", "image/gif"),
    ):
        if data.startswith(magic):
            return media
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return "application/octet-stream"


def download_headers(filename: str, content_type: str) -> dict[str, str]:
    """Content-Type and Content-Disposition for a file from mail: a safe base name (no path
    parts, no control characters), attachment unless a PDF or an image."""
    safe = sanitize_filename(filename)
    ascii_name = unicodedata.normalize("NFKD", safe).encode("ascii", "ignore").decode("ascii")
    ascii_name = "".join(ch if ch.isalnum() or ch in "._- " else "_" for ch in ascii_name)
    ascii_name = ascii_name.strip(" ._") or "file"
    if "." in safe and "." not in ascii_name:
        ascii_name += "." + safe.rsplit(".", 1)[1].encode("ascii", "ignore").decode("ascii")
    media = content_type if content_type in INLINE_TYPES else "application/octet-stream"
    disposition = "inline" if media in INLINE_TYPES else "attachment"
    return {
        "content-type": media,
        "content-disposition": (
            f"{disposition}; filename=\"{ascii_name}\"; filename*=UTF-8''{quote(safe, safe='')}"
        ),
        "cache-control": "private, no-store",
    }
