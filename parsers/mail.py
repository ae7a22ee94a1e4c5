"""Raw RFC 822 bytes to a `ParsedMessage`: headers, bodies, attachments, containers, kind.

The MIME tree comes from the stdlib parser with the `compat32` policy, on purpose: it is the
fastest correct parser at hand, never raises while reading headers, and hands back the raw
header text (8-bit bytes as surrogates). Charset decisions Chinese mail needs are then ours:
`gb2312`/`gbk` read as GB18030, encoded-words inside quoted `filename=`, RFC 2231 values, raw
GBK names, unknown charsets. mail-parser (the project's chosen mail library) supplies what it
does better than the stdlib: the RFC 5322 date reader (obsolete zones, comments) and the
comment-aware `Received:` splitter. Its `MailParser` object is not used: it would parse every
message a second time, returns attachments base64-encoded and decodes text with
`errors="ignore"`, which silently drops characters such as 镕.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import email
import email.message
import email.parser
import email.policy
import email.utils
import functools
import hashlib
import quopri
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone

from mailparser.dates import parse_mail_date
from mailparser.exceptions import MailParserError
from mailparser.received import split_received

from config.errors import ParseError
from parsers.classify import MessageFacts, classify
from parsers.containers import (
    InflationBudget,
    Limits,
    Unpacked,
    is_tnef,
    is_zip_archive,
    unpack_tnef,
    unpack_zip,
)
from parsers.filenames import (
    decode_unlabelled_bytes,
    has_unsafe_characters,
    sanitize_filename,
    strip_unsafe_characters,
)
from parsers.kinds import detect_kind
from parsers.model import Attachment, ParsedMessage, Problem

CHARSET_ALIASES = {
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "cp936": "gb18030",
    "ms936": "gb18030",
    "windows-936": "gb18030",
    "euc-cn": "gb18030",
    "x-euc-cn": "gb18030",
    "gb_2312-80": "gb18030",
    "chinese": "gb18030",
    "csgb2312": "gb18030",
    "gb2312-80": "gb18030",
    "big5": "big5hkscs",
    "x-big5": "big5hkscs",
    "ks_c_5601-1987": "cp949",
    "euc-kr": "cp949",
    "shift_jis": "cp932",
    "x-sjis": "cp932",
    "iso-2022-jp": "iso2022_jp_ext",
    "us-ascii": "windows-1252",
    "ascii": "windows-1252",
    "iso-8859-1": "windows-1252",
    "latin1": "windows-1252",
    "utf8": "utf-8",
    "unicode-1-1-utf-7": "utf-7",
}
PLACEHOLDER_CHARSETS = frozenset({"", "unknown-8bit", "x-unknown", "unknown", "default", "none"})
BODY_TYPES = frozenset({"text/plain", "text/html"})
NOT_ATTACHMENT_TYPES = frozenset(
    {
        "message/delivery-status",
        "message/global-delivery-status",
        "message/disposition-notification",
        "message/feedback-report",
        "text/rfc822-headers",
        "message/global-headers",
        "application/pgp-signature",
    }
)
FORWARDED_TYPES = frozenset({"message/rfc822", "message/global"})
DELIVERY_STATUS_TYPES = frozenset({"message/delivery-status", "message/global-delivery-status"})
EXTENSION_BY_TYPE = {
    "text/plain": ".txt",
    "text/html": ".html",
    "text/calendar": ".ics",
    "text/csv": ".csv",
    "message/rfc822": ".eml",
    "application/pdf": ".pdf",
    "application/zip": ".zip",
    "application/msword": ".doc",
    "image/png": ".png",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
}
_ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?]*?)\?=")
_BETWEEN_WORDS = re.compile(r"^[ \t\r\n]*$")
_FOLDING = re.compile(r"\r?\n(?=[ \t])")
_MESSAGE_ID = re.compile(r"<[^<>\s]+>")
_MIME_HEADER_START = re.compile(rb"^[!-9;-~]+[ \t]*:", re.MULTILINE)
_OBSOLETE_HEADER_NAME = re.compile(rb"^([!-9;-~]+)[ \t]+:", re.MULTILINE)
_HEADER_SEARCH_BYTES = 4096
_UTF8_BOM = b"\xef\xbb\xbf"
_OLE_SIGNATURE = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
_TNEF_SIGNATURE = b"\x78\x9f\x3e\x22"


def parse_message(raw: bytes, *, limits: Limits | None = None) -> ParsedMessage:
    """Decode and classify one message; damage is recorded in `problems`, never raised.

    Raises `ParseError` only when the bytes are not a mail message at all.
    """
    raw = _reject_hopeless(raw)
    limits = limits or Limits()
    early: list[Problem] = []
    raw, repaired = repair_unindented_headers(raw)
    if repaired:
        early.append(Problem("headers_damaged"))
    aside = SetAside.cut(raw)
    message = _parse_mime(aside.parsed)
    if not message.keys():
        start = _MIME_HEADER_START.search(raw, 0, _HEADER_SEARCH_BYTES)
        if start is not None and start.start() > 0:
            aside = SetAside.cut(raw[start.start() :])
            message = _parse_mime(aside.parsed)
    if not message.keys():
        raise ParseError("no mail header found: this is not an RFC 822 message")
    try:
        try:
            return _MessageReader(limits, aside, early).read(message)
        except _MisplacedPlaceholderError:
            whole = aside.raw
            return _MessageReader(limits, SetAside(raw=whole, parsed=whole), early).read(
                _parse_mime(whole)
            )
    except RecursionError as exc:
        raise ParseError("the message is nested too deeply to be read") from exc


def _reject_hopeless(raw: bytes) -> bytes:
    """Refuse input that is certainly not a mail message; return it without a BOM or blank top."""
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise ParseError(f"expected the message as bytes, got {type(raw).__name__}")
    raw = bytes(raw)
    if raw.startswith(_UTF8_BOM):
        raw = raw[len(_UTF8_BOM) :]
    head = raw[:_HEADER_SEARCH_BYTES]
    if not head.strip():
        raise ParseError("the message is empty")
    if head.startswith(_OLE_SIGNATURE):
        raise ParseError(
            "an Outlook .msg file, not an RFC 822 message: save it as .eml",
            code="message_is_outlook_file",
        )
    if head.startswith(_TNEF_SIGNATURE):
        raise ParseError("a bare TNEF (winmail.dat) stream, not an RFC 822 message")
    if _MIME_HEADER_START.search(head) is None:
        raise ParseError("no mail header found: this is not an RFC 822 message")
    if raw[:1] in {b"\r", b"\n", b" ", b"\t"}:
        raw = raw.lstrip(b" \t\r\n")
    header_end = raw.find(b"\n\n")
    crlf_end = raw.find(b"\n\r\n")
    if header_end < 0 or 0 <= crlf_end < header_end:
        header_end = crlf_end
    header_block = raw if header_end < 0 else raw[:header_end]
    if _OBSOLETE_HEADER_NAME.search(header_block):
        raw = _OBSOLETE_HEADER_NAME.sub(rb"\1:", header_block) + raw[len(header_block) :]
    return raw


_HEADER_LINE = re.compile(rb"^[!-9;-~]+:")
_STANDARD_HEADER_LINE = re.compile(
    rb"^(?:from|to|cc|subject|date|message-id|mime-version|content-type|reply-to|received"
    rb"|in-reply-to|references|sender|return-path)[ \t]*:",
    re.IGNORECASE,
)


_REPAIR_WINDOW_BYTES = 64 * 1024
"""A header block is looked for in the first this many bytes."""


def repair_unindented_headers(raw: bytes) -> tuple[bytes, bool]:
    """Rejoin header lines a gateway wrapped without indentation; say whether any were.

    The stdlib parser ends the header block at the first line that is neither a header nor a
    continuation, and the Subject and From after it become body text. Such a line is taken as
    a continuation only when a standard header follows it before the blank line, so a message
    whose body merely starts without a blank line is left alone.
    """
    header_end = _BLANK_LINE.search(raw, 0, _REPAIR_WINDOW_BYTES)
    if header_end is None:
        return raw, False  # no header block ends in sight: nothing to tell headers from body
    block = raw[: header_end.start() + 1]
    lines = block.splitlines(keepends=True)
    stray = [
        index
        for index, line in enumerate(lines)
        if index > 0
        and line.strip()
        and line[:1] not in b" \t"
        and _HEADER_LINE.match(line) is None
    ]
    if not stray:
        return raw, False
    last_standard = max(
        (index for index, line in enumerate(lines) if _STANDARD_HEADER_LINE.match(line)),
        default=-1,
    )
    wrapped = {index for index in stray if index < last_standard}
    if not wrapped:
        return raw, False
    mended = b"".join(b" " + line if index in wrapped else line for index, line in enumerate(lines))
    return mended + raw[len(block) :], True


SET_ASIDE_MIN_BYTES = 64 * 1024
"""Base64 bodies at least this long skip the stdlib parser (see `SetAside`)."""
_BLANK_LINE = re.compile(rb"\n\r?\n")
_BASE64_TEXT = re.compile(rb"[A-Za-z0-9+/=\r\n]+")


@dataclass
class SetAside:
    """Large base64 bodies cut out of the bytes the stdlib parser reads, decoded from `raw`.

    The stdlib parser turns a body into one text line per 76 bytes and then joins, encodes
    and splits it again to decode it: ~8 copies of a 40 MB attachment and most of the parse
    time. A base64 body under a part header that declares it is replaced by one placeholder
    line; its part is then decoded straight from `raw`. A placeholder found anywhere else (the
    parser saw the structure otherwise) makes the message be parsed again whole, so the result
    never differs from parsing `raw` whole.
    """

    raw: bytes
    parsed: bytes
    regions: dict[str, tuple[int, int]] = field(default_factory=dict)
    token: str = ""

    @classmethod
    def cut(cls, raw: bytes) -> SetAside:
        """Set aside every long base64 body of `raw` (nothing for a small message)."""
        aside = cls(raw=raw, parsed=raw, token=f"intake-set-aside-{secrets.token_hex(8)}-")
        if len(raw) < SET_ASIDE_MIN_BYTES:
            return aside
        pieces: list[bytes] = []
        kept_until = 0
        search_from = 0
        while (gap := _BLANK_LINE.search(raw, search_from)) is not None:
            start = gap.end()
            run = _BASE64_TEXT.match(raw, start)
            search_from = run.end() if run is not None else start
            if run is None or run.end() - start < SET_ASIDE_MIN_BYTES:
                continue
            end = run.end()
            while end > start and raw[end - 1] in b"\r\n":
                end -= 1
            ends_body = run.end() == len(raw) or raw.startswith(b"--", run.end())
            if not ends_body or not _declares_base64_leaf(raw, gap.start()):
                continue
            name = f"{aside.token}{len(aside.regions)}"
            aside.regions[name] = (start, end)
            pieces += [raw[kept_until:start], name.encode("ascii")]
            kept_until = end
        if aside.regions:
            pieces.append(raw[kept_until:])
            aside.parsed = b"".join(pieces)
        return aside

    def payload_bytes(self, part: email.message.Message) -> bytes | None:
        """The decoded content of a part whose body was set aside; None for any other part.

        Raises `_MisplacedPlaceholderError` when a placeholder is not a whole base64 body: the
        message is then parsed again without setting anything aside.
        """
        payload = part.get_payload()
        if not self.regions or not isinstance(payload, str) or self.token not in payload:
            return None
        region = self.regions.get(payload.strip())
        # the same test as the stdlib's get_payload(decode=True)
        encoding = str(part.get("content-transfer-encoding", "")).lower()
        if region is None or encoding != "base64":
            raise _MisplacedPlaceholderError
        decoded = _decode_clean_base64(self.raw, *region)
        if decoded is None:
            raise _MisplacedPlaceholderError
        return decoded

    def check(self, text: str | bytes) -> None:
        """Raise `_MisplacedPlaceholderError` when `text` holds a placeholder."""
        if not self.regions:
            return
        found = self.token in text if isinstance(text, str) else self.token.encode() in text
        if found:
            raise _MisplacedPlaceholderError


class _MisplacedPlaceholderError(Exception):
    """A set-aside body ended up where the stdlib parser did not see a base64 leaf body."""


def _declares_base64_leaf(raw: bytes, header_end: int) -> bool:
    """Whether the header block ending at `header_end` declares a base64, non-container part."""
    window_start = max(0, header_end - _HEADER_SEARCH_BYTES * 4)
    boundary = raw.rfind(b"\n--", window_start, header_end)
    if boundary >= 0:
        block_start = raw.find(b"\n", boundary + 1, header_end) + 1
        if block_start <= 0:
            return False
    elif window_start == 0:
        block_start = 0
    else:
        return False
    headers = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(
        raw[block_start : header_end + 1], headersonly=True
    )
    encoding = str(headers.get("content-transfer-encoding", "")).lower()
    return encoding == "base64" and headers.get_content_maintype() not in {"multipart", "message"}


def _decode_clean_base64(raw: bytes, start: int, end: int) -> bytes | None:
    """`raw[start:end]` decoded when it is well-formed base64 (whole quads, padding only at the
    end), which is when it decodes as the stdlib decodes it; None otherwise."""
    line_breaks = raw.count(b"\n", start, end) + raw.count(b"\r", start, end)
    padding = raw.find(b"=", start, end)
    if (end - start - line_breaks) % 4 or (padding >= 0 and padding < end - 2):
        return None
    if padding >= 0 and raw[padding:end] not in {b"=", b"=="}:
        return None
    try:
        with memoryview(raw) as view:
            return binascii.a2b_base64(view[start:end])
    except binascii.Error:
        return None


def _parse_mime(raw: bytes) -> email.message.Message:
    """Run the stdlib parser, turning its rare failures into `ParseError`."""
    try:
        return email.message_from_bytes(raw, policy=email.policy.compat32)
    except (RecursionError, ValueError, TypeError, LookupError, IndexError) as exc:
        raise ParseError(f"the message cannot be parsed as MIME: {exc}") from exc


@dataclass
class _Collected:
    """Everything gathered while walking the MIME tree of one message."""

    texts: list[str] = field(default_factory=list)
    htmls: list[str] = field(default_factory=list)
    attachments: list[Attachment] = field(default_factory=list)
    delivery_status: list[list[tuple[str, str]]] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)


class _MessageReader:
    """Walks one message within `limits`, collecting bodies, attachments and problems."""

    def __init__(self, limits: Limits, aside: SetAside, early: list[Problem]) -> None:
        self.limits = limits
        self.aside = aside
        self.budget = InflationBudget(limits.max_inflated_bytes)
        self.parts_seen = 0
        self.reported: set[str] = set()
        self.found = _Collected(problems=list(early))
        self.reported.update(problem.code for problem in early)

    def read(self, message: email.message.Message) -> ParsedMessage:
        headers = _raw_headers(message)
        problems = self.found.problems
        subject = self._header_text(headers, "subject", "subject")
        sender_name, sender = (
            self._first_address(headers, "from")
            or self._first_address(headers, "sender")
            or ("", "")
        )
        if not sender:  # never lose the sender without saying so
            self._report_once("headers_damaged", Problem("headers_damaged"))
        self._walk(message, depth=0, container=None, top_level=True)
        text = "\n".join(self.found.texts)
        html = "\n".join(self.found.htmls)
        content_type = message.get_content_type()
        facts = MessageFacts(
            headers={
                name: [_decode_words(value) for value in values] for name, values in headers.items()
            },
            sender=sender,
            subject=subject,
            content_type=content_type,
            report_type=_param(message, "report-type"),
            text=text,
            html=html,
            attachments=self.found.attachments,
            delivery_status=self.found.delivery_status,
        )
        verdict = classify(facts)
        problems.extend(Problem(reason) for reason in verdict.reply_reasons)
        return ParsedMessage(
            message_id=_first_message_id(headers.get("message-id")),
            subject=subject,
            sender=sender,
            sender_name=sender_name,
            reply_to=self._addresses(headers, "reply-to"),
            to=self._addresses(headers, "to"),
            cc=self._addresses(headers, "cc"),
            date=self._date(headers),
            received_at=_received_at(headers.get("received", []), problems),
            in_reply_to=_first_message_id(headers.get("in-reply-to")),
            references=_all_message_ids(headers.get("references")),
            text=text,
            html=html,
            attachments=self.found.attachments,
            kind=verdict.kind,
            no_reply=verdict.no_reply,
            bounce=verdict.bounce,
            links=verdict.links,
            problems=problems,
            automated=verdict.automated,
            needs_reply=verdict.needs_reply,
        )

    def _header_text(self, headers: dict[str, list[str]], name: str, where: str) -> str:
        """A header's first value, decoded, made safe for reuse in a header."""
        values = headers.get(name)
        if not values:
            return ""
        return self._safe(_decode_words(_unfold(values[0])), where)

    def _safe(self, value: str, where: str) -> str:
        """Strip line breaks and controls from a value, recording once per place that we did."""
        if has_unsafe_characters(value):
            self._report_once(
                f"control_characters:{where}",
                Problem("control_characters", {"header": where, "value": value[:80]}),
            )
        return strip_unsafe_characters(value)

    def _report_once(self, key: str, problem: Problem) -> None:
        if key not in self.reported:
            self.reported.add(key)
            self.found.problems.append(problem)

    def _address_pairs(self, headers: dict[str, list[str]], name: str) -> list[tuple[str, str]]:
        """Every (display name, bare lower-case address) of an address header."""
        values = [_unfold(value) for value in headers.get(name, [])]
        if not values:
            return []
        pairs: list[tuple[str, str]] = []
        try:
            parsed = email.utils.getaddresses(values)
        except RecursionError:
            parsed = []
            self._report_once(
                f"unreadable_addresses:{name}",
                Problem("unreadable_addresses", {"header": name}),
            )
        for display, raw_address in parsed:
            address = strip_unsafe_characters(_decode_words(raw_address)).strip("<>").lower()
            if "@" not in address:
                continue
            pairs.append((self._safe(_decode_words(display), f"{name} name"), address))
        if not pairs:
            for value in values:
                for found in re.findall(r"[^\s<>,;:\"'()]+@[^\s<>,;:\"'()]+", value):
                    pairs.append(("", strip_unsafe_characters(found).lower()))
        return pairs

    def _first_address(self, headers: dict[str, list[str]], name: str) -> tuple[str, str] | None:
        pairs = self._address_pairs(headers, name)
        return pairs[0] if pairs else None

    def _addresses(self, headers: dict[str, list[str]], name: str) -> list[str]:
        return list(dict.fromkeys(address for _, address in self._address_pairs(headers, name)))

    def _date(self, headers: dict[str, list[str]]) -> datetime | None:
        values = headers.get("date")
        if not values:
            return None
        text = _decode_words(_unfold(values[0]))
        try:
            value = _read_date(text)
        except _OffsetOutOfRangeError:
            self.found.problems.append(date_out_of_range("Date", text))
            return None
        if value is None:
            self.found.problems.append(Problem("unreadable_date", {"value": values[0][:60]}))
        return value

    def _walk(
        self,
        part: email.message.Message,
        *,
        depth: int,
        container: str | None,
        top_level: bool,
    ) -> None:
        """Visit one MIME part and its children within the part and depth limits."""
        self.parts_seen += 1
        if self.parts_seen > self.limits.max_parts:
            self._report_once(
                "too_many_parts",
                Problem("too_many_parts", {"limit": self.limits.max_parts}),
            )
            return
        if depth > self.limits.max_depth:
            self._report_once(
                "too_deep",
                Problem("too_deep", {"limit": self.limits.max_depth}),
            )
            return
        content_type = part.get_content_type()
        payload = part.get_payload()
        if isinstance(payload, str) and content_type in FORWARDED_TYPES | DELIVERY_STATUS_TYPES:
            self.aside.check(payload)
        if content_type in FORWARDED_TYPES:
            self._forwarded(part, payload, depth=depth, container=container)
            return
        if content_type in DELIVERY_STATUS_TYPES:
            self.found.delivery_status.extend(_delivery_status_blocks(part, payload))
            return
        if part.is_multipart() and isinstance(payload, list):
            for child in payload:
                if isinstance(child, email.message.Message):
                    self._walk(child, depth=depth + 1, container=container, top_level=top_level)
            return
        if part.get_content_maintype() == "multipart":
            self._unbounded_multipart(part, payload, top_level=top_level)
            return
        self._leaf(part, content_type, container=container, top_level=top_level)

    def _unbounded_multipart(
        self, part: email.message.Message, payload: object, *, top_level: bool
    ) -> None:
        """A `multipart/*` part whose body has no boundary lines: its body is read as text."""
        self._report_once("multipart_without_boundary", Problem("multipart_without_boundary"))
        if not isinstance(payload, str) or not top_level:
            return
        self.aside.check(payload)
        data = _payload_bytes(part)
        if data.strip():
            self.found.texts.append(self._decode_body(data, part, "text/plain"))

    def _forwarded(
        self,
        part: email.message.Message,
        payload: object,
        *,
        depth: int,
        container: str | None,
    ) -> None:
        """Read a forwarded message: it is a file of this message, and so are its files."""
        inner: email.message.Message | None = None
        inner_bytes: bytes | None = None
        encoding = str(part.get("Content-Transfer-Encoding", "")).strip().lower()
        if encoding in ("base64", "quoted-printable"):
            # Some clients encode the forwarded message itself; the parser then sees the
            # encoded text as a message, so decode the text before reading it.
            if isinstance(payload, list) and payload:
                encoded = (
                    payload[0].as_bytes() if isinstance(payload[0], email.message.Message) else b""
                )
            else:
                encoded = str(payload or "").encode("ascii", "replace")
            self.aside.check(encoded)
            decoded = _decode_transfer(encoded, encoding)
            if decoded.strip():
                inner_bytes = decoded
                inner = email.message_from_bytes(decoded, policy=email.policy.compat32)
        elif (
            isinstance(payload, list) and payload and isinstance(payload[0], email.message.Message)
        ):
            inner = payload[0]
        else:
            set_aside = self.aside.payload_bytes(part)
            data = part.get_payload(decode=True) if set_aside is None else set_aside
            if isinstance(data, bytes) and data.strip():
                inner_bytes = data
                inner = email.message_from_bytes(data, policy=email.policy.compat32)
        if inner is None:
            return
        headers = _raw_headers(inner)
        subject = self._header_text(headers, "subject", "forwarded subject")
        label = f"message/rfc822:{subject}" if subject else "message/rfc822"
        filename = self._filename(part) or f"{sanitize_filename(subject) or 'forwarded'}.eml"
        if inner_bytes is None:
            inner_bytes = _message_bytes(inner)
        self._append_attachment(filename, inner_bytes, "message/rfc822", container)
        self._walk(inner, depth=depth + 1, container=label, top_level=False)

    def _leaf(
        self,
        part: email.message.Message,
        content_type: str,
        *,
        container: str | None,
        top_level: bool,
    ) -> None:
        """A part with no children: a body, a file, or a container of files."""
        if content_type in NOT_ATTACHMENT_TYPES:
            return
        filename = self._filename(part)
        disposition = part.get_content_disposition()
        is_body = content_type in BODY_TYPES and not filename and disposition != "attachment"
        data = self._payload_bytes(part)
        if is_body:
            if top_level:
                text = self._decode_body(data, part, content_type)
                (self.found.htmls if content_type == "text/html" else self.found.texts).append(text)
            return
        if not data and not filename:
            return
        if not filename:
            filename = f"part-{self.parts_seen}{EXTENSION_BY_TYPE.get(content_type, '.bin')}"
        self._add_file(filename, data, content_type, container)

    def _add_file(
        self, filename: str, data: bytes, content_type: str, container: str | None
    ) -> None:
        """Record a file, unpacking it first when it is a zip or a TNEF stream."""
        unpacked: Unpacked | None = None
        tnef = is_tnef(data, filename, content_type)
        if tnef:
            unpacked = unpack_tnef(data, filename, limits=self.limits, budget=self.budget)
            if not self.found.htmls and unpacked.body_html:
                self.found.htmls.append(unpacked.body_html)
        elif is_zip_archive(data, filename, content_type):
            unpacked = unpack_zip(data, filename, limits=self.limits, budget=self.budget)
        if unpacked is not None:
            self.found.problems.extend(unpacked.problems)
            # winmail.dat is how Outlook encoded the mail, not a file the sender chose; a zip
            # (or a forwarded message) is, and is listed before what it holds
            if not tnef or not (unpacked.complete and unpacked.files):
                self._append_attachment(filename, data, content_type, container)
            for inner in unpacked.files:
                self._append_attachment(
                    inner.filename, inner.data, "application/octet-stream", inner.container
                )
            return
        self._append_attachment(filename, data, content_type, container)

    def _append_attachment(
        self, filename: str, data: bytes, content_type: str, container: str | None
    ) -> None:
        display = self._safe(filename, "file name")
        self.found.attachments.append(
            Attachment(
                filename=display,
                safe_name=sanitize_filename(display),
                content_type=content_type,
                data=data,
                sha256=hashlib.sha256(data).hexdigest(),
                kind=detect_kind(data, display),
                container=container,
            )
        )

    def _payload_bytes(self, part: email.message.Message) -> bytes:
        """A leaf part's decoded content, from `raw` when its body was set aside."""
        data = self.aside.payload_bytes(part)
        return _payload_bytes(part) if data is None else data

    def _filename(self, part: email.message.Message) -> str:
        """The decoded file name of a part, from Content-Disposition or Content-Type."""
        view = _mime_header_view(part)
        for header, name in (("content-disposition", "filename"), ("content-type", "name")):
            value = view.get_param(name, header=header)
            if value is None:
                continue
            if isinstance(value, tuple):
                charset, _, text = value
                decoded = _decode_rfc2231(charset or "", text or "")
            else:
                decoded = _decode_words(email.utils.unquote(value))
            decoded = decoded.strip()
            if decoded:
                return decoded
        return ""

    def _decode_body(self, data: bytes, part: email.message.Message, content_type: str) -> str:
        """Decode a text part with its declared charset, recording unknown ones."""
        label = part.get_param("charset") or ""
        label = label[2] if isinstance(label, tuple) else label
        text, known = decode_text(data, str(label))
        if not known:
            self._report_once(
                f"unknown_charset:{label}",
                Problem("unknown_charset", {"charset": str(label)[:40], "part": content_type}),
            )
        return text


