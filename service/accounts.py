"""Staff accounts for the workspace: passwords (scrypt), bearer tokens (stored hashed), and
the login limit (5 failed attempts a minute per user name and per address).

The CLI creates and changes accounts; the workspace checks them. Nothing here knows HTTP.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlmodel import Session, col, select

from config.errors import IntakeError
from service.models import ApiToken, LoginAttempt, StaffUser

ROLES = ("staff", "viewer")
LOGIN_WINDOW = timedelta(minutes=1)
LOGIN_FAILURES_ALLOWED = 5
"""Within LOGIN_WINDOW, a user name or an address with this many failures is refused."""
TOKEN_PREFIX = "intake_"
_SCRYPT = {"n": 2**14, "r": 8, "p": 1}
_MIN_PASSWORD = 8


class AccountError(IntakeError, ValueError):
    """An account command that cannot be done (unknown user, weak password, bad role)."""


@dataclass(frozen=True)
class Staff:
    """A signed-in person as the workspace sees them."""

    id: int
    username: str
    display_name: str
    role: str

    @property
    def can_decide(self) -> bool:
        """Viewers see everything and decide nothing."""
        return self.role == "staff"


def hash_password(password: str) -> str:
    """A memory-hard (scrypt, 16 MiB) salted hash of `password`, self-describing."""
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, dklen=32, **_SCRYPT)
    return f"scrypt${_SCRYPT['n']}${_SCRYPT['r']}${_SCRYPT['p']}${salt.hex()}${digest.hex()}"


def password_matches(password: str, stored: str) -> bool:
    """Whether `password` is the one `stored` was made from (constant-time compare)."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        computed = hashlib.scrypt(
            password.encode("utf-8"),
            salt=bytes.fromhex(salt),
            dklen=len(digest) // 2,
            n=int(n),
            r=int(r),
            p=int(p),
        )
    except ValueError:
        return False
    return hmac.compare_digest(computed.hex(), digest)


_DUMMY_HASH = hash_password(secrets.token_urlsafe(16))
"""Checked against for unknown users, so a wrong user name costs as long as a wrong password."""


