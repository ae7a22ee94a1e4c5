"""The command line as other tools see it: help, exit codes, one-line errors."""

from __future__ import annotations

import json
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
    assert not (tmp_path / "empty.db").exists()  # asking created no empty database
    assert "Traceback" not in result.stderr


def test_status_in_a_fresh_folder_creates_nothing(tmp_path: Path):
    result = run_intake(None, "status", cwd=tmp_path)
    assert result.returncode == 1
    assert "intake db upgrade" in result.stderr and "intake demo" in result.stderr
    assert list(tmp_path.iterdir()) == []


def test_after_the_demo_status_and_export_in_the_same_folder_show_the_demo_campaign(
    tmp_path: Path,
):
    demo = run_intake(None, "demo", cwd=tmp_path)
    assert demo.returncode == 0, demo.stderr
    assert sorted(path.name for path in (tmp_path / "var").iterdir()) == [
        "archive",
        "intake.db",
        "outbox",
    ]
    hinted = [line.split("#")[0].split() for line in demo.stdout.splitlines() if "  # " in line]
    assert [words[-1] for words in hinted[:2]] == ["status", "json"]

    for words in hinted[:2]:
        assert words[0].endswith("intake") and "--config" not in words
        shown = run_intake(None, *words[1:], cwd=tmp_path)
        assert shown.returncode == 0, shown.stderr
        assert "2025信息通信行业科技创新案例征集" in shown.stdout
    register = json.loads(run_intake(None, "export", "--format", "json", cwd=tmp_path).stdout)
    assert len(register["messages"]) == 4 and len(register["recommendations"]) == 3

    health = run_intake(None, "health", cwd=tmp_path)
    assert health.returncode == 0, health.stdout + health.stderr
    trial = [line for line in health.stdout.splitlines() if "trial settings" in line]
    assert len(trial) == 1 and "bundled sample mailbox" in trial[0] and "var/outbox" in trial[0]


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
    config = tmp_path / "demo" / "demo.toml"
    assert f"--config {config} status" in result.stdout.replace("\n", "")
    shown = run_intake(config, "status", cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "2025信息通信行业科技创新案例征集" in shown.stdout