def decode_text(data: bytes, charset: str, *, guess_on_error: bool = False) -> tuple[str, bool]:
    """Decode bytes labelled with `charset`; return the text and whether it decoded cleanly.

    The label's codec is tried, then the supersets senders really use under that label
    (`CHARSET_SUPERSETS`), then UTF-8. When all fail the bytes are decoded with replacement
    characters and the second value is False, or with `guess_on_error` read as UTF-8, GB18030
    or Latin-1 so that no U+FFFD appears (for names).
    """
    codec = _codec(charset)
    if codec is None:
        return decode_unlabelled_bytes(data), charset.strip().lower() in PLACEHOLDER_CHARSETS
    for decoder in _decoders(codec, data):
        try:
            return decoder(data), True
        except UnicodeDecodeError:
            continue
    if guess_on_error:
        return decode_unlabelled_bytes(data), True
    return data.decode(codec, "replace"), False


def iso2022jp_as_cp932(data: bytes) -> str:
    """Read ISO-2022-JP through Shift_JIS, so that Microsoft's and NEC's extra characters
    (①, Ⅱ, ㈱ in row 13 and the IBM rows), which the strict codecs refuse, decode as Windows
    and Outlook meant them (what Microsoft calls CP50220)."""
    converted = bytearray()
    mode = "ascii"
    position = 0
    while position < len(data):
        byte = data[position]
        if byte == 0x1B:
            escape = data[position + 1 : position + 3]
            mode = _ISO2022JP_ESCAPES.get(escape, "")
            if not mode:
                raise UnicodeDecodeError("iso-2022-jp", data, position, position + 1, "escape")
            position += 3
            continue
        if mode == "double" and byte > 0x20 and byte != 0x7F and byte not in b"\r\n":
            if position + 1 >= len(data):
                raise UnicodeDecodeError("iso-2022-jp", data, position, position + 1, "truncated")
            converted += _jis_to_sjis(byte, data[position + 1])
            position += 2
            continue
        if byte >= 0x80:
            raise UnicodeDecodeError("iso-2022-jp", data, position, position + 1, "8-bit byte")
        converted.append(byte + 0x80 if mode == "katakana" and 0x21 <= byte <= 0x5F else byte)
        position += 1
    return converted.decode("cp932")


