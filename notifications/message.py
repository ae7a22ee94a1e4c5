"""Turn a rendered mail into an RFC 5322 message that is safe to hand to any transport.

Nothing reaches a header unsanitised: subjects and display names lose control characters,
addresses and message-ids are validated. An invalid recipient or sender address raises
`AddressError` (a permanent `DeliveryError`): sending to fewer people than intended, or
silently to nobody, would be worse than a visible failure in the outbox. Invalid
`In-Reply-To` / `References` ids, which come from inbound mail, are dropped instead: losing
threading is harmless.
"""

from __future__ import annotations

import re
import unicodedata
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from email import policy
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, getaddresses
from typing import Literal

from config.errors import DeliveryError
from notifications.contexts import MailKind
from notifications.render import RenderedMail

AutoSubmitted = Literal["auto-replied", "auto-generated"]

_LOCAL_PART = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*"
_DOMAIN = r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z0-9-]{2,63}"
_ADDRESS = re.compile(rf"{_LOCAL_PART}@{_DOMAIN}")
_DOMAIN_ONLY = re.compile(_DOMAIN)
_MESSAGE_ID = re.compile(r"<[\x21-\x3b\x3d\x3f-\x7e]+@[\x21-\x3b\x3d\x3f-\x7e]+>")


class AddressError(DeliveryError, ValueError):
    """An address cannot be written into a header safely; `address` is the offending value."""

    def __init__(self, message: str, *, address: str) -> None:
        super().__init__(message, permanent=True)
        self.address = address


@dataclass(frozen=True)
class MailAttachment:
    """A file to attach: its name as the reader will see it, its MIME type and its bytes."""

    filename: str
    content_type: str  # e.g. "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    data: bytes


@dataclass(frozen=True, kw_only=True)
class OutgoingMail:
    """Everything a message needs except the sending identity, its id and its date."""

    kind: MailKind
    to: list[str]
    rendered: RenderedMail
    cc: list[str] = field(default_factory=list)
    in_reply_to: str | None = None
    references: list[str] = field(default_factory=list)
    auto_submitted: AutoSubmitted = "auto-generated"
    attachments: list[MailAttachment] = field(default_factory=list)


def clean_header_text(value: str) -> str:
    """One line of text without control or line-separator characters, safe for a header."""
    kept = [
        " " if unicodedata.category(char) in ("Cc", "Zl", "Zp") or char.isspace() else char
        for char in value
    ]
    return " ".join("".join(kept).split())


def parse_address(value: str) -> Address:
    """Read `name <addr>` or a bare address; raise AddressError when it is not a safe one."""
    # Control characters become spaces: harmless in a display name, and an address part
    # that contained one no longer parses as exactly one valid address.
    parsed = getaddresses([clean_header_text(value)])
    if len(parsed) != 1:
        raise AddressError(
            f"{value!r} holds {len(parsed)} addresses where one is expected; list them apart",
            address=value,
        )
    display_name, addr_spec = parsed[0]
    if not _ADDRESS.fullmatch(addr_spec):
        raise AddressError(
            f"{value!r} is not a valid e-mail address; fix the contact's e-mail",
            address=value,
        )
    username, domain = addr_spec.rsplit("@", 1)
    return Address(display_name=clean_header_text(display_name), username=username, domain=domain)


def is_valid_message_id(value: str) -> bool:
    """True for a `<left@right>` id with no spaces or control characters."""
    return bool(_MESSAGE_ID.fullmatch(value))


def make_message_id(domain: str) -> str:
    """A new globally unique Message-ID under `domain`, e.g. `<3f2a…@cases.example.org>`."""
    if not _DOMAIN_ONLY.fullmatch(domain):
        raise AddressError(
            f"{domain!r} is not a valid domain for Message-IDs; use the sender's domain",
            address=domain,
        )
    return f"<{uuid.uuid4().hex}@{domain}>"


def build_message(
    mail: OutgoingMail, *, from_address: str, message_id: str, date: datetime
) -> EmailMessage:
    """The message for `mail`: text and HTML alternatives, attachments, anti-loop headers."""
    if not is_valid_message_id(message_id):
        raise AddressError(f"{message_id!r} is not a valid Message-ID", address=message_id)
    if date.tzinfo is None:
        raise ValueError("build_message needs an aware date (with a time zone)")
    recipients = [parse_address(address) for address in mail.to]
    if not recipients:
        raise AddressError("a mail needs at least one recipient in To", address="")
    copies = [parse_address(address) for address in mail.cc]

    message = EmailMessage(policy=policy.SMTP)
    message["From"] = parse_address(from_address)
    message["To"] = recipients
    if copies:
        message["Cc"] = copies
    message["Subject"] = clean_header_text(mail.rendered.subject)
    message["Date"] = format_datetime(date)
    message["Message-ID"] = message_id
    references = [ref for ref in mail.references if is_valid_message_id(ref)]
    if mail.in_reply_to is not None and is_valid_message_id(mail.in_reply_to):
        message["In-Reply-To"] = mail.in_reply_to
        if mail.in_reply_to not in references:
            references.append(mail.in_reply_to)
    if references:
        message["References"] = " ".join(references)
    message["Auto-Submitted"] = mail.auto_submitted
    message["X-Auto-Response-Suppress"] = "All"
    message["Precedence"] = "bulk"
    message["X-Intake-Kind"] = mail.kind

    # base64 keeps Chinese compact and the message 7-bit clean for any relay.
    message.set_content(mail.rendered.text, subtype="plain", charset="utf-8", cte="base64")
    message.add_alternative(mail.rendered.html, subtype="html", charset="utf-8", cte="base64")
    for attachment in mail.attachments:
        maintype, _, subtype = attachment.content_type.partition("/")
        filename = _safe_filename(attachment.filename)
        message.add_attachment(
            attachment.data,
            maintype=maintype or "application",
            subtype=subtype or "octet-stream",
            # The (charset, language, value) form makes the filename RFC 2231 encoded.
            filename=filename if filename.isascii() else ("utf-8", "", filename),
        )
    return message


def _safe_filename(filename: str) -> str:
    """The last path component, one line, never empty."""
    name = clean_header_text(filename.replace("\\", "/").rsplit("/", 1)[-1])
    return name or "attachment"
