"""The command line as other tools see it: help, exit codes, one-line errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import sqlalchemy as sa

pytestmark = pytest.mark.integration

INTAKE = [sys.executable, "-m", "service"]
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


def intake(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*INTAKE, *args], capture_output=True, text=True, cwd=cwd, timeout=120, check=False
    )


def test_help_lists_every_command():
    result = intake("--help")
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
    result = intake("--config", str(config), "status")
    assert result.returncode == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert key in lines[0] and str(config) in lines[0]
    assert "Traceback" not in result.stderr


def _config(tmp_path: Path, url: str) -> Path:
    config = tmp_path / "intake.toml"
    config.write_text(f'[database]\nurl = "{url}"\n[storage]\npath = "{tmp_path / "archive"}"\n')
    return config


def test_db_upgrade_twice_is_a_no_op_on_either_backend(tmp_path: Path, db_url: str):
    config = _config(tmp_path, db_url)
    first = intake("--config", str(config), "db", "upgrade")
    assert first.returncode == 0, first.stderr
    engine = sa.create_engine(db_url.replace("postgresql://", "postgresql+psycopg://"))
    tables = set(sa.inspect(engine).get_table_names())
    second = intake("--config", str(config), "db", "upgrade")
    assert second.returncode == 0, second.stderr
    assert set(sa.inspect(engine).get_table_names()) == tables
    assert {"message", "recommendation", "outbox", "alembic_version"} <= tables
    engine.dispose()


def test_a_command_on_a_database_without_schema_says_to_upgrade(tmp_path: Path):
    config = _config(tmp_path, f"sqlite:///{tmp_path / 'empty.db'}")
    result = intake("--config", str(config), "status")
    assert result.returncode == 1
    assert "intake db upgrade" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_prints_the_summary_and_writes_receipts_and_the_digest(tmp_path: Path):
    result = intake("demo", "--workdir", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "complete" in result.stdout
    written = sorted((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert len(written) == 18
    texts = [path.read_bytes() for path in written]
    assert sum(b"X-Intake-Kind: digest" in text for text in texts) == 1
    assert sum(b"X-Intake-Kind: unit_receipt" in text for text in texts) == 4
    assert str((tmp_path / "demo" / "outbox").resolve()) in result.stdout.replace("\n", "")