_ISO2022JP_ESCAPES = {
    b"(B": "ascii",
    b"(J": "ascii",
    b"(I": "katakana",
    b"$@": "double",
    b"$B": "double",
}


def _jis_to_sjis(first: int, second: int) -> bytes:
    """One JIS X 0208 code point (two 7-bit bytes) as its two Shift_JIS bytes."""
    lead = ((first - 0x21) >> 1) + 0x81
    if lead > 0x9F:
        lead += 0x40
    odd_row_trail = second + 0x1F + (1 if second >= 0x60 else 0)
    trail = odd_row_trail if first % 2 else second + 0x7E
    if not (0x21 <= first <= 0x7E and 0x21 <= second <= 0x7E):
        raise UnicodeDecodeError("iso-2022-jp", bytes([first, second]), 0, 2, "not JIS X 0208")
    return bytes([lead, trail])


CHARSET_SUPERSETS: dict[str, tuple[str, ...]] = {
    "iso2022_jp_ext": ("iso2022_jp_2", "iso2022_jp_2004", "cp50220", "cp932"),
    "gb18030": ("hz",),
    "hz": ("gb18030",),
}
"""The codecs tried, in order, when a label's own codec fails. `cp50220` names our reading of
ISO-2022-JP through CP932 (`iso2022jp_as_cp932`); `cp932` after it catches Shift_JIS mail
labelled ISO-2022-JP, `hz` HZ-GB-2312 labelled GB2312."""


