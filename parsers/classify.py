"""What kind of mail a message is, and whether its sender may ever be answered.

Order of precedence: bounce > auto_reply > recommendation > large_attachment_link > other.
`auto_reply` is mail generated in answer to a message (vacation, out-of-office, RFC 3834
`auto-replied`, 自动回复). Mail a machine sent on its own (newsletters, list mail, system
notices) is `other` (or a big-file link) with `automated` set, and is never answered. Content
decides before headers: a human's form relayed by a group alias that adds `List-Id` or
`Precedence: list` is a recommendation, and is answered. A message with a real form attached
stays a recommendation even when it also links big files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from html.parser import HTMLParser

from parsers.model import Attachment, Bounce, LargeAttachmentLink, MessageKind

FORM_KINDS = frozenset({"form_word", "form_pdf"})
BOUNCE_SENDERS = frozenset({"mailer-daemon", "postmaster"})
_NO_REPLY_LOCAL_PART = re.compile(
    r"^(?:no[-_.]?reply|do[-_.]?not[-_.]?reply|mailer[-_.]?daemon|postmaster)(?:[-+_.].*)?$"
)
_AUTO_REPLY_SUBJECT = re.compile(
    r"^(?:(?:re|aw|回复|答复|回覆)\s*[:：]\s*)*[\[【(（]?\s*"
    r"(?:自动回复|自动答复|自動回覆|自動回復|休假|外出|不在办公室|auto[- ]?reply|auto[- ]?response"
    r"|automatic reply|automatische antwort|out of (?:the )?office|on vacation|vacation reply)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"undeliver|delivery status notification|delivery failure|mail delivery failed"
    r"|returned mail|failure notice|退信|投递失败|无法投递|未能送达",
    re.IGNORECASE,
)
_AUTO_REPLY_FLAG_HEADERS = ("x-autoreply", "x-autorespond", "x-qq-auto-reply", "x-auto-reply")
_EXCHANGE_LOOP_HEADERS = (
    "x-ms-exchange-inbox-rules-loop",
    "x-ms-exchange-organization-autoreplyloop",
    "x-ms-exchange-generated-message-source",
)
_LIST_HEADERS = ("list-unsubscribe", "list-id", "list-post")
_LIST_PRECEDENCE = frozenset({"list"})
_BULK_PRECEDENCE = frozenset({"bulk", "junk"})
_REPLY_PRECEDENCE = frozenset({"auto_reply"})
_AUTO_SUBMITTED_IN_ANSWER = frozenset({"auto-replied"})
_STATUS_CODE = re.compile(r"\b([245]\.\d{1,3}\.\d{1,3})\b")
_ANGLE_ADDRESS_LINE = re.compile(r"^\s*<([^<>\s@]+@[^<>\s@]+)>\s*:?", re.MULTILINE)
_ADDRESS = re.compile(r"[^\s<>;:,\"'()]+@[^\s<>;:,\"'()]+")
_QQ_MARKER = re.compile(r"<[^>]*\bid\s*=\s*[\"']?QQMailBigAttach\b", re.IGNORECASE)
_NETEASE_MARKER = re.compile(r"<[^>]*\bid\s*=\s*[\"']?divNeteaseBigAttach\b", re.IGNORECASE)
_BIG_ATTACHMENT_WORDS = re.compile(r"超大附件|网盘附件|云附件")
_FILENAME_LIKE = re.compile(r"\S\.[A-Za-z0-9]{1,8}$")
_EXPIRY = re.compile(
    r"(\d{4}\s*[年/-]\s*\d{1,2}\s*[月/-]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?)"
    r"\s*(?:到期|过期|失效)"
    r"|(?:到期|过期|有效期至|expires?)\s*(?:时间)?\s*[:：]?\s*"
    r"(\d{4}\s*[年/-]\s*\d{1,2}\s*[月/-]\s*\d{1,2}\s*日?(?:\s*\d{1,2}:\d{2}(?::\d{2})?)?)"
    r"|(永久有效|\d+\s*天后过期)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MessageFacts:
    """What classification looks at, already decoded by the mail parser."""

    headers: Mapping[str, Sequence[str]]  # lower-case name -> decoded values, top first
    sender: str
    subject: str
    content_type: str
    report_type: str | None
    text: str
    html: str
    attachments: Sequence[Attachment]
    delivery_status: Sequence[Sequence[tuple[str, str]]] = ()  # field blocks of DSN parts


@dataclass(frozen=True)
class Classification:
    """The verdict on one message, with what a bounce or a big-file link says."""

    kind: MessageKind
    no_reply: bool
    bounce: Bounce | None = None
    links: list[LargeAttachmentLink] = field(default_factory=list)
    automated: bool = False  # sent by a machine on its own (list, newsletter, notice)
    reply_reasons: tuple[str, ...] = ()  # why a person must answer: problem codes (see below)

    @property
    def needs_reply(self) -> bool:
        """Whether staff must answer the message themselves."""
        return bool(self.reply_reasons)


ATTACHMENT_MENTIONED_MISSING = "attachment_mentioned_missing"
QUESTION_NEEDS_REPLY = "question_needs_reply"
_ATTACHMENT_WORDS = re.compile(
    r"见附件|详见|请查收|查收|附件(?![一二三四五六七八九十\d１-９])|随附|附上|已附"
)
_QUESTION = re.compile(r"[?？]|请问|能否|可否|如何|怎么|怎样|为什么|哪里|是不是|吗[。，！!\s]|吗$")
_QUOTE_START = re.compile(
    r"^\s*(?:>|-{2,}\s*(?:原始邮件|original message|original|转发邮件|forwarded message)"
    r"|(?:发件人|from)\s*[:：]|在.{0,80}写道[:：]|on .{0,120}wrote:)",
    re.IGNORECASE | re.MULTILINE,
)
_URL = re.compile(r"https?://\S+|www\.\S+", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")
_HTML_SKIP = re.compile(r"<(style|script)\b.*?</\1\s*>", re.IGNORECASE | re.DOTALL)
INLINE_IMAGE_MAX_BYTES = 100 * 1024
"""Images up to this size are taken for signature logos, not for the files the mail means."""


def reply_reasons(facts: MessageFacts, links: Sequence[LargeAttachmentLink]) -> tuple[str, ...]:
    """Why a person must answer a human's message: it says files are attached and none
    are (nor any download link), or it asks a question. Only the sender's own words count:
    quoted earlier mail is cut off."""
    words = own_words(facts.text or _html_text(facts.html))
    reasons: list[str] = []
    real_files = [
        item
        for item in facts.attachments
        if not (item.content_type.startswith("image/") and item.size <= INLINE_IMAGE_MAX_BYTES)
    ]
    if not real_files and not links and _ATTACHMENT_WORDS.search(words):
        reasons.append(ATTACHMENT_MENTIONED_MISSING)
    if _QUESTION.search(_URL.sub(" ", words)):
        reasons.append(QUESTION_NEEDS_REPLY)
    return tuple(reasons)


def own_words(text: str) -> str:
    """The text the sender wrote, without the quoted mail under it."""
    found = _QUOTE_START.search(text)
    return text[: found.start()] if found else text


def _html_text(html: str) -> str:
    """The visible text of an HTML body, roughly: enough to look for words."""
    return _TAG.sub("\n", _HTML_SKIP.sub(" ", html)).replace("&nbsp;", " ")


def classify(facts: MessageFacts) -> Classification:
    """Decide the kind of a message and whether its sender must never be answered."""
    links = find_large_attachment_links(facts.html, facts.text)
    if is_bounce(facts):
        return Classification(
            "bounce", no_reply=True, bounce=read_bounce(facts), links=links, automated=True
        )
    if is_auto_reply(facts):
        return Classification("auto_reply", no_reply=True, links=links, automated=True)
    machine = is_machine_sent(facts)
    no_reply = machine or is_no_reply_address(facts.sender)
    if any(attachment.kind in FORM_KINDS for attachment in facts.attachments):
        # a relaying list alias does not make a unit's form a newsletter
        return Classification(
            "recommendation",
            no_reply=no_reply,
            links=links,
            automated=machine,
            reply_reasons=() if machine else reply_reasons(facts, links),
        )
    automated = no_reply or is_list_mail(facts.headers)
    kind: MessageKind = "large_attachment_link" if links else "other"
    return Classification(
        kind,
        no_reply=automated,
        links=links,
        automated=automated,
        reply_reasons=() if automated else reply_reasons(facts, links),
    )


def is_machine_sent(facts: MessageFacts) -> bool:
    """Whether a machine sent the message on its own: `Auto-Submitted` other than `no` or
    `auto-replied`, `Precedence: bulk/junk`, or a no-reply sender."""
    for value in facts.headers.get("auto-submitted", ()):
        token = value.split(";", 1)[0].strip().lower()
        if token not in {"", "no", *_AUTO_SUBMITTED_IN_ANSWER}:
            return True
    if any(
        value.strip().lower() in _BULK_PRECEDENCE for value in facts.headers.get("precedence", ())
    ):
        return True
    return is_no_reply_address(facts.sender)


def is_list_mail(headers: Mapping[str, Sequence[str]]) -> bool:
    """Whether a mailing list or group alias delivered the message (`List-*`, `Precedence:
    list`); a person may still have written it."""
    if any(value.strip().lower() in _LIST_PRECEDENCE for value in headers.get("precedence", ())):
        return True
    return any(name in headers for name in _LIST_HEADERS)


def is_no_reply_address(address: str) -> bool:
    """Whether an address is one that never reads replies (noreply@, MAILER-DAEMON@, ...)."""
    local_part = address.rsplit("@", 1)[0].lower()
    return _NO_REPLY_LOCAL_PART.match(local_part) is not None


def is_bounce(facts: MessageFacts) -> bool:
    """Whether a message is a delivery-status notification (a bounce)."""
    if facts.content_type == "multipart/report" and (facts.report_type or "") == "delivery-status":
        return True
    if facts.delivery_status:
        return True
    local_part = facts.sender.rsplit("@", 1)[0].lower()
    if local_part in BOUNCE_SENDERS:
        return True
    return _BOUNCE_SUBJECT.search(facts.subject) is not None and (
        _has_auto_header(facts.headers)
        or is_machine_sent(facts)
        or "x-failed-recipients" in facts.headers
    )


def is_auto_reply(facts: MessageFacts) -> bool:
    """Whether a message was generated in answer to another (RFC 3834 and vendor headers)."""
    return _has_auto_header(facts.headers) or _AUTO_REPLY_SUBJECT.search(facts.subject) is not None


def _has_auto_header(headers: Mapping[str, Sequence[str]]) -> bool:
    """Whether the headers mark a message as an automatic answer."""
    for value in headers.get("auto-submitted", ()):
        if value.split(";", 1)[0].strip().lower() in _AUTO_SUBMITTED_IN_ANSWER:
            return True
    for name in _AUTO_REPLY_FLAG_HEADERS:
        if any(
            value.strip().lower() not in {"no", "false", "0"} for value in headers.get(name, ())
        ):
            return True
    if "x-auto-response-suppress" in headers and any(
        name in headers for name in _EXCHANGE_LOOP_HEADERS
    ):
        return True
    return any(
        value.strip().lower() in _REPLY_PRECEDENCE for value in headers.get("precedence", ())
    )


def read_bounce(facts: MessageFacts) -> Bounce:
    """Extract failed recipients and the status code from a DSN, else from the bounce text."""
    recipients: list[str] = []
    status: str | None = None
    for block in facts.delivery_status:
        fields = {name.lower(): value for name, value in block}
        action = fields.get("action", "failed").strip().lower()
        if action not in {"failed", "delayed"}:
            continue
        address = _dsn_address(fields.get("original-recipient") or fields.get("final-recipient"))
        if address:
            recipients.append(address)
            if status is None and fields.get("status"):
                found = _STATUS_CODE.search(fields["status"])
                status = found.group(1) if found else fields["status"].strip()
    if not recipients:
        for value in facts.headers.get("x-failed-recipients", ()):
            recipients.extend(match.lower() for match in _ADDRESS.findall(value))
    if not recipients:
        recipients.extend(match.lower() for match in _ANGLE_ADDRESS_LINE.findall(facts.text))
    if status is None:
        found = _STATUS_CODE.search(facts.text)
        status = found.group(1) if found else None
    return Bounce(failed_recipients=tuple(dict.fromkeys(recipients)), status=status)


def _dsn_address(value: str | None) -> str | None:
    """The bare address of a DSN recipient field such as `rfc822; user@example.com`."""
    if not value:
        return None
    address = value.split(";", 1)[-1].strip().strip("<>").strip()
    return address.lower() or None


def find_large_attachment_links(html: str, text: str) -> list[LargeAttachmentLink]:
    """Find the download links QQ (超大附件) and Netease (网盘附件) put in place of real files."""
    for marker, provider in ((_QQ_MARKER, "qq"), (_NETEASE_MARKER, "netease")):
        found = marker.search(html)
        if found:
            return _links_in_html(html[found.start() :], provider)
    if _BIG_ATTACHMENT_WORDS.search(html):
        return _links_in_html(html, "")
    if _BIG_ATTACHMENT_WORDS.search(text):
        return _links_in_text(text)
    return []


class _AnchorCollector(HTMLParser):
    """Collects links with their text, and the text that follows each of them."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.anchors: list[tuple[str, list[str], list[str]]] = []
        self._open_anchor: tuple[str, list[str], list[str]] | None = None
        self._skip_depth = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in {"style", "script"}:
            self._skip_depth += 1
        elif tag == "a":
            href = dict(attrs).get("href") or ""
            self._open_anchor = (href.strip(), [], [])
            self.anchors.append(self._open_anchor)

    def handle_endtag(self, tag: str) -> None:
        if tag in {"style", "script"} and self._skip_depth:
            self._skip_depth -= 1
        elif tag == "a":
            self._open_anchor = None

    def handle_data(self, data: str) -> None:
        if self._skip_depth:
            return
        if self._open_anchor is not None:
            self._open_anchor[1].append(data)
        elif self.anchors:
            self.anchors[-1][2].append(data)


