"""One settings object for the whole service, from a TOML file and `INTAKE_*` variables.

Defaults need nothing: SQLite and the archive under `./var/`, the sample mailbox shipped
with the project as a directory source, and a file transport. Unknown keys are errors.
"""

from __future__ import annotations

import os
import re
import tomllib
from datetime import datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict

from config.errors import ConfigError

SAMPLES = Path(__file__).resolve().parent.parent / "service" / "samples"
SAMPLE_MAILBOX = SAMPLES / "mailbox"

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_duration(value: object) -> timedelta:
    """Read "90s", "5m", "1h", "2d" or a number of seconds as a timedelta."""
    if isinstance(value, timedelta):
        return value
    if isinstance(value, int | float):
        return timedelta(seconds=float(value))
    match = _DURATION.match(str(value))
    if not match:
        raise ValueError(f"not a duration: {value!r} (write e.g. 90s, 5m, 1h)")
    return timedelta(seconds=float(match.group(1)) * _DURATION_UNITS[match.group(2) or "s"])


Duration = timedelta


class Section(BaseModel):
    """A settings section: unknown keys are errors, values are validated on assignment."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


class SecretSection(Section):
    """A section with a password that may instead come from `password_file`."""

    password: SecretStr | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _read_password_file(self) -> SecretSection:
        if self.password_file is not None and self.password is None:
            try:
                text = self.password_file.read_text(encoding="utf-8")
            except OSError as exc:
                raise ValueError(
                    f"password_file {self.password_file}: cannot read it ({exc.strerror})"
                ) from exc
            self.password = SecretStr(text.rstrip("\r\n"))
        return self


class CampaignSettings(Section):
    """The campaign: its name, deadline, time zone, staff and start."""

    name: str = "2025信息通信行业科技创新案例征集"
    deadline: datetime = datetime.fromisoformat("2025-07-31T23:59:59+08:00")
    timezone: str = "Asia/Shanghai"
    staff: list[str] = ["staff@cace.example"]
    starts: datetime | None = None  # mail received before this gets no automatic replies
    reply_to_old_mail: bool = False
    results_copy_unit: bool = True  # result mail copies the recommending unit's contact

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("deadline", "starts")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give an offset, e.g. 2025-07-31T23:59:59+08:00")
        return value

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)


class DatabaseSettings(Section):
    """Where the register lives: SQLite (one process) or PostgreSQL (several)."""

    url: str = "sqlite:///var/intake.db"
    echo: bool = False


class StorageSettings(Section):
    """The content-addressed archive of raw messages and attachments."""

    path: Path = Path("var/archive")


class MailboxSettings(SecretSection):
    """The contact mailbox: IMAP, or a directory of .eml files / a Maildir."""

    kind: Literal["imap", "directory"] = "directory"
    path: Path = SAMPLE_MAILBOX
    host: str = "localhost"
    port: int = 993
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    username: str = ""
    folder: str = "INBOX"
    after: str = "none"
    timeout: Duration = timedelta(seconds=30)
    batch_size: int = Field(default=50, ge=1, le=1000)
    max_message_size: int = Field(default=50 * 1024 * 1024, ge=1024)
    since: datetime | None = None
    idle: bool = False
    unreachable_after: Duration = timedelta(minutes=30)
    ca_file: Path | None = None  # trust this CA (e.g. a private or self-signed server)

    @field_validator("timeout", "unreachable_after", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("after")
    @classmethod
    def _known_action(cls, value: str) -> str:
        if value in {"flag", "seen", "none"} or (value.startswith("move:") and len(value) > 5):
            return value
        raise ValueError(f"{value!r}: use move:<folder>, flag, seen or none")


class SmtpSettings(SecretSection):
    """Outgoing mail: SMTP, or a folder of .eml files for the demo."""

    kind: Literal["smtp", "file"] = "file"
    path: Path = Path("var/outbox")
    host: str = "localhost"
    port: int = 465
    security: Literal["ssl", "starttls", "plain"] = "ssl"
    username: str = ""
    from_address: str = "案例征集 <cases@cace.example>"
    timeout: Duration = timedelta(seconds=30)
    max_attempts: int = Field(default=8, ge=1)
    retry_base: Duration = timedelta(minutes=1)
    resend_unconfirmed_after: Duration = timedelta(minutes=30)  # the one resend's delay
    per_recipient_daily_cap: int = Field(default=10, ge=1)
    templates: Path | None = None
    ca_file: Path | None = None  # trust this CA (e.g. a private or self-signed server)

    @field_validator("timeout", "retry_base", "resend_unconfirmed_after", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return parse_duration(value)


class ScheduleSettings(Section):
    """How often the service polls and delivers, and when the digest goes out."""

    poll_every: Duration = timedelta(minutes=5)
    deliver_every: Duration = timedelta(minutes=1)
    digest_at: time = time(8, 30)
    watch_folder: Path | None = None

    @field_validator("poll_every", "deliver_every", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return parse_duration(value)


class MatchingSettings(Section):
    """Thresholds for matching form rows with online submissions."""

    accept: float = Field(default=88.0, ge=0, le=100)
    margin: float = Field(default=6.0, ge=0, le=100)


class SubmissionsSettings(Section):
    """How the online system's export is read: header overrides (our field -> their text)."""

    columns: dict[str, str] = {}


class HealthSettings(Section):
    """The small HTTP endpoint for /healthz and /metrics."""

    host: str = "127.0.0.1"
    port: int = 0  # 0: off