def _decoders(codec: str, data: bytes) -> list[Callable[[bytes], str]]:
    """The decoders to try for bytes labelled `codec`, the most likely first."""
    names = [codec, *CHARSET_SUPERSETS.get(codec, ()), "utf-8"]
    if codec == "gb18030" and data.isascii() and b"~{" in data:
        names.insert(0, "hz")
    decoders: list[Callable[[bytes], str]] = []
    for name in dict.fromkeys(names):
        if name == "cp50220":
            decoders.append(iso2022jp_as_cp932)
        else:
            decoders.append(functools.partial(_strict_decode, codec=name))
    return decoders


def _strict_decode(data: bytes, *, codec: str) -> str:
    return data.decode(codec)


def _codec(charset: str) -> str | None:
    """The Python codec for a MIME charset label, GB2312 and GBK read as GB18030."""
    label = charset.strip().strip("\"'").lower()
    if label in PLACEHOLDER_CHARSETS:
        return None
    label = CHARSET_ALIASES.get(label, label)
    try:
        "".encode(label)
        b"".decode(label)
        return codecs.lookup(label).name
    except (LookupError, ValueError):
        return None


def _mime_header_view(part: email.message.Message) -> email.message.Message:
    """The part itself, or when its MIME headers hold raw 8-bit bytes, a copy of them decoded.

    The stdlib would turn such bytes into U+FFFD when asked for a parameter.
    """
    raw_pairs = [
        (name, value)
        for name, value in part.raw_items()
        if name.lower() in {"content-type", "content-disposition"}
    ]
    if all(isinstance(value, str) and value.isascii() for _, value in raw_pairs):
        return part
    view = email.message.Message()
    for name, value in raw_pairs:
        view[name] = _undo_surrogates(str(value))
    return view


