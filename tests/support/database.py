"""Database fixtures: SQLite in a temp dir, and a fresh PostgreSQL database per test session.

`db` is parametrized over both, so every storage test runs on both backends.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from service.db import create_db_engine, upgrade_schema
from tests.support.services import missing_service

POSTGRES_ADMIN_URL = os.environ.get(
    "INTAKE_TEST_POSTGRES", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
POSTGRES_HOW = (
    "start PostgreSQL on 127.0.0.1:5432 with trust auth for user postgres "
    "(pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start) "
    "or point INTAKE_TEST_POSTGRES at an admin URL"
)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for this test session; its URL. Dropped after."""
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        admin.dispose()
        missing_service("PostgreSQL", f"{POSTGRES_HOW} ({str(exc).splitlines()[0]})")
    name = f"intake_test_{uuid.uuid4().hex[:10]}"
    with admin.connect() as connection:
        connection.execute(sa.text(f'create database "{name}"'))
    url = admin.url.set(database=name).render_as_string(hide_password=False)
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(sa.text(f'drop database if exists "{name}" with (force)'))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str) -> Iterator[str]:
    """A PostgreSQL URL whose schema is emptied before each test."""
    engine = create_db_engine(postgres_server)
    with engine.begin() as connection:
        connection.execute(sa.text("drop schema public cascade"))
        connection.execute(sa.text("create schema public"))
    engine.dispose()
    yield postgres_server


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A SQLite file URL in this test's temp dir."""
    return f"sqlite:///{tmp_path / 'intake.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest) -> str:
    """The URL of an empty database, once per backend."""
    fixture = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return str(request.getfixturevalue(fixture))


@pytest.fixture
def db(db_url: str) -> Iterator[sa.Engine]:
    """An engine on a migrated, empty database, once per backend."""
    engine = create_db_engine(db_url)
    upgrade_schema(engine)
    yield engine
    engine.dispose()