class WebSettings(Section):
    """The staff workspace in the browser (`intake web`, or `intake run` when enabled)."""

    enabled: bool = False
    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    base_url: str | None = None  # e.g. https://intake.example.org (used in links in mail)
    session_secret_file: Path | None = None  # default: <storage.path>/session-secret
    session_hours: float = Field(default=12, gt=0, le=24 * 30)

    @field_validator("base_url")
    @classmethod
    def _no_trailing_slash(cls, value: str | None) -> str | None:
        return value.rstrip("/") if value else None


class RemindersSettings(Section):
    """Reminders staff send to units whose recommendation is incomplete."""

    min_days: float = Field(default=3, ge=0)  # at most one reminder per unit in this many days


class OcrSettings(Section):
    """Reading scanned form PDFs (OCR): in worker processes of their own, never in the poll."""

    enabled: bool = True
    engine: str = "rapidocr"  # or "package.module:factory" returning an engine (tests)
    workers: int = Field(default=1, ge=1, le=16)  # worker processes, one engine each
    max_wait: Duration = timedelta(minutes=10)  # a message's receipt waits this long for OCR
    max_pages: int = Field(default=3, ge=1, le=50)  # pages read per PDF
    page_timeout: Duration = timedelta(seconds=120)  # one page; then the worker is restarted
    memory_limit_mb: int = Field(default=3072, ge=256)  # a worker's resident memory
    max_attempts: int = Field(default=3, ge=1, le=20)  # then the PDF is left to staff

    @field_validator("max_wait", "page_timeout", mode="before")
    @classmethod
    def _durations(cls, value: object) -> timedelta:
        return parse_duration(value)

    @field_validator("engine")
    @classmethod
    def _known_engine(cls, value: str) -> str:
        if value == "rapidocr" or re.fullmatch(r"[\w.]+:\w+", value):
            return value
        raise ValueError(f"{value!r}: use rapidocr (or module:function for a test engine)")


class Settings(BaseSettings):
    """Everything intake can be told; built once by `load_settings` and passed down."""

    model_config = SettingsConfigDict(
        env_prefix="INTAKE_", env_nested_delimiter="__", extra="forbid", case_sensitive=False
    )

    campaign: CampaignSettings = CampaignSettings()
    database: DatabaseSettings = DatabaseSettings()
    storage: StorageSettings = StorageSettings()
    mailbox: MailboxSettings = MailboxSettings()
    smtp: SmtpSettings = SmtpSettings()
    schedule: ScheduleSettings = ScheduleSettings()
    matching: MatchingSettings = MatchingSettings()
    submissions: SubmissionsSettings = SubmissionsSettings()
    health: HealthSettings = HealthSettings()
    web: WebSettings = WebSettings()
    reminders: RemindersSettings = RemindersSettings()
    ocr: OcrSettings = OcrSettings()

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (env_settings, init_settings)


def trial_warning(settings: Settings) -> str | None:
    """One line when the settings would surprise an operator: the bundled sample mailbox is
    read, or mail is written to files instead of sent. None for a real deployment."""
    parts = []
    mailbox = settings.mailbox
    if mailbox.kind == "directory" and Path(mailbox.path).resolve() == SAMPLE_MAILBOX:
        parts.append("the mailbox is the bundled sample mailbox, not a real one")
    if settings.smtp.kind == "file":
        parts.append(f"mail is written as files to {settings.smtp.path}/, not sent")
    if not parts:
        return None
    advice = "configure the mailbox and smtp sections, e.g. with intake init"
    return f"trial settings: {'; '.join(parts)} ({advice})"


def config_path(explicit: Path | None) -> Path | None:
    """The configuration file in effect: `explicit`, else `$INTAKE_CONFIG`, else ./intake.toml."""
    if explicit is not None:
        return explicit
    from_env = os.environ.get("INTAKE_CONFIG")
    if from_env:
        return Path(from_env)
    local = Path("intake.toml")
    return local if local.exists() else None


def _unknown_env_keys() -> list[str]:
    known = set(Settings.model_fields)
    unknown = []
    for name in os.environ:
        if not name.upper().startswith("INTAKE_") or name.upper() in {
            "INTAKE_CONFIG",
            "INTAKE_REQUIRE_SERVICES",
        }:
            continue
        section, _, key = name[len("INTAKE_") :].lower().partition("__")
        if section not in known:
            unknown.append(name)
            continue
        fields = Settings.model_fields[section].annotation
        if key and isinstance(fields, type) and key not in getattr(fields, "model_fields", {}):
            unknown.append(name)
    return unknown


def load_settings(path: Path | None = None) -> Settings:
    """Read the TOML file (explicit, `$INTAKE_CONFIG` or `./intake.toml`) and the environment.

    Raises `ConfigError` naming the key and the file for anything unknown or invalid.
    """
    source_path = config_path(path)
    source = str(source_path) if source_path else "built-in defaults"
    data: dict[str, Any] = {}
    if source_path is not None:
        try:
            data = tomllib.loads(source_path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ConfigError(f"{source_path}: no such configuration file", source=source) from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{source_path}: cannot read: {exc}", source=source) from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{source_path}: not valid TOML: {exc}", source=source) from exc
    unknown = _unknown_env_keys()
    if unknown:
        raise ConfigError(
            f"environment: unknown setting {unknown[0]} (docs/configuration.md lists the keys)",
            key=unknown[0],
            source="environment",
        )
    try:
        return Settings(**data)
    except ValidationError as exc:
        first = exc.errors()[0]
        key = ".".join(str(part) for part in first["loc"])
        reason = "unknown key" if first["type"] == "extra_forbidden" else first["msg"]
        raise ConfigError(f"{source}: {key}: {reason}", key=key, source=source) from exc
