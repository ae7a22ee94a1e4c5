"""The command line as other tools see it: help, exit codes, one-line errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.support.intake_process import local_config, run_intake

pytestmark = pytest.mark.integration

COMMANDS = [
    "demo",
    "db",
    "submissions",
    "poll",
    "deliver",
    "digest",
    "results",
    "export",
    "status",
    "reprocess",
    "run",
    "pair",
    "templates",
    "health",
]


def test_help_lists_every_command():
    result = run_intake(None, "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert command in result.stdout


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[mailbox]\nhostt = "x"\n', "mailbox.hostt"),
        ('[mailbox]\nport = "x"\n', "mailbox.port"),
        ('[smtp]\npassword_file = "/nonexistent/pw"\n', "password_file"),
    ],
)
def test_a_bad_config_exits_2_with_one_line_naming_the_key_and_file(tmp_path: Path, text, key):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    result = run_intake(config, "status")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and str(config) in lines[0]
    assert "Traceback" not in result.stderr


def test_db_upgrade_twice_is_a_no_op_on_either_backend(tmp_path: Path, db_url: str):
    config = local_config(tmp_path, db_url)
    first = run_intake(config, "db", "upgrade")
    assert first.returncode == 0, first.stderr
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    tables = set(sa.inspect(engine).get_table_names())
    second = run_intake(config, "db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert set(sa.inspect(engine).get_table_names()) == tables
    assert {"message", "recommendation", "outbox", "alembic_version"} <= tables
    engine.dispose()


def test_a_command_on_a_database_without_schema_says_to_upgrade(tmp_path: Path):
    config = local_config(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = run_intake(config, "status")
    assert result.returncode == 1
    assert "intake db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_prints_the_summary_and_writes_receipts_and_the_digest(tmp_path: Path):
    result = run_intake(None, "demo", "--workdir", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "材料齐全" in result.stdout
    written = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(written) == 18
    texts = [path.read_bytes() for path in written]
    assert sum(b"X-Intake-Kind: digest" in text for text in texts) == 1
    assert sum(b"X-Intake-Kind: unit_receipt" in text for text in texts) == 4
    assert str((tmp_path / "demo" / "outbox").resolve()) in result.stdout.replace("\n", "")
