"""Settings: defaults that need nothing, overrides from the environment, clear errors."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from config.errors import ConfigError
from config.settings import SAMPLE_MAILBOX, Settings, load_settings, trial_warning


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    for name in list(__import__("os").environ):
        if name.startswith("INTAKE_") and name != "INTAKE_REQUIRE_SERVICES":
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)


def test_defaults_need_nothing_and_point_at_the_bundled_samples():
    settings = load_settings()
    assert settings.database.url == "sqlite:///var/intake.db"
    assert settings.mailbox.kind == "directory"
    assert settings.mailbox.path == SAMPLE_MAILBOX
    assert settings.smtp.kind == "file"
    assert settings.campaign.deadline.isoformat() == "2025-07-31T23:59:59+08:00"


def test_environment_overrides_the_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    config = tmp_path / "intake.toml"
    config.write_text('[schedule]\npoll_every = "10m"\n[mailbox]\nhost = "file.example"\n')
    monkeypatch.setenv("INTAKE_MAILBOX__HOST", "env.example")
    settings = load_settings(config)
    assert settings.mailbox.host == "env.example"
    assert settings.schedule.poll_every == timedelta(minutes=10)


def test_intake_toml_in_the_working_directory_is_read_without_flags(tmp_path: Path):
    (tmp_path / "intake.toml").write_text('[campaign]\nname = "2026 征集"\n', encoding="utf-8")
    assert load_settings().campaign.name == "2026 征集"


def test_password_file_fills_the_password_as_a_secret(tmp_path: Path):
    secret = tmp_path / "imap.secret"
    secret.write_text("s3cret\n")
    config = tmp_path / "intake.toml"
    config.write_text(f'[mailbox]\npassword_file = "{secret}"\n')
    settings = load_settings(config)
    assert settings.mailbox.password is not None
    assert settings.mailbox.password.get_secret_value() == "s3cret"
    assert "s3cret" not in repr(settings)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ('[mailbox]\nhostname = "x"\n', "mailbox.hostname"),
        ('[mailbx]\nhost = "x"\n', "mailbx"),
        ('[mailbox]\nport = "abc"\n', "mailbox.port"),
        ('[mailbox]\nafter = "delete"\n', "mailbox.after"),
        ('[campaign]\ndeadline = "2025-07-31T23:59:59"\n', "campaign.deadline"),
        ('[schedule]\npoll_every = "soon"\n', "schedule.poll_every"),
    ],
)
def test_a_bad_key_is_named_with_its_file(tmp_path: Path, text: str, key: str):
    config = tmp_path / "bad.toml"
    config.write_text(text)
    with pytest.raises(ConfigError) as raised:
        load_settings(config)
    assert raised.value.key == key
    assert str(config) in str(raised.value)
    assert key in str(raised.value)


def test_an_unknown_environment_variable_is_named(monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("INTAKE_MAILBOX__HSOT", "x")
    with pytest.raises(ConfigError, match="INTAKE_MAILBOX__HSOT"):
        load_settings()


def test_an_unreadable_password_file_is_named(tmp_path: Path):
    config = tmp_path / "intake.toml"
    config.write_text('[smtp]\npassword_file = "/nonexistent/smtp.secret"\n')
    with pytest.raises(ConfigError, match=r"/nonexistent/smtp\.secret"):
        load_settings(config)


def test_the_defaults_say_in_one_line_that_they_are_trial_settings():
    warning = trial_warning(Settings())

    assert warning is not None and "\n" not in warning
    assert "bundled sample mailbox" in warning and "written as files" in warning


def test_a_real_mailbox_and_smtp_server_give_no_trial_warning():
    settings = Settings(
        mailbox={"kind": "imap", "host": "imap.example.org"},
        smtp={"kind": "smtp", "host": "smtp.example.org"},
    )

    assert trial_warning(settings) is None