def _raw_headers(message: email.message.Message) -> dict[str, list[str]]:
    """Header values as received (8-bit bytes kept as surrogates), by lower-case name."""
    headers: dict[str, list[str]] = {}
    for name, value in message.raw_items():
        text = value if isinstance(value, str) else str(value)
        headers.setdefault(name.strip().lower(), []).append(text)
    return headers


def _unfold(value: str) -> str:
    return _FOLDING.sub("", value).strip()


def _undo_surrogates(value: str) -> str:
    """Decode raw 8-bit header bytes (kept by the parser as surrogates) as UTF-8 or GBK."""
    if value.isascii():
        return value
    try:
        raw = value.encode("ascii", "surrogateescape")
    except UnicodeEncodeError:
        return value
    return decode_unlabelled_bytes(raw)


def _decode_words(value: str) -> str:
    """Decode raw 8-bit bytes and RFC 2047 encoded-words anywhere in a value, even in quotes."""
    value = _undo_surrogates(value)
    if "=?" not in value:
        return value
    pieces: list[str] = []
    pending: list[tuple[str, bytes]] = []
    position = 0
    for found in _ENCODED_WORD.finditer(value):
        between = value[position : found.start()]
        if not (pending and _BETWEEN_WORDS.match(between)):
            if pending:
                pieces.append(_flush_words(pending))
            pieces.append(between)
        charset = found.group(1).split("*", 1)[0]
        pending.append((charset, _word_bytes(found.group(2), found.group(3))))
        position = found.end()
    if pending:
        pieces.append(_flush_words(pending))
    pieces.append(value[position:])
    return "".join(pieces)