def _links_in_html(html: str, provider: str) -> list[LargeAttachmentLink]:
    """Turn the file links of a big-attachment block into `LargeAttachmentLink`s."""
    collector = _AnchorCollector()
    collector.feed(html)
    collector.close()
    links: dict[str, LargeAttachmentLink] = {}
    pending_expiry: list[str] = []
    for href, inner, after in collector.anchors:
        if not href.lower().startswith(("http://", "https://")):
            continue
        name = " ".join("".join(inner).split())
        following = " ".join("".join(after).split())
        if not _FILENAME_LIKE.search(name):
            pending_expiry.append(following)
            continue
        expires = _find_expiry(following) or _find_expiry(" ".join(pending_expiry))
        pending_expiry = []
        links[href] = LargeAttachmentLink(
            provider=provider or _provider_of(href), filename=name, url=href, expires=expires
        )
    return list(links.values())


def _links_in_text(text: str) -> list[LargeAttachmentLink]:
    """Read `name (size, date 到期)` lines followed by a URL from a plain-text big-file notice."""
    links: list[LargeAttachmentLink] = []
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    for index, line in enumerate(lines):
        url = re.search(r"https?://\S+", line)
        if not url:
            continue
        name = ""
        for previous in reversed(lines[max(0, index - 3) : index]):
            candidate = previous.split("(")[0].split("（")[0].strip()
            if _FILENAME_LIKE.search(candidate):
                name = candidate
                break
        if name:
            context = " ".join(lines[max(0, index - 3) : index + 1])
            links.append(
                LargeAttachmentLink(
                    provider=_provider_of(url.group(0)),
                    filename=name,
                    url=url.group(0),
                    expires=_find_expiry(context),
                )
            )
    return links


def _find_expiry(text: str) -> str | None:
    """The expiry a webmail wrote next to a file link, as written."""
    found = _EXPIRY.search(text)
    if not found:
        return None
    return next(group for group in found.groups() if group)


def _provider_of(url: str) -> str:
    """Which webmail a download link belongs to."""
    lowered = url.lower()
    if "qq.com" in lowered or "foxmail.com" in lowered:
        return "qq"
    if any(domain in lowered for domain in ("163.com", "126.com", "yeah.net", "188.com")):
        return "netease"
    return "other"
