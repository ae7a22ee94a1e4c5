"""Build the running application from settings: the one front door for side effects.

Nothing connects here; the engine, mailbox and transport connect when first used. Tests
build an `App` with a real server on loopback or an honest fake in any slot.
"""

from __future__ import annotations

import dataclasses
import ssl
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, tzinfo
from pathlib import Path
from typing import TypeVar, cast

import sqlalchemy as sa

from config.errors import ConfigError
from config.settings import Settings
from notifications.contexts import MailContext
from notifications.render import RenderedMail, Renderer
from notifications.transport import FileTransport, SmtpTransport, Transport
from service.archive import Archive
from service.db import create_db_engine
from service.mailbox import DirectoryMailbox, ImapMailbox, Mailbox

T = TypeVar("T")


class CampaignTimeRenderer(Renderer):
    """A renderer that shows every instant in the campaign's time zone (e.g. Asia/Shanghai)."""

    def __init__(self, override_dir: Path | None, zone: tzinfo) -> None:
        super().__init__(override_dir)
        self.zone = zone

    def render(self, context: MailContext) -> RenderedMail:
        """Render `context` with its datetimes moved into the campaign zone."""
        return super().render(in_zone(context, self.zone))


def in_zone(value: T, zone: tzinfo) -> T:
    """A copy of a context dataclass (recursively) with aware datetimes shown in `zone`."""
    if isinstance(value, datetime):
        return cast(T, value.astimezone(zone) if value.tzinfo else value)
    if isinstance(value, list):
        return cast(T, [in_zone(item, zone) for item in value])
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        changes = {
            item.name: in_zone(getattr(value, item.name), zone)
            for item in dataclasses.fields(value)
            if item.init
        }
        return cast(T, dataclasses.replace(value, **changes))
    return value


def utc_now() -> datetime:
    """The real clock; everything that needs time takes a clock instead of calling this."""
    return datetime.now(UTC)


@dataclass
class App:
    """What every job needs, built once and passed down."""

    settings: Settings
    engine: sa.Engine
    archive: Archive
    open_mailbox: Callable[[], Mailbox]
    transport: Transport
    renderer: Renderer
    clock: Callable[[], datetime] = utc_now
    log: Callable[[str], None] = field(default=lambda line: None)


def trust(ca_file: Path | None) -> ssl.SSLContext | None:
    """A TLS context that trusts the CA in `ca_file` (instead of the system CAs); None: default."""
    if ca_file is None:
        return None
    try:
        return ssl.create_default_context(cafile=str(ca_file))
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"ca_file {ca_file}: cannot load it ({exc})", key="ca_file") from exc


def build_mailbox(settings: Settings) -> Callable[[], Mailbox]:
    """A factory for the configured mailbox (each poll opens a fresh connection)."""
    box = settings.mailbox
    if box.kind == "directory":
        return lambda: DirectoryMailbox(Path(box.path), folder=box.folder)
    password = box.password.get_secret_value() if box.password else ""
    return lambda: ImapMailbox(
        box.host,
        box.port,
        username=box.username,
        password=password,
        folder=box.folder,
        security=box.security,
        timeout=box.timeout.total_seconds(),
        ssl_context=trust(box.ca_file),
    )


def build_transport(settings: Settings) -> Transport:
    """The configured outgoing-mail transport."""
    smtp = settings.smtp
    if smtp.kind == "file":
        return FileTransport(Path(smtp.path))
    return SmtpTransport(
        smtp.host,
        smtp.port,
        security=smtp.security,
        username=smtp.username or None,
        password=smtp.password.get_secret_value() if smtp.password else None,
        timeout=smtp.timeout.total_seconds(),
        tls_context=trust(smtp.ca_file),
    )


def bootstrap(settings: Settings, *, log: Callable[[str], None] | None = None) -> App:
    """Wire the application from settings."""
    return App(
        settings=settings,
        engine=create_db_engine(settings.database.url, echo=settings.database.echo),
        archive=Archive(Path(settings.storage.path)),
        open_mailbox=build_mailbox(settings),
        transport=build_transport(settings),
        renderer=CampaignTimeRenderer(settings.smtp.templates, settings.campaign.zone),
        log=log or (lambda line: None),
    )
