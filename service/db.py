"""The database engine and the schema, the same way on SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy.engine import make_url

from config.errors import StorageError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def create_db_engine(url: str, *, echo: bool = False) -> sa.Engine:
    """Build the engine; SQLite gets WAL, foreign keys and a busy timeout on every connection.

    Nothing is created here: a SQLite file (and its folder) appears with `upgrade_schema`.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        engine = sa.create_engine(url, echo=echo, connect_args={"timeout": 30})

        @sa.event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    if parsed.get_backend_name() == "postgresql" and parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return sa.create_engine(parsed, echo=echo, pool_pre_ping=True)


def is_postgres(engine: sa.Engine) -> bool:
    """Whether several processes may share this database safely."""
    return engine.dialect.name == "postgresql"


def alembic_config(engine: sa.Engine) -> AlembicConfig:
    """An Alembic configuration pointing at our migrations and this engine."""
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["engine"] = engine
    return config


def sqlite_file(engine: sa.Engine) -> Path | None:
    """The file of a SQLite database (None for PostgreSQL and in-memory SQLite)."""
    database = engine.url.database
    if engine.dialect.name != "sqlite" or not database or database == ":memory:":
        return None
    return Path(database)


def upgrade_schema(engine: sa.Engine) -> None:
    """Create or migrate the schema to the newest revision (a no-op when already there)."""
    path = sqlite_file(engine)
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
    command.upgrade(alembic_config(engine), "head")


def schema_revision(engine: sa.Engine) -> str | None:
    """The revision the database is at, or None before the first upgrade.

    A SQLite file that does not exist is not created by asking.
    """
    from alembic.runtime.migration import MigrationContext

    path = sqlite_file(engine)
    if path is not None and not path.exists():
        return None

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_schema(engine: sa.Engine) -> None:
    """Raise a StorageError saying what to run when the schema is missing or behind."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config(engine)).get_current_head()
    try:
        current = schema_revision(engine)
    except sa.exc.OperationalError as exc:
        raise StorageError(
            f"cannot open the database {engine.url.render_as_string()}: "
            f"{str(exc.orig).strip()} — check database.url"
        ) from exc
    if current != head:
        raise StorageError(
            f"the database {engine.url.render_as_string()} is at schema {current or 'none'}, "
            f"not {head}: run `intake db upgrade`"
            + (" (or `intake demo` for the sample campaign)" if current is None else "")
        )
