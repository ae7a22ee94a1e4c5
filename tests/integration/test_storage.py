"""The schema and the archive behave the same on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlmodel import Session, select

from config.errors import StorageError
from service.archive import Archive, sha256_hex
from service.db import create_db_engine, schema_revision, upgrade_schema
from service.models import Message

pytestmark = pytest.mark.integration


def _tables(engine: sa.Engine) -> dict[str, set[str]]:
    inspector = sa.inspect(engine)
    return {
        name: {column["name"] for column in inspector.get_columns(name)}
        for name in inspector.get_table_names()
        if name != "alembic_version"
    }


def test_upgrade_creates_the_same_tables_on_sqlite_and_postgres(sqlite_url, postgres_url):
    sqlite, postgres = create_db_engine(sqlite_url), create_db_engine(postgres_url)
    upgrade_schema(sqlite)
    upgrade_schema(postgres)
    try:
        assert _tables(sqlite) == _tables(postgres)
        assert {"message", "recommendation", "case_row", "outbox"} <= set(_tables(sqlite))
    finally:
        sqlite.dispose()
        postgres.dispose()


def test_upgrade_twice_is_a_no_op(db):
    before = schema_revision(db)
    upgrade_schema(db)
    assert schema_revision(db) == before is not None


def test_ledger_row_round_trips_its_instant_and_refuses_a_duplicate_uid(db):
    received = datetime(2025, 7, 12, 10, 20, 18, tzinfo=timezone(timedelta(hours=8)))
    row = dict(
        account="imap://cases@host",
        folder="INBOX",
        uidvalidity=7,
        uid=1,
        message_id="<a@b>",
        sha256="0" * 64,
        size=10,
        received_at=received,
        archived_at=datetime.now(UTC),
    )
    with Session(db) as session:
        session.add(Message(**row))
        session.commit()
    with Session(db) as session:
        stored = session.exec(select(Message)).one()
        assert stored.received_at == received
        session.add(Message(**{**row, "sha256": "1" * 64}))
        with pytest.raises(sa.exc.IntegrityError):
            session.commit()


def test_archive_stores_by_hash_and_never_overwrites(tmp_path: Path):
    archive = Archive(tmp_path)
    digest = archive.put(b"raw message")
    assert digest == sha256_hex(b"raw message")
    assert archive.get(digest) == b"raw message"
    assert archive.put(b"raw message") == digest
    assert not list(tmp_path.rglob(".tmp-*"))
    archive.path_for(digest).write_bytes(b"tampered!!!")
    with pytest.raises(StorageError, match="damaged"):
        archive.get(digest)


def test_upgrading_a_database_with_mail_in_its_outbox_keeps_and_indexes_it(db_url):
    from alembic import command

    from service.db import alembic_config

    engine = create_db_engine(db_url)
    command.upgrade(alembic_config(engine), "0001")
    now = datetime.now(UTC)
    outbox = sa.Table("outbox", sa.MetaData(), autoload_with=engine)
    with engine.begin() as connection:
        connection.execute(
            outbox.insert().values(
                idempotency_key="k", kind="unit_receipt", recipients=["a@unit.example"], cc=[],
                subject="s", text_body="t", html_body="h", references=[],
                auto_submitted="auto-replied", attachments=[], mail_message_id="<m@x>",
                status="sent", attempts=1, next_attempt_at=now.replace(tzinfo=None),
                created_at=now.replace(tzinfo=None),
            )
        )  # fmt: skip
    upgrade_schema(engine)
    with engine.connect() as connection:
        assert connection.execute(sa.text("select recipient from outbox")).scalar_one() == (
            "a@unit.example"
        )
    assert "ix_outbox_recipient_kind_created" in {
        index["name"] for index in sa.inspect(engine).get_indexes("outbox")
    }
    engine.dispose()
