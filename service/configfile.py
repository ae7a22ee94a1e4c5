"""`intake init`: a commented `intake.toml` for a real deployment, checked before it is saved.

The answers (from flags or a terminal) are validated with the same settings models the
service loads, the IMAP and SMTP logins are tried with them, and only then is the file written.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from config.errors import ConfigError, IntakeError
from config.settings import (
    CampaignSettings,
    DatabaseSettings,
    MailboxSettings,
    Settings,
    SmtpSettings,
)
from notifications.transport import SmtpTransport
from service.bootstrap import build_mailbox, build_transport

DEFAULT_PORTS = {"imap": {"ssl": 993, "starttls": 143, "plain": 143}}
DEFAULT_PORTS["smtp"] = {"ssl": 465, "starttls": 587, "plain": 25}


@dataclass
class InitAnswers:
    """What `intake init` was told; None: not given (asked on a terminal, else an error)."""

    campaign_name: str | None = None
    deadline: str | None = None
    starts: str | None = None
    timezone: str = "Asia/Shanghai"
    staff: list[str] = field(default_factory=list)
    database_url: str = "sqlite:///var/intake.db"
    imap_host: str | None = None
    imap_port: int | None = None
    imap_security: str = "ssl"
    imap_username: str | None = None
    imap_password: str | None = None
    imap_password_file: Path | None = None
    imap_ca_file: Path | None = None
    imap_folder: str = "INBOX"
    imap_after: str = "move:Processed"
    smtp_host: str | None = None
    smtp_port: int | None = None
    smtp_security: str = "ssl"
    smtp_username: str | None = None
    smtp_password: str | None = None
    smtp_password_file: Path | None = None
    smtp_ca_file: Path | None = None
    from_address: str | None = None


REQUIRED = {
    "campaign_name": "--campaign-name",
    "deadline": "--deadline",
    "imap_host": "--imap-host",
    "imap_username": "--imap-username",
    "smtp_host": "--smtp-host",
    "from_address": "--from-address",
}
"""Answers without a usable default, and the flag that gives each."""


def missing_answers(answers: InitAnswers) -> list[str]:
    """The flags still needed (a password counts as given when its file is named)."""
    missing = [flag for name, flag in REQUIRED.items() if not getattr(answers, name)]
    if not answers.staff:
        missing.append("--staff")
    if answers.imap_password is None and answers.imap_password_file is None:
        missing.append("--imap-password-file")
    return missing


def _sections(answers: InitAnswers) -> dict[str, dict[str, Any]]:
    imap_port = answers.imap_port or DEFAULT_PORTS["imap"].get(answers.imap_security, 993)
    smtp_port = answers.smtp_port or DEFAULT_PORTS["smtp"].get(answers.smtp_security, 465)
    campaign: dict[str, Any] = {
        "name": answers.campaign_name,
        "deadline": answers.deadline,
        "timezone": answers.timezone,
        "staff": answers.staff,
    }
    if answers.starts:
        campaign["starts"] = answers.starts
    mailbox: dict[str, Any] = {
        "kind": "imap",
        "host": answers.imap_host,
        "port": imap_port,
        "security": answers.imap_security,
        "username": answers.imap_username,
        "folder": answers.imap_folder,
        "after": answers.imap_after,
    }
    smtp: dict[str, Any] = {
        "kind": "smtp",
        "host": answers.smtp_host,
        "port": smtp_port,
        "security": answers.smtp_security,
        "username": answers.smtp_username or "",
        "from_address": answers.from_address,
    }
    for section, password, password_file, ca_file in (
        (mailbox, answers.imap_password, answers.imap_password_file, answers.imap_ca_file),
        (smtp, answers.smtp_password, answers.smtp_password_file, answers.smtp_ca_file),
    ):
        if ca_file is not None:
            section["ca_file"] = str(ca_file)
        if password_file is not None:
            section["password_file"] = str(password_file)
        elif password is not None:
            section["password"] = password
    return {
        "campaign": campaign,
        "database": {"url": answers.database_url},
        "mailbox": mailbox,
        "smtp": smtp,
    }


MODELS: dict[str, type[BaseModel]] = {
    "campaign": CampaignSettings,
    "database": DatabaseSettings,
    "mailbox": MailboxSettings,
    "smtp": SmtpSettings,
}


def settings_from(answers: InitAnswers) -> Settings:
    """The settings the answers describe, validated like a loaded file (environment ignored)."""
    validated: dict[str, Any] = {}
    for name, values in _sections(answers).items():
        try:
            validated[name] = MODELS[name](**values)
        except ValidationError as exc:
            first = exc.errors()[0]
            key = ".".join([name, *(str(part) for part in first["loc"])])
            raise ConfigError(f"{key}: {first['msg']}", key=key) from exc
    return Settings.model_construct(**validated)


def check_servers(settings: Settings) -> list[str]:
    """Log in to the IMAP server (and open the folder) and to the SMTP server; what failed."""
    problems = []
    try:
        with build_mailbox(settings)() as mailbox:
            mailbox.state()
    except IntakeError as exc:
        problems.append(f"IMAP: {exc}")
    try:
        transport = build_transport(settings)
        if isinstance(transport, SmtpTransport):
            transport.check_login()
    except (IntakeError, ConnectionError) as exc:
        problems.append(f"SMTP: {exc}")
    return problems


def _toml(value: Any) -> str:
    """A TOML value: JSON's strings, numbers, booleans and arrays are valid TOML too."""
    return json.dumps(value, ensure_ascii=False)


COMMENTS = {
    "campaign": "The campaign: its name in mail and the digest; mail after the deadline is late.",
    "database": "SQLite for one process; postgresql+psycopg://user@host/db for several.",
    "mailbox": "The contact mailbox. after: move:<folder> | flag | seen | none.",
    "smtp": "Outgoing mail (receipts, results, the daily digest to campaign.staff).",
}
KEY_COMMENTS = {
    "starts": "mail received before this gets no automatic reply",
    "staff": "who receives the daily digest",
    "timezone": "every time is shown in this zone",
    "security": "ssl | starttls | plain (plain: loopback only)",
    "password_file": "the password is this file's content",
    "password": "better: password_file, readable only by the service",
    "ca_file": "trust this CA instead of the system's",
}


def render_config(answers: InitAnswers) -> str:
    """The commented TOML text for `answers`."""
    lines = [
        "# intake configuration, written by `intake init`.",
        "# Every key, its default and its INTAKE_<SECTION>__<KEY> variable: docs/configuration.md",
        "# Next: `intake db upgrade`, then `intake poll --once` and `intake status`, then",
        "# `intake run` (the service).",
    ]
    for name, values in _sections(answers).items():
        lines += ["", f"# {COMMENTS[name]}", f"[{name}]"]
        for key, value in values.items():
            comment = KEY_COMMENTS.get(key)
            line = f"{key} = {_toml(value)}"
            lines.append(f"{line:<48} # {comment}" if comment else line)
    lines += [
        "",
        "# How often intake run polls and delivers, and when the digest goes out (campaign zone).",
        "[schedule]",
        'poll_every = "5m"',
        'deliver_every = "1m"',
        'digest_at = "08:30"',
        "",
    ]
    return "\n".join(lines)


def write_config(path: Path, text: str, *, force: bool) -> None:
    """Write `text` to `path` readable by its owner only; refuse to replace a file unforced."""
    if path.exists() and not force:
        raise ConfigError(f"{path} exists: not replaced (use --force to replace it)", key="--force")
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
        handle.write(text)
    os.replace(temporary, path)
