"""`intake init` against the suite's Dovecot and SMTP sink: good and bad credentials."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from config.settings import load_settings
from tests.support.dovecot import SHARED_PASSWORD
from tests.support.intake_process import run_intake

pytestmark = pytest.mark.integration

SMTP_USER, SMTP_PASSWORD = "cases@cace.example", "pw-2025"


@pytest.fixture
def smtp_with_login(smtp_sink_factory):
    return smtp_sink_factory(security="starttls", users={SMTP_USER: SMTP_PASSWORD})


def init_flags(tmp_path, dovecot, smtp, *, imap_password, smtp_password):
    (tmp_path / "imap-password").write_text(imap_password + "\n")
    (tmp_path / "smtp-password").write_text(smtp_password + "\n")
    username, _ = dovecot.user("init")
    return [
        "init",
        "--campaign-name", "2026信息通信行业科技创新案例征集",
        "--deadline", "2026-07-31T23:59:59+08:00",
        "--staff", "staff@cace.example",
        "--staff", "lead@cace.example",
        "--imap-host", dovecot.host,
        "--imap-port", str(dovecot.port),
        "--imap-security", "plain",
        "--imap-username", username,
        "--imap-password-file", str(tmp_path / "imap-password"),
        "--smtp-host", smtp.host,
        "--smtp-port", str(smtp.port),
        "--smtp-security", "starttls",
        "--smtp-ca-file", str(smtp.certificate.cert_path),
        "--smtp-username", SMTP_USER,
        "--smtp-password-file", str(tmp_path / "smtp-password"),
        "--from-address", "案例征集 <cases@cace.example>",
    ]  # fmt: skip


def test_init_checks_both_logins_and_writes_a_file_the_service_loads(
    tmp_path: Path, dovecot, smtp_with_login
):
    flags = init_flags(
        tmp_path,
        dovecot,
        smtp_with_login,
        imap_password=SHARED_PASSWORD,
        smtp_password=SMTP_PASSWORD,
    )
    result = run_intake(None, *flags, cwd=tmp_path)

    assert result.returncode == 0, result.stderr
    assert "IMAP and SMTP logins work" in result.stderr
    assert smtp_with_login.logins == [SMTP_USER]
    written = tmp_path / "intake.toml"
    assert stat.S_IMODE(written.stat().st_mode) == 0o600
    text = written.read_text(encoding="utf-8")
    assert text.startswith("# intake configuration") and "docs/configuration.md" in text
    settings = load_settings(written)
    assert settings.campaign.name == "2026信息通信行业科技创新案例征集"
    assert settings.campaign.staff == ["staff@cace.example", "lead@cace.example"]
    assert (settings.mailbox.kind, settings.mailbox.port) == ("imap", dovecot.port)
    assert settings.mailbox.password is not None
    assert settings.mailbox.password.get_secret_value() == SHARED_PASSWORD
    assert settings.smtp.kind == "smtp" and settings.smtp.username == SMTP_USER
    assert SHARED_PASSWORD not in text and SMTP_PASSWORD not in text  # only the file names

    status = run_intake(written, "db", "upgrade", cwd=tmp_path)
    assert status.returncode == 0, status.stderr


@pytest.mark.parametrize("wrong", ["imap", "smtp"])
def test_init_with_a_wrong_password_names_the_server_and_writes_nothing(
    tmp_path: Path, dovecot, smtp_with_login, wrong
):
    flags = init_flags(
        tmp_path,
        dovecot,
        smtp_with_login,
        imap_password="wrong" if wrong == "imap" else SHARED_PASSWORD,
        smtp_password="wrong" if wrong == "smtp" else SMTP_PASSWORD,
    )
    result = run_intake(None, *flags, cwd=tmp_path)

    assert result.returncode == 1
    assert f"{wrong.upper()}:" in result.stderr
    assert ("IMAP:" in result.stderr) == (wrong == "imap")
    assert "intake.toml not written" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "intake.toml").exists()


def test_init_replaces_an_existing_file_only_with_force(tmp_path: Path, dovecot, smtp_with_login):
    existing = tmp_path / "intake.toml"
    existing.write_text("# mine\n")
    flags = init_flags(
        tmp_path,
        dovecot,
        smtp_with_login,
        imap_password=SHARED_PASSWORD,
        smtp_password=SMTP_PASSWORD,
    )

    refused = run_intake(None, *flags, cwd=tmp_path)
    assert refused.returncode == 2 and "--force" in refused.stderr
    assert existing.read_text() == "# mine\n"

    forced = run_intake(None, *flags, "--force", cwd=tmp_path)
    assert forced.returncode == 0, forced.stderr
    assert existing.read_text(encoding="utf-8").startswith("# intake configuration")


def test_init_without_a_terminal_names_every_missing_flag(tmp_path: Path):
    result = run_intake(None, "init", "--imap-host", "imap.example.org", cwd=tmp_path)

    assert result.returncode == 2
    assert "--deadline" in result.stderr and "--smtp-host" in result.stderr
    assert "--imap-host" not in result.stderr
    assert not (tmp_path / "intake.toml").exists()