def _flush_words(pending: list[tuple[str, bytes]]) -> str:
    """Decode adjacent encoded-words, joining bytes of the same charset split mid-character."""
    text: list[str] = []
    run_charset = pending[0][0]
    run: list[bytes] = []
    for charset, data in pending:
        if charset.lower() != run_charset.lower():
            text.append(decode_text(b"".join(run), run_charset, guess_on_error=True)[0])
            run_charset, run = charset, []
        run.append(data)
    text.append(decode_text(b"".join(run), run_charset, guess_on_error=True)[0])
    pending.clear()
    return "".join(text)


def _word_bytes(encoding: str, encoded: str) -> bytes:
    """The bytes an encoded-word carries, tolerating bad padding and stray characters."""
    if encoding in "qQ":
        return binascii.a2b_qp(encoded.encode("ascii", "replace"), header=True)
    cleaned = re.sub(r"[^A-Za-z0-9+/]", "", encoded)
    if len(cleaned) % 4 == 1:
        cleaned = cleaned[:-1]
    try:
        return base64.b64decode(cleaned + "=" * (-len(cleaned) % 4))
    except binascii.Error:
        return encoded.encode("ascii", "replace")


def _decode_rfc2231(charset: str, text: str) -> str:
    """Decode an RFC 2231 value that the stdlib percent-decoded into Latin-1 characters."""
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return _decode_words(text)
    if not charset:
        return _decode_words(decode_unlabelled_bytes(raw))
    return _decode_words(decode_text(raw, charset, guess_on_error=True)[0])


