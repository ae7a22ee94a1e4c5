"""The container image carries what the tests use: the same Debian and Python packages."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

from config.settings import Settings, load_settings

REPO = Path(__file__).resolve().parents[2]
DOCKERFILE = (REPO / "Dockerfile").read_text(encoding="utf-8")
CI_RUN = (REPO / ".ci" / "run").read_text(encoding="utf-8")
COMPOSE = (REPO / "compose.yaml").read_text(encoding="utf-8")


def logical_lines(text: str) -> list[str]:
    """Dockerfile instructions with their continuation lines joined."""
    return [line.strip() for line in text.replace("\\\n", " ").splitlines() if line.strip()]


def apt_packages_of_the_image() -> set[str]:
    packages: set[str] = set()
    for line in logical_lines(DOCKERFILE):
        for command in line.split("&&"):
            words = command.split()
            if "apt-get" in words and "install" in words:
                packages |= {word for word in words[words.index("install") + 1 :] if word[0] != "-"}
    return packages


def apt_packages_of_ci() -> set[str]:
    return set(re.findall(r"need_apt\+=\(([a-z0-9.+-]+)\)", CI_RUN))


def test_every_debian_package_of_the_image_is_one_ci_installs_for_the_tests():
    image = apt_packages_of_the_image()

    assert {"libreoffice-writer-nogui", "fonts-noto-cjk"} <= image
    assert image <= apt_packages_of_ci(), (
        f"not installed by .ci/run: {image - apt_packages_of_ci()}"
    )


def test_the_image_is_built_on_the_debian_release_the_tests_run_on():
    bases = re.findall(r"^FROM (\S+)", DOCKERFILE, flags=re.MULTILINE)
    assert bases and all(base.endswith("-bookworm") for base in bases)  # Debian 12


def test_the_python_packages_of_the_image_come_from_pyproject_toml_only():
    installs = [line for line in logical_lines(DOCKERFILE) if "pip install" in line]

    assert len(installs) == 1
    assert installs[0].split("pip install", 1)[1].split() == ["."]  # nothing added beside it
    dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert any(dependency.startswith("tzdata") for dependency in dependencies)


def test_the_image_runs_as_a_non_root_user_with_a_healthcheck():
    users = re.findall(r"^USER (\S+)", DOCKERFILE, flags=re.MULTILINE)

    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r'^HEALTHCHECK .*CMD \["intake", "health"\]', DOCKERFILE, re.MULTILINE)
    assert re.search(r"^EXPOSE .*\b8080\b", DOCKERFILE, re.MULTILINE)


def test_every_setting_the_image_and_compose_set_exists():
    names = re.findall(r"\bINTAKE_([A-Z]+)__([A-Z_]+)\b", DOCKERFILE + COMPOSE)

    assert names
    for section, key in names:
        model = Settings.model_fields[section.lower()].annotation
        assert key.lower() in getattr(model, "model_fields", {}), f"INTAKE_{section}__{key}"


def test_compose_mounts_the_example_config_read_only_and_keeps_postgres_in_a_named_volume():
    assert "./docs/intake.example.toml:/etc/intake/intake.toml:ro" in COMPOSE
    assert "INTAKE_CONFIG: /etc/intake/intake.toml" in COMPOSE
    assert re.search(r"^\s+- postgres-data:/var/lib/postgresql/data$", COMPOSE, re.MULTILINE)
    assert re.search(r"^volumes:\n  postgres-data:", COMPOSE, re.MULTILINE)
    assert '"127.0.0.1:8080:8080"' in COMPOSE
    for key in ("NAME", "DEADLINE", "STARTS", "STAFF"):
        assert f"INTAKE_CAMPAIGN__{key}:" in COMPOSE


def test_the_example_config_is_valid(tmp_path):
    text = (REPO / "docs" / "intake.example.toml").read_text(encoding="utf-8")
    secret = tmp_path / "password"
    secret.write_text("pw\n")
    text = re.sub(r'password_file = "[^"]+"', f'password_file = "{secret}"', text)
    copy = tmp_path / "intake.toml"
    copy.write_text(text, encoding="utf-8")

    settings = load_settings(copy)

    assert settings.mailbox.kind == "imap" and settings.smtp.kind == "smtp"
    assert settings.campaign.starts is not None