def token_hash(token: str) -> str:
    """How a bearer token is stored (tokens are long random strings: SHA-256 suffices)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def _check_password(password: str) -> None:
    if len(password) < _MIN_PASSWORD:
        raise AccountError(f"the password must have at least {_MIN_PASSWORD} characters")


def _user(session: Session, username: str) -> StaffUser:
    user = session.exec(select(StaffUser).where(StaffUser.username == username)).first()
    if user is None:
        raise AccountError(f"no staff account {username!r} (see `intake staff list`)")
    return user


def add_user(
    session: Session,
    username: str,
    password: str,
    *,
    display_name: str = "",
    role: str = "staff",
    now: datetime,
) -> StaffUser:
    """Create an account; the caller commits."""
    if role not in ROLES:
        raise AccountError(f"--role {role}: use staff or viewer")
    if not username or len(username) > 100 or any(ch.isspace() for ch in username):
        raise AccountError(f"{username!r}: a user name is 1 to 100 characters without spaces")
    if session.exec(select(StaffUser).where(StaffUser.username == username)).first():
        raise AccountError(f"staff account {username!r} exists already")
    _check_password(password)
    user = StaffUser(
        username=username,
        display_name=display_name or username,
        role=role,
        password_hash=hash_password(password),
        password_changed_at=now,
        created_at=now,
    )
    session.add(user)
    session.flush()
    return user


def set_password(session: Session, username: str, password: str, *, now: datetime) -> None:
    """Change a password; sessions signed in before the change stop working."""
    _check_password(password)
    user = _user(session, username)
    user.password_hash = hash_password(password)
    user.password_changed_at = now
    session.add(user)


def disable_user(session: Session, username: str, *, now: datetime) -> None:
    """Disable an account: its sessions and tokens stop working at once."""
    user = _user(session, username)
    user.disabled = True
    session.add(user)
    revoke_tokens(session, username, now=now)


def new_token(session: Session, username: str, *, now: datetime) -> str:
    """A new bearer token for `username` (shown once; only its hash is kept)."""
    user = _user(session, username)
    if user.disabled:
        raise AccountError(f"staff account {username!r} is disabled")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    assert user.id is not None
    session.add(ApiToken(user_id=user.id, token_hash=token_hash(token), created_at=now))
    return token


def revoke_tokens(session: Session, username: str, *, now: datetime) -> int:
    """Revoke every token of `username`; how many were live."""
    user = _user(session, username)
    live = session.exec(
        select(ApiToken).where(ApiToken.user_id == user.id, col(ApiToken.revoked_at).is_(None))
    ).all()
    for token in live:
        token.revoked_at = now
        session.add(token)
    return len(live)


def list_users(session: Session) -> list[tuple[StaffUser, int]]:
    """Every account with its number of live tokens, by user name."""
    users = session.exec(select(StaffUser).order_by(col(StaffUser.username))).all()
    counts = dict(
        session.exec(
            select(ApiToken.user_id, sa.func.count())
            .where(col(ApiToken.revoked_at).is_(None))
            .group_by(col(ApiToken.user_id))
        ).all()
    )
    return [(user, int(counts.get(user.id or 0, 0))) for user in users]


def as_staff(user: StaffUser) -> Staff:
    """The signed-in view of an account row."""
    assert user.id is not None
    return Staff(id=user.id, username=user.username, display_name=user.display_name, role=user.role)


def staff_for_token(session: Session, token: str) -> Staff | None:
    """The live account a bearer token belongs to, or None."""
    found = session.exec(
        select(StaffUser)
        .join(ApiToken, col(ApiToken.user_id) == col(StaffUser.id))
        .where(
            ApiToken.token_hash == token_hash(token),
            col(ApiToken.revoked_at).is_(None),
            StaffUser.disabled == sa.false(),
        )
    ).first()
    return as_staff(found) if found else None


def staff_for_session(session: Session, user_id: int, signed_in_at: datetime) -> Staff | None:
    """The account of a session cookie, unless disabled or its password changed since."""
    user = session.get(StaffUser, user_id)
    if user is None or user.disabled or user.password_changed_at > signed_in_at:
        return None
    return as_staff(user)


def login_blocked(session: Session, username: str, address: str, *, now: datetime) -> bool:
    """Whether this user name or this address failed too often within the last minute."""
    since = now - LOGIN_WINDOW
    failures = select(sa.func.count()).where(
        LoginAttempt.succeeded == sa.false(), col(LoginAttempt.at) > since
    )
    by_user = session.exec(failures.where(LoginAttempt.username == username)).one()
    by_address = session.exec(failures.where(LoginAttempt.address == address)).one()
    return max(int(by_user), int(by_address)) >= LOGIN_FAILURES_ALLOWED


def attempt_login(
    session: Session, username: str, password: str, address: str, *, now: datetime
) -> Staff | None:
    """Check a sign-in and record the attempt (the caller commits); the account or None.

    Refused while blocked, even with the right password; an unknown user name costs the
    same hashing work and gives the same answer as a wrong password.
    """
    username = username.strip()[:100]
    address = address[:100]
    if login_blocked(session, username, address, now=now):
        session.add(LoginAttempt(username=username, address=address, succeeded=False, at=now))
        return None
    user = session.exec(select(StaffUser).where(StaffUser.username == username)).first()
    matches = password_matches(password, user.password_hash if user else _DUMMY_HASH)
    succeeded = bool(user and matches and not user.disabled)
    session.add(LoginAttempt(username=username, address=address, succeeded=succeeded, at=now))
    session.execute(sa.delete(LoginAttempt).where(col(LoginAttempt.at) < now - timedelta(days=30)))
    return as_staff(user) if succeeded and user else None