def _decode_transfer(encoded: bytes, encoding: str) -> bytes:
    """The bytes behind base64 or quoted-printable text (lenient about stray characters)."""
    if encoding == "quoted-printable":
        return quopri.decodestring(encoded)
    alphabet_only = re.sub(rb"[^A-Za-z0-9+/=]", b"", encoded)
    try:
        return base64.b64decode(alphabet_only + b"=" * (-len(alphabet_only) % 4))
    except (binascii.Error, ValueError):
        return b""


_WIRE_POLICY = email.policy.compat32.clone(linesep="\r\n")


def _message_bytes(message: email.message.Message) -> bytes:
    """A forwarded message as bytes, for its own hash and size (re-serialised when damaged)."""
    try:
        return message.as_bytes(policy=_WIRE_POLICY)
    except (ValueError, TypeError, LookupError, UnicodeError, RecursionError):
        return message.as_string(policy=_WIRE_POLICY).encode("utf-8", "surrogateescape")


def _payload_bytes(part: email.message.Message) -> bytes:
    """A leaf part's decoded content (base64, quoted-printable, uuencode), raw when undecodable."""
    data = part.get_payload(decode=True)
    if isinstance(data, bytes):
        return data
    payload = part.get_payload()
    if isinstance(payload, str):
        return payload.encode("utf-8", "surrogateescape")
    return b""


def _param(message: email.message.Message, name: str) -> str | None:
    value = message.get_param(name)
    if isinstance(value, tuple):
        value = value[2]
    return str(value).strip().lower() if value else None


def _delivery_status_blocks(
    part: email.message.Message, payload: object
) -> list[list[tuple[str, str]]]:
    """The field blocks of a message/delivery-status part, however it was parsed."""
    blocks: list[list[tuple[str, str]]] = []
    if isinstance(payload, list):
        for block in payload:
            if isinstance(block, email.message.Message):
                blocks.append(
                    [
                        (name, _decode_words(_unfold(str(value))))
                        for name, value in block.raw_items()
                    ]
                )
        return blocks
    text = _payload_bytes(part).decode("utf-8", "replace")
    for chunk in re.split(r"\r?\n\s*\r?\n", text):
        fields = re.findall(r"^([A-Za-z-]+)\s*:\s*(.*)$", chunk, re.MULTILINE)
        if fields:
            blocks.append([(name, value.strip()) for name, value in fields])
    return blocks


def _first_message_id(values: list[str] | None) -> str | None:
    if not values:
        return None
    value = strip_unsafe_characters(_undo_surrogates(_unfold(values[0])))
    found = _MESSAGE_ID.search(value)
    if found:
        return found.group(0)
    return value.split()[0] if value.split() else None


def _all_message_ids(values: list[str] | None) -> list[str]:
    if not values:
        return []
    text = " ".join(strip_unsafe_characters(_undo_surrogates(_unfold(value))) for value in values)
    return list(dict.fromkeys(_MESSAGE_ID.findall(text)))


MAX_OFFSET_HOURS = 14
"""Real zone offsets run from -12:00 to +14:00; a larger one (`+3200`) is damage."""


class _OffsetOutOfRangeError(ValueError):
    """A date whose zone offset no clock uses."""


def _read_date(value: str) -> datetime | None:
    """Read an RFC 5322 date with mail-parser, keeping the sender's offset; stdlib as fallback.

    Raises `_OffsetOutOfRangeError` when the zone offset is beyond any real zone's.
    """
    result = parse_mail_date(value)
    if result.value is not None:
        try:
            hours = float(result.timezone)
        except (TypeError, ValueError, OverflowError):
            hours = 0.0
        if abs(hours) > MAX_OFFSET_HOURS:
            raise _OffsetOutOfRangeError(value)
        selected: datetime = result.value
        return selected.astimezone(timezone(timedelta(hours=hours)))
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed.tzinfo is None:
        return parsed.replace(tzinfo=UTC)
    offset = parsed.utcoffset()
    if offset is not None and abs(offset) > timedelta(hours=MAX_OFFSET_HOURS):
        raise _OffsetOutOfRangeError(value)
    return parsed


def _received_at(values: list[str], problems: list[Problem]) -> datetime | None:
    """The date of the top-most `Received:` header that carries a readable, real one.

    A stamp with an impossible zone offset is skipped, with a problem in `problems`.
    """
    for value in values:
        text = _undo_surrogates(_unfold(value))
        try:
            _, stamp = split_received(text)
        except (MailParserError, ValueError):
            stamp = text.rpartition(";")[2] if ";" in text else None
        if stamp:
            try:
                when = _read_date(stamp.strip())
            except _OffsetOutOfRangeError:
                problems.append(date_out_of_range("Received", stamp.strip()))
                continue
            if when is not None:
                return when
    return None


def date_out_of_range(header: str, value: str) -> Problem:
    """The problem for a date header whose zone offset no clock uses."""
    return Problem("date_out_of_range", {"header": header, "value": value[:60]})
